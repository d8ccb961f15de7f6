package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
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
	err := s.insts[0].srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam},
		func(d *api.Destination) { out = append(out, d.Prefix) })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenSessionsGracefulRestart checks how neighbours are configured:
// graceful restart for every family with the configured times, the
// restarting flag only when asked and graceful restart is on.
func TestOpenSessionsGracefulRestart(t *testing.T) {
	g := policies.BGP{ASN: 65000, RouterID: netip.MustParseAddr("192.0.2.254"), GracefulRestart: policies.DefaultGracefulRestart(),
		Neighbors: []policies.Neighbor{{Name: "r1", Address: netip.MustParseAddr("127.0.0.1"), Port: 1, ASN: 65001,
			Families: []string{"ipv4-unicast", "ipv4-flowspec"}}}}
	g.GracefulRestart.LongLived = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name                   string
		enabled, restarting    bool
		wantGR, wantRestarting bool
	}{
		{"fresh start", true, false, true, false},
		{"restart with routes", true, true, true, true},
		{"graceful restart off", false, true, false, false},
	} {
		g.GracefulRestart.Enabled = tc.enabled
		s := NewSpeaker(g, hclog.NewNullLogger())
		if err := s.OpenSessions(ctx, tc.restarting); err == nil {
			t.Fatalf("%s: OpenSessions before Start succeeded", tc.name)
		}
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.OpenSessions(ctx, tc.restarting); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := s.OpenSessions(ctx, tc.restarting); err == nil {
			t.Fatalf("%s: second OpenSessions succeeded", tc.name)
		}
		// A restarting speaker adds its neighbours in the background.
		var peers []*api.Peer
		for deadline := time.Now().Add(5 * time.Second); len(peers) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if err := s.listPeers(ctx, func(p *api.Peer) { peers = append(peers, p) }); err != nil {
				t.Fatal(err)
			}
		}
		if len(peers) != 1 {
			t.Fatalf("%s: %d peers", tc.name, len(peers))
		}
		gr := peers[0].GetGracefulRestart()
		if gr.GetEnabled() != tc.wantGR || gr.GetLocalRestarting() != tc.wantRestarting {
			t.Errorf("%s: graceful restart %+v", tc.name, gr)
		}
		if tc.wantGR && (gr.GetRestartTime() != 120 || !gr.GetNotificationEnabled() || gr.GetDeferralTime() != 5 || !gr.GetLonglivedEnabled()) {
			t.Errorf("%s: graceful restart settings %+v", tc.name, gr)
		}
		for _, as := range peers[0].GetAfiSafis() {
			mp := as.GetMpGracefulRestart().GetConfig().GetEnabled()
			ll := as.GetLongLivedGracefulRestart().GetConfig()
			if mp != tc.wantGR || tc.wantGR && (!ll.GetEnabled() || ll.GetRestartTime() != 3600) {
				t.Errorf("%s: family %v: mp %v llgr %+v", tc.name, as.GetConfig().GetFamily(), mp, ll)
			}
		}
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInstances: a GoBGP instance per neighbour the speaker connects to,
// one listening for the passive ones, and every route in every RIB.
func TestInstances(t *testing.T) {
	nb := func(addr string, passive bool) policies.Neighbor {
		return policies.Neighbor{Name: addr, Address: netip.MustParseAddr(addr), Port: 1, ASN: 65001, Passive: passive, Families: []string{"ipv4-unicast"}}
	}
	g := policies.BGP{ASN: 65000, RouterID: netip.MustParseAddr("192.0.2.254"), Listen: netip.MustParseAddrPort("127.0.0.1:0"),
		Neighbors: []policies.Neighbor{nb("127.0.0.2", false), nb("127.0.0.3", true), nb("127.0.0.4", false), nb("127.0.0.5", true)}}
	s := NewSpeaker(g, hclog.NewNullLogger())
	var shape []string
	for _, in := range s.insts {
		var names []string
		for _, n := range in.neighbors {
			names = append(names, n.Name)
		}
		shape = append(shape, fmt.Sprintf("listen=%v %s", in.listen, strings.Join(names, ",")))
	}
	want := []string{"listen=true 127.0.0.3,127.0.0.5", "listen=false 127.0.0.2", "listen=false 127.0.0.4"}
	if !slices.Equal(shape, want) {
		t.Fatalf("instances %q, want %q", shape, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(ctx)
	a := flowspec.NewRTBH(netip.MustParsePrefix("203.0.113.10/32"), g, nil)
	if err := s.Announce(ctx, &a); err != nil {
		t.Fatal(err)
	}
	v4 := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	for i, in := range s.insts {
		n := 0
		if err := in.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: v4}, func(*api.Destination) { n++ }); err != nil || n != 1 {
			t.Errorf("instance %d: %d routes, %v", i, n, err)
		}
	}
	if err := s.Withdraw(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if single := NewSpeaker(policies.BGP{ASN: 1, RouterID: g.RouterID}, hclog.NewNullLogger()); len(single.insts) != 1 {
		t.Errorf("no neighbour: %d instances, want 1", len(single.insts))
	}
}
