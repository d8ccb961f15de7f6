package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// FRR daemon binaries (Debian's frr package).
const (
	frrZebra = "/usr/lib/frr/zebra"
	frrBGPd  = "/usr/lib/frr/bgpd"
)

// The discard next hops FRR's RTBH import route-maps set: 192.0.2.1
// (IPv4) and 100::1 (RFC 6666 discard prefix), each covered by a kernel
// blackhole route that Up adds to an FRR node's namespace, so that zebra
// installs the RTBH prefix as a blackhole route.
var (
	frrDiscardNextHop4 = netip.MustParseAddr("192.0.2.1")
	frrDiscardNextHop6 = netip.MustParseAddr("100::1")
	frrDiscardRoutes   = []StaticRoute{
		{Prefix: netip.MustParsePrefix("192.0.2.1/32")},
		{Prefix: netip.MustParsePrefix("100::/64")},
	}
)

// FRR is an FRR 8.4 router (zebra and bgpd) run by a Lab in its node's
// namespace. Its configuration (see frrConfig) accepts everything from the
// controller (no bgp ebgp-requires-policy), maps routes carrying BLACKHOLE
// (65535:666) to a discard next hop so that zebra installs them as kernel
// blackhole routes, and never configures FlowSpec local-install (zebra
// 8.4.4 crashes with it).
//
// What FRR reports, read with vtysh through the JSON commands:
//
//   - unicast: everything, after the import route-map: NextHop of an RTBH
//     route is the discard next hop (192.0.2.1 or 100::1), not the one
//     received.
//   - FlowSpec: the components and the actions, but FRR 8.4 prints
//     neither the AND bit of numeric operators (the lab rebuilds it: an
//     upper bound right after a lower bound is ANDed, anything else ORed),
//     nor the bits of traffic-action (it reads the wrong byte; reported as
//     ExtCommunityActionUnreported), nor the AS of traffic-rate, nor the
//     AS path, communities, peer or best flag of a FlowSpec path (left
//     empty). See Route.ReportedBy.
//
// FRR 8.4 also rejects the numeric operator != (NLRI error, session
// reset), and its zebra has been seen crashing (SIGSEGV) when a session
// carrying FlowSpec routes was reset; Routes and WaitEstablished then fail
// with the crash.
type FRR struct {
	spec  routerSpec
	zebra *process
	bgpd  *process

	stopOnce sync.Once
	stopErr  error
}

var _ Router = (*FRR)(nil)

// ExtCommunityActionUnreported stands for a traffic-action extended
// community whose bits a router does not report (FRR).
const ExtCommunityActionUnreported = "traffic-action:unreported"

