package lab

import (
	"net/netip"
)

// The lab topology of the tests: a controller namespace peering with one
// router of each kind, and a victim behind the FRR router.
const (
	ctlASN = 65000
)

var (
	victim4   = netip.MustParseAddr("203.0.113.10")
	victim6   = netip.MustParseAddr("2001:db8:ffff::10")
	victimNet = netip.MustParsePrefix("203.0.113.0/24")
)

// testTopology returns the topology: links ctl-frr (10.0.1.0/30),
// ctl-bird, ctl-gobgp, ctl-exa, frr-vic (10.0.5.0/30). Traffic from ctl to
// 203.0.113.0/24 goes through frr to vic.
func testTopology() Topology {
	return Topology{
		Name: "floodgate-lab",
		Nodes: []Node{
			{Name: "ctl", Kind: KindCtl, ASN: ctlASN, Routes: []StaticRoute{
				{Prefix: victimNet, Via: netip.MustParseAddr("10.0.1.2")},
			}},
			{Name: "frr", Kind: KindFRR, ASN: 65001, Forwarding: true, Routes: []StaticRoute{
				{Prefix: victimNet, Via: netip.MustParseAddr("10.0.5.2")},
			}},
			{Name: "bird", Kind: KindBIRD, ASN: 65002},
			{Name: "gobgp", Kind: KindGoBGP, ASN: 65003},
			{Name: "exa", Kind: KindExaBGP, ASN: 65004},
			{Name: "vic", Kind: KindHost,
				Loopback: []netip.Prefix{netip.PrefixFrom(victim4, 32), netip.PrefixFrom(victim6, 128)},
				Routes:   []StaticRoute{{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.5.1")}},
			},
		},
		Links: []Link{
			{A: "ctl", B: "frr"},
			{A: "ctl", B: "bird"},
			{A: "ctl", B: "gobgp"},
			{A: "ctl", B: "exa"},
			{A: "frr", B: "vic"},
		},
	}
}

// announcement is a route the tests announce with the gobgp CLI and the
// Route every router should report for it, as sent.
type announcement struct {
	// cli are the arguments of `gobgp global rib -a <family> add|del`.
	family string
	cli    []string
	want   Route
}

// rtbhAnnouncements are the RTBH routes, IPv4 and IPv6 (IPv6 over the IPv6
// sessions).
var rtbhAnnouncements = []announcement{
	{
		family: "ipv4",
		cli:    []string{"203.0.113.10/32", "community", "65535:666,no-export,65000:666", "large-community", "65000:1:2"},
		want: Route{
			Family: FamilyIPv4Unicast, Prefix: "203.0.113.10/32", ASPath: []uint32{ctlASN},
			Communities: []string{"65535:666", "65535:65281", "65000:666"}, LargeCommunities: []string{"65000:1:2"},
		},
	},
	{
		family: "ipv6",
		cli:    []string{"2001:db8:ffff::10/128", "community", "65535:666,no-export"},
		want: Route{
			Family: FamilyIPv6Unicast, Prefix: "2001:db8:ffff::10/128", ASPath: []uint32{ctlASN},
			Communities: []string{"65535:666", "65535:65281"},
		},
	},
}

// flowAnnouncements are FlowSpec rules that every component and action
// appears in at least once. None uses the numeric operator != (FRR 8.4
// resets the session) or a non-zero IPv6 offset (BIRD does).
var flowAnnouncements = []announcement{
	{
		family: "ipv4-flowspec",
		cli:    []string{"match", "destination", "203.0.113.10/32", "protocol", "udp", "source-port", "==123", "then", "discard"},
		want: Route{Family: FamilyIPv4FlowSpec, ASPath: []uint32{ctlASN},
			Prefix:         "destination:203.0.113.10/32 protocol:==udp source-port:==123",
			ExtCommunities: []string{"traffic-rate:0"}},
	},
	{
		family: "ipv4-flowspec",
		cli:    []string{"match", "destination", "203.0.113.10/32", "protocol", "udp", "destination-port", "==9999", "packet-length", ">1000", "then", "discard"},
		want: Route{Family: FamilyIPv4FlowSpec, ASPath: []uint32{ctlASN},
			Prefix:         "destination:203.0.113.10/32 protocol:==udp destination-port:==9999 packet-length:>1000",
			ExtCommunities: []string{"traffic-rate:0"}},
	},
	{
		family: "ipv4-flowspec",
		cli: []string{"match", "destination", "203.0.113.20/32", "source", "198.51.100.0/24", "protocol", "tcp",
			"destination-port", ">=80&<=443", "tcp-flags", "S", "fragment", "is-fragment", "packet-length", ">1000",
			"dscp", "46", "icmp-type", "8", "then", "rate-limit", "1000"},
		want: Route{Family: FamilyIPv4FlowSpec, ASPath: []uint32{ctlASN},
			Prefix:         "destination:203.0.113.20/32 source:198.51.100.0/24 protocol:==tcp destination-port:>=80&<=443 icmp-type:==8 tcp-flags:S packet-length:>1000 dscp:==46 fragment:is-fragment",
			ExtCommunities: []string{"traffic-rate:1000"}},
	},
	{
		family: "ipv4-flowspec",
		cli:    []string{"match", "destination", "203.0.113.30/32", "port", "==53", "==123", "then", "redirect", "65000:100", "mark", "10", "action", "sample-terminal"},
		want: Route{Family: FamilyIPv4FlowSpec, ASPath: []uint32{ctlASN},
			Prefix:         "destination:203.0.113.30/32 port:==53|==123",
			ExtCommunities: []string{"redirect:65000:100", "traffic-marking:10", "traffic-action:sample,terminal"}},
	},
	{
		family: "ipv4-flowspec",
		cli:    []string{"match", "source", "198.51.100.7/32", "protocol", "icmp", "icmp-type", "==8", "icmp-code", "==0", "fragment", "dont-fragment", "then", "accept"},
		want: Route{Family: FamilyIPv4FlowSpec, ASPath: []uint32{ctlASN},
			Prefix: "source:198.51.100.7/32 protocol:==icmp icmp-type:==8 icmp-code:==0 fragment:dont-fragment"},
	},
	{
		family: "ipv4-flowspec",
		cli:    []string{"match", "destination", "203.0.113.40/32", "protocol", "==tcp", "==udp", "packet-length", ">=100&<=200", "==1500", "<7", "then", "action", "sample"},
		want: Route{Family: FamilyIPv4FlowSpec, ASPath: []uint32{ctlASN},
			Prefix:         "destination:203.0.113.40/32 protocol:==tcp|==udp packet-length:>=100&<=200|==1500|<7",
			ExtCommunities: []string{"traffic-action:sample"}},
	},
	{
		family: "ipv4-flowspec",
		cli:    []string{"match", "destination", "203.0.113.41/32", "tcp-flags", "=S", "&!A", "=SA", "!=F", "fragment", "dont-fragment+is-fragment", "then", "action", "terminal"},
		want: Route{Family: FamilyIPv4FlowSpec, ASPath: []uint32{ctlASN},
			Prefix:         "destination:203.0.113.41/32 tcp-flags:=S&!A|=SA|!=F fragment:dont-fragment+is-fragment",
			ExtCommunities: []string{"traffic-action:terminal"}},
	},
	{
		family: "ipv4-flowspec",
		cli:    []string{"match", "destination", "203.0.113.42/32", "fragment", "=is-fragment", "&!first-fragment", "packet-length", "<100", "<=50", "then", "redirect", "192.0.2.1:7"},
		want: Route{Family: FamilyIPv4FlowSpec, ASPath: []uint32{ctlASN},
			Prefix:         "destination:203.0.113.42/32 packet-length:<100|<=50 fragment:=is-fragment&!first-fragment",
			ExtCommunities: []string{"redirect:192.0.2.1:7"}},
	},
	{
		family: "ipv4-flowspec",
		cli:    []string{"match", "destination", "203.0.113.43/32", "dscp", ">=8&<=15", "then", "rate-limit", "12.5"},
		want: Route{Family: FamilyIPv4FlowSpec, ASPath: []uint32{ctlASN},
			Prefix:         "destination:203.0.113.43/32 dscp:>=8&<=15",
			ExtCommunities: []string{"traffic-rate:12.5"}},
	},
	{
		family: "ipv6-flowspec",
		cli:    []string{"match", "destination", "2001:db8:ffff::10/128", "protocol", "udp", "source-port", "==123", "then", "discard"},
		want: Route{Family: FamilyIPv6FlowSpec, ASPath: []uint32{ctlASN},
			Prefix:         "destination:2001:db8:ffff::10/128 protocol:==udp source-port:==123",
			ExtCommunities: []string{"traffic-rate:0"}},
	},
	{
		family: "ipv6-flowspec",
		cli: []string{"match", "destination", "2001:db8:ffff::20/128", "source", "2001:db8:bad::/48", "protocol", "tcp",
			"destination-port", "==80", "tcp-flags", "S", "packet-length", ">=1000", "dscp", "10", "label", "12345",
			"fragment", "is-fragment", "then", "rate-limit", "1000", "mark", "10"},
		want: Route{Family: FamilyIPv6FlowSpec, ASPath: []uint32{ctlASN},
			Prefix:         "destination:2001:db8:ffff::20/128 source:2001:db8:bad::/48 protocol:==tcp destination-port:==80 tcp-flags:S packet-length:>=1000 dscp:==10 fragment:is-fragment label:==12345",
			ExtCommunities: []string{"traffic-rate:1000", "traffic-marking:10"}},
	},
}

// wants returns the expected routes of announcements.
func wants(as ...[]announcement) []Route {
	var out []Route
	for _, a := range as {
		for _, x := range a {
			out = append(out, x.want)
		}
	}
	return out
}
