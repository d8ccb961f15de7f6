package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// BIRD is a BIRD 2.0 router run by a Lab in its node's namespace. Its
// configuration (see birdConfig) imports everything from the controller
// into master4/master6 (unicast, with RTBH routes turned into blackhole
// routes that the kernel protocols install) and flowtab4/flowtab6
// (FlowSpec, not validated), and exports nothing.
//
// BIRD 2.0 has no JSON output: Routes parses the text of `birdc show route
// table T all` and decodes raw extended communities ("(generic,
// 0x80060000, 0x0)") itself. What it cannot tell apart: for a fragment
// flag alone, NOT from NOT|MATCH (both print "!is_fragment"; they match the
// same packets), reported as NOT; a 4-octet-AS route target with an AS
// below 65536 is taken as a 2-octet one (same text). Received has the time
// of day BIRD prints, on the current day.
//
// BIRD follows RFC 8955/8956 strictly: a malformed or unsupported NLRI (an
// IPv6 prefix with a non-zero offset as GoBGP 3 encodes it) makes it send
// a NOTIFICATION and reset the session, so it is a good conformance
// canary. Its sessions use "error wait time 1, 5" so that they recover
// within seconds.
type BIRD struct {
	spec routerSpec
	sock string
	proc *process

	stopOnce sync.Once
	stopErr  error
}

var _ Router = (*BIRD)(nil)

// birdProtocol names the BGP protocol of a session in BIRD's configuration.
func birdProtocol(s Session) string {
	v := "4"
	if s.CtlAddr.Is6() {
		v = "6"
	}
	return "c_" + s.Ctl + "_" + v
}

