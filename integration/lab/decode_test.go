package lab

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// decodeFlowSpec parses rule in gobgp CLI syntax, encodes it and decodes it
// again, as a route received from a peer would be.
func decodeFlowSpec(t *testing.T, rf bgp.RouteFamily, rule string) *bgp.FlowSpecNLRI {
	t.Helper()
	comps, err := bgp.ParseFlowSpecComponents(rf, rule)
	if err != nil {
		t.Fatalf("parse %q: %v", rule, err)
	}
	var n bgp.AddrPrefixInterface
	if rf == bgp.RF_FS_IPv4_UC {
		n = bgp.NewFlowSpecIPv4Unicast(comps)
	} else {
		n = bgp.NewFlowSpecIPv6Unicast(comps)
	}
	b, err := n.Serialize()
	if err != nil {
		t.Fatalf("encode %q: %v", rule, err)
	}
	afi, safi := bgp.RouteFamilyToAfiSafi(rf)
	m, err := bgp.NewPrefixFromRouteFamily(afi, safi)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DecodeFromBytes(b); err != nil {
		t.Fatalf("decode %q: %v", rule, err)
	}
	switch m := m.(type) {
	case *bgp.FlowSpecIPv4Unicast:
		return &m.FlowSpecNLRI
	case *bgp.FlowSpecIPv6Unicast:
		return &m.FlowSpecNLRI
	}
	t.Fatalf("decode %q: got %T", rule, m)
	return nil
}

func TestFlowSpecText(t *testing.T) {
	tests := []struct {
		name string
		rf   bgp.RouteFamily
		rule string
		want string
	}{
		{
			name: "ntp reflection",
			rf:   bgp.RF_FS_IPv4_UC,
			rule: "destination 203.0.113.10/32 protocol udp source-port ==123",
			want: "destination:203.0.113.10/32 protocol:==udp source-port:==123",
		},
		{
			name: "sorted by type",
			rf:   bgp.RF_FS_IPv4_UC,
			rule: "dscp 46 packet-length >1000 fragment is-fragment tcp-flags S destination-port >=80&<=443 protocol tcp source 198.51.100.0/24 destination 203.0.113.20/32",
			want: "destination:203.0.113.20/32 source:198.51.100.0/24 protocol:==tcp destination-port:>=80&<=443 tcp-flags:S packet-length:>1000 dscp:==46 fragment:is-fragment",
		},
		{
			name: "or lists",
			rf:   bgp.RF_FS_IPv4_UC,
			rule: "destination 203.0.113.0/24 protocol ==tcp ==udp port ==53 ==123 packet-length >=100&<=200 ==1500",
			want: "destination:203.0.113.0/24 protocol:==tcp|==udp port:==53|==123 packet-length:>=100&<=200|==1500",
		},
		{
			name: "bitmask operators",
			rf:   bgp.RF_FS_IPv4_UC,
			rule: "tcp-flags =S &!A fragment dont-fragment+is-fragment",
			want: "tcp-flags:=S&!A fragment:dont-fragment+is-fragment",
		},
		{
			name: "not a fragment",
			rf:   bgp.RF_FS_IPv4_UC,
			rule: "fragment not-a-fragment",
			want: "fragment:0",
		},
		{
			name: "icmp and unnamed protocol",
			rf:   bgp.RF_FS_IPv4_UC,
			rule: "source 198.51.100.7/32 protocol 99 icmp-type ==8 icmp-code ==0",
			want: "source:198.51.100.7/32 protocol:==99 icmp-type:==8 icmp-code:==0",
		},
		{
			name: "ipv6",
			rf:   bgp.RF_FS_IPv6_UC,
			rule: "destination 2001:db8:ffff::20/128 source 2001:db8:bad::/48 protocol tcp destination-port ==80 label 12345",
			want: "destination:2001:db8:ffff::20/128 source:2001:db8:bad::/48 protocol:==tcp destination-port:==80 label:==12345",
		},
		{
			name: "ipv6 offset",
			rf:   bgp.RF_FS_IPv6_UC,
			rule: "destination 2001:db8::/64/8 protocol 58",
			want: "destination:2001:db8::/64/off8 protocol:==icmpv6",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FlowSpecText(decodeFlowSpec(t, tt.rf, tt.rule)); got != tt.want {
				t.Errorf("FlowSpecText(%q)\n got %q\nwant %q", tt.rule, got, tt.want)
			}
		})
	}
}

