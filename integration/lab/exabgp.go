package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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

// ExaBGP is an ExaBGP 4.2 speaker run by a Lab as a recorder: it accepts
// every route and writes every UPDATE it receives, and every session state
// change, as one JSON object per line to a file (through a `cat` process
// it feeds). Updates returns that record in order; Routes replays it into the
// table the current process holds. It connects to the controller and also
// accepts its connections on port 179.
//
// ExaBGP decodes every FlowSpec component and action, independently of
// GoBGP. Routes rebuilds the NLRI text from ExaBGP's own rule string ("flow
// destination-ipv4 ... tcp-flags [ =syn&!ack ]"), which keeps the AND/OR
// structure its per-field JSON lists lose, and the extended communities
// from their raw 64-bit values. It reports everything a Route holds except
// Best (always true: ExaBGP keeps no RIB) and the route's age (Received is
// when ExaBGP logged the UPDATE).
type ExaBGP struct {
	spec    routerSpec
	updates string
	proc    *process

	stopOnce sync.Once
	stopErr  error
}

var _ Router = (*ExaBGP)(nil)

// exaFamilies maps families to ExaBGP's names.
var exaFamilies = map[Family]string{
	FamilyIPv4Unicast:  "ipv4 unicast",
	FamilyIPv6Unicast:  "ipv6 unicast",
	FamilyIPv4FlowSpec: "ipv4 flow",
	FamilyIPv6FlowSpec: "ipv6 flow",
}

// exaConfig renders exabgp.conf for a node that records UPDATEs to
// updatesPath.
func exaConfig(spec routerSpec, updatesPath string) string {
	var b strings.Builder
	b.WriteString("process recorder {\n")
	// Only a redirection: cat appends what ExaBGP writes to the file.
	// ExaBGP 4.2 takes a helper that replaced its shell (exec cat) or dd
	// for dead, restarts it and gives up after five deaths.
	fmt.Fprintf(&b, "  run /bin/sh -c \"cat >> %s\";\n", updatesPath)
	b.WriteString("  encoder json;\n}\n")
	for _, s := range spec.sessions {
		fmt.Fprintf(&b, "neighbor %s {\n", s.CtlAddr)
		fmt.Fprintf(&b, "  router-id %s;\n", spec.routerID)
		fmt.Fprintf(&b, "  local-address %s;\n", s.RouterAddr)
		fmt.Fprintf(&b, "  local-as %d;\n", s.RouterASN)
		fmt.Fprintf(&b, "  peer-as %d;\n", s.CtlASN)
		b.WriteString("  family {\n")
		for _, f := range s.Families {
			fmt.Fprintf(&b, "    %s;\n", exaFamilies[f])
		}
		b.WriteString("  }\n")
		b.WriteString("  api {\n    processes [ recorder ];\n    neighbor-changes;\n    receive { parsed; update; }\n  }\n")
		b.WriteString("}\n")
	}
	return b.String()
}