// frrConfig renders zebra.conf and bgpd.conf for a node. logDir, when not
// empty, is where the daemons write their logs.
func frrConfig(spec routerSpec, logDir string) (zebra, bgpd string) {
	var z strings.Builder
	fmt.Fprintf(&z, "hostname %s\n", spec.node.Name)
	if logDir != "" {
		fmt.Fprintf(&z, "log file %s\n", filepath.Join(logDir, "zebra.log"))
	}
	// zebra 8.4.4 crashed (SIGSEGV in zebra_nhg_uninstall_kernel) when it
	// removed RTBH routes resolved through a blackhole route, at bgpd
	// shutdown or session reset, with kernel nexthop objects in use.
	fmt.Fprintf(&z, "no zebra nexthop kernel enable\n")
	// bgpd asks zebra for a chunk of 100000 routing tables to build FlowSpec
	// policy routing, which FRR never installs in the kernel (no netfilter
	// driver) and which crashed zebra 8.4.4 (SIGSEGV in dplane_ctx_fini)
	// when a rule was announced again after its withdrawal. A smaller range
	// makes the request fail, and bgpd then skips policy routing.
	fmt.Fprintf(&z, "ip table range 4294900000 4294967295\n")

	var b strings.Builder
	fmt.Fprintf(&b, "hostname %s\n", spec.node.Name)
	if logDir != "" {
		fmt.Fprintf(&b, "log file %s\n", filepath.Join(logDir, "bgpd.log"))
	}
	fmt.Fprintf(&b, "!\n")
	fmt.Fprintf(&b, "bgp community-list standard BLACKHOLE seq 5 permit 65535:666\n")
	fmt.Fprintf(&b, "route-map RTBH-IN permit 10\n match community BLACKHOLE\n set ip next-hop %s\nexit\n", frrDiscardNextHop4)
	fmt.Fprintf(&b, "route-map RTBH-IN permit 20\nexit\n")
	fmt.Fprintf(&b, "route-map RTBH6-IN permit 10\n match community BLACKHOLE\n set ipv6 next-hop global %s\nexit\n", frrDiscardNextHop6)
	fmt.Fprintf(&b, "route-map RTBH6-IN permit 20\nexit\n")
	fmt.Fprintf(&b, "!\n")
	fmt.Fprintf(&b, "router bgp %d\n", spec.node.ASN)
	fmt.Fprintf(&b, " bgp router-id %s\n", spec.routerID)
	fmt.Fprintf(&b, " no bgp ebgp-requires-policy\n")
	fmt.Fprintf(&b, " no bgp default ipv4-unicast\n")
	for _, s := range spec.sessions {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n", s.CtlAddr, s.CtlASN)
		fmt.Fprintf(&b, " neighbor %s timers connect 1\n", s.CtlAddr)
		// The RTBH next hop is not on the link.
		fmt.Fprintf(&b, " neighbor %s disable-connected-check\n", s.CtlAddr)
	}
	for _, fam := range []struct {
		family Family
		af     string
		policy string
	}{
		{FamilyIPv4Unicast, "ipv4 unicast", "RTBH-IN"},
		{FamilyIPv6Unicast, "ipv6 unicast", "RTBH6-IN"},
		{FamilyIPv4FlowSpec, "ipv4 flowspec", ""},
		{FamilyIPv6FlowSpec, "ipv6 flowspec", ""},
	} {
		var lines []string
		for _, s := range spec.sessions {
			if !slices.Contains(s.Families, fam.family) {
				continue
			}
			lines = append(lines, fmt.Sprintf("  neighbor %s activate", s.CtlAddr))
			if fam.policy != "" {
				lines = append(lines, fmt.Sprintf("  neighbor %s route-map %s in", s.CtlAddr, fam.policy))
			}
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, " address-family %s\n%s\n exit-address-family\n", fam.af, strings.Join(lines, "\n"))
	}
	fmt.Fprintf(&b, "!\n")
	return z.String(), b.String()
}

