package controller

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	api "github.com/osrg/gobgp/v3/api"

	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

// recorder is an Announcer that records calls; the real speaker is
// exercised by TestSpeaker and the integration tests.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) Announce(_ context.Context, a flowspec.Announcement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, "announce "+a.Key())
	return nil
}

func (r *recorder) Withdraw(_ context.Context, a flowspec.Announcement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, "withdraw "+a.Key())
	return nil
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

func testPolicy(dryRun bool) *policies.Policy {
	return &policies.Policy{
		BGP: policies.BGP{ASN: 65000, RouterID: netip.MustParseAddr("192.0.2.254"), DryRun: dryRun},
		Hostgroups: []*policies.Hostgroup{{
			Name:     "customers",
			Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
			BanTime:  time.Minute,
		}},
	}
}

func sig(id uint64, victim string) detect.Signature {
	a := netip.MustParseAddr(victim)
	return detect.Signature{ID: id, Victim: netip.PrefixFrom(a, a.BitLen()), Direction: detect.Incoming, Hostgroup: "customers", Reason: "pps 1 > 0"}
}

func TestMitigatorLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		events := make(chan detect.Event)
		rec := &recorder{}
		m := NewMitigator(MitigatorConfig{}, testPolicy(false), events, rec, hclog.NewNullLogger())
		ctx := context.Background()
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer m.Stop()

		events <- detect.Event{Kind: detect.AttackStarted, Signature: sig(1, "203.0.113.10")}
		events <- detect.Event{Kind: detect.AttackStarted, Signature: sig(2, "198.51.100.1")} // outside: refused
		synctest.Wait()
		if got := rec.calls(); len(got) != 1 || got[0] != "announce rtbh:203.0.113.10/32" {
			t.Fatalf("calls %v", got)
		}
		if m.Refused() != 1 {
			t.Errorf("refused %d, want 1", m.Refused())
		}
		act, err := m.Active(ctx)
		if err != nil || len(act) != 1 || act[0].Expires.Sub(act[0].Started) != time.Minute {
			t.Fatalf("active %+v, %v", act, err)
		}

		// The attack is still on at expiry: extended, not withdrawn.
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		if got := rec.calls(); len(got) != 1 {
			t.Fatalf("calls after first expiry %v", got)
		}
		events <- detect.Event{Kind: detect.AttackEnded, Signature: sig(1, "203.0.113.10")}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := rec.calls(); len(got) != 2 || got[1] != "withdraw rtbh:203.0.113.10/32" {
			t.Fatalf("calls after end %v", got)
		}
		if act, _ := m.Active(ctx); len(act) != 0 {
			t.Errorf("active after withdrawal %+v", act)
		}
	})
}

func TestMitigatorDryRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		events := make(chan detect.Event)
		rec := &recorder{}
		m := NewMitigator(MitigatorConfig{}, testPolicy(true), events, rec, hclog.NewNullLogger())
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer m.Stop()
		events <- detect.Event{Kind: detect.AttackStarted, Signature: sig(1, "203.0.113.10")}
		events <- detect.Event{Kind: detect.AttackEnded, Signature: sig(1, "203.0.113.10")}
		synctest.Wait()
		act, _ := m.Active(context.Background())
		if len(act) != 1 || !act[0].DryRun {
			t.Fatalf("active %+v", act)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := rec.calls(); len(got) != 0 {
			t.Errorf("dry run sent %v", got)
		}
		if act, _ := m.Active(context.Background()); len(act) != 0 {
			t.Errorf("dry-run mitigation did not expire: %+v", act)
		}
	})
}

func TestMitigatorCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		events := make(chan detect.Event)
		rec := &recorder{}
		m := NewMitigator(MitigatorConfig{MaxActive: 2}, testPolicy(false), events, rec, hclog.NewNullLogger())
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer m.Stop()
		for i, v := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
			events <- detect.Event{Kind: detect.AttackStarted, Signature: sig(uint64(i+1), v)}
		}
		synctest.Wait()
		if got := rec.calls(); len(got) != 2 || m.Refused() != 1 {
			t.Errorf("calls %v refused %d; want 2 announced, 1 refused", got, m.Refused())
		}
	})
}

// TestSpeaker runs the real embedded GoBGP (no listener, no neighbour) and
// checks what lands in its RIB. It is the only test that creates a
// speaker: GoBGP's serve loop lives as long as the process.
func TestSpeaker(t *testing.T) {
	pol := testPolicy(false)
	pol.BGP.NextHopIPv4 = netip.MustParseAddr("192.0.2.1")
	s := NewSpeaker(pol.BGP, hclog.NewNullLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := flowspec.NewRTBH(netip.MustParseAddr("203.0.113.10"), pol.BGP)
	for round := range 2 {
		if err := s.Start(ctx); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		if err := s.Announce(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.Announce(ctx, a); err != nil { // replaces, never duplicates
			t.Fatal(err)
		}
		if got := ribPrefixes(t, s); len(got) != 1 || got[0] != "203.0.113.10/32" {
			t.Errorf("round %d: RIB %v", round, got)
		}
		if err := s.Withdraw(ctx, a); err != nil {
			t.Fatal(err)
		}
		if got := ribPrefixes(t, s); len(got) != 0 {
			t.Errorf("round %d: RIB after withdraw %v", round, got)
		}
		if err := s.Stop(); err != nil {
			t.Fatalf("round %d: Stop: %v", round, err)
		}
	}
}

func ribPrefixes(t *testing.T, s *Speaker) []string {
	t.Helper()
	var out []string
	err := s.srv.ListPath(context.Background(), &api.ListPathRequest{
		TableType: api.TableType_GLOBAL,
		Family:    &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
	}, func(d *api.Destination) { out = append(out, d.Prefix) })
	if err != nil {
		t.Fatal(err)
	}
	return out
}
