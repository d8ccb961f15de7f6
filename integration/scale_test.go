package integration

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/bgp"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/integration/lab"
	"github.com/floodgate-ddos/floodgate/policies"
)

// TestTenThousandFlowSpecRules announces 10,000 FlowSpec rules from the
// embedded speaker to a gobgpd router, checks that all of them reach its
// RIB, then withdraws them all and checks that none is left. It logs how
// long each way took. This test is the only one in this binary that runs
// an embedded GoBGP (one per process).
func TestTenThousandFlowSpecRules(t *testing.T) {
	const rules = 10_000
	speakerAddr := netip.MustParseAddr("127.0.0.4")
	router := lab.StartGoBGP(t, lab.GoBGPConfig{
		Name:       "router",
		ASN:        routerASN,
		ListenAddr: netip.MustParseAddr("127.0.0.5"),
		LogLevel:   "info",
		Neighbors: []lab.GoBGPNeighbor{{
			Address: speakerAddr, ASN: controllerASN, Passive: true,
			Families: []lab.Family{lab.FamilyIPv4FlowSpec},
		}},
	})
	g := policies.BGP{ASN: controllerASN, RouterID: netip.MustParseAddr("192.0.2.254"), Neighbors: []policies.Neighbor{{
		Name: "router", Address: router.BGPAddr().Addr(), Port: router.BGPAddr().Port(), ASN: routerASN,
		LocalAddress: speakerAddr, Families: []string{"ipv4-flowspec"},
	}}}
	s := bgp.NewSpeaker(g, hclog.NewNullLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if err := s.OpenSessions(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := router.WaitEstablished(ctx, speakerAddr); err != nil {
		t.Fatal(err)
	}
	anns := make([]flowspec.Announcement, rules)
	for i := range anns {
		dst := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		a, err := flowspec.NewFlowSpec(flowspec.Rule{Dst: netip.PrefixFrom(dst, 32), Protocols: []uint8{17}, SrcPorts: []flowspec.Range{flowspec.Single(123)}},
			&policies.FlowSpecAction{Action: "discard"})
		if err != nil {
			t.Fatal(err)
		}
		anns[i] = a
	}
	count := func() int {
		routes, err := router.Routes(ctx, lab.FamilyIPv4FlowSpec)
		if err != nil {
			t.Fatal(err)
		}
		return len(routes)
	}
	waitFor := func(want int) time.Time {
		for {
			if count() == want {
				return time.Now()
			}
			if ctx.Err() != nil {
				t.Fatalf("router has %d rules, want %d", count(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	start := time.Now()
	for i := range anns {
		if err := s.Announce(ctx, &anns[i]); err != nil {
			t.Fatal(err)
		}
	}
	sent := time.Since(start)
	seen := waitFor(rules)
	t.Logf("announce %d rules: %s to hand them to the speaker, %s until all were in the router's RIB", rules, sent.Round(time.Millisecond), seen.Sub(start).Round(time.Millisecond))
	start = time.Now()
	for i := range anns {
		if err := s.Withdraw(ctx, &anns[i]); err != nil {
			t.Fatal(err)
		}
	}
	sent = time.Since(start)
	gone := waitFor(0)
	t.Logf("withdraw %d rules: %s to hand them to the speaker, %s until none was left", rules, sent.Round(time.Millisecond), gone.Sub(start).Round(time.Millisecond))
}
