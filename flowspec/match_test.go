package flowspec

import (
	"net/netip"
	"testing"
)

func TestMatch(t *testing.T) {
	victim := netip.MustParseAddr("203.0.113.10")
	ntp := Rule{Dst: netip.PrefixFrom(victim, 32), Protocols: []uint8{17}, SrcPorts: []Range{Single(123)}, PacketLengths: []Range{{257, 65535}}}
	frag := Rule{Dst: netip.PrefixFrom(victim, 32), Protocols: []uint8{17}, Fragment: FragIsFragment}
	syn := Rule{Dst: netip.MustParsePrefix("203.0.113.0/24"), Protocols: []uint8{6}, TCPFlagsSet: FlagSYN, TCPFlagsUnset: FlagACK}
	icmp := Rule{Dst: netip.PrefixFrom(victim, 32), Protocols: []uint8{1}, ICMPTypes: []uint8{8}}
	tests := []struct {
		name string
		r    *Rule
		p    Packet
		want bool
	}{
		{"ntp answer", &ntp, Packet{Dst: victim, Proto: 17, SrcPort: 123, Length: 468}, true},
		{"short ntp answer", &ntp, Packet{Dst: victim, Proto: 17, SrcPort: 123, Length: 76}, false},
		{"another host", &ntp, Packet{Dst: netip.MustParseAddr("203.0.113.11"), Proto: 17, SrcPort: 123, Length: 468}, false},
		{"later fragment has no port", &ntp, Packet{Dst: victim, Proto: 17, Length: 1500, Fragment: FragIsFragment}, false},
		{"later fragment", &frag, Packet{Dst: victim, Proto: 17, Length: 1500, Fragment: FragIsFragment}, true},
		{"first fragment is not IsF", &frag, Packet{Dst: victim, Proto: 17, SrcPort: 53, Length: 1500, Fragment: FragFirst}, false},
		{"syn", &syn, Packet{Dst: victim, Proto: 6, TCPFlags: FlagSYN}, true},
		{"syn-ack", &syn, Packet{Dst: victim, Proto: 6, TCPFlags: FlagSYN | FlagACK}, false},
		{"flags need tcp", &syn, Packet{Dst: victim, Proto: 17, TCPFlags: FlagSYN}, false},
		{"echo request", &icmp, Packet{Dst: victim, Proto: 1, ICMPType: 8}, true},
		{"echo reply", &icmp, Packet{Dst: victim, Proto: 1, ICMPType: 0}, false},
	}
	for _, tc := range tests {
		if got := tc.r.Match(&tc.p); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
}
