package flowspec

import (
	"net/netip"
	"slices"
	"strings"
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
	// Vectors split the traffic by what a rule can tell apart, heaviest
	// first. Without them BuildSet falls back on Build.
	Vectors []Vector
	// Attack is the share of the packets that is surely the attack (for
	// a host at 3× its limit, at least 2/3: the rest may be its own
	// traffic); 0 means all of them.
	Attack float64
}

// Vector is one kind of packet in the traffic: a protocol, and for TCP
// SYN without ACK or for non-first fragments, those apart.
type Vector struct {
	Proto uint8
	// SYN marks TCP with SYN and without ACK; Fragment non-first
	// fragments (of any protocol).
	SYN, Fragment bool
	// Share is the vector's share of all packets; Records how many
	// records (samples) it rests on.
	Share, Records float64
	// SrcPorts and DstPorts are shares of the vector's packets; for ICMP
	// and ICMPv6, DstPorts are ICMP types.
	SrcPorts, DstPorts []Share
	// Lengths are shares of the vector's packets, in increasing order.
	Lengths []LengthShare
	// SrcPortLengths and DstPortLengths, when known, are the lengths of
	// each port's packets (aligned with SrcPorts and DstPorts), as
	// shares of the vector's packets.
	SrcPortLengths, DstPortLengths [][]LengthShare
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

// Rule set bounds and thresholds.
const (
	// DefaultMaxRules is the most rules BuildSet makes for one attack.
	DefaultMaxRules = 4
	// relVector is the share of the heaviest vector from which a vector
	// gets a rule even when the heavier ones already reach the coverage:
	// one that large is a vector of the attack, not the victim's own
	// traffic (at most 1/Ratio of it all, and spread over its own
	// vectors).
	relVector = 1.0 / 3
	// minVector is the least share of a vector with a rule: lighter ones
	// are noise or the victim's own traffic.
	minVector = 0.02
	// portCover is the share of a vector's packets a port set must carry
	// to become a component. Reflection and single-service floods carry
	// all of it; random-port floods far less, so the choice does not
	// flip with sampling noise.
	portCover = 0.9
	// lengthFloorCover is the share of a port set's packets a lower bound
	// on length must keep: amplified answers are long, the service's
	// normal answers (which the bound spares) short, so the bound keeps
	// nearly all of the attack whatever the victim's own share.
	lengthFloorCover = 0.9
	// minLengthFloor is the least lower bound worth a component: one
	// below it drops nothing.
	minLengthFloor = 129
	// MaxLengthWidth is how narrow a length range must be, in bytes, to
	// be a component on its own (when no port set exists): a wider one
	// matches most of a victim's traffic.
	MaxLengthWidth = 512
	// lengthCover is the share of a vector's packets such a range must
	// hold.
	lengthCover = 0.9
)

// BuildSet returns the rules for an attack: one per vector, for every
// vector of at least a third of the heaviest one's share, and lighter ones
// (of at least 2 %) while the vectors taken do not cover coverage of the
// attack's packets (Shape.Attack of all); at most maxRules (0 means
// DefaultMaxRules, the heaviest vectors first), listed in the rules'
// canonical order, so that the same attack always gets the same list. Each rule is as
// narrow as its vector allows: the protocol always; TCP SYN without ACK
// for SYN floods; the fragment component for non-first fragments; a port
// set that carries 90 % of its vector, with a lower bound on length when
// 90 % of the port set's packets are that long; else a length range no
// wider than MaxLengthWidth holding 90 %; never a component that matches
// (nearly) every packet. Without vectors it returns Build's one rule.
func BuildSet(s Shape, coverage float64, maxRules int) []Rule {
	if maxRules <= 0 {
		maxRules = DefaultMaxRules
	}
	if len(s.Vectors) == 0 {
		return []Rule{Build(s, coverage)}
	}
	attack := s.Attack
	if attack <= 0 || attack > 1 {
		attack = 1
	}
	want := coverage * attack
	var rules []Rule
	covered := 0.0
	for _, v := range s.Vectors {
		if len(rules) == maxRules {
			break
		}
		if v.Share < minVector || (covered >= want && v.Share < s.Vectors[0].Share*relVector) {
			continue
		}
		r := vectorRule(s.Victim, &v)
		if slices.ContainsFunc(rules, func(x Rule) bool { return x.String() == r.String() }) {
			continue
		}
		rules = append(rules, r)
		covered += v.Share
	}
	if len(rules) == 0 {
		return []Rule{Build(s, coverage)}
	}
	slices.SortFunc(rules, func(a, b Rule) int { return strings.Compare(a.String(), b.String()) })
	return rules
}

// vectorRule is the narrowest rule for one vector.
func vectorRule(victim netip.Prefix, v *Vector) Rule {
	r := Rule{Dst: victim.Masked(), Protocols: []uint8{v.Proto}}
	switch {
	case v.Fragment:
		r.Fragment = FragIsFragment
		return r
	case v.SYN:
		r.TCPFlagsSet, r.TCPFlagsUnset = FlagSYN, FlagACK
	}
	if v.Proto == 6 || v.Proto == 17 {
		src, sShare := topSet(v.SrcPorts, portCover, maxBuiltValues)
		dst, dShare := topSet(v.DstPorts, portCover, maxBuiltValues)
		// The side that carries the vector with fewer ports: the
		// reflector's service port, or the flooded service.
		useSrc := sShare >= portCover && (dShare < portCover || len(src) <= len(dst))
		useDst := !useSrc && dShare >= portCover
		lengths := v.Lengths
		switch {
		case useSrc:
			r.SrcPorts = portRanges(src)
			lengths = portSetLengths(v.SrcPortLengths, len(src), lengths)
		case useDst:
			r.DstPorts = portRanges(dst)
			lengths = portSetLengths(v.DstPortLengths, len(dst), lengths)
		}
		if useSrc || useDst {
			if lo, ok := lengthFloor(lengths); ok {
				r.PacketLengths = []Range{{uint32(lo), 65535}}
			}
			return r
		}
		if v.SYN {
			// SYN without ACK is narrow enough: a victim's own SYNs are
			// few of its packets.
			return r
		}
	}
	if v.Proto == 1 || v.Proto == 58 {
		// One ICMP type carrying the vector (echo requests, most
		// often) is the narrowest component there is.
		if types, share := topSet(v.DstPorts, portCover, 1); share >= portCover {
			r.ICMPTypes = []uint8{uint8(types[0])}
			return r
		}
	}
	if lo, hi, share, ok := lengthRange(v.Lengths, lengthCover); ok && share >= lengthCover && int(hi)-int(lo) < MaxLengthWidth {
		r.PacketLengths = []Range{{uint32(lo), uint32(hi)}}
	}
	return r
}

func portRanges(ports []int) []Range {
	rs := make([]Range, len(ports))
	for i, p := range ports {
		rs[i] = Single(uint32(p))
	}
	slices.SortFunc(rs, func(a, b Range) int { return int(a.Lo) - int(b.Lo) })
	return rs
}

// lengthFloor returns the highest bucket bound that lengthFloorCover of
// the packets reach, when it is worth a component.
func lengthFloor(ls []LengthShare) (uint16, bool) {
	above := 0.0
	for i := len(ls) - 1; i >= 0; i-- {
		above += ls[i].Share
		if above >= lengthFloorCover {
			if ls[i].Lo < minLengthFloor {
				return 0, false
			}
			return ls[i].Lo, true
		}
	}
	return 0, false
}

// portSetLengths returns the length histogram of the first n ports'
// packets, normalised, or all when it is not known.
func portSetLengths(per [][]LengthShare, n int, all []LengthShare) []LengthShare {
	if len(per) < n || n == 0 {
		return all
	}
	out := slices.Clone(per[0])
	for _, ls := range per[1:n] {
		for i := range out {
			if i < len(ls) {
				out[i].Share += ls[i].Share
			}
		}
	}
	sum := 0.0
	for _, l := range out {
		sum += l.Share
	}
	if sum <= 0 {
		return all
	}
	for i := range out {
		out[i].Share /= sum
	}
	return out
}
