package flowspec

import (
	"net/netip"
	"slices"
)

// Shape is what the rule builder knows of an attack's traffic. Shares are
// of all the attack's packets, from 0 to 1.
type Shape struct {
	// Victim is the attacked host (/32, /128) or monitored prefix.
	Victim netip.Prefix
	// Protocols are IP protocol numbers, heaviest first.
	Protocols []Share
	// SrcPorts and DstPorts are TCP/UDP ports, heaviest first.
	SrcPorts, DstPorts []Share
	// TCPSYN is the share of TCP packets with SYN and without ACK.
	TCPSYN float64
	// Fragment is the share of IP fragments.
	Fragment float64
	// Lengths are packet length buckets in increasing order.
	Lengths []LengthShare
}

// Share is a value and its share of packets.
type Share struct {
	Value int
	Share float64
}

// LengthShare is the share of packets whose IP length is in [Lo, Hi].
type LengthShare struct {
	Lo, Hi uint16
	Share  float64
}

// Most values a built rule lists in one component.
const maxBuiltValues = 5

// Build returns the narrowest rule for the attack that still matches at
// least coverage of its packets. It starts from the victim as destination
// and adds components (protocol, source or destination ports, TCP SYN
// without ACK, fragments, packet length), cheapest first, while the share
// of attack packets they could miss, summed over components (a bound that
// holds whatever the correlation between them), stays within 1−coverage.
func Build(s Shape, coverage float64) Rule {
	r := Rule{Dst: s.Victim.Masked()}
	budget := 1 - coverage
	type candidate struct {
		loss     float64
		specific bool // narrower than the protocol: ports, flags, fragments
		apply    func(*Rule)
	}
	var cands []candidate

	// The protocol component is never left out: a rule without it
	// matches all of the victim's traffic (Check refuses such a rule).
	// When no three protocols reach the coverage, the rule covers what
	// they do, and nothing narrower is added.
	protos, pShare := topSet(s.Protocols, 1-budget, 3)
	for _, p := range protos {
		r.Protocols = append(r.Protocols, uint8(p))
	}
	slices.Sort(r.Protocols)
	budget = max(0, budget-(1-pShare))
	transport := len(protos) > 0 && !slices.ContainsFunc(protos, func(p int) bool { return p != 6 && p != 17 })
	if transport {
		for _, side := range []struct {
			list []Share
			dst  bool
		}{{s.SrcPorts, false}, {s.DstPorts, true}} {
			ports, share := topSet(side.list, 1-budget, maxBuiltValues)
			if len(ports) == 0 {
				continue
			}
			dst := side.dst
			cands = append(cands, candidate{1 - share, true, func(r *Rule) {
				rs := make([]Range, len(ports))
				for i, p := range ports {
					rs[i] = Single(uint32(p))
				}
				slices.SortFunc(rs, func(a, b Range) int { return int(a.Lo) - int(b.Lo) })
				if dst {
					r.DstPorts = rs
				} else {
					r.SrcPorts = rs
				}
			}})
		}
	}
	if len(protos) == 1 && protos[0] == 6 && s.TCPSYN > 0 {
		cands = append(cands, candidate{1 - s.TCPSYN, true, func(r *Rule) {
			r.TCPFlagsSet, r.TCPFlagsUnset = FlagSYN, FlagACK
		}})
	}
	if s.Fragment > 0 {
		cands = append(cands, candidate{1 - s.Fragment, true, func(r *Rule) { r.Fragment = FragIsFragment }})
	}
	slices.SortStableFunc(cands, func(a, b candidate) int {
		switch {
		case a.loss < b.loss:
			return -1
		case a.loss > b.loss:
			return 1
		}
		return 0
	})
	specific := false
	for _, c := range cands {
		if c.loss <= budget+1e-9 {
			c.apply(&r)
			budget -= c.loss
			specific = specific || c.specific
		}
	}
	// Packet length is a last resort: coarse (histogram buckets) and easy
	// for an attacker to vary, it narrows only rules that have nothing
	// more specific than the protocol.
	if !specific {
		if lo, hi, share, ok := lengthRange(s.Lengths, 1-budget); ok && 1-share <= budget+1e-9 {
			r.PacketLengths = []Range{{uint32(lo), uint32(hi)}}
		}
	}
	return r
}

// topSet returns the fewest heaviest values (at most n) whose shares add
// up to want, or all n with their sum if they never do.
func topSet(list []Share, want float64, n int) ([]int, float64) {
	var vals []int
	sum := 0.0
	for _, s := range list {
		if len(vals) == n || s.Share <= 0 {
			break
		}
		vals = append(vals, s.Value)
		sum += s.Share
		if sum >= want {
			break
		}
	}
	return vals, min(sum, 1)
}

// lengthRange returns the narrowest run of buckets holding at least want
// of the packets, if it is narrower than all of them.
func lengthRange(ls []LengthShare, want float64) (lo, hi uint16, share float64, ok bool) {
	best := -1
	for i := range ls {
		sum := 0.0
		for j := i; j < len(ls); j++ {
			sum += ls[j].Share
			if sum >= want {
				width := int(ls[j].Hi) - int(ls[i].Lo)
				if best < 0 || width < best {
					best, lo, hi, share = width, ls[i].Lo, ls[j].Hi, sum
				}
				break
			}
		}
	}
	if best < 0 || (len(ls) > 0 && lo == ls[0].Lo && hi == ls[len(ls)-1].Hi) {
		return 0, 0, 0, false
	}
	return lo, hi, share, true
}
