package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// The nftables objects InstallFlowSpec manages in a namespace.
const (
	nftTable = "floodgate_lab"
	nftChain = "flowspec"
	// nftMaxRules caps the rules one FlowSpec route may expand to.
	nftMaxRules = 64
)

// NFTRules translates a FlowSpec route into nftables rules for a chain of
// an inet table, the way an edge router would enforce it. No open-source
// router here installs FlowSpec into the kernel (see LAB-NOTES), so tests
// use this shim to show a received rule's effect on packets.
//
// Each rule starts with the family (meta nfproto), matches the components
// (a component with OR-ed alternatives that one expression cannot hold,
// such as port, expands into several rules) and ends with "counter" and
// the action of the extended communities: traffic-rate:0 drops,
// traffic-rate:N limits to N bytes/s (drops the excess), traffic-marking
// sets the DSCP; other actions only count.
//
// Matches: destination/source (ip/ip6 daddr/saddr; a non-zero IPv6 offset
// is not supported), protocol (meta l4proto), port, destination-port and
// source-port (th dport/sport, for TCP and UDP only), icmp-type and
// icmp-code (the first bytes of the ICMP or ICMPv6 header), tcp-flags
// (the flags byte of the TCP header, values up to 0xff), packet-length
// (meta length: the IP packet including its header), dscp (ip/ip6 dscp),
// fragment (ip frag-off bits for IPv4; the fragment header for IPv6, where
// dont-fragment does not exist) and label (ip6 flowlabel). The transport
// matches test the protocol explicitly, so a rule that combines, say,
// tcp-flags with icmp-type loads and matches nothing, as in FlowSpec.
// Numeric lists become sets of ranges. A route that can match nothing
// yields no rule.
func NFTRules(r Route) ([]string, error) {
	rule, err := parseFlowText(r.Prefix)
	if err != nil {
		return nil, err
	}
	v6 := r.Family == FamilyIPv6FlowSpec
	if !v6 && r.Family != FamilyIPv4FlowSpec {
		return nil, fmt.Errorf("nft: %s is not a flowspec family", r.Family)
	}
	nfproto := "meta nfproto ipv4"
	if v6 {
		nfproto = "meta nfproto ipv6"
	}
	// Disjunctive normal form: alternatives of conjunctions of statements.
	rules := dnf{{nfproto}}
	for _, c := range rule {
		alts, err := nftComponent(c, v6)
		if err != nil {
			return nil, fmt.Errorf("nft: %s: %w", c, err)
		}
		rules = rules.and(alts)
		if len(rules) > nftMaxRules {
			return nil, fmt.Errorf("nft: %s expands to more than %d rules", r.Prefix, nftMaxRules)
		}
	}
	action, err := nftAction(r.ExtCommunities, v6)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rules))
	for _, conj := range rules {
		stmts := append(slices.Clone(conj), "counter")
		if action != "" {
			stmts = append(stmts, action)
		}
		out = append(out, strings.Join(stmts, " "))
	}
	return out, nil
}

// dnf is a disjunction of conjunctions of nft statements; an empty
// conjunction is true, an empty dnf false.
type dnf [][]string

// and returns the conjunction of d and e, distributed.
func (d dnf) and(e dnf) dnf {
	var out dnf
	for _, a := range d {
		for _, b := range e {
			out = append(out, append(slices.Clone(a), b...))
		}
	}
	return out
}

// nftAction returns the verdict of the extended communities.
func nftAction(ecs []string, v6 bool) (string, error) {
	var rate *float64
	var mark string
	for _, ec := range ecs {
		switch {
		case strings.HasPrefix(ec, "traffic-rate:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(ec, "traffic-rate:"), "/")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return "", fmt.Errorf("nft: bad %s: %w", ec, err)
			}
			rate = &f
		case strings.HasPrefix(ec, "traffic-marking:"):
			mark = strings.TrimPrefix(ec, "traffic-marking:")
		}
	}
	switch {
	case rate != nil && *rate <= 0:
		return "drop", nil
	case rate != nil:
		return fmt.Sprintf("limit rate over %d bytes/second drop", uint64(math.Max(1, math.Floor(*rate)))), nil
	case mark != "" && v6:
		return "ip6 dscp set " + mark, nil
	case mark != "":
		return "ip dscp set " + mark, nil
	}
	return "", nil
}

