package flowspec

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var lengths = []LengthShare{{0, 64, 0}, {65, 128, 0}, {129, 256, 0}, {257, 512, 0}, {513, 1024, 0}, {1025, 1500, 0}, {1501, 65535, 0}}

func withLengths(shares ...float64) []LengthShare {
	out := append([]LengthShare(nil), lengths...)
	for i, s := range shares {
		out[i].Share = s
	}
	return out
}

// TestBuild covers the common attack types: each gets the narrowest rule
// that still matches 90% of its packets.
func TestBuild(t *testing.T) {
	victim := netip.MustParsePrefix("203.0.113.10/32")
	reflection := func(port int, size int) Shape {
		ls := make([]float64, 7)
		ls[lengthBucketOf(size)] = 0.97
		ls[0] = 0.03
		return Shape{Victim: victim, Protocols: []Share{{17, 0.97}, {6, 0.03}}, SrcPorts: []Share{{port, 0.96}, {443, 0.02}},
			DstPorts: []Share{{40000, 0.01}, {40001, 0.01}}, Lengths: withLengths(ls...)}
	}
	tests := []struct {
		name  string
		shape Shape
		want  Rule
	}{
		{"ntp reflection", reflection(123, 468),
			Rule{Dst: victim, Protocols: []uint8{17}, SrcPorts: []Range{Single(123)}}},
		{"dns reflection", reflection(53, 3000),
			Rule{Dst: victim, Protocols: []uint8{17}, SrcPorts: []Range{Single(53)}}},
		{"memcached reflection", reflection(11211, 1400),
			Rule{Dst: victim, Protocols: []uint8{17}, SrcPorts: []Range{Single(11211)}}},
		{"ssdp reflection", reflection(1900, 300),
			Rule{Dst: victim, Protocols: []uint8{17}, SrcPorts: []Range{Single(1900)}}},
		{"syn flood on port 80", Shape{Victim: victim, Protocols: []Share{{6, 1}}, TCPSYN: 0.99, DstPorts: []Share{{80, 1}},
			SrcPorts: []Share{{1024, 0.001}}, Lengths: withLengths(0.99, 0.01)},
			Rule{Dst: victim, Protocols: []uint8{6}, DstPorts: []Range{Single(80)}, TCPFlagsSet: FlagSYN, TCPFlagsUnset: FlagACK}},
		{"syn flood random ports", Shape{Victim: victim, Protocols: []Share{{6, 1}}, TCPSYN: 0.99, DstPorts: []Share{{1, 0.001}},
			SrcPorts: []Share{{2, 0.001}}, Lengths: withLengths(0.5, 0.5)},
			Rule{Dst: victim, Protocols: []uint8{6}, TCPFlagsSet: FlagSYN, TCPFlagsUnset: FlagACK}},
		{"ack flood", Shape{Victim: victim, Protocols: []Share{{6, 1}}, TCPSYN: 0, DstPorts: []Share{{443, 0.3}},
			Lengths: withLengths(0.95, 0.05)},
			Rule{Dst: victim, Protocols: []uint8{6}, PacketLengths: []Range{{0, 64}}}},
		{"udp flood random ports", Shape{Victim: victim, Protocols: []Share{{17, 1}}, DstPorts: []Share{{1, 0.001}},
			SrcPorts: []Share{{2, 0.001}}, Lengths: withLengths(0, 0, 0, 0, 0, 1)},
			Rule{Dst: victim, Protocols: []uint8{17}, PacketLengths: []Range{{1025, 1500}}}},
		{"icmp flood", Shape{Victim: victim, Protocols: []Share{{1, 0.99}}, Lengths: withLengths(0.5, 0.5)},
			Rule{Dst: victim, Protocols: []uint8{1}, PacketLengths: []Range{{0, 128}}}},
		{"protocols short of the coverage", Shape{Victim: victim, Protocols: []Share{{6, 0.3}, {17, 0.3}, {1, 0.2}, {47, 0.1}, {50, 0.1}},
			Lengths: withLengths(0.5, 0.5)},
			Rule{Dst: victim, Protocols: []uint8{1, 6, 17}, PacketLengths: []Range{{0, 128}}}},
		{"fragment flood", Shape{Victim: victim, Protocols: []Share{{17, 1}}, Fragment: 0.98, SrcPorts: []Share{{53, 0.02}},
			Lengths: withLengths(0, 0, 0, 0, 0, 1)},
			Rule{Dst: victim, Protocols: []uint8{17}, Fragment: FragIsFragment}},
		{"mixed vector: protocol only", Shape{Victim: victim, Protocols: []Share{{17, 0.6}, {6, 0.35}, {1, 0.05}},
			SrcPorts: []Share{{123, 0.3}, {53, 0.3}}, Lengths: withLengths(0.3, 0.3, 0.4)},
			Rule{Dst: victim, Protocols: []uint8{6, 17}, PacketLengths: []Range{{0, 256}}}},
		{"carpet bombing on a /24", Shape{Victim: netip.MustParsePrefix("203.0.113.0/24"), Protocols: []Share{{17, 1}},
			SrcPorts: []Share{{389, 0.95}, {53, 0.05}}, Lengths: withLengths(0, 0, 0, 0, 0.5, 0.5)},
			Rule{Dst: netip.MustParsePrefix("203.0.113.0/24"), Protocols: []uint8{17}, SrcPorts: []Range{Single(389)}}},
		{"two reflector ports", Shape{Victim: victim, Protocols: []Share{{17, 1}}, SrcPorts: []Share{{123, 0.5}, {53, 0.45}}},
			Rule{Dst: victim, Protocols: []uint8{17}, SrcPorts: []Range{Single(53), Single(123)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Build(tc.shape, 0.9)
			if diff := cmp.Diff(got, tc.want, cmpNet); diff != "" {
				t.Errorf("Build (-got +want):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("NLRI: %v", err)
			}
		})
	}
}

func lengthBucketOf(n int) int {
	for i, l := range lengths {
		if n <= int(l.Hi) {
			return i
		}
	}
	return len(lengths) - 1
}

func TestBuildCoverageOne(t *testing.T) {
	// With coverage 1 only components that cover everything are added.
	s := Shape{Victim: netip.MustParsePrefix("2001:db8::10/128"), Protocols: []Share{{17, 1}}, SrcPorts: []Share{{123, 0.99}}}
	got := Build(s, 1)
	want := Rule{Dst: s.Victim, Protocols: []uint8{17}}
	if diff := cmp.Diff(got, want, cmpNet); diff != "" {
		t.Errorf("Build (-got +want):\n%s", diff)
	}
}

// TestBuildSet covers the attack types a rule set is for: one rule per
// vector, each with its key component, none matching nearly everything.
func TestBuildSet(t *testing.T) {
	victim := netip.MustParsePrefix("203.0.113.10/32")
	at := func(bucket int, share float64) []LengthShare {
		out := withLengths()
		out[bucket].Share = share
		if share < 1 {
			out[0].Share += 1 - share
		}
		return out
	}
	web := Vector{Proto: 6, Share: 0.1, Records: 100, DstPorts: []Share{{443, 0.7}, {80, 0.3}}, SrcPorts: []Share{{51000, 0.01}},
		Lengths: withLengths(0.3, 0.1, 0.1, 0.1, 0.1, 0.3)}
	syn := Vector{Proto: 6, SYN: true, Share: 0.9, Records: 500, DstPorts: []Share{{80, 0.5}, {443, 0.45}, {22, 0.05}},
		SrcPorts: []Share{{1024, 0.001}}, Lengths: at(0, 1)}
	randomSyn := syn
	randomSyn.DstPorts = []Share{{1, 0.01}, {2, 0.01}, {3, 0.01}}
	tests := []struct {
		name string
		s    Shape
		want []string
	}{
		{"ntp reflection: the port and a length floor",
			Shape{Vectors: []Vector{{Proto: 17, Share: 0.92, Records: 300, SrcPorts: []Share{{123, 1}}, DstPorts: []Share{{40000, 0.01}},
				Lengths: at(3, 1)}, web}, Attack: 2.0 / 3},
			[]string{"dst 203.0.113.10/32 proto 17 sport 123 length 257-65535"}},
		{"dns amplification: the port and the non-first fragments, two rules",
			Shape{Vectors: []Vector{
				{Proto: 17, Fragment: true, Share: 0.48, Records: 300, Lengths: at(5, 1)},
				{Proto: 17, Share: 0.45, Records: 300, SrcPorts: []Share{{53, 1}}, Lengths: at(5, 1)}, web}, Attack: 2.0 / 3},
			[]string{"dst 203.0.113.10/32 proto 17 fragment 0x02", "dst 203.0.113.10/32 proto 17 sport 53 length 1025-65535"}},
		{"syn flood on two services: flags and ports",
			Shape{Vectors: []Vector{syn, web}, Attack: 0.66},
			[]string{"dst 203.0.113.10/32 proto 6 dport 80,443 tcp-flags set=0x02 unset=0x10"}},
		{"syn flood on random ports: flags alone",
			Shape{Vectors: []Vector{randomSyn, web}, Attack: 0.66},
			[]string{"dst 203.0.113.10/32 proto 6 tcp-flags set=0x02 unset=0x10"}},
		{"icmp flood beside the victim's web traffic: icmp alone, never mixed with tcp",
			Shape{Vectors: []Vector{{Proto: 1, Share: 0.85, Records: 200, Lengths: withLengths(0.5, 0.5)}, web}, Attack: 0.7},
			[]string{"dst 203.0.113.10/32 proto 1 length 0-128"}},
		{"udp flood of large packets on random ports: a narrow length range",
			Shape{Vectors: []Vector{{Proto: 17, Share: 0.9, Records: 200, SrcPorts: []Share{{1, 0.01}}, DstPorts: []Share{{2, 0.01}},
				Lengths: at(5, 0.95)}}, Attack: 0.66},
			[]string{"dst 203.0.113.10/32 proto 17 length 1025-1500"}},
		{"udp flood of every size: the protocol, no length range that matches everything",
			Shape{Vectors: []Vector{{Proto: 17, Share: 0.9, Records: 200, SrcPorts: []Share{{1, 0.01}}, DstPorts: []Share{{2, 0.01}},
				Lengths: withLengths(0.2, 0.15, 0.15, 0.15, 0.15, 0.2)}}, Attack: 0.66},
			[]string{"dst 203.0.113.10/32 proto 17"}},
		{"multi-vector: one rule per vector",
			Shape{Vectors: []Vector{
				{Proto: 17, Share: 0.4, Records: 300, SrcPorts: []Share{{123, 1}}, Lengths: at(3, 1)},
				{Proto: 6, SYN: true, Share: 0.3, Records: 300, DstPorts: []Share{{443, 1}}, Lengths: at(0, 1)},
				{Proto: 1, Share: 0.25, Records: 300, Lengths: at(0, 1)},
				{Proto: 47, Share: 0.05, Records: 30, Lengths: at(1, 1)}}},
			// The three heaviest reach the coverage: the 5 % GRE is left.
			[]string{"dst 203.0.113.10/32 proto 1 length 0-64", "dst 203.0.113.10/32 proto 17 sport 123 length 257-65535",
				"dst 203.0.113.10/32 proto 6 dport 443 tcp-flags set=0x02 unset=0x10"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Victim = victim
			var got []string
			for _, r := range BuildSet(tc.s, 0.95, 0) {
				got = append(got, r.String())
			}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("rules (-got +want):\n%s", diff)
			}
		})
	}
}

// TestBuildSetBounded: a set never has more rules than asked, and never
// a rule for a vector of under 2 %.
func TestBuildSetBounded(t *testing.T) {
	s := Shape{Victim: netip.MustParsePrefix("2001:db8::1/128")}
	for _, p := range []uint8{17, 6, 1, 47, 50, 132} {
		s.Vectors = append(s.Vectors, Vector{Proto: p, Share: 0.16, Records: 100, Lengths: withLengths()})
	}
	s.Vectors = append(s.Vectors, Vector{Proto: 41, Share: 0.01, Records: 10, Lengths: withLengths()})
	if got := BuildSet(s, 1, 3); len(got) != 3 {
		t.Errorf("%d rules, want 3", len(got))
	}
	if got := BuildSet(s, 1, 16); len(got) != 6 {
		t.Errorf("%d rules, want 6 (not the 1 %% vector)", len(got))
	}
}
