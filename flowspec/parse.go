package flowspec

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/floodgate-ddos/floodgate/policies"
)

// ParseRule parses the canonical text of a rule, as Rule.String writes it
// and as operators type it: space-separated components, each a name and a
// value. Lists are comma-separated; ranges are lo-hi.
//
//	dst 203.0.113.10/32 proto 17 sport 123
//	dst 2001:db8::10/128 proto 6 dport 80,443 tcp-flags syn,!ack length 0-64
//	dst 203.0.113.0/28 fragment is
//
// Names: dst, src, proto (numbers or tcp, udp, icmp, icmpv6), port, dport,
// sport, icmp-type, icmp-code, tcp-flags (set=0xNN unset=0xNN, or a list of
// fin, syn, rst, psh, ack, urg with ! for unset), length, dscp, fragment
// (0xNN, or a list of df, is, first, last), label.
func ParseRule(text string) (Rule, error) {
	var r Rule
	f := strings.Fields(text)
	seen := map[string]bool{}
	for i := 0; i < len(f); i++ {
		name := f[i]
		if seen[name] {
			return r, fmt.Errorf("rule: %s given twice", name)
		}
		seen[name] = true
		if i+1 >= len(f) {
			return r, fmt.Errorf("rule: %s has no value", name)
		}
		v := f[i+1]
		i++
		var err error
		switch name {
		case "dst", "src":
			var p netip.Prefix
			if p, err = netip.ParsePrefix(v); err == nil {
				if p.Addr().Is4In6() || p.Masked() != p {
					err = fmt.Errorf("%s is IPv4-mapped or has host bits set", v)
				}
			}
			if name == "dst" {
				r.Dst = p
			} else {
				r.Src = p
			}
		case "proto":
			r.Protocols, err = parseProtocols(v)
		case "port":
			r.Ports, err = parseRanges(v, 65535)
		case "dport":
			r.DstPorts, err = parseRanges(v, 65535)
		case "sport":
			r.SrcPorts, err = parseRanges(v, 65535)
		case "length":
			r.PacketLengths, err = parseRanges(v, 65535)
		case "icmp-type":
			r.ICMPTypes, err = parseBytes(v, 255)
		case "icmp-code":
			r.ICMPCodes, err = parseBytes(v, 255)
		case "dscp":
			r.DSCP, err = parseBytes(v, 63)
		case "tcp-flags":
			if strings.HasPrefix(v, "set=") && i+1 < len(f) && strings.HasPrefix(f[i+1], "unset=") {
				var set, unset uint64
				if set, err = strconv.ParseUint(strings.TrimPrefix(v, "set="), 0, 8); err == nil {
					unset, err = strconv.ParseUint(strings.TrimPrefix(f[i+1], "unset="), 0, 8)
				}
				r.TCPFlagsSet, r.TCPFlagsUnset = uint8(set), uint8(unset)
				i++
			} else {
				r.TCPFlagsSet, r.TCPFlagsUnset, err = parseFlagNames(v)
			}
		case "fragment":
			r.Fragment, err = parseFragment(v)
		case "label":
			var rs []Range
			rs, err = parseRanges(v, 1<<20-1)
			for _, x := range rs {
				if x.Lo != x.Hi {
					err = fmt.Errorf("label ranges are not supported")
				}
				r.FlowLabels = append(r.FlowLabels, x.Lo)
			}
		default:
			return r, fmt.Errorf("rule: unknown component %q", name)
		}
		if err != nil {
			return r, fmt.Errorf("rule: %s %s: %w", name, v, err)
		}
	}
	if !r.Dst.IsValid() {
		return r, fmt.Errorf("rule: a destination (dst PREFIX) is required")
	}
	return r, nil
}

func parseProtocols(v string) ([]uint8, error) {
	var out []uint8
	for _, s := range strings.Split(v, ",") {
		if p, ok := policies.ProtocolNumber(s); ok {
			out = append(out, p)
			continue
		}
		n, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			return nil, fmt.Errorf("protocol %q is not a number from 0 to 255 or a name", s)
		}
		out = append(out, uint8(n))
	}
	return out, nil
}

func parseRanges(v string, maxV uint64) ([]Range, error) {
	var out []Range
	for _, s := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(s, "-")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil || a > maxV {
			return nil, fmt.Errorf("%q is not a number from 0 to %d", lo, maxV)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil || b > maxV || b < a {
				return nil, fmt.Errorf("%q is not a range lo-hi within 0 to %d", s, maxV)
			}
		}
		out = append(out, Range{uint32(a), uint32(b)})
	}
	if len(out) > MaxListValues {
		return nil, fmt.Errorf("%d values, at most %d", len(out), MaxListValues)
	}
	return out, nil
}

func parseBytes(v string, maxV uint64) ([]uint8, error) {
	var out []uint8
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.ParseUint(s, 10, 8)
		if err != nil || n > maxV {
			return nil, fmt.Errorf("%q is not a number from 0 to %d", s, maxV)
		}
		out = append(out, uint8(n))
	}
	return out, nil
}

var flagNames = map[string]uint8{"fin": FlagFIN, "syn": FlagSYN, "rst": FlagRST, "psh": FlagPSH, "ack": FlagACK, "urg": FlagURG}

func parseFlagNames(v string) (set, unset uint8, err error) {
	for _, s := range strings.Split(strings.ToLower(v), ",") {
		neg := strings.HasPrefix(s, "!")
		b, ok := flagNames[strings.TrimPrefix(s, "!")]
		if !ok {
			return 0, 0, fmt.Errorf("%q is not a TCP flag (fin, syn, rst, psh, ack, urg; ! for unset)", s)
		}
		if neg {
			unset |= b
		} else {
			set |= b
		}
	}
	return set, unset, nil
}

var fragNames = map[string]uint8{"df": FragDontFragment, "is": FragIsFragment, "first": FragFirst, "last": FragLast}

func parseFragment(v string) (uint8, error) {
	if strings.HasPrefix(v, "0x") {
		n, err := strconv.ParseUint(v, 0, 8)
		if err != nil || n == 0 || n > 0x0f {
			return 0, fmt.Errorf("%q is not fragment bits from 0x01 to 0x0f", v)
		}
		return uint8(n), nil
	}
	var out uint8
	for _, s := range strings.Split(v, ",") {
		b, ok := fragNames[s]
		if !ok {
			return 0, fmt.Errorf("%q is not a fragment flag (df, is, first, last)", s)
		}
		out |= b
	}
	return out, nil
}
