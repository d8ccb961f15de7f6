package lab

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	fgbgp "github.com/floodgate-ddos/floodgate/bgp"
	"github.com/floodgate-ddos/floodgate/flowspec"
)

// TestRouteMatches: a rule as Floodgate builds it, encoded, decoded and
// printed as the lab reads it from a router, matches exactly the packets
// flowspec.Rule.Match says it does.
func TestRouteMatches(t *testing.T) {
	v4 := netip.MustParsePrefix("203.0.113.10/32")
	v6 := netip.MustParsePrefix("2001:db8::10/128")
	rules := []flowspec.Rule{
		{Dst: v4, Protocols: []uint8{17}, SrcPorts: []flowspec.Range{flowspec.Single(123)}, PacketLengths: []flowspec.Range{{Lo: 257, Hi: 65535}}},
		{Dst: v4, Protocols: []uint8{17}, Fragment: flowspec.FragIsFragment},
		{Dst: v4, Protocols: []uint8{6}, DstPorts: []flowspec.Range{flowspec.Single(80), flowspec.Single(443)}, TCPFlagsSet: flowspec.FlagSYN, TCPFlagsUnset: flowspec.FlagACK},
		{Dst: v4, Protocols: []uint8{1}, ICMPTypes: []uint8{8}},
		{Dst: v4, Protocols: []uint8{17}, PacketLengths: []flowspec.Range{{Lo: 1025, Hi: 1500}}},
		{Dst: v6, Protocols: []uint8{58}, ICMPTypes: []uint8{128}},
		{Dst: v6, Protocols: []uint8{17}, Fragment: flowspec.FragIsFragment},
		{Dst: v6, Protocols: []uint8{17}, SrcPorts: []flowspec.Range{flowspec.Single(53)}, PacketLengths: []flowspec.Range{{Lo: 1025, Hi: 65535}}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, r := range rules {
		nlri, err := fgbgp.NLRI(&r)
		if err != nil {
			t.Fatal(err)
		}
		var fs *bgp.FlowSpecNLRI
		switch n := nlri.(type) {
		case *bgp.FlowSpecIPv4Unicast:
			fs = &n.FlowSpecNLRI
		case *bgp.FlowSpecIPv6Unicast:
			fs = &n.FlowSpecNLRI
		default:
			t.Fatalf("%T", nlri)
		}
		rt := Route{Prefix: FlowSpecText(fs)}
		hits := 0
		for range 20000 {
			p := flowspec.Packet{Dst: r.Dst.Addr(), Proto: []uint8{1, 6, 17, 58, 47}[rng.IntN(5)],
				SrcPort: []uint16{53, 123, 40000}[rng.IntN(3)], DstPort: []uint16{80, 443, 22}[rng.IntN(3)],
				ICMPType: []uint8{0, 8, 128, 129}[rng.IntN(4)], TCPFlags: uint8(rng.IntN(64)), Length: uint16(20 + rng.IntN(1600)),
				Fragment: []uint8{0, flowspec.FragDontFragment, flowspec.FragFirst, flowspec.FragIsFragment}[rng.IntN(4)]}
			if rng.IntN(10) == 0 {
				p.Dst = netip.MustParseAddr("203.0.113.11")
				if r.Dst.Addr().Is6() {
					p.Dst = netip.MustParseAddr("2001:db8::11")
				}
			}
			got, err := RouteMatches(rt, &p)
			if err != nil {
				t.Fatalf("%s: %v", rt.Prefix, err)
			}
			if want := r.Match(&p); got != want {
				t.Fatalf("%s (%s): %+v: router view %v, builder %v", rt.Prefix, r.String(), p, got, want)
			}
			if got {
				hits++
			}
		}
		if hits == 0 {
			t.Errorf("%s matched nothing", rt.Prefix)
		}
	}
}