// nftComponent translates one component into alternatives.
func nftComponent(c flowComponent, v6 bool) (dnf, error) {
	ip := "ip"
	if v6 {
		ip = "ip6"
	}
	if c.raw != "" {
		return nil, errors.New("undecoded component")
	}
	l4 := "meta l4proto { 6, 17 }"
	switch c.typ {
	case bgp.FLOW_SPEC_TYPE_DST_PREFIX, bgp.FLOW_SPEC_TYPE_SRC_PREFIX:
		if c.offset != 0 {
			return nil, errors.New("prefix offset not supported")
		}
		dir := "daddr"
		if c.typ == bgp.FLOW_SPEC_TYPE_SRC_PREFIX {
			dir = "saddr"
		}
		return dnf{{fmt.Sprintf("%s %s %s", ip, dir, c.prefix)}}, nil
	case bgp.FLOW_SPEC_TYPE_IP_PROTO:
		return nftNumeric("meta l4proto", c.items, 255)
	case bgp.FLOW_SPEC_TYPE_PORT:
		d, err := nftNumeric("th dport", c.items, 65535)
		if err != nil {
			return nil, err
		}
		s, _ := nftNumeric("th sport", c.items, 65535)
		return append(dnf{{l4}}.and(d), dnf{{l4}}.and(s)...), nil
	case bgp.FLOW_SPEC_TYPE_DST_PORT:
		d, err := nftNumeric("th dport", c.items, 65535)
		return dnf{{l4}}.and(d), err
	case bgp.FLOW_SPEC_TYPE_SRC_PORT:
		d, err := nftNumeric("th sport", c.items, 65535)
		return dnf{{l4}}.and(d), err
	case bgp.FLOW_SPEC_TYPE_ICMP_TYPE, bgp.FLOW_SPEC_TYPE_ICMP_CODE:
		// Raw transport header bytes behind an explicit protocol test:
		// "icmp type" would add a dependency nft refuses next to a TCP
		// match, while FlowSpec lets such a rule simply match nothing.
		guard, field := "meta l4proto 1", "@th,0,8"
		if v6 {
			guard = "meta l4proto 58"
		}
		if c.typ == bgp.FLOW_SPEC_TYPE_ICMP_CODE {
			field = "@th,8,8"
		}
		d, err := nftNumeric(field, c.items, 255)
		return dnf{{guard}}.and(d), err
	case bgp.FLOW_SPEC_TYPE_PKT_LEN:
		return nftNumeric("meta length", c.items, 65535)
	case bgp.FLOW_SPEC_TYPE_DSCP:
		return nftNumeric(ip+" dscp", c.items, 63)
	case bgp.FLOW_SPEC_TYPE_LABEL:
		if !v6 {
			return nil, errors.New("flow label in an IPv4 rule")
		}
		return nftNumeric("ip6 flowlabel", c.items, 0xfffff)
	case bgp.FLOW_SPEC_TYPE_TCP_FLAG:
		return nftBitmask(c.items, func(it flowItem) (dnf, error) { return nftTCPFlags(it) })
	case bgp.FLOW_SPEC_TYPE_FRAGMENT:
		return nftBitmask(c.items, func(it flowItem) (dnf, error) { return nftFragment(it, v6) })
	}
	return nil, fmt.Errorf("component type %d not supported", c.typ)
}

// interval is a closed range of values.
type interval struct{ lo, hi uint64 }

