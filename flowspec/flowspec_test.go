package flowspec

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/floodgate-ddos/floodgate/policies"
)

var cmpNet = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func testPolicy() *policies.Policy {
	return &policies.Policy{
		BGP: policies.BGP{Communities: []policies.Community{0xfde8029a}, NextHopIPv4: netip.MustParseAddr("192.0.2.1")},
		Hostgroups: []*policies.Hostgroup{{
			Name:      "customers",
			Prefixes:  []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")},
			Whitelist: []netip.Prefix{netip.MustParsePrefix("203.0.113.53/32")},
			Responses: []*policies.Response{{Name: "wide", RTBH: &policies.RTBHAction{PrefixLength4: 28, PrefixLength6: 128}}},
		}},
	}
}

func TestNewRTBH(t *testing.T) {
	pol := testPolicy()
	a := NewRTBH(HostPrefix(netip.MustParseAddr("::ffff:203.0.113.10")), pol.BGP, []policies.Community{0xfde80001, policies.NoExport})
	want := Announcement{
		Kind:        RTBH,
		Prefix:      netip.MustParsePrefix("203.0.113.10/32"),
		Communities: []policies.Community{policies.Blackhole, policies.NoExport, 0xfde8029a, 0xfde80001},
		NextHop:     netip.MustParseAddr("192.0.2.1"),
	}
	if diff := cmp.Diff(a, want, cmpNet); diff != "" {
		t.Errorf("NewRTBH (-got +want):\n%s", diff)
	}
	if a.Key() != "rtbh:203.0.113.10/32" || a.Family() != "ipv4-unicast" {
		t.Errorf("key %q family %q", a.Key(), a.Family())
	}
	if a6 := NewRTBH(HostPrefix(netip.MustParseAddr("2001:db8::10")), pol.BGP, nil); a6.Prefix.Bits() != 128 || a6.NextHop.IsValid() {
		t.Errorf("IPv6 RTBH %s", a6.String())
	}
}

func fs(r Rule) *Announcement {
	a, err := NewFlowSpec(r, &policies.FlowSpecAction{Action: "discard"})
	if err != nil {
		panic(err)
	}
	return &a
}

func TestCheck(t *testing.T) {
	pol := testPolicy()
	rtbh := func(p string) *Announcement {
		a := NewRTBH(netip.MustParsePrefix(p), pol.BGP, nil)
		return &a
	}
	mod := func(a *Announcement, f func(*Announcement)) *Announcement { f(a); return a }
	var bigPorts []Range
	for i := range 17 {
		bigPorts = append(bigPorts, Single(uint32(1000+i)))
	}
	tests := []struct {
		name   string
		a      *Announcement
		reason string // "" means accepted
	}{
		{"host route inside", rtbh("203.0.113.10/32"), ""},
		{"ipv6 host route inside", rtbh("2001:db8::10/128"), ""},
		{"allowed shorter rtbh", rtbh("203.0.113.16/28"), ""},
		{"rtbh /64 not allowed", rtbh("2001:db8::/64"), ReasonTooBroad},
		{"outside monitored", rtbh("198.51.100.1/32"), ReasonOutside},
		{"default route", rtbh("0.0.0.0/0"), ReasonOutside},
		{"whitelisted host", rtbh("203.0.113.53/32"), ReasonWhitelisted},
		{"no blackhole community", mod(rtbh("203.0.113.10/32"), func(a *Announcement) { a.Communities = a.Communities[1:] }), ReasonMalformed},
		{"next hop family", mod(rtbh("203.0.113.10/32"), func(a *Announcement) { a.NextHop = netip.MustParseAddr("2001:db8::1") }), ReasonMalformed},
		{"flowspec host", fs(Rule{Dst: netip.MustParsePrefix("203.0.113.10/32"), Protocols: []uint8{17}}), ""},
		{"flowspec without destination", fs(Rule{Protocols: []uint8{17}}), ReasonNoDestination},
		{"flowspec without protocol", fs(Rule{Dst: netip.MustParsePrefix("203.0.113.10/32")}), ReasonTooBroad},
		{"flowspec ports without protocol", fs(Rule{Dst: netip.MustParsePrefix("203.0.113.10/32"), DstPorts: []Range{Single(80)}}), ReasonTooBroad},
		{"flowspec 0/0", fs(Rule{Dst: netip.MustParsePrefix("0.0.0.0/0")}), ReasonOutside},
		{"flowspec broader than hostgroup", fs(Rule{Dst: netip.MustParsePrefix("203.0.112.0/23")}), ReasonOutside},
		{"flowspec over whitelist", fs(Rule{Dst: netip.MustParsePrefix("203.0.113.0/24"), Protocols: []uint8{17}}), ReasonWhitelisted},
		{"flowspec too many ports", fs(Rule{Dst: netip.MustParsePrefix("203.0.113.10/32"), SrcPorts: bigPorts}), ReasonTooLarge},
		{"flowspec mixed families", fs(Rule{Dst: netip.MustParsePrefix("203.0.113.10/32"), Src: netip.MustParsePrefix("2001:db8::/64")}), ReasonMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hg, err := Check(tc.a, pol)
			if tc.reason == "" {
				if err != nil || hg.Name != "customers" {
					t.Errorf("Check = %v, %v; want customers", hg, err)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) || !errors.Is(err, ErrRefused) || re.Reason != tc.reason {
				t.Errorf("Check error = %v, want reason %s", err, tc.reason)
			}
		})
	}
}

