package bgp

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	api "github.com/osrg/gobgp/v3/api"
	"go.uber.org/goleak"

	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

// GoBGP's serve loop lives as long as the process (see Speaker).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/osrg/gobgp/v3/pkg/server.(*BgpServer).Serve"))
}

// TestSpeaker runs the real embedded GoBGP (no listener, no neighbour) and
// checks what lands in its RIB, start, stop and start again.
func TestSpeaker(t *testing.T) {
	g := policies.BGP{ASN: 65000, RouterID: netip.MustParseAddr("192.0.2.254"), NextHopIPv4: netip.MustParseAddr("192.0.2.1")}
	s := NewSpeaker(g, hclog.NewNullLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rtbh := flowspec.NewRTBH(netip.MustParsePrefix("203.0.113.10/32"), g, nil)
	fs, err := flowspec.NewFlowSpec(flowspec.Rule{Dst: netip.MustParsePrefix("2001:db8::10/128"), Protocols: []uint8{17}},
		&policies.FlowSpecAction{Action: "rate-limit", RateBPS: 8000})
	if err != nil {
		t.Fatal(err)
	}
	v4 := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	v6fs := &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_FLOW_SPEC_UNICAST}
	for round := range 2 {
		if err := s.Start(ctx); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		for _, a := range []*flowspec.Announcement{&rtbh, &fs, &rtbh} { // the repeat replaces, never duplicates
			if err := s.Announce(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		if got := ribPrefixes(t, s, v4); len(got) != 1 || got[0] != "203.0.113.10/32" {
			t.Errorf("round %d: RIB %v", round, got)
		}
		if got := ribPrefixes(t, s, v6fs); len(got) != 1 || !strings.Contains(got[0], "2001:db8::10/128") {
			t.Errorf("round %d: flowspec RIB %v", round, got)
		}
		for _, a := range []*flowspec.Announcement{&rtbh, &fs} {
			if err := s.Withdraw(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		if got := append(ribPrefixes(t, s, v4), ribPrefixes(t, s, v6fs)...); len(got) != 0 {
			t.Errorf("round %d: RIB after withdraw %v", round, got)
		}
		if err := s.Stop(context.Background()); err != nil {
			t.Fatalf("round %d: Stop: %v", round, err)
		}
	}
}

func ribPrefixes(t *testing.T, s *Speaker, fam *api.Family) []string {
	t.Helper()
	var out []string
	err := s.srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam},
		func(d *api.Destination) { out = append(out, d.Prefix) })
	if err != nil {
		t.Fatal(err)
	}
	return out
}
