package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// flowRule is a FlowSpec NLRI parsed back from its canonical text (see
// Route.Prefix). The routers' own output formats are converted into a
// flowRule and printed with String, so every router yields the same text
// for the same NLRI; the nftables translator reads it too.
type flowRule []flowComponent

// flowComponent is one component of a flowRule.
type flowComponent struct {
	// typ is the RFC 8955/8956 component type.
	typ bgp.BGPFlowSpecType
	// prefix and offset hold a destination or source prefix.
	prefix netip.Prefix
	offset uint8
	// items hold the operator/value list of the other components.
	items []flowItem
	// raw is the text of a component the lab cannot decode
	// ("unknown:<hex>"); it is printed as is.
	raw string
}

// flowItem is one operator/value pair of a numeric or bitmask component.
type flowItem struct {
	// and reports that the item is ANDed with the previous one; ORed
	// otherwise. It is false for the first item.
	and bool
	// op holds the lt/gt/eq bits (fsOpLessThan|fsOpGreater|fsOpEqual) of a
	// numeric operator, or the not/match bits (fsOpNot|fsOpMatch) of a
	// bitmask operator.
	op uint8
	// value is the operand.
	value uint64
}

// flowTypes maps canonical component names to types.
var flowTypes = map[string]bgp.BGPFlowSpecType{
	"destination":      bgp.FLOW_SPEC_TYPE_DST_PREFIX,
	"source":           bgp.FLOW_SPEC_TYPE_SRC_PREFIX,
	"protocol":         bgp.FLOW_SPEC_TYPE_IP_PROTO,
	"port":             bgp.FLOW_SPEC_TYPE_PORT,
	"destination-port": bgp.FLOW_SPEC_TYPE_DST_PORT,
	"source-port":      bgp.FLOW_SPEC_TYPE_SRC_PORT,
	"icmp-type":        bgp.FLOW_SPEC_TYPE_ICMP_TYPE,
	"icmp-code":        bgp.FLOW_SPEC_TYPE_ICMP_CODE,
	"tcp-flags":        bgp.FLOW_SPEC_TYPE_TCP_FLAG,
	"packet-length":    bgp.FLOW_SPEC_TYPE_PKT_LEN,
	"dscp":             bgp.FLOW_SPEC_TYPE_DSCP,
	"fragment":         bgp.FLOW_SPEC_TYPE_FRAGMENT,
	"label":            bgp.FLOW_SPEC_TYPE_LABEL,
}

// isPrefixType reports whether components of type t hold a prefix.
func isPrefixType(t bgp.BGPFlowSpecType) bool {
	return t == bgp.FLOW_SPEC_TYPE_DST_PREFIX || t == bgp.FLOW_SPEC_TYPE_SRC_PREFIX
}

// isBitmaskType reports whether components of type t use bitmask operators.
func isBitmaskType(t bgp.BGPFlowSpecType) bool {
	return t == bgp.FLOW_SPEC_TYPE_TCP_FLAG || t == bgp.FLOW_SPEC_TYPE_FRAGMENT
}

// String returns the canonical text of the rule.
func (r flowRule) String() string {
	parts := make([]string, 0, len(r))
	for _, c := range r {
		parts = append(parts, c.String())
	}
	return strings.Join(parts, " ")
}

// String returns the canonical "name:value" text of the component.
func (c flowComponent) String() string {
	if c.raw != "" {
		return c.raw
	}
	name := c.typ.String() + ":"
	if isPrefixType(c.typ) {
		s := c.prefix.String()
		if c.offset != 0 {
			s += "/off" + strconv.FormatUint(uint64(c.offset), 10)
		}
		return name + s
	}
	return name + formatFlowItems(c.typ, c.items)
}