// startFRR writes the configuration and starts zebra, then bgpd, and
// returns once bgpd answers vtysh.
func startFRR(ctx context.Context, spec routerSpec) (*FRR, error) {
	zconf, bconf := frrConfig(spec, spec.dir)
	files := map[string]string{"zebra.conf": zconf, "bgpd.conf": bconf, "vtysh.conf": ""}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(spec.dir, name), []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	// Sockets of a previous instance.
	for _, name := range []string{"zserv.api", "zebra.vty", "bgpd.vty"} {
		if err := os.Remove(filepath.Join(spec.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	// The daemons drop privileges to user frr.
	if err := chownTree(spec.dir, "frr"); err != nil {
		return nil, err
	}
	f := &FRR{spec: spec}
	zserv := filepath.Join(spec.dir, "zserv.api")
	common := func(daemon string) []string {
		return []string{
			"-P", "0", // no TCP vty
			"-f", filepath.Join(spec.dir, daemon+".conf"),
			"-i", filepath.Join(spec.dir, daemon+".pid"),
			"-z", zserv,
			"--vty_socket", spec.dir,
		}
	}
	var err error
	f.zebra, err = startProcess(spec.node.Name+"/zebra", spec.netns, filepath.Join(spec.dir, "zebra.out"), nil,
		append([]string{frrZebra}, common("zebra")...)...)
	if err != nil {
		return nil, err
	}
	if err := waitFile(ctx, zserv, f.zebra); err != nil {
		return f, fmt.Errorf("wait for zebra: %w", err)
	}
	f.bgpd, err = startProcess(spec.node.Name+"/bgpd", spec.netns, filepath.Join(spec.dir, "bgpd.out"), nil,
		append([]string{frrBGPd}, common("bgpd")...)...)
	if err != nil {
		return f, err
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		_, err := f.vtysh(ctx, "show bgp summary json")
		if err == nil {
			return f, nil
		}
		select {
		case <-ctx.Done():
			return f, fmt.Errorf("wait for bgpd vty: %w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// waitFile polls until path exists, p exits, or ctx is done.
func waitFile(ctx context.Context, path string, p *process) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if err := p.alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// chownTree gives dir and its entries to the named user and its group.
func chownTree(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("look up user %s: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	return filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, int(uid), int(gid)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
		return nil
	})
}

// Netns returns the router's namespace.
func (f *FRR) Netns() string { return f.spec.netns }

// pids lists zebra's and bgpd's PIDs.
func (f *FRR) pids() []int {
	var out []int
	for _, p := range []*process{f.zebra, f.bgpd} {
		if p != nil {
			out = append(out, p.PID())
		}
	}
	return out
}

// logExcerpt returns the last lines of zebra's and bgpd's logs.
func (f *FRR) logExcerpt() string {
	var b strings.Builder
	for _, name := range []string{"zebra.out", "zebra.log", "bgpd.out", "bgpd.log"} {
		fmt.Fprintf(&b, "--- %s ---\n%s\n", name, tailFile(filepath.Join(f.spec.dir, name), logTailLines))
	}
	return b.String()
}

// alive returns an error if zebra or bgpd has exited.
func (f *FRR) alive() error {
	for _, p := range []*process{f.zebra, f.bgpd} {
		if p == nil {
			return errors.New("frr not started")
		}
		if err := p.alive(); err != nil {
			return err
		}
	}
	return nil
}

// Stop ends bgpd, then zebra (SIGTERM, then SIGKILL). It is idempotent
// and returns an error if either had exited on its own.
func (f *FRR) Stop() error {
	f.stopOnce.Do(func() { f.stopErr = stopAll(f.bgpd, f.zebra) })
	return f.stopErr
}

// VTY runs vtysh commands against this router (one -c per command) and
// returns the output; several JSON commands print concatenated documents.
func (f *FRR) VTY(ctx context.Context, commands ...string) (string, error) {
	if err := f.alive(); err != nil {
		return "", err
	}
	return f.vtysh(ctx, commands...)
}

func (f *FRR) vtysh(ctx context.Context, commands ...string) (string, error) {
	args := []string{"vtysh", "--config_dir", f.spec.dir, "--vty_socket", f.spec.dir}
	for _, c := range commands {
		args = append(args, "-c", c)
	}
	out, err := run(ctx, args...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", f.spec.node.Name, err)
	}
	return out, nil
}

// WaitEstablished polls until the session with peer is Established.
func (f *FRR) WaitEstablished(ctx context.Context, peer netip.Addr) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	last := "unknown"
	for {
		if err := f.alive(); err != nil {
			return fmt.Errorf("wait for session %s-%s: %w", f.spec.node.Name, peer, err)
		}
		out, err := f.vtysh(ctx, "show bgp neighbors "+peer.String()+" json")
		if err == nil {
			var resp map[string]struct {
				BGPState string `json:"bgpState"`
			}
			if jerr := json.Unmarshal([]byte(out), &resp); jerr == nil {
				if st, ok := resp[peer.String()]; ok {
					last = st.BGPState
					if st.BGPState == "Established" {
						return nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for session %s-%s: last state %s: %w", f.spec.node.Name, peer, last, ctx.Err())
		case <-tick.C:
		}
	}
}

// Routes returns the routes of family fam in bgpd's table, sorted by
// Prefix then From.
func (f *FRR) Routes(ctx context.Context, fam Family) ([]Route, error) {
	if err := f.alive(); err != nil {
		return nil, err
	}
	var cmd string
	switch fam {
	case FamilyIPv4Unicast:
		cmd = "show bgp ipv4 unicast json detail"
	case FamilyIPv6Unicast:
		cmd = "show bgp ipv6 unicast json detail"
	case FamilyIPv4FlowSpec:
		cmd = "show bgp ipv4 flowspec detail json"
	case FamilyIPv6FlowSpec:
		cmd = "show bgp ipv6 flowspec detail json"
	default:
		return nil, fmt.Errorf("list routes on %s: unsupported family %q", f.spec.node.Name, fam)
	}
	out, err := f.vtysh(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("list %s routes: %w", fam, err)
	}
	var routes []Route
	if fam.IsFlowSpec() {
		routes, err = parseFRRFlowSpec(fam, []byte(out), time.Now())
	} else {
		routes, err = parseFRRUnicast(fam, []byte(out))
	}
	if err != nil {
		return nil, fmt.Errorf("list %s routes on %s: %w", fam, f.spec.node.Name, err)
	}
	sortRoutes(routes)
	return routes, nil
}

// sortRoutes sorts by Prefix, then From.
func sortRoutes(routes []Route) {
	slices.SortStableFunc(routes, func(a, b Route) int {
		if c := strings.Compare(a.Prefix, b.Prefix); c != 0 {
			return c
		}
		return a.From.Compare(b.From)
	})
}

// frrUnicastPath is one path of `show bgp ... json detail`.
type frrUnicastPath struct {
	ASPath *struct {
		Segments []struct {
			List []uint32 `json:"list"`
		} `json:"segments"`
	} `json:"aspath"`
	Community *struct {
		List []string `json:"list"`
	} `json:"community"`
	LargeCommunity *struct {
		List []string `json:"list"`
	} `json:"largeCommunity"`
	ExtendedCommunity *struct {
		String string `json:"string"`
	} `json:"extendedCommunity"`
	Bestpath *struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	LastUpdate *struct {
		Epoch int64 `json:"epoch"`
	} `json:"lastUpdate"`
	Stale    bool `json:"stale"`
	Nexthops []struct {
		IP    string `json:"ip"`
		Scope string `json:"scope"`
	} `json:"nexthops"`
	Peer *struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
}

// parseFRRUnicast parses `show bgp <afi> unicast json detail`: a map of
// prefixes to lists whose first element describes the prefix and the
// others are its paths.
func parseFRRUnicast(fam Family, out []byte) ([]Route, error) {
	var resp struct {
		Routes map[string][]json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("decode json: %w (output %q)", err, truncate(out, 200))
	}
	var routes []Route
	for prefix, elems := range resp.Routes {
		p, err := netip.ParsePrefix(prefix)
		if err != nil {
			return nil, fmt.Errorf("bad prefix %q: %w", prefix, err)
		}
		for _, raw := range elems {
			var path frrUnicastPath
			if err := json.Unmarshal(raw, &path); err != nil {
				return nil, fmt.Errorf("decode path of %s: %w", prefix, err)
			}
			if path.Peer == nil && len(path.Nexthops) == 0 {
				continue // the element describing the prefix
			}
			r := Route{Family: fam, Prefix: p.Masked().String()}
			if path.ASPath != nil {
				for _, seg := range path.ASPath.Segments {
					r.ASPath = append(r.ASPath, seg.List...)
				}
			}
			if path.Community != nil {
				for _, c := range path.Community.List {
					r.Communities = append(r.Communities, frrCommunity(c))
				}
			}
			if path.LargeCommunity != nil {
				r.LargeCommunities = append(r.LargeCommunities, path.LargeCommunity.List...)
			}
			if path.ExtendedCommunity != nil {
				r.ExtCommunities = parseFRRExtCommunities(path.ExtendedCommunity.String)
			}
			if path.Bestpath != nil {
				r.Best = path.Bestpath.Overall
			}
			r.Stale = path.Stale
			if path.LastUpdate != nil && path.LastUpdate.Epoch != 0 {
				r.Received = time.Unix(path.LastUpdate.Epoch, 0)
			}
			for _, nh := range path.Nexthops {
				if a, err := netip.ParseAddr(nh.IP); err == nil && (nh.Scope == "" || nh.Scope == "global") {
					r.NextHop = a
					break
				}
			}
			if path.Peer != nil {
				if a, err := netip.ParseAddr(path.Peer.PeerID); err == nil {
					r.From = a
				}
			}
			routes = append(routes, r)
		}
	}
	return routes, nil
}

// frrCommunityNames maps FRR's names of well-known communities, with
// dashes removed and lower-cased (it prints "no-export" in text and
// "noExport" in JSON lists), to their values.
var frrCommunityNames = map[string]string{
	"internet":                "0:0",
	"gracefulshutdown":        "65535:0",
	"acceptown":               "65535:1",
	"routefiltertranslatedv4": "65535:2",
	"routefilterv4":           "65535:3",
	"routefiltertranslatedv6": "65535:4",
	"routefilterv6":           "65535:5",
	"llgrstale":               "65535:6",
	"nollgr":                  "65535:7",
	"acceptownnexthop":        "65535:8",
	"blackhole":               "65535:666",
	"noexport":                "65535:65281",
	"noadvertise":             "65535:65282",
	"localas":                 "65535:65283",
	"nopeer":                  "65535:65284",
}

// frrCommunity converts an FRR community to numeric form.
func frrCommunity(s string) string {
	if v, ok := frrCommunityNames[strings.ToLower(strings.ReplaceAll(s, "-", ""))]; ok {
		return v
	}
	return s
}

// frrFlowKeys maps the keys of FRR's FlowSpec JSON to component types.
var frrFlowKeys = map[string]bgp.BGPFlowSpecType{
	"to":      bgp.FLOW_SPEC_TYPE_DST_PREFIX,
	"from":    bgp.FLOW_SPEC_TYPE_SRC_PREFIX,
	"proto":   bgp.FLOW_SPEC_TYPE_IP_PROTO,
	"port":    bgp.FLOW_SPEC_TYPE_PORT,
	"dstp":    bgp.FLOW_SPEC_TYPE_DST_PORT,
	"srcp":    bgp.FLOW_SPEC_TYPE_SRC_PORT,
	"type":    bgp.FLOW_SPEC_TYPE_ICMP_TYPE,
	"code":    bgp.FLOW_SPEC_TYPE_ICMP_CODE,
	"tcp":     bgp.FLOW_SPEC_TYPE_TCP_FLAG,
	"pktlen":  bgp.FLOW_SPEC_TYPE_PKT_LEN,
	"dscp":    bgp.FLOW_SPEC_TYPE_DSCP,
	"pktfrag": bgp.FLOW_SPEC_TYPE_FRAGMENT,
	"flwlbl":  bgp.FLOW_SPEC_TYPE_LABEL,
}

// parseFRRFlowSpec parses `show bgp <afi> flowspec detail json`: one JSON
// array per rule, printed one after the other (not valid JSON as a whole
// with two rules or more), each holding an object of match fields, then
// objects with "ecomlist" (actions) and "time" (age).
func parseFRRFlowSpec(fam Family, out []byte, now time.Time) ([]Route, error) {
	dec := json.NewDecoder(bytes.NewReader(out))
	var routes []Route
	for {
		var elems []map[string]json.RawMessage
		err := dec.Decode(&elems)
		if errors.Is(err, io.EOF) {
			return routes, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode json: %w (output %q)", err, truncate(out, 200))
		}
		fields := make(map[string]string)
		for _, e := range elems {
			for k, v := range e {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return nil, fmt.Errorf("field %q: %w", k, err)
				}
				fields[k] = s
			}
		}
		r, err := frrFlowRoute(fam, fields, now)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
}

// frrFlowRoute builds a Route from the fields of one FRR FlowSpec rule.
func frrFlowRoute(fam Family, fields map[string]string, now time.Time) (Route, error) {
	var rule flowRule
	var unknown []string
	for k, v := range fields {
		typ, ok := frrFlowKeys[k]
		if !ok {
			if k != "ecomlist" && k != "time" {
				unknown = append(unknown, k)
			}
			continue
		}
		c, err := parseFRRFlowComponent(typ, v)
		if err != nil {
			return Route{}, fmt.Errorf("flowspec field %s=%q: %w", k, v, err)
		}
		rule = append(rule, c)
	}
	slices.SortFunc(rule, func(a, b flowComponent) int { return int(a.typ) - int(b.typ) })
	slices.Sort(unknown)
	for _, k := range unknown {
		// Keep what the lab cannot decode visible in the text.
		rule = append(rule, flowComponent{raw: "unknown:frr-" + k + "=" + strings.ReplaceAll(fields[k], " ", "")})
	}
	r := Route{Family: fam, Prefix: rule.String()}
	r.ExtCommunities = parseFRRExtCommunities(fields["ecomlist"])
	if age, ok := parseFRRAge(fields["time"]); ok {
		r.Received = now.Add(-age).Truncate(time.Second)
	}
	return r, nil
}

// parseFRRFlowComponent parses one FRR FlowSpec match field: a prefix
// ("2001:db8::/64/off 0"), a numeric list (">= 80 , <= 443 ", AND bits not
// shown) or a bitmask list ("= 2,&∋ ! 16": "=" match, "∋" any, "!" not,
// "&"/"|" AND/OR).
func parseFRRFlowComponent(typ bgp.BGPFlowSpecType, v string) (flowComponent, error) {
	c := flowComponent{typ: typ}
	v = strings.TrimSpace(v)
	if isPrefixType(typ) {
		p, off, err := parseFlowPrefix(strings.ReplaceAll(v, "/off ", "/off"))
		c.prefix, c.offset = p, off
		return c, err
	}
	for i, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		it := flowItem{}
		if isBitmaskType(typ) {
			if i > 0 {
				switch {
				case strings.HasPrefix(part, "&"):
					it.and = true
				case strings.HasPrefix(part, "|"):
				default:
					return c, fmt.Errorf("bitmask item %q lacks & or |", part)
				}
				part = strings.TrimSpace(part[1:])
			}
			switch {
			case strings.HasPrefix(part, "="):
				it.op |= fsOpMatch
				part = part[1:]
			case strings.HasPrefix(part, "∋"):
				part = part[len("∋"):]
			default:
				return c, fmt.Errorf("bitmask item %q lacks = or ∋", part)
			}
			part = strings.TrimSpace(part)
			if rest, ok := strings.CutPrefix(part, "!"); ok {
				it.op |= fsOpNot
				part = strings.TrimSpace(rest)
			}
		} else {
			ops := strings.TrimRight(part, "0123456789 ")
			part = strings.TrimSpace(part[len(ops):])
			for _, ch := range strings.ReplaceAll(ops, " ", "") {
				switch ch {
				case '<':
					it.op |= fsOpLessThan
				case '>':
					it.op |= fsOpGreater
				case '=':
					it.op |= fsOpEqual
				default:
					return c, fmt.Errorf("bad numeric operator %q", ops)
				}
			}
		}
		n, err := strconv.ParseUint(part, 10, 32)
		if err != nil {
			return c, fmt.Errorf("bad value %q: %w", part, err)
		}
		it.value = n
		c.items = append(c.items, it)
	}
	if !isBitmaskType(typ) {
		guessNumericAnd(c.items)
	}
	return c, nil
}

// parseFRRAge parses FRR's "hh:mm:ss" age.
func parseFRRAge(s string) (time.Duration, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, false
	}
	var d time.Duration
	for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
		n, err := strconv.ParseUint(parts[i], 10, 16)
		if err != nil {
			return 0, false
		}
		d += time.Duration(n) * unit
	}
	return d, true
}

// parseFRRExtCommunities converts FRR's extended community text ("FS:rate
// 0.000000 FS:redirect VRF RT:65000:100 FS:marking 10 RT:65000:1") into
// the text documented on Route.ExtCommunities. Words it does not know are
// kept, prefixed with "frr:".
func parseFRRExtCommunities(s string) []string {
	words := strings.Fields(s)
	var out []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		next := func() string {
			if i+1 < len(words) {
				i++
				return words[i]
			}
			return ""
		}
		switch {
		case w == "FS:rate":
			v := next()
			rate, err := strconv.ParseFloat(v, 32)
			if err != nil {
				out = append(out, "frr:FS:rate:"+v)
				continue
			}
			out = append(out, "traffic-rate:"+strconv.FormatFloat(float64(float32(rate)), 'f', -1, 32))
		case w == "FS:action":
			// "eval stops", "terminate (apply)", optionally ", sample".
			for i+1 < len(words) && !strings.Contains(words[i+1], ":") {
				i++
			}
			out = append(out, ExtCommunityActionUnreported)
		case w == "FS:redirect":
			kind := next()
			target := next()
			if kind == "VRF" {
				out = append(out, "redirect:"+strings.TrimPrefix(target, "RT:"))
			} else {
				out = append(out, "frr:FS:redirect:"+kind+":"+target)
			}
		case w == "FS:marking":
			out = append(out, "traffic-marking:"+next())
		case strings.HasPrefix(w, "RT:"):
			out = append(out, "rt:"+strings.TrimPrefix(w, "RT:"))
		default:
			out = append(out, "frr:"+w)
		}
	}
	return out
}

// truncate returns at most n bytes of b for an error message.
func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return b[:n]
}

// tailFile returns the last n lines of the file at path, or a note saying
// why it could not be read.
func tailFile(path string, n int) string {
	_, last, err := readLog(path, 0, n)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return strings.Join(last, "\n")
}