func TestExtCommunityText(t *testing.T) {
	tests := []struct {
		name string
		ec   bgp.ExtendedCommunityInterface
		raw  []byte // used when ec is nil
		want string
	}{
		{name: "discard", ec: bgp.NewTrafficRateExtended(0, 0), want: "traffic-rate:0"},
		{name: "rate", ec: bgp.NewTrafficRateExtended(0, 1000), want: "traffic-rate:1000"},
		{name: "fractional rate", ec: bgp.NewTrafficRateExtended(0, 12.5), want: "traffic-rate:12.5"},
		{name: "rate with as", ec: bgp.NewTrafficRateExtended(65000, 1000), want: "traffic-rate:1000/as65000"},
		{name: "rate packets", raw: []byte{0x80, 0x0c, 0, 0, 0x44, 0x7a, 0, 0}, want: "traffic-rate-packets:1000"},
		{name: "action none", ec: bgp.NewTrafficActionExtended(false, false), want: "traffic-action:none"},
		{name: "action terminal", ec: bgp.NewTrafficActionExtended(true, false), want: "traffic-action:terminal"},
		{name: "action both", ec: bgp.NewTrafficActionExtended(true, true), want: "traffic-action:sample,terminal"},
		{name: "redirect as2", ec: bgp.NewRedirectTwoOctetAsSpecificExtended(65000, 100), want: "redirect:65000:100"},
		{name: "redirect ipv4", ec: bgp.NewRedirectIPv4AddressSpecificExtended("192.0.2.1", 100), want: "redirect:192.0.2.1:100"},
		{name: "redirect as4", ec: bgp.NewRedirectFourOctetAsSpecificExtended(4200000000, 100), want: "redirect:4200000000:100"},
		{name: "marking", ec: bgp.NewTrafficRemarkExtended(10), want: "traffic-marking:10"},
		{name: "route target", ec: bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, 65000, 100, true), want: "rt:65000:100"},
		{name: "other", raw: []byte{0x03, 0x0c, 0, 0, 0, 0, 0, 8}, want: "0x030c000000000008"},
		{name: "short", raw: []byte{0x80, 0x06}, want: "0x8006"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.raw
			if tt.ec != nil {
				var err error
				if b, err = tt.ec.Serialize(); err != nil {
					t.Fatal(err)
				}
			}
			if got := ExtCommunityText(b); got != tt.want {
				t.Errorf("ExtCommunityText(%x) = %q, want %q", b, got, tt.want)
			}
		})
	}
}