// startExaBGP writes the configuration and starts exabgp in the
// foreground.
func startExaBGP(ctx context.Context, spec routerSpec) (*ExaBGP, error) {
	e := &ExaBGP{spec: spec, updates: filepath.Join(spec.dir, "updates.jsonl")}
	conf := filepath.Join(spec.dir, "exabgp.conf")
	if err := os.WriteFile(conf, []byte(exaConfig(spec, e.updates)), 0o644); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	env := []string{
		"exabgp.daemon.user=root",
		"exabgp.daemon.daemonize=false",
		"exabgp.api.cli=false",
		"exabgp.log.destination=" + filepath.Join(spec.dir, "exabgp.log"),
		// Also accept sessions, for controllers that only connect out.
		"exabgp.tcp.bind=" + exaBindAddrs(spec),
		"exabgp.tcp.port=179",
	}
	var err error
	e.proc, err = startProcess(spec.node.Name+"/exabgp", spec.netns, filepath.Join(spec.dir, "exabgp.out"), env, "exabgp", conf)
	if err != nil {
		return nil, err
	}
	// ExaBGP has no control socket: it is ready when it has read its
	// configuration, which it logs.
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if err := e.proc.alive(); err != nil {
			return e, err
		}
		for _, name := range []string{"exabgp.out", "exabgp.log"} {
			if b, err := os.ReadFile(filepath.Join(spec.dir, name)); err == nil && bytes.Contains(b, []byte("loaded new configuration successfully")) {
				return e, nil
			}
		}
		select {
		case <-ctx.Done():
			return e, fmt.Errorf("wait for exabgp to load its configuration: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// exaBindAddrs lists the addresses ExaBGP listens on: its side of each
// session.
func exaBindAddrs(spec routerSpec) string {
	addrs := make([]string, 0, len(spec.sessions))
	for _, s := range spec.sessions {
		addrs = append(addrs, s.RouterAddr.String())
	}
	return strings.Join(addrs, " ")
}

// Netns returns the router's namespace.
func (e *ExaBGP) Netns() string { return e.spec.netns }

func (e *ExaBGP) pids() []int { return []int{e.proc.PID()} }

func (e *ExaBGP) logExcerpt() string {
	var s strings.Builder
	for _, name := range []string{"exabgp.out", "exabgp.log", "updates.jsonl"} {
		fmt.Fprintf(&s, "--- %s ---\n%s\n", name, tailFile(filepath.Join(e.spec.dir, name), logTailLines))
	}
	return s.String()
}

// Stop ends exabgp (SIGTERM, then SIGKILL); its recorder exits on end of
// input. It is idempotent and returns an error if exabgp had exited on its
// own.
func (e *ExaBGP) Stop() error {
	e.stopOnce.Do(func() { e.stopErr = e.proc.stop() })
	return e.stopErr
}

// ExaBGPUpdate is one UPDATE ExaBGP received, or an End-of-RIB marker.
type ExaBGPUpdate struct {
	// Time is when ExaBGP reported the message.
	Time time.Time
	// PID is the ExaBGP process that received it (it changes when the
	// router is restarted).
	PID int
	// Peer is the controller's address of the session.
	Peer netip.Addr
	// Announce lists the routes announced, with their attributes.
	Announce []Route
	// Withdraw lists the routes withdrawn (Family and Prefix only).
	Withdraw []Route
	// EndOfRIB is the family of an End-of-RIB marker; empty otherwise.
	EndOfRIB Family
}

// String describes the update on one line.
func (u ExaBGPUpdate) String() string {
	var parts []string
	for _, r := range u.Announce {
		parts = append(parts, "+"+r.String())
	}
	for _, r := range u.Withdraw {
		parts = append(parts, "-"+string(r.Family)+" "+r.Prefix)
	}
	if u.EndOfRIB != "" {
		parts = append(parts, "eor "+string(u.EndOfRIB))
	}
	return fmt.Sprintf("pid %d from %s: %s", u.PID, u.Peer, strings.Join(parts, "; "))
}

// exaEvent is one JSON line of ExaBGP's API output.
type exaEvent struct {
	Time     float64 `json:"time"`
	PID      int     `json:"pid"`
	Type     string  `json:"type"`
	Neighbor struct {
		Address struct {
			Peer string `json:"peer"`
		} `json:"address"`
		State   string `json:"state"`
		Message *struct {
			Update *exaUpdate `json:"update"`
			EOR    *struct {
				AFI  string `json:"afi"`
				SAFI string `json:"safi"`
			} `json:"eor"`
		} `json:"message"`
	} `json:"neighbor"`
}

type exaUpdate struct {
	Attribute struct {
		ASPath         []json.RawMessage `json:"as-path"`
		Community      [][]uint32        `json:"community"`
		LargeCommunity [][]uint32        `json:"large-community"`
		ExtCommunity   []struct {
			Value json.Number `json:"value"`
		} `json:"extended-community"`
	} `json:"attribute"`
	Announce map[string]map[string][]exaNLRI `json:"announce"`
	Withdraw map[string][]exaNLRI            `json:"withdraw"`
}

// exaNLRI is one NLRI: "nlri" for unicast, "string" for FlowSpec.
type exaNLRI struct {
	NLRI   string `json:"nlri"`
	String string `json:"string"`
}

// events reads the recorded JSON lines; an incomplete last line is left
// for the next call.
func (e *ExaBGP) events() ([]exaEvent, error) {
	data, err := os.ReadFile(e.updates)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", e.updates, err)
	}
	return parseExaEvents(data)
}

// parseExaEvents decodes recorded JSON lines; an incomplete last line is
// ignored.
func parseExaEvents(data []byte) ([]exaEvent, error) {
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	var events []exaEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var ev exaEvent
		if err := dec.Decode(&ev); err != nil {
			return nil, fmt.Errorf("decode exabgp event %q: %w", truncate(line, 200), err)
		}
		events = append(events, ev)
	}
	return events, sc.Err()
}

// Updates returns every UPDATE (and End-of-RIB) ExaBGP has received since
// the lab started it, across restarts, in order.
func (e *ExaBGP) Updates() ([]ExaBGPUpdate, error) {
	events, err := e.events()
	if err != nil {
		return nil, err
	}
	var out []ExaBGPUpdate
	for _, ev := range events {
		u, ok, err := exaUpdateOf(ev)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// exaUpdateOf converts an update event; ok is false for other events.
func exaUpdateOf(ev exaEvent) (ExaBGPUpdate, bool, error) {
	msg := ev.Neighbor.Message
	if ev.Type != "update" || msg == nil {
		return ExaBGPUpdate{}, false, nil
	}
	sec, frac := math.Modf(ev.Time)
	u := ExaBGPUpdate{Time: time.Unix(int64(sec), int64(frac*1e9)), PID: ev.PID}
	peer, err := netip.ParseAddr(ev.Neighbor.Address.Peer)
	if err != nil {
		return u, false, fmt.Errorf("exabgp update: bad peer %q: %w", ev.Neighbor.Address.Peer, err)
	}
	u.Peer = peer
	if msg.EOR != nil {
		u.EndOfRIB = exaFamily(msg.EOR.AFI + " " + msg.EOR.SAFI)
		return u, true, nil
	}
	up := msg.Update
	if up == nil {
		return u, false, nil
	}
	attrs := Route{From: peer, Best: true, Received: u.Time}
	for _, raw := range up.Attribute.ASPath {
		attrs.ASPath = append(attrs.ASPath, flattenASPath(raw)...)
	}
	for _, c := range up.Attribute.Community {
		if len(c) == 2 {
			attrs.Communities = append(attrs.Communities, fmt.Sprintf("%d:%d", c[0], c[1]))
		}
	}
	for _, c := range up.Attribute.LargeCommunity {
		if len(c) == 3 {
			attrs.LargeCommunities = append(attrs.LargeCommunities, fmt.Sprintf("%d:%d:%d", c[0], c[1], c[2]))
		}
	}
	for _, c := range up.Attribute.ExtCommunity {
		v, err := strconv.ParseUint(c.Value.String(), 10, 64)
		if err != nil {
			return u, false, fmt.Errorf("exabgp update: extended community %q: %w", c.Value, err)
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], v)
		attrs.ExtCommunities = append(attrs.ExtCommunities, ExtCommunityText(b[:]))
	}
	for _, name := range sortedKeys(up.Announce) {
		fam := exaFamily(name)
		for _, nh := range sortedKeys(up.Announce[name]) {
			for _, n := range up.Announce[name][nh] {
				r := attrs
				r.Family = fam
				r.ASPath = slices.Clone(attrs.ASPath)
				r.Communities = slices.Clone(attrs.Communities)
				r.LargeCommunities = slices.Clone(attrs.LargeCommunities)
				r.ExtCommunities = slices.Clone(attrs.ExtCommunities)
				if a, err := netip.ParseAddr(nh); err == nil {
					r.NextHop = a
				}
				if r.Prefix, err = exaPrefix(fam, n); err != nil {
					return u, false, err
				}
				u.Announce = append(u.Announce, r)
			}
		}
	}
	for _, name := range sortedKeys(up.Withdraw) {
		fam := exaFamily(name)
		for _, n := range up.Withdraw[name] {
			r := Route{Family: fam, From: peer}
			if r.Prefix, err = exaPrefix(fam, n); err != nil {
				return u, false, err
			}
			u.Withdraw = append(u.Withdraw, r)
		}
	}
	return u, true, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// exaFamily converts ExaBGP's family name; unknown ones are kept as
// "exabgp:<name>".
func exaFamily(name string) Family {
	for f, n := range exaFamilies {
		if n == name {
			return f
		}
	}
	return Family("exabgp:" + name)
}

// flattenASPath reads an AS path element: a number, or a list (set).
func flattenASPath(raw json.RawMessage) []uint32 {
	var n uint32
	if json.Unmarshal(raw, &n) == nil {
		return []uint32{n}
	}
	var set []uint32
	if json.Unmarshal(raw, &set) == nil {
		return set
	}
	return nil
}

// exaPrefix returns the canonical text of an NLRI of family fam.
func exaPrefix(fam Family, n exaNLRI) (string, error) {
	if !fam.IsFlowSpec() {
		p, err := netip.ParsePrefix(n.NLRI)
		if err != nil {
			return "", fmt.Errorf("exabgp nlri %q: %w", n.NLRI, err)
		}
		return p.Masked().String(), nil
	}
	rule, err := parseExaFlow(n.String)
	if err != nil {
		return "", err
	}
	return rule.String(), nil
}

// Routes replays the record of the current ExaBGP process: routes
// announced and not withdrawn since each session last came up, sorted by
// Prefix then From.
func (e *ExaBGP) Routes(_ context.Context, fam Family) ([]Route, error) {
	if err := e.proc.alive(); err != nil {
		return nil, err
	}
	events, err := e.events()
	if err != nil {
		return nil, err
	}
	return exaTable(events, e.proc.PID(), fam)
}

// exaTable replays the events of process pid into the routes of family fam
// it holds, sorted by Prefix then From.
func exaTable(events []exaEvent, pid int, fam Family) ([]Route, error) {
	tables := make(map[string]map[string]Route) // peer -> prefix -> route
	for _, ev := range events {
		if ev.PID != pid {
			continue
		}
		peer := ev.Neighbor.Address.Peer
		switch ev.Type {
		case "state":
			if ev.Neighbor.State == "up" || ev.Neighbor.State == "down" {
				delete(tables, peer)
			}
		case "update":
			u, ok, err := exaUpdateOf(ev)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			t := tables[peer]
			if t == nil {
				t = make(map[string]Route)
				tables[peer] = t
			}
			for _, r := range u.Withdraw {
				delete(t, string(r.Family)+" "+r.Prefix)
			}
			for _, r := range u.Announce {
				t[string(r.Family)+" "+r.Prefix] = r
			}
		}
	}
	var routes []Route
	for _, t := range tables {
		for _, r := range t {
			if r.Family == fam {
				routes = append(routes, r)
			}
		}
	}
	sortRoutes(routes)
	return routes, nil
}

// WaitEstablished polls the record until the current process reports the
// session with peer up.
func (e *ExaBGP) WaitEstablished(ctx context.Context, peer netip.Addr) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if err := e.proc.alive(); err != nil {
			return fmt.Errorf("wait for session %s-%s: %w", e.spec.node.Name, peer, err)
		}
		events, err := e.events()
		if err != nil {
			return err
		}
		state := "none"
		for _, ev := range events {
			if ev.PID == e.proc.PID() && ev.Type == "state" && ev.Neighbor.Address.Peer == peer.String() {
				state = ev.Neighbor.State
			}
		}
		if state == "up" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for session %s-%s: last state %s: %w", e.spec.node.Name, peer, state, ctx.Err())
		case <-tick.C:
		}
	}
}

