package lab

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestNFTRules(t *testing.T) {
	tests := []struct {
		name string
		r    Route
		want []string
	}{
		{
			name: "ntp reflection",
			r:    Route{Family: FamilyIPv4FlowSpec, Prefix: "destination:203.0.113.10/32 protocol:==udp source-port:==123", ExtCommunities: []string{"traffic-rate:0"}},
			want: []string{"meta nfproto ipv4 ip daddr 203.0.113.10/32 meta l4proto 17 meta l4proto { 6, 17 } th sport 123 counter drop"},
		},
		{
			name: "port expands, ranges merge",
			r:    Route{Family: FamilyIPv4FlowSpec, Prefix: "port:==53|==54|>=80&<=443 packet-length:>1000", ExtCommunities: []string{"traffic-rate:1000"}},
			want: []string{
				"meta nfproto ipv4 meta l4proto { 6, 17 } th dport { 53-54, 80-443 } meta length 1001-65535 counter limit rate over 1000 bytes/second drop",
				"meta nfproto ipv4 meta l4proto { 6, 17 } th sport { 53-54, 80-443 } meta length 1001-65535 counter limit rate over 1000 bytes/second drop",
			},
		},
		{
			name: "not equal and true",
			r:    Route{Family: FamilyIPv6FlowSpec, Prefix: "source:2001:db8:bad::/48 dscp:!=0 label:true", ExtCommunities: []string{"traffic-marking:10"}},
			want: []string{"meta nfproto ipv6 ip6 saddr 2001:db8:bad::/48 ip6 dscp 1-63 counter ip6 dscp set 10"},
		},
		{
			name: "tcp flags alternatives",
			r:    Route{Family: FamilyIPv4FlowSpec, Prefix: "tcp-flags:=S&!A|!=F"},
			want: []string{
				"meta nfproto ipv4 meta l4proto 6 @th,104,8 & 0x02 == 0x02 meta l4proto 6 @th,104,8 & 0x10 == 0x00 counter",
				"meta nfproto ipv4 meta l4proto 6 @th,104,8 & 0x01 != 0x01 counter",
			},
		},
		{
			name: "fragments",
			r:    Route{Family: FamilyIPv4FlowSpec, Prefix: "icmp-type:==8 fragment:dont-fragment+is-fragment", ExtCommunities: []string{"traffic-rate:0"}},
			want: []string{
				"meta nfproto ipv4 meta l4proto 1 @th,0,8 8 ip frag-off & 0x4000 != 0 counter drop",
				"meta nfproto ipv4 meta l4proto 1 @th,0,8 8 ip frag-off & 0x3fff != 0 counter drop",
			},
		},
		{
			name: "not last fragment",
			r:    Route{Family: FamilyIPv4FlowSpec, Prefix: "fragment:!last-fragment", ExtCommunities: []string{"traffic-rate:0"}},
			want: []string{
				"meta nfproto ipv4 ip frag-off & 0x2000 != 0 counter drop",
				"meta nfproto ipv4 ip frag-off & 0x1fff == 0 counter drop",
			},
		},
		{
			name: "matches nothing",
			r:    Route{Family: FamilyIPv4FlowSpec, Prefix: "destination:203.0.113.10/32 packet-length:<10&>20", ExtCommunities: []string{"traffic-rate:0"}},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NFTRules(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("NFTRules(%s)\n got %q\nwant %q", tt.r, got, tt.want)
			}
		})
	}

	for _, bad := range []Route{
		{Family: FamilyIPv4Unicast, Prefix: "203.0.113.10/32"},
		{Family: FamilyIPv6FlowSpec, Prefix: "destination:2001:db8::/64/off8"},
		{Family: FamilyIPv6FlowSpec, Prefix: "fragment:dont-fragment"},
		{Family: FamilyIPv4FlowSpec, Prefix: "label:==5"},
		{Family: FamilyIPv4FlowSpec, Prefix: "tcp-flags:0x100"},
		{Family: FamilyIPv4FlowSpec, Prefix: "unknown:0e01"},
		{Family: FamilyIPv4FlowSpec, Prefix: "port:==1|==2|==3|==4 tcp-flags:F|S|R|P|A|U|E|C|=F|=S|=R|=P|=A|=U|=E|=C|!F fragment:dont-fragment|is-fragment|first-fragment|last-fragment"},
	} {
		if rules, err := NFTRules(bad); err == nil {
			t.Errorf("NFTRules(%s) accepted: %q", bad, rules)
		}
	}
}

// TestNFTRulesetLoads checks that nft accepts the rules of every fixture,
// in a namespace of its own.
func TestNFTRulesetLoads(t *testing.T) {
	RequireRoot(t, "ip", "nft")
	l := Up(t, Topology{Nodes: []Node{{Name: "fw", Kind: KindHost}}})
	var routes []Route
	for _, r := range wants(flowAnnouncements) {
		routes = append(routes, r, r.ReportedBy(KindFRR))
	}
	routes = append(routes, Route{Family: FamilyIPv6FlowSpec,
		Prefix:         "icmp-type:==128|>=130&<=140 icmp-code:==0 fragment:first-fragment|!last-fragment",
		ExtCommunities: []string{"traffic-rate:0"}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := l.InstallFlowSpec(ctx, "fw", routes...); err != nil {
		t.Fatal(err)
	}
	counters, err := l.FlowSpecCounters(ctx, "fw")
	if err != nil {
		t.Fatal(err)
	}
	rules := 0
	for _, r := range routes {
		n, _ := NFTRules(r)
		rules += len(n)
	}
	if len(counters) != rules {
		t.Errorf("%d rules loaded, want %d", len(counters), rules)
	}
	// Loading again replaces the rules.
	if err := l.InstallFlowSpec(ctx, "fw"); err != nil {
		t.Fatal(err)
	}
	if counters, err := l.FlowSpecCounters(ctx, "fw"); err != nil || len(counters) != 0 {
		t.Errorf("after an empty install: %d rules, %v", len(counters), err)
	}
}