// nftNumeric translates a numeric list on expression expr whose values go
// up to maxValue into a set of ranges: no statement when every value
// matches, no alternative when none does.
func nftNumeric(expr string, items []flowItem, maxValue uint64) (dnf, error) {
	full := []interval{{0, maxValue}}
	var union, group []interval
	for i, it := range items {
		if i == 0 || !it.and {
			union = append(union, group...)
			group = full
		}
		group = intersect(group, itemIntervals(it, maxValue))
	}
	union = merge(append(union, group...))
	switch {
	case len(union) == 0:
		return dnf{}, nil
	case len(union) == 1 && union[0] == interval{0, maxValue}:
		return dnf{{}}, nil
	}
	parts := make([]string, 0, len(union))
	for _, iv := range union {
		if iv.lo == iv.hi {
			parts = append(parts, strconv.FormatUint(iv.lo, 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", iv.lo, iv.hi))
		}
	}
	set := parts[0]
	if len(parts) > 1 {
		set = "{ " + strings.Join(parts, ", ") + " }"
	}
	return dnf{{expr + " " + set}}, nil
}

// itemIntervals returns the values one numeric item accepts.
func itemIntervals(it flowItem, maxValue uint64) []interval {
	v := min(it.value, maxValue)
	below := func() []interval {
		if v == 0 {
			return nil
		}
		return []interval{{0, v - 1}}
	}
	above := func() []interval {
		if v >= maxValue || it.value > maxValue {
			return nil
		}
		return []interval{{v + 1, maxValue}}
	}
	switch it.op & 0x07 {
	case 0:
		return []interval{{0, maxValue}}
	case fsOpEqual:
		if it.value > maxValue {
			return nil
		}
		return []interval{{v, v}}
	case fsOpGreater:
		return above()
	case fsOpGreater | fsOpEqual:
		if it.value > maxValue {
			return nil
		}
		return []interval{{v, maxValue}}
	case fsOpLessThan:
		return below()
	case fsOpLessThan | fsOpEqual:
		return []interval{{0, v}}
	case fsOpLessThan | fsOpGreater:
		if it.value > maxValue {
			return []interval{{0, maxValue}}
		}
		return append(below(), above()...)
	}
	return nil
}

// intersect returns the values in both a and b (each sorted, disjoint).
func intersect(a, b []interval) []interval {
	var out []interval
	for _, x := range a {
		for _, y := range b {
			lo, hi := max(x.lo, y.lo), min(x.hi, y.hi)
			if lo <= hi {
				out = append(out, interval{lo, hi})
			}
		}
	}
	return merge(out)
}

// merge sorts intervals and joins overlapping or adjacent ones.
func merge(in []interval) []interval {
	if len(in) == 0 {
		return nil
	}
	in = slices.Clone(in)
	slices.SortFunc(in, func(a, b interval) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	out := []interval{in[0]}
	for _, iv := range in[1:] {
		last := &out[len(out)-1]
		if iv.lo <= last.hi+1 {
			last.hi = max(last.hi, iv.hi)
			continue
		}
		out = append(out, iv)
	}
	return out
}

// nftBitmask combines bitmask items: AND-ed items in one alternative,
// OR-ed ones in separate alternatives.
func nftBitmask(items []flowItem, one func(flowItem) (dnf, error)) (dnf, error) {
	var out, group dnf
	for i, it := range items {
		d, err := one(it)
		if err != nil {
			return nil, err
		}
		if i == 0 || !it.and {
			out = append(out, group...)
			group = d
			continue
		}
		group = group.and(d)
	}
	return append(out, group...), nil
}

// nftTCPFlags translates one tcp-flags item.
func nftTCPFlags(it flowItem) (dnf, error) {
	if it.value == 0 || it.value > 0xff {
		return nil, fmt.Errorf("tcp flags value %#x not supported", it.value)
	}
	// The flags byte of the TCP header, raw (see the ICMP case).
	v := fmt.Sprintf("0x%02x", it.value)
	flags := "@th,104,8 & " + v
	var s string
	switch it.op & (fsOpNot | fsOpMatch) {
	case 0:
		s = flags + " != 0x00"
	case fsOpMatch:
		s = flags + " == " + v
	case fsOpNot:
		s = flags + " == 0x00"
	default:
		s = flags + " != " + v
	}
	return dnf{{"meta l4proto 6", s}}, nil
}

// fragmentBits are the predicates of each fragment flag and of its
// negation, for IPv4 and IPv6 (nil: not supported).
var fragmentBits = []struct {
	pos4, neg4, pos6, neg6 dnf
}{
	{ // dont-fragment
		pos4: dnf{{"ip frag-off & 0x4000 != 0"}},
		neg4: dnf{{"ip frag-off & 0x4000 == 0"}},
	},
	{ // is-fragment
		pos4: dnf{{"ip frag-off & 0x3fff != 0"}},
		neg4: dnf{{"ip frag-off & 0x3fff == 0"}},
		pos6: dnf{{"exthdr frag exists"}},
		neg6: dnf{{"exthdr frag missing"}},
	},
	{ // first-fragment: more fragments, offset 0
		pos4: dnf{{"ip frag-off & 0x3fff == 0x2000"}},
		neg4: dnf{{"ip frag-off & 0x2000 == 0"}, {"ip frag-off & 0x1fff != 0"}},
		pos6: dnf{{"frag frag-off 0", "frag more-fragments 1"}},
		neg6: dnf{{"exthdr frag missing"}, {"frag frag-off != 0"}, {"frag more-fragments 0"}},
	},
	{ // last-fragment: no more fragments, offset not 0
		pos4: dnf{{"ip frag-off & 0x2000 == 0", "ip frag-off & 0x1fff != 0"}},
		neg4: dnf{{"ip frag-off & 0x2000 != 0"}, {"ip frag-off & 0x1fff == 0"}},
		pos6: dnf{{"frag more-fragments 0", "frag frag-off != 0"}},
		neg6: dnf{{"exthdr frag missing"}, {"frag more-fragments 1"}, {"frag frag-off 0"}},
	},
}

// nftFragment translates one fragment item.
func nftFragment(it flowItem, v6 bool) (dnf, error) {
	if it.value == 0 || it.value >= 1<<len(fragmentBits) {
		return nil, fmt.Errorf("fragment value %#x not supported", it.value)
	}
	var pos, neg []dnf
	for i, b := range fragmentBits {
		if it.value&(1<<i) == 0 {
			continue
		}
		p, n := b.pos4, b.neg4
		if v6 {
			p, n = b.pos6, b.neg6
		}
		if p == nil {
			return nil, fmt.Errorf("fragment flag %s not supported for this family", fragmentFlagNames[i])
		}
		pos, neg = append(pos, p), append(neg, n)
	}
	allOf := func(ds []dnf) dnf {
		out := dnf{{}}
		for _, d := range ds {
			out = out.and(d)
		}
		return out
	}
	anyOf := func(ds []dnf) dnf {
		var out dnf
		for _, d := range ds {
			out = append(out, d...)
		}
		return out
	}
	switch it.op & (fsOpNot | fsOpMatch) {
	case 0:
		return anyOf(pos), nil
	case fsOpMatch:
		return allOf(pos), nil
	case fsOpNot:
		return allOf(neg), nil
	default:
		return anyOf(neg), nil
	}
}

// NFTRuleset returns the nftables script InstallFlowSpec loads: it
// replaces the lab's table with one forward-hook chain holding the rules of
// every route, each with its route's NLRI as comment.
func NFTRuleset(routes ...Route) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", nftTable, nftTable)
	fmt.Fprintf(&b, "table inet %s {\n  chain %s {\n    type filter hook forward priority 0; policy accept;\n", nftTable, nftChain)
	for _, r := range routes {
		rules, err := NFTRules(r)
		if err != nil {
			return "", err
		}
		comment := r.Prefix
		if len(comment) > 120 {
			comment = comment[:120]
		}
		for _, rule := range rules {
			fmt.Fprintf(&b, "    %s comment %q\n", rule, comment)
		}
	}
	b.WriteString("  }\n}\n")
	return b.String(), nil
}

// InstallFlowSpec replaces the FlowSpec shim of node's namespace with the
// rules of routes (see NFTRules): table inet floodgate_lab, chain flowspec
// on the forward hook. An empty list leaves an empty chain.
func (l *Lab) InstallFlowSpec(ctx context.Context, node string, routes ...Route) error {
	ns := l.Netns(node)
	if ns == "" {
		return fmt.Errorf("lab has no node %q", node)
	}
	script, err := NFTRuleset(routes...)
	if err != nil {
		return err
	}
	if _, err := runInput(ctx, script, "ip", "netns", "exec", ns, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("install flowspec rules in %s: %w\n%s", node, err, script)
	}
	return nil
}

// NFTCounter is the counter of one rule installed by InstallFlowSpec.
type NFTCounter struct {
	// Comment is the NLRI of the route the rule comes from.
	Comment string
	// Packets and Bytes are the counter's values.
	Packets, Bytes uint64
}

// FlowSpecCounters returns the counters of the rules InstallFlowSpec
// installed in node's namespace, in chain order.
func (l *Lab) FlowSpecCounters(ctx context.Context, node string) ([]NFTCounter, error) {
	ns := l.Netns(node)
	if ns == "" {
		return nil, fmt.Errorf("lab has no node %q", node)
	}
	out, err := run(ctx, "ip", "netns", "exec", ns, "nft", "-j", "list", "chain", "inet", nftTable, nftChain)
	if err != nil {
		return nil, err
	}
	return parseNFTCounters([]byte(out))
}

// parseNFTCounters reads the rule counters of `nft -j list chain`.
func parseNFTCounters(out []byte) ([]NFTCounter, error) {
	var resp struct {
		Nftables []struct {
			Rule *struct {
				Comment string            `json:"comment"`
				Expr    []json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("decode nft json: %w", err)
	}
	var counters []NFTCounter
	for _, o := range resp.Nftables {
		if o.Rule == nil {
			continue
		}
		c := NFTCounter{Comment: o.Rule.Comment}
		for _, e := range o.Rule.Expr {
			var ex struct {
				Counter *struct {
					Packets uint64 `json:"packets"`
					Bytes   uint64 `json:"bytes"`
				} `json:"counter"`
			}
			if json.Unmarshal(e, &ex) == nil && ex.Counter != nil {
				c.Packets, c.Bytes = ex.Counter.Packets, ex.Counter.Bytes
			}
		}
		counters = append(counters, c)
	}
	return counters, nil
}