// exaFlowNames maps ExaBGP's component names to types.
var exaFlowNames = map[string]bgp.BGPFlowSpecType{
	"destination-ipv4": bgp.FLOW_SPEC_TYPE_DST_PREFIX,
	"destination-ipv6": bgp.FLOW_SPEC_TYPE_DST_PREFIX,
	"source-ipv4":      bgp.FLOW_SPEC_TYPE_SRC_PREFIX,
	"source-ipv6":      bgp.FLOW_SPEC_TYPE_SRC_PREFIX,
	"protocol":         bgp.FLOW_SPEC_TYPE_IP_PROTO,
	"next-header":      bgp.FLOW_SPEC_TYPE_IP_PROTO,
	"port":             bgp.FLOW_SPEC_TYPE_PORT,
	"destination-port": bgp.FLOW_SPEC_TYPE_DST_PORT,
	"source-port":      bgp.FLOW_SPEC_TYPE_SRC_PORT,
	"icmp-type":        bgp.FLOW_SPEC_TYPE_ICMP_TYPE,
	"icmp-code":        bgp.FLOW_SPEC_TYPE_ICMP_CODE,
	"tcp-flags":        bgp.FLOW_SPEC_TYPE_TCP_FLAG,
	"packet-length":    bgp.FLOW_SPEC_TYPE_PKT_LEN,
	"dscp":             bgp.FLOW_SPEC_TYPE_DSCP,
	"traffic-class":    bgp.FLOW_SPEC_TYPE_DSCP,
	"fragment":         bgp.FLOW_SPEC_TYPE_FRAGMENT,
	"flow-label":       bgp.FLOW_SPEC_TYPE_LABEL,
}

