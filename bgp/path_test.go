package bgp

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	bgp "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

// TestRTBHPath decodes the GoBGP path back into BGP attributes.
func TestRTBHPath(t *testing.T) {
	g := policies.BGP{Communities: []policies.Community{0xfde8029a}, NextHopIPv4: netip.MustParseAddr("192.0.2.1")}
	tests := []struct {
		victim, nlri, nexthop string
		family                bgp.RouteFamily
	}{
		{"203.0.113.10", "203.0.113.10/32", "192.0.2.1", bgp.RF_IPv4_UC},
		{"2001:db8::10", "2001:db8::10/128", "::", bgp.RF_IPv6_UC},
	}
	for _, tc := range tests {
		a := flowspec.NewRTBH(flowspec.HostPrefix(netip.MustParseAddr(tc.victim)), g, nil)
		p, err := Path(&a)
		if err != nil {
			t.Fatalf("Path: %v", err)
		}
		nlri, err := apiutil.GetNativeNlri(p)
		if err != nil {
			t.Fatal(err)
		}
		if nlri.String() != tc.nlri || apiutil.ToRouteFamily(p.Family) != tc.family {
			t.Errorf("nlri %s family %v", nlri, p.Family)
		}
		attrs, err := apiutil.GetNativePathAttributes(p)
		if err != nil {
			t.Fatal(err)
		}
		var comms []uint32
		nh := ""
		for _, a := range attrs {
			switch a := a.(type) {
			case *bgp.PathAttributeCommunities:
				comms = a.Value
			case *bgp.PathAttributeNextHop:
				nh = a.Value.String()
			case *bgp.PathAttributeMpReachNLRI:
				nh = a.Nexthop.String()
			}
		}
		if diff := cmp.Diff(comms, []uint32{0xffff029a, 0xffffff01, 0xfde8029a}); diff != "" {
			t.Errorf("communities (-got +want):\n%s", diff)
		}
		if nh != tc.nexthop {
			t.Errorf("next hop %q, want %q", nh, tc.nexthop)
		}
	}
}

// TestFlowSpecPath checks the encoded NLRI and action of FlowSpec paths
// as GoBGP decodes them.
func TestFlowSpecPath(t *testing.T) {
	tests := []struct {
		name   string
		rule   flowspec.Rule
		action policies.FlowSpecAction
		nlri   string
		ext    string
	}{
		{"ntp discard", flowspec.Rule{Dst: netip.MustParsePrefix("203.0.113.10/32"), Protocols: []uint8{17}, SrcPorts: []flowspec.Range{flowspec.Single(123)}},
			policies.FlowSpecAction{Action: "discard"},
			"[destination: 203.0.113.10/32][protocol: ==udp][source-port: ==123]", "discard"},
		{"syn rate limit", flowspec.Rule{Dst: netip.MustParsePrefix("203.0.113.10/32"), Protocols: []uint8{6}, DstPorts: []flowspec.Range{flowspec.Single(80), flowspec.Single(443)},
			TCPFlagsSet: flowspec.FlagSYN, TCPFlagsUnset: flowspec.FlagACK},
			policies.FlowSpecAction{Action: "rate-limit", RateBPS: 8_000_000},
			"[destination: 203.0.113.10/32][protocol: ==tcp][destination-port: ==80 ==443][tcp-flags: =S&!A]", "rate: 1000000.000000"},
		{"fragments redirect", flowspec.Rule{Dst: netip.MustParsePrefix("203.0.113.0/28"), Fragment: flowspec.FragIsFragment, PacketLengths: []flowspec.Range{{Lo: 1000, Hi: 1500}}},
			policies.FlowSpecAction{Action: "redirect", Redirect: "65000:100"},
			"[destination: 203.0.113.0/28][packet-length: >=1000&<=1500][fragment: is-fragment]", "redirect: 65000:100"},
		{"ipv6 mark", flowspec.Rule{Dst: netip.MustParsePrefix("2001:db8::10/128"), Protocols: []uint8{17}, SrcPorts: []flowspec.Range{flowspec.Single(53)}},
			policies.FlowSpecAction{Action: "mark", DSCP: 8},
			"[destination: 2001:db8::10/128/0][protocol: ==udp][source-port: ==53]", "remark: 8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := flowspec.NewFlowSpec(tc.rule, &tc.action)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Path(&a)
			if err != nil {
				t.Fatal(err)
			}
			nlri, err := apiutil.GetNativeNlri(p)
			if err != nil {
				t.Fatal(err)
			}
			if nlri.String() != tc.nlri {
				t.Errorf("nlri\n%s\nwant\n%s", nlri, tc.nlri)
			}
			attrs, err := apiutil.GetNativePathAttributes(p)
			if err != nil {
				t.Fatal(err)
			}
			ext := ""
			for _, at := range attrs {
				if e, ok := at.(*bgp.PathAttributeExtendedCommunities); ok {
					ext = e.Value[0].String()
				}
			}
			if ext != tc.ext {
				t.Errorf("action %q, want %q", ext, tc.ext)
			}
		})
	}
}