// birdConfig renders bird.conf for a node; logPath, when not empty, is
// BIRD's log file (else it logs to stderr).
func birdConfig(spec routerSpec, logPath string) string {
	var b strings.Builder
	if logPath != "" {
		fmt.Fprintf(&b, "log %q all;\n", logPath)
	} else {
		fmt.Fprintf(&b, "log stderr all;\n")
	}
	fmt.Fprintf(&b, "router id %s;\n", spec.routerID)
	b.WriteString(`protocol device { }
filter rtbh_in {
  if (65535,666) ~ bgp_community then dest = RTD_BLACKHOLE;
  accept;
}
protocol kernel kernel4 { ipv4 { export where source = RTS_BGP; }; }
protocol kernel kernel6 { ipv6 { export where source = RTS_BGP; }; }
flow4 table flowtab4;
flow6 table flowtab6;
`)
	for _, s := range spec.sessions {
		fmt.Fprintf(&b, "protocol bgp %s {\n", birdProtocol(s))
		fmt.Fprintf(&b, "  local %s as %d;\n", s.RouterAddr, s.RouterASN)
		fmt.Fprintf(&b, "  neighbor %s as %d;\n", s.CtlAddr, s.CtlASN)
		fmt.Fprintf(&b, "  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 5;\n")
		for _, f := range s.Families {
			switch f {
			case FamilyIPv4Unicast:
				b.WriteString("  ipv4 { import filter rtbh_in; export none; };\n")
			case FamilyIPv6Unicast:
				b.WriteString("  ipv6 { import filter rtbh_in; export none; };\n")
			case FamilyIPv4FlowSpec:
				b.WriteString("  flow4 { table flowtab4; import all; export none; };\n")
			case FamilyIPv6FlowSpec:
				b.WriteString("  flow6 { table flowtab6; import all; export none; };\n")
			}
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// startBIRD writes the configuration, starts bird in the foreground and
// returns once its control socket answers.
func startBIRD(ctx context.Context, spec routerSpec) (*BIRD, error) {
	conf := filepath.Join(spec.dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(birdConfig(spec, filepath.Join(spec.dir, "bird.log"))), 0o644); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	b := &BIRD{spec: spec, sock: filepath.Join(spec.dir, "bird.ctl")}
	var err error
	b.proc, err = startProcess(spec.node.Name+"/bird", spec.netns, filepath.Join(spec.dir, "bird.out"), nil,
		"bird", "-f", "-c", conf, "-s", b.sock, "-P", filepath.Join(spec.dir, "bird.pid"))
	if err != nil {
		return nil, err
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		_, err := b.birdc(ctx, "show", "status")
		if err == nil {
			return b, nil
		}
		if aerr := b.proc.alive(); aerr != nil {
			return b, aerr
		}
		select {
		case <-ctx.Done():
			return b, fmt.Errorf("wait for control socket: %w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Netns returns the router's namespace.
func (b *BIRD) Netns() string { return b.spec.netns }

func (b *BIRD) pids() []int { return []int{b.proc.PID()} }

func (b *BIRD) logExcerpt() string {
	var s strings.Builder
	for _, name := range []string{"bird.out", "bird.log"} {
		fmt.Fprintf(&s, "--- %s ---\n%s\n", name, tailFile(filepath.Join(b.spec.dir, name), logTailLines))
	}
	return s.String()
}

// Stop ends bird (SIGTERM, then SIGKILL). It is idempotent and returns an
// error if bird had exited on its own.
func (b *BIRD) Stop() error {
	b.stopOnce.Do(func() { b.stopErr = b.proc.stop() })
	return b.stopErr
}

// CLI runs a birdc command ("show", "route", "all") against this router and
// returns its output.
func (b *BIRD) CLI(ctx context.Context, args ...string) (string, error) {
	if err := b.proc.alive(); err != nil {
		return "", err
	}
	return b.birdc(ctx, args...)
}

func (b *BIRD) birdc(ctx context.Context, args ...string) (string, error) {
	out, err := run(ctx, append([]string{"birdc", "-s", b.sock}, args...)...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", b.spec.node.Name, err)
	}
	return out, nil
}

// WaitEstablished polls until the BGP protocol of the session with peer is
// Established.
func (b *BIRD) WaitEstablished(ctx context.Context, peer netip.Addr) error {
	i := slices.IndexFunc(b.spec.sessions, func(s Session) bool { return s.CtlAddr == peer })
	if i < 0 {
		return fmt.Errorf("wait for session %s-%s: not a configured neighbor", b.spec.node.Name, peer)
	}
	proto := birdProtocol(b.spec.sessions[i])
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	last := "unknown"
	for {
		if err := b.proc.alive(); err != nil {
			return fmt.Errorf("wait for session %s-%s: %w", b.spec.node.Name, peer, err)
		}
		out, err := b.birdc(ctx, "show", "protocols", proto)
		if err == nil {
			for line := range strings.Lines(out) {
				f := strings.Fields(line)
				if len(f) > 0 && f[0] == proto {
					last = strings.Join(f[3:], " ")
					if slices.Contains(f, "Established") {
						return nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for session %s-%s: last state %q: %w", b.spec.node.Name, peer, last, ctx.Err())
		case <-tick.C:
		}
	}
}

// birdTables maps families to the tables of birdConfig.
var birdTables = map[Family]string{
	FamilyIPv4Unicast:  "master4",
	FamilyIPv6Unicast:  "master6",
	FamilyIPv4FlowSpec: "flowtab4",
	FamilyIPv6FlowSpec: "flowtab6",
}

// Routes returns the BGP routes of family fam in BIRD's table, sorted by
// Prefix then From.
func (b *BIRD) Routes(ctx context.Context, fam Family) ([]Route, error) {
	table, ok := birdTables[fam]
	if !ok {
		return nil, fmt.Errorf("list routes on %s: unsupported family %q", b.spec.node.Name, fam)
	}
	out, err := b.CLI(ctx, "show", "route", "table", table, "all")
	if err != nil {
		return nil, fmt.Errorf("list %s routes: %w", fam, err)
	}
	routes, err := parseBIRDRoutes(fam, out, time.Now())
	if err != nil {
		return nil, fmt.Errorf("list %s routes on %s: %w", fam, b.spec.node.Name, err)
	}
	sortRoutes(routes)
	return routes, nil
}

// parseBIRDRoutes parses `birdc show route table T all`: a route line
// ("203.0.113.10/32  blackhole [proto 17:36:15.039 from 10.0.2.1] *
// (100) [AS65000?]", or "flow4 { ... }  [...]"; further paths of the same
// network start with spaces), then its attributes on tab-indented lines.
// Only routes of type BGP are returned.
func parseBIRDRoutes(fam Family, out string, now time.Time) ([]Route, error) {
	var (
		routes []Route
		cur    *Route
		isBGP  bool
		net    string
		errs   []error
	)
	flush := func() {
		if cur != nil && isBGP {
			routes = append(routes, *cur)
		}
		cur, isBGP = nil, false
	}
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.TrimSpace(line) == "", strings.HasPrefix(line, "BIRD "), strings.HasPrefix(line, "Table "):
			continue
		case strings.HasPrefix(line, "\t"):
			if cur == nil {
				continue
			}
			key, value, _ := strings.Cut(strings.TrimSpace(line), ": ")
			if key == "Type" {
				isBGP = strings.HasPrefix(value, "BGP")
				continue
			}
			if err := birdAttribute(cur, key, value); err != nil {
				errs = append(errs, fmt.Errorf("route %s: %w", cur.Prefix, err))
			}
			continue
		}
		flush()
		open := strings.Index(line, "[")
		closing := strings.Index(line, "]")
		if open < 0 || closing < open {
			errs = append(errs, fmt.Errorf("unexpected line %q", line))
			continue
		}
		left := line[:open]
		if !strings.HasPrefix(left, " ") {
			if strings.Contains(left, "{") {
				net = strings.TrimSpace(left)
			} else {
				net = strings.Fields(left)[0]
			}
		}
		r := Route{Family: fam}
		var err error
		if fam.IsFlowSpec() {
			var rule flowRule
			rule, err = parseBIRDFlow(net)
			r.Prefix = rule.String()
		} else {
			var p netip.Prefix
			p, err = netip.ParsePrefix(net)
			r.Prefix = p.Masked().String()
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		src := strings.Fields(line[open+1 : closing])
		if len(src) >= 2 {
			r.Received = birdTime(src[1], now)
		}
		if len(src) >= 4 && src[2] == "from" {
			if a, err := netip.ParseAddr(src[3]); err == nil {
				r.From = a
			}
		}
		rest := line[closing+1:]
		if i := strings.Index(rest, "("); i >= 0 {
			r.Best = strings.Contains(rest[:i], "*")
		}
		cur = &r
	}
	flush()
	return routes, errors.Join(errs...)
}

// birdTime converts BIRD's time of day ("17:36:15.104") to a time on the
// day of now (the previous day if that is in the future).
func birdTime(s string, now time.Time) time.Time {
	t, err := time.ParseInLocation("15:04:05.000", s, now.Location())
	if err != nil {
		return time.Time{}
	}
	y, m, d := now.Date()
	at := time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), now.Location())
	if at.After(now.Add(time.Minute)) {
		at = at.AddDate(0, 0, -1)
	}
	return at
}

var birdParenRE = regexp.MustCompile(`\(([^)]*)\)`)

// birdAttribute stores one "BGP.x: value" attribute line into r.
func birdAttribute(r *Route, key, value string) error {
	switch key {
	case "BGP.as_path":
		for _, f := range strings.Fields(strings.NewReplacer("{", " ", "}", " ").Replace(value)) {
			n, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return fmt.Errorf("as path %q: %w", value, err)
			}
			r.ASPath = append(r.ASPath, uint32(n))
		}
	case "BGP.next_hop":
		if f := strings.Fields(value); len(f) > 0 {
			if a, err := netip.ParseAddr(f[0]); err == nil {
				r.NextHop = a
			}
		}
	case "BGP.community":
		for _, m := range birdParenRE.FindAllStringSubmatch(value, -1) {
			r.Communities = append(r.Communities, strings.ReplaceAll(strings.ReplaceAll(m[1], " ", ""), ",", ":"))
		}
	case "BGP.large_community":
		for _, m := range birdParenRE.FindAllStringSubmatch(value, -1) {
			r.LargeCommunities = append(r.LargeCommunities, strings.ReplaceAll(strings.ReplaceAll(m[1], " ", ""), ",", ":"))
		}
	case "BGP.ext_community":
		for _, m := range birdParenRE.FindAllStringSubmatch(value, -1) {
			ec, err := birdExtCommunity(m[1])
			if err != nil {
				return err
			}
			r.ExtCommunities = append(r.ExtCommunities, ec)
		}
	}
	return nil
}

// birdExtCommunity converts one extended community as BIRD prints it
// ("generic, 0x80060000, 0x0", "rt, 65000, 100", "unknown 0x8008, 65000,
// 100") into the text of ExtCommunityText.
func birdExtCommunity(s string) (string, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return "", fmt.Errorf("extended community %q: want 3 fields", s)
	}
	kind, key, val := strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1]), strings.TrimSpace(parts[2])
	var b [8]byte
	if kind == "generic" {
		hi, err1 := strconv.ParseUint(strings.TrimPrefix(key, "0x"), 16, 32)
		lo, err2 := strconv.ParseUint(strings.TrimPrefix(val, "0x"), 16, 32)
		if err := errors.Join(err1, err2); err != nil {
			return "", fmt.Errorf("extended community %q: %w", s, err)
		}
		binary.BigEndian.PutUint32(b[0:4], uint32(hi))
		binary.BigEndian.PutUint32(b[4:8], uint32(lo))
		return ExtCommunityText(b[:]), nil
	}
	var typ, sub byte
	switch {
	case kind == "rt":
		sub = 0x02
	case kind == "ro":
		sub = 0x03
	case strings.HasPrefix(kind, "unknown 0x"):
		ts, err := strconv.ParseUint(strings.TrimPrefix(kind, "unknown 0x"), 16, 16)
		if err != nil {
			return "", fmt.Errorf("extended community %q: %w", s, err)
		}
		typ, sub = byte(ts>>8), byte(ts)
	default:
		return "", fmt.Errorf("extended community %q: unknown kind", s)
	}
	v, err := strconv.ParseUint(val, 10, 32)
	if err != nil {
		return "", fmt.Errorf("extended community %q: %w", s, err)
	}
	if a, err := netip.ParseAddr(key); err == nil && a.Is4() {
		b[0], b[1] = typ|0x01, sub
		copy(b[2:6], a.AsSlice())
		binary.BigEndian.PutUint16(b[6:8], uint16(v))
		return ExtCommunityText(b[:]), nil
	}
	k, err := strconv.ParseUint(key, 10, 32)
	if err != nil {
		return "", fmt.Errorf("extended community %q: %w", s, err)
	}
	b[1] = sub
	if k > 0xffff || typ&0x3f == 0x02 {
		b[0] = typ | 0x02
		binary.BigEndian.PutUint32(b[2:6], uint32(k))
		binary.BigEndian.PutUint16(b[6:8], uint16(v))
	} else {
		b[0] = typ
		binary.BigEndian.PutUint16(b[2:4], uint16(k))
		binary.BigEndian.PutUint32(b[4:8], uint32(v))
	}
	return ExtCommunityText(b[:]), nil
}

// birdFlowNames maps BIRD's component names to types, multi-word names
// first.
var birdFlowNames = []struct {
	name string
	typ  bgp.BGPFlowSpecType
}{
	{"next header", bgp.FLOW_SPEC_TYPE_IP_PROTO},
	{"icmp type", bgp.FLOW_SPEC_TYPE_ICMP_TYPE},
	{"icmp code", bgp.FLOW_SPEC_TYPE_ICMP_CODE},
	{"tcp flags", bgp.FLOW_SPEC_TYPE_TCP_FLAG},
	{"dst", bgp.FLOW_SPEC_TYPE_DST_PREFIX},
	{"src", bgp.FLOW_SPEC_TYPE_SRC_PREFIX},
	{"proto", bgp.FLOW_SPEC_TYPE_IP_PROTO},
	{"port", bgp.FLOW_SPEC_TYPE_PORT},
	{"dport", bgp.FLOW_SPEC_TYPE_DST_PORT},
	{"sport", bgp.FLOW_SPEC_TYPE_SRC_PORT},
	{"length", bgp.FLOW_SPEC_TYPE_PKT_LEN},
	{"dscp", bgp.FLOW_SPEC_TYPE_DSCP},
	{"fragment", bgp.FLOW_SPEC_TYPE_FRAGMENT},
	{"label", bgp.FLOW_SPEC_TYPE_LABEL},
}

// parseBIRDFlow parses a FlowSpec network as BIRD prints it: "flow4 { dst
// 203.0.113.20/32; proto 6; dport 80..443; tcp flags !0x0/0x2; fragment
// !!is_fragment; }".
func parseBIRDFlow(s string) (flowRule, error) {
	body, ok := strings.CutPrefix(s, "flow4 {")
	if !ok {
		body, ok = strings.CutPrefix(s, "flow6 {")
	}
	body, ok2 := strings.CutSuffix(strings.TrimSpace(body), "}")
	if !ok || !ok2 {
		return nil, fmt.Errorf("bird flow %q: not flow4/flow6 { ... }", s)
	}
	var rule flowRule
	for part := range strings.SplitSeq(body, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i := slices.IndexFunc(birdFlowNames, func(n struct {
			name string
			typ  bgp.BGPFlowSpecType
		}) bool {
			return strings.HasPrefix(part, n.name+" ")
		})
		if i < 0 {
			return nil, fmt.Errorf("bird flow %q: unknown component %q", s, part)
		}
		typ := birdFlowNames[i].typ
		value := strings.TrimSpace(part[len(birdFlowNames[i].name):])
		c := flowComponent{typ: typ}
		var err error
		switch {
		case isPrefixType(typ):
			f := strings.Fields(value)
			var pfx string
			switch {
			case len(f) == 1:
				pfx = f[0]
			case len(f) == 3 && f[1] == "offset":
				pfx = f[0] + "/off" + f[2]
			default:
				err = fmt.Errorf("bad prefix %q", value)
			}
			if err == nil {
				c.prefix, c.offset, err = parseFlowPrefix(pfx)
			}
		case isBitmaskType(typ):
			c.items, err = parseBIRDBitmask(value)
		default:
			c.items, err = parseBIRDNumeric(value)
		}
		if err != nil {
			return nil, fmt.Errorf("bird flow %q: %s: %w", s, typ, err)
		}
		rule = append(rule, c)
	}
	return rule, nil
}

// birdNumericOps maps BIRD's numeric operators to lt/gt/eq bits.
var birdNumericOps = map[string]uint8{
	"true":  0,
	"=":     fsOpEqual,
	">":     fsOpGreater,
	">=":    fsOpGreater | fsOpEqual,
	"<":     fsOpLessThan,
	"<=":    fsOpLessThan | fsOpEqual,
	"!=":    fsOpLessThan | fsOpGreater,
	"false": fsOpLessThan | fsOpGreater | fsOpEqual,
}

// parseBIRDNumeric parses a numeric list as BIRD prints it: items joined
// by "," or "||" (OR) or "&&" (AND); an item is "N" (==), "A..B" (>=A and
// <=B) or "OP N".
func parseBIRDNumeric(s string) ([]flowItem, error) {
	toks := strings.Fields(strings.ReplaceAll(s, ",", " , "))
	var items []flowItem
	and := false
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		switch tok {
		case ",", "||":
			and = false
			continue
		case "&&":
			and = true
			continue
		}
		it := flowItem{and: and && len(items) > 0}
		and = false
		if op, ok := birdNumericOps[tok]; ok {
			if i+1 >= len(toks) {
				return nil, fmt.Errorf("operator %q without value in %q", tok, s)
			}
			i++
			n, err := strconv.ParseUint(toks[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("bad value in %q: %w", s, err)
			}
			it.op, it.value = op, n
			items = append(items, it)
			continue
		}
		if lo, hi, ok := strings.Cut(tok, ".."); ok {
			a, err1 := strconv.ParseUint(lo, 10, 32)
			b, err2 := strconv.ParseUint(hi, 10, 32)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("bad range in %q: %w", s, err)
			}
			it.op, it.value = fsOpGreater|fsOpEqual, a
			items = append(items, it, flowItem{and: true, op: fsOpLessThan | fsOpEqual, value: b})
			continue
		}
		n, err := strconv.ParseUint(tok, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q: %w", s, err)
		}
		it.op, it.value = fsOpEqual, n
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("empty list %q", s)
	}
	return items, nil
}

var (
	birdBitmaskHexRE  = regexp.MustCompile(`^(!?)0x([0-9a-f]+)/0x([0-9a-f]+)$`)
	birdBitmaskNameRE = regexp.MustCompile(`^(!{0,2})(dont_fragment|is_fragment|first_fragment|last_fragment)$`)
)

// parseBIRDBitmask parses a bitmask list as BIRD prints it: items joined by
// "&&" or "||"; an item is "[!]V/M" (not/match: !0/M any, M/M match, 0/M
// not, !M/M not+match) or, for one fragment flag, "!!flag" (any), "flag"
// (match), "!flag" (not, or not+match).
func parseBIRDBitmask(s string) ([]flowItem, error) {
	var items []flowItem
	and := false
	for _, tok := range strings.Fields(s) {
		switch tok {
		case "||":
			and = false
			continue
		case "&&":
			and = true
			continue
		}
		it := flowItem{and: and && len(items) > 0}
		and = false
		if m := birdBitmaskHexRE.FindStringSubmatch(tok); m != nil {
			v, err1 := strconv.ParseUint(m[2], 16, 16)
			mask, err2 := strconv.ParseUint(m[3], 16, 16)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("bad bitmask %q: %w", tok, err)
			}
			neg := m[1] == "!"
			switch {
			case neg && v == 0:
				it.op = 0
			case neg && v == mask:
				it.op = fsOpNot | fsOpMatch
			case v == mask:
				it.op = fsOpMatch
			case v == 0:
				it.op = fsOpNot
			default:
				return nil, fmt.Errorf("bitmask %q: value neither 0 nor the mask", tok)
			}
			it.value = mask
			items = append(items, it)
			continue
		}
		if m := birdBitmaskNameRE.FindStringSubmatch(tok); m != nil {
			switch m[1] {
			case "!!":
				it.op = 0
			case "":
				it.op = fsOpMatch
			default:
				it.op = fsOpNot
			}
			it.value = 1 << slices.Index(fragmentFlagNames, strings.ReplaceAll(m[2], "_", "-"))
			items = append(items, it)
			continue
		}
		return nil, fmt.Errorf("bad bitmask item %q in %q", tok, s)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("empty list %q", s)
	}
	return items, nil
}
