package header

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/floodgate-ddos/floodgate/sources"
)

// build serialises layers with gopacket, so that the parser is checked
// against an independent encoder.
func build(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: false}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return buf.Bytes()
}

var (
	mac1 = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	mac2 = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	src4 = net.IP{198, 51, 100, 7}
	dst4 = net.IP{203, 0, 113, 10}
	src6 = net.ParseIP("2001:db8:bad::7")
	dst6 = net.ParseIP("2001:db8:ffff::10")
)

func eth(t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: t}
}

func ip4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src4, DstIP: dst4}
}

func ip6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, NextHeader: next, HopLimit: 64, SrcIP: src6, DstIP: dst6}
}

func udp(sp, dp uint16) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}
}

// fragment6 is an IPv6 fragment extension header (gopacket cannot
// serialise one).
func fragment6(next layers.IPProtocol, offset uint16, more bool) gopacket.Payload {
	om := offset << 3
	if more {
		om |= 1
	}
	return gopacket.Payload{byte(next), 0, byte(om >> 8), byte(om), 0, 0, 0, 1}
}

func payload(n int) gopacket.Payload { return make(gopacket.Payload, n) }

func TestParse(t *testing.T) {
	a4s, a4d := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.10")
	a6s, a6d := netip.MustParseAddr("2001:db8:bad::7"), netip.MustParseAddr("2001:db8:ffff::10")
	fragV4 := ip4(layers.IPProtocolUDP)
	fragV4.Flags = layers.IPv4MoreFragments
	laterFragV4 := ip4(layers.IPProtocolUDP)
	laterFragV4.FragOffset = 185
	optsV4 := ip4(layers.IPProtocolTCP)
	optsV4.IHL = 6
	optsV4.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}

	tests := []struct {
		name string
		link int
		pkt  []byte
		want Packet
	}{
		{
			name: "ethernet ipv4 udp",
			link: LinkEthernet,
			pkt:  build(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(123, 4444), payload(440)),
			want: Packet{Src: a4s, Dst: a4d, SrcPort: 123, DstPort: 4444, Proto: 17, IPLength: 468},
		},
		{
			name: "vlan ipv4 tcp syn",
			link: LinkEthernet,
			pkt: build(t, eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
				ip4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, DataOffset: 5}),
			want: Packet{Src: a4s, Dst: a4d, SrcPort: 40000, DstPort: 80, Proto: 6, TCPFlags: 0x02, IPLength: 40},
		},
		{
			name: "qinq ipv4 tcp ack",
			link: LinkEthernet,
			pkt: build(t, eth(layers.EthernetTypeQinQ), &layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeDot1Q},
				&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
				ip4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true, DataOffset: 5}),
			want: Packet{Src: a4s, Dst: a4d, SrcPort: 1, DstPort: 2, Proto: 6, TCPFlags: 0x10, IPLength: 40},
		},
		{
			name: "mpls two labels ipv4 udp",
			link: LinkEthernet,
			pkt: build(t, eth(layers.EthernetTypeMPLSUnicast), &layers.MPLS{Label: 100, TTL: 64},
				&layers.MPLS{Label: 200, StackBottom: true, TTL: 64}, ip4(layers.IPProtocolUDP), udp(53, 5353)),
			want: Packet{Src: a4s, Dst: a4d, SrcPort: 53, DstPort: 5353, Proto: 17, IPLength: 28},
		},
		{
			name: "ipv4 options",
			link: LinkEthernet,
			pkt:  build(t, eth(layers.EthernetTypeIPv4), optsV4, &layers.TCP{SrcPort: 5, DstPort: 6, RST: true, DataOffset: 5}),
			want: Packet{Src: a4s, Dst: a4d, SrcPort: 5, DstPort: 6, Proto: 6, TCPFlags: 0x04, IPLength: 44},
		},
		{
			name: "ipv4 first fragment",
			link: LinkEthernet,
			pkt:  build(t, eth(layers.EthernetTypeIPv4), fragV4, udp(11211, 80), payload(100)),
			want: Packet{Src: a4s, Dst: a4d, SrcPort: 11211, DstPort: 80, Proto: 17, Fragment: true, FirstFragment: true, IPLength: 128},
		},
		{
			name: "ipv4 later fragment has no ports",
			link: LinkEthernet,
			pkt:  build(t, eth(layers.EthernetTypeIPv4), laterFragV4, payload(100)),
			want: Packet{Src: a4s, Dst: a4d, Proto: 17, Fragment: true, IPLength: 120},
		},
		{
			name: "raw ipv4 icmp",
			link: LinkIPv4,
			pkt:  build(t, ip4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}),
			want: Packet{Src: a4s, Dst: a4d, Proto: 1, ICMPType: 8, IPLength: 28},
		},
		{
			name: "ethernet ipv6 udp",
			link: LinkEthernet,
			pkt:  build(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolUDP), udp(123, 999), payload(8)),
			want: Packet{Src: a6s, Dst: a6d, SrcPort: 123, DstPort: 999, Proto: 17, IPLength: 56},
		},
		{
			name: "ipv6 hop-by-hop then tcp",
			link: LinkIPv6,
			pkt: build(t, ip6(layers.IPProtocolIPv6HopByHop),
				gopacket.Payload{6, 0, 1, 4, 0, 0, 0, 0}, // next TCP, 8 bytes, PadN
				&layers.TCP{SrcPort: 7, DstPort: 443, SYN: true, ACK: true, DataOffset: 5}),
			want: Packet{Src: a6s, Dst: a6d, SrcPort: 7, DstPort: 443, Proto: 6, TCPFlags: 0x12, IPLength: 68},
		},
		{
			name: "ipv6 first fragment",
			link: LinkIPv6,
			pkt: build(t, ip6(layers.IPProtocolIPv6Fragment),
				fragment6(layers.IPProtocolUDP, 0, true), udp(53, 1000), payload(16)),
			want: Packet{Src: a6s, Dst: a6d, SrcPort: 53, DstPort: 1000, Proto: 17, Fragment: true, FirstFragment: true, IPLength: 72},
		},
		{
			name: "ipv6 later fragment",
			link: LinkIPv6,
			pkt: build(t, ip6(layers.IPProtocolIPv6Fragment),
				fragment6(layers.IPProtocolUDP, 100, false), payload(16)),
			want: Packet{Src: a6s, Dst: a6d, Proto: 17, Fragment: true, IPLength: 64},
		},
		{
			name: "icmpv6 echo",
			link: LinkIPv6,
			pkt:  build(t, ip6(layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}),
			want: Packet{Src: a6s, Dst: a6d, Proto: 58, ICMPType: 128, IPLength: 44},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Packet
			if err := Parse(tc.pkt, tc.link, &got); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(got, tc.want, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Parse (-got +want):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	full := build(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(1, 2))
	tests := []struct {
		name string
		link int
		pkt  []byte
		want error
	}{
		{"empty", LinkEthernet, nil, ErrTruncated},
		{"ethernet only", LinkEthernet, full[:14], ErrTruncated},
		{"ip cut", LinkEthernet, full[:20], ErrTruncated},
		{"arp", LinkEthernet, build(t, eth(layers.EthernetTypeARP), payload(28)), ErrUnsupported},
		{"wrong ip version", LinkIPv4, append([]byte{0x65}, make([]byte, 39)...), ErrBadIP},
		{"bad ihl", LinkIPv4, append([]byte{0x42}, make([]byte, 39)...), ErrBadIP},
		{"unknown link", 99, full, ErrUnsupported},
		{"vlan loop", LinkEthernet, append(append(make([]byte, 12), 0x81, 0x00), repeatTag(10)...), ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if err := Parse(tc.pkt, tc.link, &p); !errors.Is(err, tc.want) {
				t.Fatalf("Parse error = %v, want %v", err, tc.want)
			}
		})
	}
}

