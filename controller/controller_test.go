package controller

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

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

func (r *recorder) Announce(_ context.Context, a *flowspec.Announcement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, "announce "+a.Key())
	return nil
}

func (r *recorder) Withdraw(_ context.Context, a *flowspec.Announcement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, "withdraw "+a.Key())
	return nil
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

const testPolicyHCL = `
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
}
mitigation { dry_run = %DRY% }
hostgroup "customers" {
  prefixes  = ["203.0.113.0/24", "2001:db8::/32"]
  whitelist = ["203.0.113.53/32"]
  max_rules = 3
  response "ntp" {
    when = attack.protocol == "udp" && attack.top_src_port.port == 123 && attack.top_src_port.share > 0.8
    flowspec { action = "discard" }
    duration = "1m"
    escalate {
      after = "3m"
      rtbh {}
    }
  }
  response "ignore-icmp" {
    when = attack.protocol == "icmp"
  }
  response "blackhole" {
    rtbh { communities = ["65000:9"] }
    duration = "1m"
    hold     = "30s"
  }
}
`

func testPolicy(t testing.TB, dryRun bool) *policies.Policy {
	t.Helper()
	src := strings.Replace(testPolicyHCL, "%DRY%", map[bool]string{true: "true", false: "false"}[dryRun], 1)
	pol, err := policies.Parse([]string{"test.hcl"}, map[string][]byte{"test.hcl": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	pol.Mitigation.StateFile = filepath.Join(t.TempDir(), "state.db")
	return pol
}

func sig(id uint64, victim string) detect.Signature {
	a := netip.MustParseAddr(victim)
	return detect.Signature{ID: id, Victim: netip.PrefixFrom(a, a.BitLen()), Direction: detect.Incoming, Hostgroup: "customers",
		Reason: "pps 1 > 0", TCP: 1, Protocols: []detect.Share{{Value: 6, Share: 1}}, TCPSYN: 1}
}

func ntpSig(id uint64, victim string) detect.Signature {
	s := sig(id, victim)
	s.TCP, s.TCPSYN, s.UDP = 0, 0, 1
	s.Protocols = []detect.Share{{Value: 17, Share: 1}}
	s.SrcPorts = []detect.Share{{Value: 123, Share: 0.97}}
	return s
}

type harness struct {
	t      *testing.T
	events chan detect.Event
	rec    *recorder
	m      *Mitigator
	store  *Store
}

func newHarness(t *testing.T, pol *policies.Policy) *harness {
	t.Helper()
	store, err := OpenStore(pol.Mitigation.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, events: make(chan detect.Event), rec: &recorder{}, store: store}
	h.m = NewMitigator(MitigatorConfig{}, pol, h.events, h.rec, store, hclog.NewNullLogger())
	if err := h.m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) stop() {
	if err := h.m.Stop(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	if err := h.store.Close(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) send(kind detect.EventKind, s detect.Signature) {
	h.events <- detect.Event{Kind: kind, Signature: s}
	synctest.Wait()
}

func (h *harness) wantCalls(want ...string) {
	h.t.Helper()
	if got := h.rec.calls(); !slices.Equal(got, want) {
		h.t.Fatalf("calls\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestResponsesChooseAnnouncements(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, testPolicy(t, false))
		defer h.stop()
		h.send(detect.AttackStarted, ntpSig(1, "203.0.113.10"))
		h.send(detect.AttackStarted, sig(2, "203.0.113.11")) // SYN flood: falls through to blackhole
		icmp := sig(3, "203.0.113.12")
		icmp.TCP, icmp.ICMP = 0, 1
		h.send(detect.AttackStarted, icmp)                   // matched, mitigates nothing
		h.send(detect.AttackStarted, sig(4, "203.0.113.53")) // whitelisted: refused
		h.wantCalls(
			"announce flowspec:dst 203.0.113.10/32 proto 17 sport 123",
			"announce rtbh:203.0.113.11/32")
		if r := h.m.Stats().Refused[flowspec.ReasonWhitelisted]; r != 1 {
			t.Errorf("whitelist refusals %d", r)
		}
		act, _ := h.m.Active(context.Background())
		if len(act) != 2 || act[1].Announcement.Communities[2] != 0xfde80009 || act[0].Response != "ntp" {
			t.Errorf("active %+v", act)
		}
	})
}

func TestExpiryExtendHoldAndEscalation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, testPolicy(t, false))
		defer h.stop()
		h.send(detect.AttackStarted, ntpSig(1, "203.0.113.10"))
		h.send(detect.AttackStarted, sig(2, "203.0.113.11"))
		// Both attacks go on past the 1m duration: extended, not
		// withdrawn. At 3m the NTP attack escalates to a blackhole.
		time.Sleep(3*time.Minute + time.Second)
		synctest.Wait()
		h.wantCalls(
			"announce flowspec:dst 203.0.113.10/32 proto 17 sport 123",
			"announce rtbh:203.0.113.11/32",
			"announce rtbh:203.0.113.10/32")
		// The SYN attack ends: its blackhole is held 30s after the end,
		// or to its expiry if later.
		h.send(detect.AttackEnded, sig(2, "203.0.113.11"))
		act, _ := h.m.Active(context.Background())
		var syn Mitigation
		for _, a := range act {
			if a.Key == "rtbh:203.0.113.11/32" {
				syn = a
			}
		}
		if syn.AttackEnded.IsZero() || syn.Expires.Before(syn.AttackEnded.Add(30*time.Second)) {
			t.Fatalf("after end: %+v", syn)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		h.wantCalls(
			"announce flowspec:dst 203.0.113.10/32 proto 17 sport 123",
			"announce rtbh:203.0.113.11/32",
			"announce rtbh:203.0.113.10/32",
			"withdraw rtbh:203.0.113.11/32")
		h.send(detect.AttackEnded, ntpSig(1, "203.0.113.10"))
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if act, _ := h.m.Active(context.Background()); len(act) != 0 {
			t.Errorf("still active: %+v", act)
		}
		if got := h.rec.calls(); len(got) != 6 {
			t.Errorf("calls %v", got)
		}
	})
}

func TestRefineReplacesRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, testPolicy(t, false))
		defer h.stop()
		h.send(detect.AttackStarted, ntpSig(1, "203.0.113.10"))
		upd := ntpSig(1, "203.0.113.10")
		upd.SrcPorts = []detect.Share{{Value: 123, Share: 0.5}, {Value: 53, Share: 0.45}}
		h.send(detect.AttackUpdated, upd)
		h.wantCalls(
			"announce flowspec:dst 203.0.113.10/32 proto 17 sport 123",
			"announce flowspec:dst 203.0.113.10/32 proto 17 sport 53,123",
			"withdraw flowspec:dst 203.0.113.10/32 proto 17 sport 123")
		if act, _ := h.m.Active(context.Background()); len(act) != 1 {
			t.Errorf("active %+v, want only the refined rule", act)
		}
	})
}

func TestCapsAndDryRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, testPolicy(t, true))
		defer h.stop()
		for i := range 5 {
			h.send(detect.AttackStarted, sig(uint64(i+1), netip.AddrFrom4([4]byte{203, 0, 113, byte(20 + i)}).String()))
		}
		h.wantCalls() // dry run sends nothing
		act, _ := h.m.Active(context.Background())
		st := h.m.Stats()
		if len(act) != 3 || !act[0].DryRun || st.Refused["budget_full"] != 2 || st.BudgetFull["max_rules/refused"] != 2 {
			t.Errorf("active %d, refused %v, budget full %v", len(act), st.Refused, st.BudgetFull)
		}
	})
}

// TestRestartRestores: mitigations survive a restart through the store;
// those that expired meanwhile are dropped, the others re-announced and
// withdrawn at their original expiry.
func TestRestartRestores(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pol := testPolicy(t, false)
		h := newHarness(t, pol)
		h.send(detect.AttackStarted, sig(1, "203.0.113.10"))
		time.Sleep(50 * time.Second)
		h.send(detect.AttackStarted, sig(2, "203.0.113.11"))
		h.stop() // no withdraw_on_shutdown: kept in the store
		h.wantCalls("announce rtbh:203.0.113.10/32", "announce rtbh:203.0.113.11/32")

		time.Sleep(20 * time.Second) // the first expired while stopped
		h2 := newHarness(t, pol)
		defer h2.stop()
		h2.wantCalls("announce rtbh:203.0.113.11/32")
		act, _ := h2.m.Active(context.Background())
		if len(act) != 1 || act[0].Expires.Sub(act[0].Started) != time.Minute {
			t.Fatalf("restored %+v", act)
		}
		time.Sleep(45 * time.Second)
		synctest.Wait()
		h2.wantCalls("announce rtbh:203.0.113.11/32", "withdraw rtbh:203.0.113.11/32")
	})
}

// TestRestoredForgetsAttackIDs: attack ids start from 1 in every process,
// so a restored mitigation must not be kept on by a new attack that
// happens to have the id of its old one.
func TestRestoredForgetsAttackIDs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pol := testPolicy(t, false)
		h := newHarness(t, pol)
		h.send(detect.AttackStarted, sig(6, "203.0.113.10"))
		h.stop()
		h2 := newHarness(t, pol)
		defer h2.stop()
		h2.send(detect.AttackStarted, sig(1, "203.0.113.10")) // seen again, under a new id
		h2.send(detect.AttackStarted, sig(6, "203.0.113.11")) // another attack, the old id
		h2.send(detect.AttackEnded, sig(1, "203.0.113.10"))
		time.Sleep(61 * time.Second)
		synctest.Wait()
		h2.wantCalls("announce rtbh:203.0.113.10/32", "announce rtbh:203.0.113.11/32", "withdraw rtbh:203.0.113.10/32")
	})
}

func TestBanUnban(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pol := testPolicy(t, false)
		h := newHarness(t, pol)
		defer h.stop()
		ctx := context.Background()
		a := flowspec.NewRTBH(netip.MustParsePrefix("203.0.113.99/32"), pol.BGP, nil)
		mt, err := h.m.Ban(ctx, Ban{Announcement: a, Duration: time.Hour, Reason: "operator"})
		if err != nil || !mt.Manual || mt.Hostgroup != "customers" {
			t.Fatalf("Ban = %+v, %v", mt, err)
		}
		bad := flowspec.NewRTBH(netip.MustParsePrefix("0.0.0.0/0"), pol.BGP, nil)
		if _, err := h.m.Ban(ctx, Ban{Announcement: bad, Duration: time.Hour}); err == nil {
			t.Fatal("banned 0.0.0.0/0")
		}
		if err := h.m.Unban(ctx, "rtbh:203.0.113.99/32"); err != nil {
			t.Fatal(err)
		}
		if err := h.m.Unban(ctx, "rtbh:203.0.113.99/32"); err == nil {
			t.Fatal("second unban succeeded")
		}
		h.wantCalls("announce rtbh:203.0.113.99/32", "withdraw rtbh:203.0.113.99/32")
	})
}