// TestCheckWhitelistFlow checks that a rule or route that could drop a
// whitelisted flow is refused and one that cannot is accepted.
func TestCheckWhitelistFlow(t *testing.T) {
	pol := testPolicy()
	pol.Hostgroups[0].WhitelistFlows = []policies.WhitelistFlow{
		// The customer's resolver answers from 203.0.113.20: replies leave
		// with source port 53, queries arrive with destination port 53.
		{Dst: netip.MustParsePrefix("203.0.113.20/32"), Protocol: 17, DstPort: 53},
		// Monitoring from 192.0.2.99 to anything, over TCP 443.
		{Src: netip.MustParsePrefix("192.0.2.99/32"), Protocol: 6, SrcPort: 443, DstPort: 8443},
	}
	host := netip.MustParsePrefix("203.0.113.20/32")
	other := netip.MustParsePrefix("203.0.113.21/32")
	rtbh := func(p netip.Prefix) *Announcement {
		a := NewRTBH(p, pol.BGP, nil)
		return &a
	}
	tests := []struct {
		name    string
		a       *Announcement
		refused bool
	}{
		{"rtbh of the resolver", rtbh(host), true},
		// The monitoring flow names no destination: RTBH anywhere drops it.
		{"rtbh of another host", rtbh(other), true},
		{"udp from 123 to the resolver", fs(Rule{Dst: host, Protocols: []uint8{17}, SrcPorts: []Range{Single(123)}, DstPorts: []Range{Single(1024)}}), false},
		{"udp to the resolver, any port", fs(Rule{Dst: host, Protocols: []uint8{17}}), true},
		{"udp to ports 1-100 of the resolver", fs(Rule{Dst: host, Protocols: []uint8{17}, DstPorts: []Range{{1, 100}}}), true},
		{"tcp to the resolver, port 80", fs(Rule{Dst: host, Protocols: []uint8{6}, DstPorts: []Range{Single(80)}}), false},
		{"anything to the resolver", fs(Rule{Dst: host}), true},
		{"udp to another host", fs(Rule{Dst: other, Protocols: []uint8{17}}), false},
		{"tcp from the monitor", fs(Rule{Dst: other, Protocols: []uint8{6}, Src: netip.MustParsePrefix("192.0.2.0/24")}), true},
		{"tcp from elsewhere", fs(Rule{Dst: other, Protocols: []uint8{6}, Src: netip.MustParsePrefix("198.51.100.0/24")}), false},
		{"tcp port 80 either side", fs(Rule{Dst: other, Protocols: []uint8{6}, Ports: []Range{Single(80)}}), false},
		{"tcp port 8443 either side", fs(Rule{Dst: other, Protocols: []uint8{6}, Ports: []Range{Single(8443)}}), true},
		{"tcp syn, any port", fs(Rule{Dst: other, Protocols: []uint8{6}, TCPFlagsSet: 0x02}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(tc.a, pol)
			var re *RefusedError
			refused := errors.As(err, &re) && re.Reason == ReasonWhitelisted
			if refused != tc.refused || (!tc.refused && err != nil) {
				t.Errorf("Check = %v, want refused %v", err, tc.refused)
			}
		})
	}
}
