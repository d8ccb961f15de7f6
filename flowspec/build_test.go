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
			if _, err := got.NLRI(); err != nil {
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