// TestRouteFromPath decodes the same paths sent as binary and as structured
// API messages.
func TestRouteFromPath(t *testing.T) {
	received := time.Unix(1_700_000_000, 0).UTC()
	asPath := bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{
		bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{65001, 4200000000}),
	})
	fs := bgp.NewFlowSpecIPv4Unicast(decodeFlowSpec(t, bgp.RF_FS_IPv4_UC, "destination 203.0.113.10/32 protocol udp source-port ==123").Value)
	tests := []struct {
		name  string
		fam   Family
		nlri  bgp.AddrPrefixInterface
		attrs []bgp.PathAttributeInterface
		want  Route
	}{
		{
			name: "ipv4 unicast",
			fam:  FamilyIPv4Unicast,
			nlri: bgp.NewIPAddrPrefix(32, "203.0.113.10"),
			attrs: []bgp.PathAttributeInterface{
				bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_INCOMPLETE),
				asPath,
				bgp.NewPathAttributeNextHop("192.0.2.1"),
				bgp.NewPathAttributeCommunities([]uint32{65535<<16 | 666, 0xffffff01}),
				bgp.NewPathAttributeLargeCommunities([]*bgp.LargeCommunity{bgp.NewLargeCommunity(65000, 1, 2)}),
			},
			want: Route{
				Family:           FamilyIPv4Unicast,
				Prefix:           "203.0.113.10/32",
				NextHop:          netip.MustParseAddr("192.0.2.1"),
				ASPath:           []uint32{65001, 4200000000},
				Communities:      []string{"65535:666", "65535:65281"},
				LargeCommunities: []string{"65000:1:2"},
			},
		},
		{
			name: "ipv6 unicast",
			fam:  FamilyIPv6Unicast,
			nlri: bgp.NewIPv6AddrPrefix(128, "2001:db8:ffff::10"),
			attrs: []bgp.PathAttributeInterface{
				bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
				bgp.NewPathAttributeMpReachNLRI("2001:db8::1", []bgp.AddrPrefixInterface{bgp.NewIPv6AddrPrefix(128, "2001:db8:ffff::10")}),
			},
			want: Route{
				Family:  FamilyIPv6Unicast,
				Prefix:  "2001:db8:ffff::10/128",
				NextHop: netip.MustParseAddr("2001:db8::1"),
			},
		},
		{
			name: "ipv4 flowspec",
			fam:  FamilyIPv4FlowSpec,
			nlri: fs,
			attrs: []bgp.PathAttributeInterface{
				bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
				bgp.NewPathAttributeMpReachNLRI("0.0.0.0", []bgp.AddrPrefixInterface{fs}),
				bgp.NewPathAttributeExtendedCommunities([]bgp.ExtendedCommunityInterface{
					bgp.NewTrafficRateExtended(0, 0),
					bgp.NewTrafficActionExtended(true, false),
				}),
			},
			want: Route{
				Family:         FamilyIPv4FlowSpec,
				Prefix:         "destination:203.0.113.10/32 protocol:==udp source-port:==123",
				ExtCommunities: []string{"traffic-rate:0", "traffic-action:terminal"},
			},
		},
	}
	for _, tt := range tests {
		for _, binary := range []bool{false, true} {
			name := tt.name + "/structured"
			if binary {
				name = tt.name + "/binary"
			}
			t.Run(name, func(t *testing.T) {
				p, err := apiutil.NewPath(tt.nlri, false, tt.attrs, received)
				if err != nil {
					t.Fatal(err)
				}
				p.Best = true
				p.NeighborIp = "127.0.0.2"
				if binary {
					if p.NlriBinary, err = tt.nlri.Serialize(); err != nil {
						t.Fatal(err)
					}
					for _, a := range tt.attrs {
						b, err := a.Serialize()
						if err != nil {
							t.Fatal(err)
						}
						p.PattrsBinary = append(p.PattrsBinary, b)
					}
					p.Nlri, p.Pattrs = nil, nil
				}
				got, err := routeFromPath(tt.fam, p)
				if err != nil {
					t.Fatal(err)
				}
				want := tt.want
				want.From = netip.MustParseAddr("127.0.0.2")
				want.Best = true
				want.Received = received
				if diff := cmp.Diff(got, want, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("routeFromPath mismatch (-got +want):\n%s", diff)
				}
			})
		}
	}
}

func TestFamilyAPI(t *testing.T) {
	for _, f := range DefaultFamilies {
		af, err := f.apiFamily()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got := apiutil.ToRouteFamily(af).String(); got != string(f) {
			t.Errorf("%s maps to GoBGP family %s", f, got)
		}
	}
	if _, err := Family("l2vpn-evpn").apiFamily(); err == nil {
		t.Error("unsupported family accepted")
	}
}