// formatFlowItems prints an operator/value list as documented on
// Route.Prefix.
func formatFlowItems(typ bgp.BGPFlowSpecType, items []flowItem) string {
	bitmask := isBitmaskType(typ)
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			if it.and {
				b.WriteByte('&')
			} else {
				b.WriteByte('|')
			}
		}
		if bitmask {
			if it.op&fsOpNot != 0 {
				b.WriteByte('!')
			}
			if it.op&fsOpMatch != 0 {
				b.WriteByte('=')
			}
			b.WriteString(bitmaskValueText(typ, it.value))
			continue
		}
		switch it.op & 0x07 {
		case 0:
			b.WriteString("true")
			continue
		case fsOpEqual:
			b.WriteString("==")
		case fsOpGreater:
			b.WriteString(">")
		case fsOpGreater | fsOpEqual:
			b.WriteString(">=")
		case fsOpLessThan:
			b.WriteString("<")
		case fsOpLessThan | fsOpEqual:
			b.WriteString("<=")
		case fsOpLessThan | fsOpGreater:
			b.WriteString("!=")
		default:
			b.WriteString("false")
			continue
		}
		if typ == bgp.FLOW_SPEC_TYPE_IP_PROTO {
			b.WriteString(protocolText(it.value))
		} else {
			b.WriteString(strconv.FormatUint(it.value, 10))
		}
	}
	return b.String()
}

// parseFlowText parses the canonical text of a FlowSpec NLRI.
func parseFlowText(s string) (flowRule, error) {
	var r flowRule
	for _, tok := range strings.Fields(s) {
		name, value, ok := strings.Cut(tok, ":")
		if !ok {
			return nil, fmt.Errorf("parse flowspec %q: component %q has no value", s, tok)
		}
		if name == "unknown" {
			r = append(r, flowComponent{raw: tok})
			continue
		}
		typ, ok := flowTypes[name]
		if !ok {
			return nil, fmt.Errorf("parse flowspec %q: unknown component %q", s, name)
		}
		c, err := parseFlowComponent(typ, value)
		if err != nil {
			return nil, fmt.Errorf("parse flowspec %q: %w", s, err)
		}
		r = append(r, c)
	}
	return r, nil
}

// parseFlowComponent parses the value of one canonical component.
func parseFlowComponent(typ bgp.BGPFlowSpecType, value string) (flowComponent, error) {
	c := flowComponent{typ: typ}
	if isPrefixType(typ) {
		p, off, err := parseFlowPrefix(value)
		if err != nil {
			return c, fmt.Errorf("%s: %w", typ, err)
		}
		c.prefix, c.offset = p, off
		return c, nil
	}
	items, err := parseFlowItems(typ, value)
	if err != nil {
		return c, fmt.Errorf("%s: %w", typ, err)
	}
	c.items = items
	return c, nil
}

// parseFlowPrefix parses "addr/len" or "addr/len/offN".
func parseFlowPrefix(s string) (netip.Prefix, uint8, error) {
	var off uint8
	if i := strings.LastIndex(s, "/off"); i >= 0 {
		n, err := strconv.ParseUint(s[i+len("/off"):], 10, 8)
		if err != nil {
			return netip.Prefix{}, 0, fmt.Errorf("bad offset in %q: %w", s, err)
		}
		off, s = uint8(n), s[:i]
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, 0, err
	}
	return p.Masked(), off, nil
}

