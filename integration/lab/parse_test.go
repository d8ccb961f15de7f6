package lab

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// The captures in testdata/capture are the raw output of each router
// holding rtbhAnnouncements and flowAnnouncements (rewrite them with
// `go test -run TestLabRouters -update-captures` as root). Each parser
// must turn them into exactly the announced routes, as ReportedBy says the
// router shows them.

func readCapture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "capture", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var allFamilies = []Family{FamilyIPv4Unicast, FamilyIPv6Unicast, FamilyIPv4FlowSpec, FamilyIPv6FlowSpec}

func TestParseFRRCapture(t *testing.T) {
	want := wants(rtbhAnnouncements, flowAnnouncements)
	for _, fam := range allFamilies {
		t.Run(string(fam), func(t *testing.T) {
			out := readCapture(t, "frr-"+string(fam)+".json")
			var got []Route
			var err error
			if fam.IsFlowSpec() {
				got, err = parseFRRFlowSpec(fam, out, time.Now())
			} else {
				got, err = parseFRRUnicast(fam, out)
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := CompareTable(KindFRR, got, familyOnly(want, fam)); diff != "" {
				t.Errorf("routes (-got +want):\n%s", diff)
			}
			for _, r := range got {
				if !fam.IsFlowSpec() && (!r.From.IsValid() || !r.NextHop.IsValid() || !r.Best || r.Received.IsZero()) {
					t.Errorf("route lacks from, next hop, best or received: %s", r)
				}
			}
		})
	}
}

func TestParseBIRDCapture(t *testing.T) {
	want := wants(rtbhAnnouncements, flowAnnouncements)
	for _, fam := range allFamilies {
		t.Run(string(fam), func(t *testing.T) {
			got, err := parseBIRDRoutes(fam, string(readCapture(t, "bird-"+string(fam)+".txt")), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if diff := CompareTable(KindBIRD, got, familyOnly(want, fam)); diff != "" {
				t.Errorf("routes (-got +want):\n%s", diff)
			}
			for _, r := range got {
				if !r.From.IsValid() || !r.Best || r.Received.IsZero() {
					t.Errorf("route lacks from, best or received: %s", r)
				}
			}
		})
	}
}

func TestParseExaBGPCapture(t *testing.T) {
	events, err := parseExaEvents(readCapture(t, "exabgp-updates.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 {
		t.Fatal("no events")
	}
	pid := events[len(events)-1].PID
	want := wants(rtbhAnnouncements, flowAnnouncements)
	for _, fam := range allFamilies {
		t.Run(string(fam), func(t *testing.T) {
			got, err := exaTable(events, pid, fam)
			if err != nil {
				t.Fatal(err)
			}
			if diff := CompareTable(KindExaBGP, got, familyOnly(want, fam)); diff != "" {
				t.Errorf("routes (-got +want):\n%s", diff)
			}
		})
	}
}

func familyOnly(routes []Route, fam Family) []Route {
	var out []Route
	for _, r := range routes {
		if r.Family == fam {
			out = append(out, r)
		}
	}
	return out
}

func TestParseFRRFlowComponent(t *testing.T) {
	tests := []struct {
		typ  bgp.BGPFlowSpecType
		in   string
		want string
	}{
		{bgp.FLOW_SPEC_TYPE_DST_PREFIX, "2001:db8::/64/off 8", "destination:2001:db8::/64/off8"},
		{bgp.FLOW_SPEC_TYPE_DST_PREFIX, "2001:db8::/64/off 0", "destination:2001:db8::/64"},
		{bgp.FLOW_SPEC_TYPE_IP_PROTO, "= 6 , = 17 ", "protocol:==tcp|==udp"},
		{bgp.FLOW_SPEC_TYPE_PKT_LEN, ">= 100 , <= 200 , = 1500 , < 7 ", "packet-length:>=100&<=200|==1500|<7"},
		{bgp.FLOW_SPEC_TYPE_PKT_LEN, "> 100 , < 200 , > 300 , <= 400 ", "packet-length:>100&<200|>300&<=400"},
		{bgp.FLOW_SPEC_TYPE_PKT_LEN, " 0 ", "packet-length:true"},
		{bgp.FLOW_SPEC_TYPE_TCP_FLAG, "= 2,&∋ ! 16,|= 18,|= ! 1", "tcp-flags:=S&!A|=SA|!=F"},
		{bgp.FLOW_SPEC_TYPE_FRAGMENT, "∋ 3", "fragment:dont-fragment+is-fragment"},
	}
	for _, tt := range tests {
		c, err := parseFRRFlowComponent(tt.typ, tt.in)
		if err != nil {
			t.Errorf("parse %s %q: %v", tt.typ, tt.in, err)
			continue
		}
		if got := c.String(); got != tt.want {
			t.Errorf("parse %s %q = %q, want %q", tt.typ, tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"= 2,∋ 4", "x 2", "= two"} {
		if _, err := parseFRRFlowComponent(bgp.FLOW_SPEC_TYPE_TCP_FLAG, bad); err == nil {
			t.Errorf("parse tcp flags %q: accepted", bad)
		}
	}
}

func TestParseFRRExtCommunities(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"FS:rate 0.000000", []string{"traffic-rate:0"}},
		{"FS:rate 12.500000 FS:marking 10", []string{"traffic-rate:12.5", "traffic-marking:10"}},
		{"FS:action eval stops FS:redirect VRF RT:65000:100 FS:marking 10", []string{ExtCommunityActionUnreported, "redirect:65000:100", "traffic-marking:10"}},
		{"FS:action terminate (apply), sample", []string{ExtCommunityActionUnreported}},
		{"RT:65000:1 SoO:65000:2", []string{"rt:65000:1", "frr:SoO:65000:2"}},
		{"", nil},
	}
	for _, tt := range tests {
		if got := parseFRRExtCommunities(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("parseFRRExtCommunities(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := frrCommunity("noExport"); got != "65535:65281" {
		t.Errorf("frrCommunity(noExport) = %q", got)
	}
	if got := frrCommunity("no-export"); got != "65535:65281" {
		t.Errorf("frrCommunity(no-export) = %q", got)
	}
}

func TestParseBIRDFlow(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"flow4 { dst 203.0.113.40/32; proto 6,17; length 100..200,1500 || != 7; }",
			"destination:203.0.113.40/32 protocol:==tcp|==udp packet-length:>=100&<=200|==1500|!=7"},
		{"flow4 { dst 203.0.113.41/32; tcp flags 0x2/0x2 && 0x0/0x10 || 0x12/0x12 || !0x1/0x1; fragment !0x0/0x3; }",
			"destination:203.0.113.41/32 tcp-flags:=S&!A|=SA|!=F fragment:dont-fragment+is-fragment"},
		{"flow4 { dst 203.0.113.42/32; length < 100 || <= 50; fragment is_fragment && !first_fragment; }",
			"destination:203.0.113.42/32 packet-length:<100|<=50 fragment:=is-fragment&!first-fragment"},
		{"flow4 { dst 203.0.113.43/32; fragment !!last_fragment || !0x0/0x0; dscp > 3 && true 0; }",
			"destination:203.0.113.43/32 fragment:last-fragment|0 dscp:>3&true"},
		{"flow6 { dst 2001:db8::/64 offset 8; next header 58; icmp type 128; icmp code 0; label 5; }",
			"destination:2001:db8::/64/off8 protocol:==icmpv6 icmp-type:==128 icmp-code:==0 label:==5"},
	}
	for _, tt := range tests {
		r, err := parseBIRDFlow(tt.in)
		if err != nil {
			t.Errorf("parse %q: %v", tt.in, err)
			continue
		}
		if got := r.String(); got != tt.want {
			t.Errorf("parse %q\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{
		"flow4 dst 1.2.3.4/32;",
		"flow4 { colour red; }",
		"flow4 { tcp flags 0x2/0x3; }",
		"flow4 { length >; }",
	} {
		if _, err := parseBIRDFlow(bad); err == nil {
			t.Errorf("parse %q: accepted", bad)
		}
	}
}

func TestBIRDExtCommunity(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"generic, 0x80060000, 0x0", "traffic-rate:0"},
		{"generic, 0x80060000, 0x447a0000", "traffic-rate:1000"},
		{"generic, 0x8008fde8, 0x64", "redirect:65000:100"},
		{"generic, 0x8108c000, 0x2010007", "redirect:192.0.2.1:7"},
		{"generic, 0x80070000, 0x3", "traffic-action:sample,terminal"},
		{"rt, 65000, 100", "rt:65000:100"},
		{"rt, 4200000000, 100", "rt:4200000000:100"},
		{"rt, 192.0.2.1, 7", "rt:192.0.2.1:7"},
		{"unknown 0x8008, 65000, 100", "redirect:65000:100"},
	}
	for _, tt := range tests {
		got, err := birdExtCommunity(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("birdExtCommunity(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"generic, 0x1", "colour, 1, 2", "rt, x, 1"} {
		if _, err := birdExtCommunity(bad); err == nil {
			t.Errorf("birdExtCommunity(%q): accepted", bad)
		}
	}
}

func TestParseExaFlow(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"flow destination-ipv4 203.0.113.20/32 source-ipv4 198.51.100.0/24 protocol =tcp destination-port [ >=80&<=443 ] icmp-type =echo-request tcp-flags syn packet-length >1000 dscp =46 fragment is-fragment",
			"destination:203.0.113.20/32 source:198.51.100.0/24 protocol:==tcp destination-port:>=80&<=443 icmp-type:==8 tcp-flags:S packet-length:>1000 dscp:==46 fragment:is-fragment"},
		{"flow destination-ipv4 203.0.113.41/32 tcp-flags [ =syn&!ack =syn+ack !=fin ] fragment dont-fragment+is-fragment",
			"destination:203.0.113.41/32 tcp-flags:=S&!A|=SA|!=F fragment:dont-fragment+is-fragment"},
		{"flow destination-ipv6 2001:db8::/64/8 next-header =unknown ip protocol type 99 traffic-class =10 flow-label =12345 next-hop ::",
			"destination:2001:db8::/64/off8 protocol:==99 dscp:==10 label:==12345"},
		{"flow destination-ipv4 203.0.113.40/32 packet-length [ >=100&<=200 =1500 !=7 ] port [ =53 =123 ] icmp-code true",
			"destination:203.0.113.40/32 packet-length:>=100&<=200|==1500|!=7 port:==53|==123 icmp-code:true"},
	}
	for _, tt := range tests {
		r, err := parseExaFlow(tt.in)
		if err != nil {
			t.Errorf("parse %q: %v", tt.in, err)
			continue
		}
		if got := r.String(); got != tt.want {
			t.Errorf("parse %q\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"destination-ipv4 1.2.3.4/32", "flow colour red", "flow protocol", "flow tcp-flags =bogus"} {
		if _, err := parseExaFlow(bad); err == nil {
			t.Errorf("parse %q: accepted", bad)
		}
	}
}

func TestExaBGPUpdates(t *testing.T) {
	events, err := parseExaEvents(readCapture(t, "exabgp-updates.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var ups []ExaBGPUpdate
	for _, ev := range events {
		u, ok, err := exaUpdateOf(ev)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			ups = append(ups, u)
		}
	}
	announced := 0
	for _, u := range ups {
		announced += len(u.Announce)
		if u.Time.IsZero() || !u.Peer.IsValid() || u.PID == 0 {
			t.Errorf("update lacks time, peer or pid: %s", u)
		}
	}
	if announced < len(rtbhAnnouncements)+len(flowAnnouncements) {
		t.Errorf("%d routes announced in %d updates, want at least %d", announced, len(ups), len(rtbhAnnouncements)+len(flowAnnouncements))
	}
	// An incomplete last line is left for later.
	partial, err := parseExaEvents([]byte(`{"type": "state"}` + "\n" + `{"type": "upd`))
	if err != nil || len(partial) != 1 {
		t.Errorf("partial line: %d events, %v", len(partial), err)
	}
}

func TestReportedBy(t *testing.T) {
	sent := Route{
		Family:         FamilyIPv4FlowSpec,
		Prefix:         "destination:203.0.113.1/32 packet-length:>=100|<=50|>10&<20 fragment:!=is-fragment|=first-fragment",
		ASPath:         []uint32{65000},
		Communities:    []string{"65000:1"},
		ExtCommunities: []string{"traffic-rate:1000/as65000", "traffic-action:sample"},
		From:           victim4,
		Best:           true,
	}
	tests := []struct {
		kind Kind
		want Route
	}{
		{KindGoBGP, Route{Family: sent.Family, Prefix: sent.Prefix, ASPath: []uint32{65000}, Communities: []string{"65000:1"},
			ExtCommunities: []string{"traffic-action:sample", "traffic-rate:1000/as65000"}}},
		{KindFRR, Route{Family: sent.Family,
			Prefix:         "destination:203.0.113.1/32 packet-length:>=100&<=50|>10&<20 fragment:!=is-fragment|=first-fragment",
			ExtCommunities: []string{ExtCommunityActionUnreported, "traffic-rate:1000"}}},
		{KindBIRD, Route{Family: sent.Family,
			Prefix: "destination:203.0.113.1/32 packet-length:>=100|<=50|>10&<20 fragment:!is-fragment|=first-fragment",
			ASPath: []uint32{65000}, Communities: []string{"65000:1"},
			ExtCommunities: []string{"traffic-action:sample", "traffic-rate:1000/as65000"}}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(sent.ReportedBy(tt.kind), tt.want, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Errorf("ReportedBy(%s) (-got +want):\n%s", tt.kind, diff)
		}
	}
	if diff := CompareTable(KindGoBGP, []Route{sent}, []Route{sent}); diff != "" {
		t.Errorf("CompareTable of equal routes:\n%s", diff)
	}
	if diff := CompareTable(KindGoBGP, nil, []Route{sent}); !strings.Contains(diff, "203.0.113.1") {
		t.Errorf("CompareTable of a missing route: %q", diff)
	}
}