// ExaBGP 4.2's names of protocols, ICMP types, TCP flags and fragment
// flags (exabgp/protocol).
var (
	exaProtocols = map[string]uint64{
		"icmp": 1, "igmp": 2, "tcp": 6, "egp": 8, "udp": 17, "rsvp": 46, "gre": 47,
		"esp": 50, "ah": 51, "ospf": 89, "ipip": 94, "pim": 103, "sctp": 132,
	}
	exaICMPTypes = map[string]uint64{
		"echo-reply": 0, "unreachable": 3, "source-quench": 4, "redirect": 5, "echo-request": 8,
		"router-advertisement": 9, "router-solicit": 10, "time-exceeded": 11, "parameter-problem": 12,
		"timestamp": 13, "timestamp-reply": 14, "info-request": 15, "info-reply": 16,
		"mask-request": 17, "mask-reply": 18, "traceroute": 30, "experimental-mobility": 41,
		"extended-echo-request": 42, "extended-echo-reply": 43, "experimental-one": 253, "experimental-two": 254,
	}
	exaTCPFlags = map[string]uint64{
		"fin": 0x01, "syn": 0x02, "rst": 0x04, "push": 0x08, "ack": 0x10,
		"urg": 0x20, "urgent": 0x20, "ece": 0x40, "cwr": 0x80, "ns": 0x100,
	}
	exaFragments = map[string]uint64{
		"not-a-fragment": 0, "dont-fragment": 1, "is-fragment": 2, "first-fragment": 4, "last-fragment": 8,
	}
	// exaUnknownRE matches ExaBGP's text for a value it has no name for.
	exaUnknownRE = regexp.MustCompile(`unknown [a-z ]+? type (\d+)`)
)

