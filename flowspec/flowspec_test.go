package flowspec

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/floodgate-ddos/floodgate/policies"
)

func testPolicy() *policies.Policy {
	return &policies.Policy{
		BGP: policies.BGP{Communities: []policies.Community{0xfde8029a}, NextHopIPv4: netip.MustParseAddr("192.0.2.1")},
		Hostgroups: []*policies.Hostgroup{{
			Name:     "customers",
			Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")},
		}},
	}
}

func TestNewRTBH(t *testing.T) {
	pol := testPolicy()
	a := NewRTBH(netip.MustParseAddr("::ffff:203.0.113.10"), pol.BGP)
	want := Announcement{
		Kind:        RTBH,
		Prefix:      netip.MustParsePrefix("203.0.113.10/32"),
		Communities: []policies.Community{policies.Blackhole, policies.NoExport, 0xfde8029a},
		NextHop:     netip.MustParseAddr("192.0.2.1"),
	}
	if diff := cmp.Diff(a, want, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("NewRTBH (-got +want):\n%s", diff)
	}
	if a.Key() != "rtbh:203.0.113.10/32" {
		t.Errorf("key %q", a.Key())
	}
	if a6 := NewRTBH(netip.MustParseAddr("2001:db8::10"), pol.BGP); a6.Prefix.Bits() != 128 || a6.NextHop.IsValid() {
		t.Errorf("IPv6 RTBH %s", a6)
	}
}

func TestCheck(t *testing.T) {
	pol := testPolicy()
	ok := NewRTBH(netip.MustParseAddr("203.0.113.10"), pol.BGP)
	mod := func(f func(*Announcement)) Announcement {
		a := ok
		a.Communities = append([]policies.Community(nil), ok.Communities...)
		f(&a)
		return a
	}
	tests := []struct {
		name string
		a    Announcement
		ok   bool
	}{
		{"host route inside", ok, true},
		{"ipv6 host route inside", NewRTBH(netip.MustParseAddr("2001:db8::10"), pol.BGP), true},
		{"outside monitored", NewRTBH(netip.MustParseAddr("198.51.100.1"), pol.BGP), false},
		{"default route", mod(func(a *Announcement) { a.Prefix = netip.MustParsePrefix("0.0.0.0/0") }), false},
		{"whole hostgroup", mod(func(a *Announcement) { a.Prefix = netip.MustParsePrefix("203.0.113.0/24") }), false},
		{"no prefix", mod(func(a *Announcement) { a.Prefix = netip.Prefix{} }), false},
		{"host bits", mod(func(a *Announcement) { a.Prefix = netip.PrefixFrom(netip.MustParseAddr("203.0.113.10"), 24) }), false},
		{"no blackhole community", mod(func(a *Announcement) { a.Communities = a.Communities[1:] }), false},
		{"next hop family", mod(func(a *Announcement) { a.NextHop = netip.MustParseAddr("2001:db8::1") }), false},
		{"unknown kind", mod(func(a *Announcement) { a.Kind = 0 }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hg, err := Check(tc.a, pol)
			if tc.ok {
				if err != nil || hg.Name != "customers" {
					t.Errorf("Check = %v, %v; want customers", hg, err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("Check error = %v, want ErrRefused", err)
			}
		})
	}
}

// TestPath decodes the GoBGP path back into BGP attributes.
func TestPath(t *testing.T) {
	pol := testPolicy()
	tests := []struct {
		victim, nlri, nexthop string
		family                bgp.RouteFamily
	}{
		{"203.0.113.10", "203.0.113.10/32", "192.0.2.1", bgp.RF_IPv4_UC},
		{"2001:db8::10", "2001:db8::10/128", "::", bgp.RF_IPv6_UC},
	}
	for _, tc := range tests {
		p, err := NewRTBH(netip.MustParseAddr(tc.victim), pol.BGP).Path()
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
