package flowspec

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Range is an inclusive range of values of a numeric match component.
type Range struct{ Lo, Hi uint32 }

// Single is a range of one value.
func Single(v uint32) Range { return Range{v, v} }

// TCP flag bits (RFC 9293 order, as in the TCP header).
const (
	FlagFIN uint8 = 0x01
	FlagSYN uint8 = 0x02
	FlagRST uint8 = 0x04
	FlagPSH uint8 = 0x08
	FlagACK uint8 = 0x10
	FlagURG uint8 = 0x20
)

// Fragment flag bits (RFC 8955 4.2.2.12).
const (
	FragDontFragment uint8 = 0x01
	FragIsFragment   uint8 = 0x02
	FragFirst        uint8 = 0x04
	FragLast         uint8 = 0x08
)

// Rule is the match part of a FlowSpec rule (RFC 8955 for IPv4, RFC 8956
// for IPv6). Empty lists match anything; values in one list are ORed,
// components are ANDed. IPv6 prefixes always have offset 0.
type Rule struct {
	// Dst is required: Floodgate never announces a rule without a
	// destination.
	Dst, Src netip.Prefix
	// Protocols are IP protocol numbers (IPv6: next header).
	Protocols []uint8
	// Ports match either port; DstPorts and SrcPorts one side.
	Ports, DstPorts, SrcPorts []Range
	ICMPTypes, ICMPCodes      []uint8
	// TCPFlagsSet must all be set and TCPFlagsUnset all clear, when
	// either is non-zero.
	TCPFlagsSet, TCPFlagsUnset uint8
	// PacketLengths are IP packet lengths.
	PacketLengths []Range
	DSCP          []uint8
	// Fragment matches packets with any of these fragment bits.
	Fragment uint8
	// FlowLabels are IPv6 flow labels.
	FlowLabels []uint32
}

// ActionKind is what a FlowSpec rule does with matched traffic.
type ActionKind uint8

// Actions.
const (
	Discard   ActionKind = iota + 1 // traffic-rate 0
	RateLimit                       // traffic-rate in bytes/s
	Redirect                        // redirect to a route target (VRF)
	Mark                            // traffic-marking: set DSCP
)

var actionNames = map[ActionKind]string{Discard: "discard", RateLimit: "rate-limit", Redirect: "redirect", Mark: "mark"}

// String names the action kind as the policy does.
func (k ActionKind) String() string { return actionNames[k] }

// Action is the action of a FlowSpec rule.
type Action struct {
	Kind ActionKind
	// RateBytes is the rate limit in bytes per second (the RFC's unit;
	// policies configure bits per second).
	RateBytes float32
	// RouteTarget is the redirect target.
	RTASN   uint16
	RTValue uint32
	// DSCP is the marking.
	DSCP uint8
}

// String describes the action.
func (a Action) String() string {
	switch a.Kind {
	case RateLimit:
		return fmt.Sprintf("rate-limit %.0f bytes/s", a.RateBytes)
	case Redirect:
		return fmt.Sprintf("redirect %d:%d", a.RTASN, a.RTValue)
	case Mark:
		return fmt.Sprintf("mark dscp %d", a.DSCP)
	}
	return "discard"
}

func rangesString(rs []Range) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		if r.Lo == r.Hi {
			parts[i] = strconv.FormatUint(uint64(r.Lo), 10)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return strings.Join(parts, ",")
}

func bytesString(vs []uint8) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.Itoa(int(v))
	}
	return strings.Join(parts, ",")
}