// TestNLRISizeLimit: rules near GoBGP's 240-byte limit are refused before
// they reach it, and every accepted rule round-trips through GoBGP.
func TestNLRISizeLimit(t *testing.T) {
	for n := 1; n <= flowspec.MaxListValues; n++ {
		r := flowspec.Rule{Dst: netip.MustParsePrefix("2001:db8::10/128"), Src: netip.MustParsePrefix("2001:db8:bad::/48"), Protocols: []uint8{6, 17}}
		for i := range n {
			r.SrcPorts = append(r.SrcPorts, flowspec.Range{Lo: uint32(1000 + 10*i), Hi: uint32(1005 + 10*i)})
			r.DstPorts = append(r.DstPorts, flowspec.Range{Lo: uint32(2000 + 10*i), Hi: uint32(2005 + 10*i)})
			r.PacketLengths = append(r.PacketLengths, flowspec.Range{Lo: uint32(100 + 10*i), Hi: uint32(105 + 10*i)})
		}
		nlri, err := NLRI(&r)
		if err != nil {
			if !errors.Is(err, flowspec.ErrRuleTooLarge) {
				t.Fatalf("%d values: %v", n, err)
			}
			continue
		}
		b, err := nlri.Serialize()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != r.EncodedLen() {
			t.Errorf("%d values: %d bytes encoded, EncodedLen %d", n, len(b), r.EncodedLen())
		}
		back := bgp.NewFlowSpecIPv6Unicast(nil)
		if err := back.DecodeFromBytes(b); err != nil {
			t.Fatalf("%d values, %d bytes: decode: %v", n, len(b), err)
		}
		if back.String() != nlri.String() {
			t.Fatalf("%d values, %d bytes: round trip\n%s\n%s", n, len(b), back, nlri)
		}
	}
}

// FuzzNLRI: every rule the parser accepts and Validate passes encodes, and
// its encoding is as long as flowspec.Rule.EncodedLen says (NLRI checks
// it), so the size limit that Check enforces is the real one.
func FuzzNLRI(f *testing.F) {
	for _, r := range []flowspec.Rule{
		{Dst: netip.MustParsePrefix("203.0.113.10/32"), Protocols: []uint8{17}, SrcPorts: []flowspec.Range{flowspec.Single(123)},
			PacketLengths: []flowspec.Range{{Lo: 257, Hi: 65535}}},
		{Dst: netip.MustParsePrefix("2001:db8::10/128"), Src: netip.MustParsePrefix("2001:db8:bad::/48"), Protocols: []uint8{6, 17},
			DstPorts:    []flowspec.Range{flowspec.Single(80), flowspec.Single(443), {Lo: 1000, Hi: 2000}},
			TCPFlagsSet: flowspec.FlagSYN, TCPFlagsUnset: flowspec.FlagACK},
		{Dst: netip.MustParsePrefix("203.0.113.0/24"), Protocols: []uint8{1}, ICMPTypes: []uint8{8}, ICMPCodes: []uint8{0},
			Fragment: flowspec.FragIsFragment, DSCP: []uint8{46}},
		{Dst: netip.MustParsePrefix("2001:db8::/64"), Protocols: []uint8{58}, FlowLabels: []uint32{1, 70000}},
	} {
		f.Add(r.String())
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := flowspec.ParseRule(s)
		if err != nil || r.Validate() != nil {
			return
		}
		if _, err := NLRI(&r); err != nil {
			t.Fatalf("%s: Validate passed, NLRI failed: %v", r.String(), err)
		}
	})
}