// parseExaFlow parses ExaBGP's rule string: "flow destination-ipv4
// 203.0.113.20/32 protocol =tcp destination-port [ >=80&<=443 ]
// tcp-flags [ =syn&!ack =syn+ack ] fragment is-fragment". Bracketed values
// are ORed lists; "&" starts an item ANDed to the previous one.
func parseExaFlow(s string) (flowRule, error) {
	toks := strings.Fields(exaUnknownRE.ReplaceAllString(s, "$1"))
	if len(toks) == 0 || toks[0] != "flow" {
		return nil, fmt.Errorf("exabgp flow %q: does not start with flow", s)
	}
	var rule flowRule
	for i := 1; i < len(toks); i++ {
		name := toks[i]
		if name == "next-hop" || name == "rd" {
			i++
			continue
		}
		typ, ok := exaFlowNames[name]
		if !ok {
			return nil, fmt.Errorf("exabgp flow %q: unknown component %q", s, name)
		}
		var values []string
		if i+1 < len(toks) && toks[i+1] == "[" {
			i += 2
			for i < len(toks) && toks[i] != "]" {
				values = append(values, toks[i])
				i++
			}
		} else if i+1 < len(toks) {
			i++
			values = []string{toks[i]}
		}
		if len(values) == 0 {
			return nil, fmt.Errorf("exabgp flow %q: %s without value", s, name)
		}
		c := flowComponent{typ: typ}
		var err error
		if isPrefixType(typ) {
			// IPv6 prefixes carry their offset: "2001:db8::/64/0".
			v := values[0]
			if strings.Count(v, "/") == 2 {
				j := strings.LastIndex(v, "/")
				v = v[:j] + "/off" + v[j+1:]
			}
			c.prefix, c.offset, err = parseFlowPrefix(v)
		} else {
			c.items, err = parseExaItems(typ, values)
		}
		if err != nil {
			return nil, fmt.Errorf("exabgp flow %q: %s: %w", s, name, err)
		}
		rule = append(rule, c)
	}
	return rule, nil
}