// String is the rule's canonical text: components in RFC type order.
// Equal rules have equal strings, which makes it a key.
func (r *Rule) String() string {
	var b []string
	add := func(name, v string) {
		if v != "" {
			b = append(b, name+" "+v)
		}
	}
	add("dst", prefixString(r.Dst))
	add("src", prefixString(r.Src))
	add("proto", bytesString(r.Protocols))
	add("port", rangesString(r.Ports))
	add("dport", rangesString(r.DstPorts))
	add("sport", rangesString(r.SrcPorts))
	add("icmp-type", bytesString(r.ICMPTypes))
	add("icmp-code", bytesString(r.ICMPCodes))
	if r.TCPFlagsSet != 0 || r.TCPFlagsUnset != 0 {
		add("tcp-flags", fmt.Sprintf("set=0x%02x unset=0x%02x", r.TCPFlagsSet, r.TCPFlagsUnset))
	}
	add("length", rangesString(r.PacketLengths))
	add("dscp", bytesString(r.DSCP))
	if r.Fragment != 0 {
		add("fragment", fmt.Sprintf("0x%02x", r.Fragment))
	}
	if len(r.FlowLabels) > 0 {
		parts := make([]string, len(r.FlowLabels))
		for i, v := range r.FlowLabels {
			parts[i] = strconv.FormatUint(uint64(v), 10)
		}
		add("label", strings.Join(parts, ","))
	}
	return strings.Join(b, " ")
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// Limits on rule size: GoBGP serialises a FlowSpec NLRI of 240 bytes or
// more wrongly, and long value lists are rarely what an operator wants.
const (
	MaxNLRILen    = 239
	MaxListValues = 16
)

func byteRanges(vs []uint8) []Range {
	out := make([]Range, len(vs))
	for i, v := range vs {
		out[i] = Single(uint32(v))
	}
	return out
}

// ErrRuleTooLarge reports a rule whose NLRI would not fit.
var ErrRuleTooLarge = errors.New("flowspec rule too large")

// Validate reports why the rule cannot be announced: no destination,
// source and destination of different families, a flow label on IPv4, a
// list of more than MaxListValues values, or an encoding longer than
// MaxNLRILen (both ErrRuleTooLarge).
func (r *Rule) Validate() error {
	if !r.Dst.IsValid() {
		return errors.New("flowspec rule without destination")
	}
	v4 := r.Dst.Addr().Is4()
	if r.Src.IsValid() && r.Src.Addr().Is4() != v4 {
		return fmt.Errorf("flowspec rule %s: source and destination families differ", r)
	}
	if len(r.FlowLabels) > 0 && v4 {
		return fmt.Errorf("flowspec rule %s: flow label on IPv4", r)
	}
	for _, l := range [][]Range{r.Ports, r.DstPorts, r.SrcPorts, r.PacketLengths} {
		if len(l) > MaxListValues {
			return fmt.Errorf("%w: %d values in one component, at most %d", ErrRuleTooLarge, len(l), MaxListValues)
		}
	}
	if n := r.EncodedLen(); n > MaxNLRILen {
		return fmt.Errorf("%w: %d bytes encoded, at most %d", ErrRuleTooLarge, n, MaxNLRILen)
	}
	return nil
}

// EncodedLen is the length in bytes of the rule's NLRI as RFC 8955 (IPv4)
// and RFC 8956 (IPv6, offset 0) encode it, its length octet included: a
// type octet per component, then for a prefix its length (and offset)
// octet and the prefix's bytes, for a numeric or bitmask component one
// operator octet per value and the value in the fewest of 1, 2, 4 or 8
// bytes. A range is two values (>= lo, and <= hi). The bgp package checks
// it against GoBGP's own encoding.
func (r *Rule) EncodedLen() int {
	n := 0
	prefix := func(p netip.Prefix) {
		if !p.IsValid() {
			return
		}
		n += 2 + (p.Bits()+7)/8
		if !p.Addr().Is4() {
			n++ // offset
		}
	}
	prefix(r.Dst)
	prefix(r.Src)
	value := func(v uint64) int {
		switch {
		case v < 1<<8:
			return 2
		case v < 1<<16:
			return 3
		case v < 1<<32:
			return 5
		}
		return 9
	}
	num := func(rs []Range) {
		if len(rs) == 0 {
			return
		}
		n++
		for _, x := range rs {
			n += value(uint64(x.Lo))
			if x.Lo != x.Hi {
				n += value(uint64(x.Hi))
			}
		}
	}
	num(byteRanges(r.Protocols))
	num(r.Ports)
	num(r.DstPorts)
	num(r.SrcPorts)
	num(byteRanges(r.ICMPTypes))
	num(byteRanges(r.ICMPCodes))
	if r.TCPFlagsSet != 0 || r.TCPFlagsUnset != 0 {
		n++
		if r.TCPFlagsSet != 0 {
			n += value(uint64(r.TCPFlagsSet))
		}
		if r.TCPFlagsUnset != 0 {
			n += value(uint64(r.TCPFlagsUnset))
		}
	}
	num(r.PacketLengths)
	num(byteRanges(r.DSCP))
	if r.Fragment != 0 {
		n += 1 + value(uint64(r.Fragment))
	}
	if len(r.FlowLabels) > 0 {
		n++
		for _, l := range r.FlowLabels {
			n += value(uint64(l))
		}
	}
	if n >= 240 {
		return n + 2
	}
	return n + 1
}

// Validate reports an action that cannot be encoded.
func (a Action) Validate() error {
	switch a.Kind {
	case Discard, Redirect:
		return nil
	case RateLimit:
		if a.RateBytes <= 0 {
			return errors.New("rate-limit with no rate")
		}
		return nil
	case Mark:
		if a.DSCP > 63 {
			return fmt.Errorf("dscp %d out of range", a.DSCP)
		}
		return nil
	}
	return fmt.Errorf("unknown flowspec action %d", a.Kind)
}

// MarshalText writes the action kind's name.
func (k ActionKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads an action kind's name.
func (k *ActionKind) UnmarshalText(b []byte) error {
	if len(b) == 0 { // no action: an RTBH announcement
		*k = 0
		return nil
	}
	for v, name := range actionNames {
		if name == string(b) {
			*k = v
			return nil
		}
	}
	return fmt.Errorf("action %q is not discard, rate-limit, redirect or mark", b)
}