func repeatTag(n int) []byte {
	var b []byte
	for range n {
		b = append(b, 0, 10, 0x81, 0x00)
	}
	return b
}

func TestParseRawIP(t *testing.T) {
	for _, pkt := range [][]byte{
		build(t, ip4(layers.IPProtocolUDP), udp(1, 2)),
		build(t, ip6(layers.IPProtocolUDP), udp(1, 2)),
	} {
		var p Packet
		if err := Parse(pkt, LinkRawIP, &p); err != nil || p.SrcPort != 1 || p.DstPort != 2 {
			t.Errorf("Parse raw IP: %+v, %v", p, err)
		}
	}
	var p Packet
	if err := Parse([]byte{0x50, 0}, LinkRawIP, &p); !errors.Is(err, ErrUnsupported) {
		t.Errorf("version 5: %v, want ErrUnsupported", err)
	}
	if err := Parse(nil, LinkRawIP, &p); !errors.Is(err, ErrTruncated) {
		t.Errorf("empty: %v, want ErrTruncated", err)
	}
}

func TestFillRecord(t *testing.T) {
	a4s, a4d := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.10")
	frag := ip4(layers.IPProtocolUDP)
	frag.FragOffset = 100
	tests := []struct {
		name string
		pkt  []byte
		want sources.Record
	}{
		{"udp", build(t, ip4(layers.IPProtocolUDP), udp(123, 4444), payload(100)),
			sources.Record{Src: a4s, Dst: a4d, SrcPort: 123, DstPort: 4444, Proto: 17, Packets: 1, Bytes: 128, Length: 128}},
		{"tcp syn", build(t, ip4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 80, SYN: true, DataOffset: 5}),
			sources.Record{Src: a4s, Dst: a4d, SrcPort: 1, DstPort: 80, Proto: 6, TCPFlags: 2, Packets: 1, Bytes: 40, Length: 40}},
		{"icmp unreachable", build(t, ip4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 13)}),
			sources.Record{Src: a4s, Dst: a4d, DstPort: 3<<8 | 13, Proto: 1, Packets: 1, Bytes: 28, Length: 28}},
		{"later fragment", build(t, frag, payload(64)),
			sources.Record{Src: a4s, Dst: a4d, Proto: 17, Fragment: true, Packets: 1, Bytes: 84, Length: 84}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if err := Parse(tc.pkt, LinkIPv4, &p); err != nil {
				t.Fatal(err)
			}
			r := sources.Record{Sampling: 7, Start: 1, End: 2}
			p.FillRecord(&r)
			tc.want.Sampling, tc.want.Start, tc.want.End = 7, 1, 2
			if diff := cmp.Diff(r, tc.want, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("FillRecord (-got +want):\n%s", diff)
			}
		})
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	pkts := [][]byte{
		build(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(123, 4444), payload(64)),
		build(t, eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
			ip4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, DataOffset: 5}),
		build(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolUDP), udp(123, 999)),
	}
	var p Packet
	var r sources.Record
	for _, pkt := range pkts {
		if n := testing.AllocsPerRun(1000, func() { _ = Parse(pkt, LinkEthernet, &p); p.FillRecord(&r) }); n != 0 {
			t.Errorf("Parse and FillRecord allocate %.1f times per packet, want 0", n)
		}
	}
}