// parseExaItems parses the ORed values of one component.
func parseExaItems(typ bgp.BGPFlowSpecType, values []string) ([]flowItem, error) {
	var items []flowItem
	for _, v := range values {
		atoms := strings.Split(v, "&")
		for j, atom := range atoms {
			if j > 0 {
				atom = "&" + atom
			}
			it := flowItem{}
			if rest, ok := strings.CutPrefix(atom, "&"); ok {
				it.and = len(items) > 0
				atom = rest
			}
			var err error
			if isBitmaskType(typ) {
				it.op, it.value, err = parseExaBitmask(typ, atom)
			} else {
				it.op, it.value, err = parseExaNumeric(typ, atom)
			}
			if err != nil {
				return nil, err
			}
			items = append(items, it)
		}
	}
	return items, nil
}

// exaNumericOps lists ExaBGP's numeric operators, longest first.
var exaNumericOps = []struct {
	text string
	op   uint8
}{
	{">=", fsOpGreater | fsOpEqual},
	{"<=", fsOpLessThan | fsOpEqual},
	{"!=", fsOpLessThan | fsOpGreater},
	{"=", fsOpEqual},
	{">", fsOpGreater},
	{"<", fsOpLessThan},
}

func parseExaNumeric(typ bgp.BGPFlowSpecType, atom string) (uint8, uint64, error) {
	switch atom {
	case "true":
		return 0, 0, nil
	case "false":
		return fsOpLessThan | fsOpGreater | fsOpEqual, 0, nil
	}
	for _, o := range exaNumericOps {
		v, ok := strings.CutPrefix(atom, o.text)
		if !ok {
			continue
		}
		if n, ok := exaProtocols[v]; ok && typ == bgp.FLOW_SPEC_TYPE_IP_PROTO {
			return o.op, n, nil
		}
		if n, ok := exaICMPTypes[v]; ok && typ == bgp.FLOW_SPEC_TYPE_ICMP_TYPE {
			return o.op, n, nil
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("bad value %q: %w", atom, err)
		}
		return o.op, n, nil
	}
	return 0, 0, fmt.Errorf("bad numeric item %q", atom)
}

func parseExaBitmask(typ bgp.BGPFlowSpecType, atom string) (uint8, uint64, error) {
	var op uint8
	if rest, ok := strings.CutPrefix(atom, "!"); ok {
		op |= fsOpNot
		atom = rest
	}
	if rest, ok := strings.CutPrefix(atom, "="); ok {
		op |= fsOpMatch
		atom = rest
	}
	names := exaTCPFlags
	if typ == bgp.FLOW_SPEC_TYPE_FRAGMENT {
		names = exaFragments
	}
	var v uint64
	for name := range strings.SplitSeq(atom, "+") {
		if n, ok := names[name]; ok {
			v |= n
			continue
		}
		n, err := strconv.ParseUint(name, 10, 16)
		if err != nil {
			return 0, 0, fmt.Errorf("bad flag %q: %w", name, err)
		}
		v |= n
	}
	return op, v, nil
}