// parseFlowItems parses an operator/value list in canonical text.
func parseFlowItems(typ bgp.BGPFlowSpecType, s string) ([]flowItem, error) {
	if s == "" {
		return nil, errors.New("empty value")
	}
	var items []flowItem
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && (i == 0 || (s[i] != '&' && s[i] != '|')) {
			continue
		}
		tok := s[start:i]
		start = i
		it := flowItem{}
		if len(items) > 0 {
			it.and = tok[0] == '&'
			tok = tok[1:]
		}
		var err error
		if isBitmaskType(typ) {
			it.op, it.value, err = parseBitmaskItem(typ, tok)
		} else {
			it.op, it.value, err = parseNumericItem(typ, tok)
		}
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

// numericOps maps canonical numeric operators to their lt/gt/eq bits,
// longest first.
var numericOps = []struct {
	text string
	op   uint8
}{
	{"==", fsOpEqual},
	{">=", fsOpGreater | fsOpEqual},
	{"<=", fsOpLessThan | fsOpEqual},
	{"!=", fsOpLessThan | fsOpGreater},
	{">", fsOpGreater},
	{"<", fsOpLessThan},
}

func parseNumericItem(typ bgp.BGPFlowSpecType, tok string) (uint8, uint64, error) {
	switch tok {
	case "true":
		return 0, 0, nil
	case "false":
		return fsOpLessThan | fsOpGreater | fsOpEqual, 0, nil
	}
	for _, o := range numericOps {
		v, ok := strings.CutPrefix(tok, o.text)
		if !ok {
			continue
		}
		n, err := parseNumber(typ, v)
		if err != nil {
			return 0, 0, err
		}
		return o.op, n, nil
	}
	return 0, 0, fmt.Errorf("bad numeric item %q", tok)
}

// parseNumber parses a numeric operand; protocols may be given by name.
func parseNumber(typ bgp.BGPFlowSpecType, s string) (uint64, error) {
	if typ == bgp.FLOW_SPEC_TYPE_IP_PROTO {
		for n, name := range protocolNames {
			if name == s {
				return n, nil
			}
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("bad value %q: %w", s, err)
	}
	return n, nil
}

func parseBitmaskItem(typ bgp.BGPFlowSpecType, tok string) (uint8, uint64, error) {
	var op uint8
	if rest, ok := strings.CutPrefix(tok, "!"); ok {
		op |= fsOpNot
		tok = rest
	}
	if rest, ok := strings.CutPrefix(tok, "="); ok {
		op |= fsOpMatch
		tok = rest
	}
	v, err := parseBitmaskValue(typ, tok)
	return op, v, err
}

// parseBitmaskValue parses the value text printed by bitmaskValueText.
func parseBitmaskValue(typ bgp.BGPFlowSpecType, s string) (uint64, error) {
	switch {
	case s == "0":
		return 0, nil
	case strings.HasPrefix(s, "0x"):
		v, err := strconv.ParseUint(s[2:], 16, 16)
		if err != nil {
			return 0, fmt.Errorf("bad bitmask value %q: %w", s, err)
		}
		return v, nil
	case s == "":
		return 0, errors.New("empty bitmask value")
	}
	var v uint64
	if typ == bgp.FLOW_SPEC_TYPE_FRAGMENT {
		for name := range strings.SplitSeq(s, "+") {
			i := slices.Index(fragmentFlagNames, name)
			if i < 0 {
				return 0, fmt.Errorf("unknown fragment flag %q", name)
			}
			v |= 1 << i
		}
		return v, nil
	}
	for _, r := range s {
		i := slices.Index(tcpFlagNames, string(r))
		if i < 0 {
			return 0, fmt.Errorf("unknown tcp flag %q in %q", r, s)
		}
		v |= 1 << i
	}
	return v, nil
}

// fromBGPItems converts GoBGP's decoded operator/value list.
func fromBGPItems(items []*bgp.FlowSpecComponentItem) []flowItem {
	out := make([]flowItem, len(items))
	for i, it := range items {
		out[i] = flowItem{and: i > 0 && it.Op&fsOpAnd != 0, op: uint8(it.Op & 0x07), value: it.Value}
	}
	return out
}

// guessNumericAnd rebuilds the AND bits of numeric lists whose router
// output does not show them (FRR): an upper bound ('<' or '<=') right after
// a lower bound ('>' or '>=') is taken as ANDed to it, forming a range;
// every other item as ORed.
func guessNumericAnd(items []flowItem) {
	for i := range items {
		items[i].and = false
		if i == 0 {
			continue
		}
		prev, cur := items[i-1].op&0x07, items[i].op&0x07
		lower := prev == fsOpGreater || prev == fsOpGreater|fsOpEqual
		upper := cur == fsOpLessThan || cur == fsOpLessThan|fsOpEqual
		items[i].and = lower && upper
	}
}