// FuzzParse checks that nothing panics, that accepted packets have sane
// addresses, and that addresses and ports agree with gopacket's decoder
// where both decode the same plain Ethernet packet.
func FuzzParse(f *testing.F) {
	f.Add(build(f, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(123, 4444), payload(8)), uint8(LinkEthernet))
	f.Add(build(f, eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
		ip4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 80, SYN: true, DataOffset: 5}), uint8(LinkEthernet))
	f.Add(build(f, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Fragment),
		fragment6(layers.IPProtocolUDP, 0, true), udp(53, 1)), uint8(LinkEthernet))
	f.Add(build(f, eth(layers.EthernetTypeMPLSUnicast), &layers.MPLS{Label: 1, StackBottom: true}, ip6(layers.IPProtocolTCP),
		&layers.TCP{SrcPort: 1, DstPort: 2, DataOffset: 5}), uint8(LinkEthernet))
	f.Add(build(f, ip6(layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}), uint8(3)) // LinkRawIP
	links := []int{LinkEthernet, LinkIPv4, LinkIPv6, LinkRawIP, 99}
	f.Fuzz(func(t *testing.T, b []byte, link uint8) {
		var p Packet
		lt := links[int(link)%len(links)]
		err := Parse(b, lt, &p)
		if err != nil {
			return
		}
		if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() {
			t.Fatalf("accepted packet with bad addresses: %+v", p)
		}
		var r sources.Record
		p.FillRecord(&r)
		if r.Packets != 1 || r.Bytes != uint64(p.IPLength) || (r.Proto == 1 || r.Proto == 58) && r.SrcPort != 0 {
			t.Fatalf("record %+v from %+v", r, p)
		}
		if lt != LinkEthernet {
			return
		}
		// Differential check against gopacket for plain Ethernet/IP/UDP|TCP.
		pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.NoCopy)
		nl := pkt.NetworkLayer()
		if nl == nil || pkt.ErrorLayer() != nil || p.Fragment {
			return
		}
		s, d := nl.NetworkFlow().Endpoints()
		if net.IP(s.Raw()).String() != p.Src.String() || net.IP(d.Raw()).String() != p.Dst.String() {
			t.Fatalf("addresses %s>%s, gopacket %s>%s", p.Src, p.Dst, s, d)
		}
		switch l := pkt.TransportLayer().(type) {
		case *layers.UDP:
			if uint16(l.SrcPort) != p.SrcPort || uint16(l.DstPort) != p.DstPort {
				t.Fatalf("udp ports %d>%d, gopacket %d>%d", p.SrcPort, p.DstPort, l.SrcPort, l.DstPort)
			}
		case *layers.TCP:
			if uint16(l.SrcPort) != p.SrcPort || uint16(l.DstPort) != p.DstPort {
				t.Fatalf("tcp ports %d>%d, gopacket %d>%d", p.SrcPort, p.DstPort, l.SrcPort, l.DstPort)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name string
		pkt  []byte
	}{
		{"eth-ipv4-udp", build(b, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(123, 4444), payload(64))},
		{"eth-vlan-ipv4-tcp", build(b, eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
			ip4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, DataOffset: 5})},
		{"eth-ipv6-udp", build(b, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolUDP), udp(123, 999))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var p Packet
			for b.Loop() {
				_ = Parse(c.pkt, LinkEthernet, &p)
			}
		})
	}
}
