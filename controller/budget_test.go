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
	"github.com/floodgate-ddos/floodgate/policies"
)

const budgetPolicyHCL = `
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
}
hostgroup "customers" {
  prefixes  = ["203.0.113.0/24", "2001:db8::/32"]
  max_rules = %MAX%
  %EXTRA%
  response "udp" {
    when = attack.protocol == "udp"
    flowspec { action = "discard" }
    duration = "1m"
  }
}
`

type budgetObserver struct {
	mu     sync.Mutex
	events []BudgetEvent
}

func (o *budgetObserver) AttackStarted(detect.Signature) {}
func (o *budgetObserver) MitigationAnnounced(Mitigation) {}
func (o *budgetObserver) MitigationWithdrawn(Mitigation) {}
func (o *budgetObserver) BudgetFull(ev BudgetEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
}

func newBudgetHarness(t *testing.T, maxRules, extra string) (*harness, *budgetObserver) {
	t.Helper()
	src := strings.NewReplacer("%MAX%", maxRules, "%EXTRA%", extra).Replace(budgetPolicyHCL)
	pol, err := policies.Parse([]string{"test.hcl"}, map[string][]byte{"test.hcl": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	pol.Mitigation.StateFile = filepath.Join(t.TempDir(), "state.db")
	store, err := OpenStore(pol.Mitigation.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, events: make(chan detect.Event), rec: &recorder{}, store: store}
	h.m = NewMitigator(MitigatorConfig{}, pol, h.events, h.rec, store, hclog.NewNullLogger())
	obs := &budgetObserver{}
	h.m.SetObserver(obs)
	if err := h.m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h, obs
}

func lengths(bucket int) [len(detect.LengthBounds) + 1]float64 {
	var l [len(detect.LengthBounds) + 1]float64
	l[bucket] = 1
	return l
}

// ntpVectors is an NTP reflection as detection describes it.
func ntpVectors(id uint64, victim string, pps float64) detect.Signature {
	s := ntpSig(id, victim)
	s.PPS, s.Ratio = pps, 3
	s.Vectors = []detect.Vector{{Proto: 17, Share: 1, Records: 200, SrcPorts: []detect.Share{{Value: 123, Share: 1}}, Lengths: lengths(3)}}
	return s
}

// dnsVectors is a DNS amplification with fragmented answers.
func dnsVectors(id uint64, victim string, pps float64) detect.Signature {
	s := ntpSig(id, victim)
	s.SrcPorts = []detect.Share{{Value: 53, Share: 0.5}}
	s.PPS, s.Ratio = pps, 3
	s.Vectors = []detect.Vector{
		{Proto: 17, Kind: detect.VectorFragment, Share: 0.5, Records: 200, Lengths: lengths(5)},
		{Proto: 17, Share: 0.5, Records: 200, SrcPorts: []detect.Share{{Value: 53, Share: 1}}, Lengths: lengths(5)},
	}
	return s
}

const (
	ntpRule = " proto 17 sport 123 length 257-65535"
	dnsFrag = " proto 17 fragment 0x02"
	dnsRule = " proto 17 sport 53 length 1025-65535"
)

// TestRuleSet: an attack of two vectors gets two rules, numbered, that
// go together when the attack ends and they expire.
func TestRuleSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newBudgetHarness(t, "10", "")
		defer h.stop()
		s := dnsVectors(1, "203.0.113.10", 1e5)
		h.send(detect.AttackStarted, s)
		act, _ := h.m.Active(context.Background())
		if len(act) != 2 || act[0].Rules != 2 || act[0].Rule+act[1].Rule != 3 {
			t.Fatalf("active %+v", act)
		}
		h.send(detect.AttackEnded, s)
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		h.wantCalls(
			"announce flowspec:dst 203.0.113.10/32"+dnsFrag,
			"announce flowspec:dst 203.0.113.10/32"+dnsRule,
			"withdraw flowspec:dst 203.0.113.10/32"+dnsFrag,
			"withdraw flowspec:dst 203.0.113.10/32"+dnsRule)
	})
}

// TestWaveAggregates: from aggregate_after hosts with one shape, their
// rules become one rule for the smallest prefix holding them; a later
// host inside it extends that rule; it ends when every attack it stands
// for has ended and it expires.
func TestWaveAggregates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newBudgetHarness(t, "10", "aggregate_after = 3")
		defer h.stop()
		for i, v := range []string{"203.0.113.10", "203.0.113.11", "203.0.113.12"} {
			h.send(detect.AttackStarted, ntpVectors(uint64(i+1), v, 1e5))
		}
		h.send(detect.AttackStarted, ntpVectors(4, "203.0.113.14", 1e5))
		h.send(detect.AttackStarted, ntpVectors(5, "203.0.113.200", 1e5)) // alone in its part of the /24
		h.wantCalls(
			"announce flowspec:dst 203.0.113.10/32"+ntpRule,
			"announce flowspec:dst 203.0.113.11/32"+ntpRule,
			"announce flowspec:dst 203.0.113.8/29"+ntpRule,
			"withdraw flowspec:dst 203.0.113.10/32"+ntpRule,
			"withdraw flowspec:dst 203.0.113.11/32"+ntpRule,
			"announce flowspec:dst 203.0.113.200/32"+ntpRule)
		act, _ := h.m.Active(context.Background())
		agg := slices.IndexFunc(act, func(mt Mitigation) bool { return mt.Victim.String() == "203.0.113.8/29" })
		if len(act) != 2 || agg < 0 || len(act[agg].Merged) != 3 {
			t.Fatalf("active %+v", act)
		}
		// Attacks 1 to 3 end; 4 goes on: the aggregate is extended.
		for i, v := range []string{"203.0.113.10", "203.0.113.11", "203.0.113.12"} {
			h.send(detect.AttackEnded, ntpVectors(uint64(i+1), v, 1e5))
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if act, _ := h.m.Active(context.Background()); len(act) != 2 {
			t.Fatalf("after 2m, active %+v", act)
		}
		h.send(detect.AttackEnded, ntpVectors(4, "203.0.113.14", 1e5))
		h.send(detect.AttackEnded, ntpVectors(5, "203.0.113.200", 1e5))
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if act, _ := h.m.Active(context.Background()); len(act) != 0 {
			t.Fatalf("after the ends, active %+v", act)
		}
	})
}

// TestBudgetFull: a full max_rules does what on_budget_full says, counts
// it and tells the observer; with nothing to try the attack is refused,
// loudly.
func TestBudgetFull(t *testing.T) {
	type step struct {
		sig  detect.Signature
		want []string // calls made by this step
	}
	tests := []struct {
		name, max, extra string
		steps            []step
		action           string
	}{
		{"aggregate", "2", `aggregate_after = 0
  on_budget_full = ["aggregate"]`, []step{
			{ntpVectors(1, "203.0.113.10", 100), []string{"announce flowspec:dst 203.0.113.10/32" + ntpRule}},
			{ntpVectors(2, "203.0.113.20", 200), []string{"announce flowspec:dst 203.0.113.20/32" + ntpRule}},
			{ntpVectors(3, "203.0.113.30", 300), []string{
				"announce flowspec:dst 203.0.113.0/27" + ntpRule,
				"withdraw flowspec:dst 203.0.113.10/32" + ntpRule, "withdraw flowspec:dst 203.0.113.20/32" + ntpRule}},
		}, policies.BudgetAggregate},
		{"replace the smallest", "2", `on_budget_full = ["replace_smallest"]`, []step{
			{ntpVectors(1, "203.0.113.10", 200), []string{"announce flowspec:dst 203.0.113.10/32" + ntpRule}},
			{ntpVectors(2, "203.0.113.20", 100), []string{"announce flowspec:dst 203.0.113.20/32" + ntpRule}},
			{dnsVectors(3, "203.0.113.30", 50), nil}, // smaller than both: refused
			{ntpVectors(4, "203.0.113.40", 300), []string{
				"withdraw flowspec:dst 203.0.113.20/32" + ntpRule, "announce flowspec:dst 203.0.113.40/32" + ntpRule}},
		}, policies.BudgetReplace},
		{"blackhole instead", "2", `on_budget_full = ["rtbh"]`, []step{
			{ntpVectors(1, "203.0.113.10", 100), []string{"announce flowspec:dst 203.0.113.10/32" + ntpRule}},
			{dnsVectors(2, "203.0.113.20", 200), []string{"announce rtbh:203.0.113.20/32"}},
		}, policies.BudgetRTBH},
		{"refused", "1", `on_budget_full = []`, []step{
			{ntpVectors(1, "203.0.113.10", 100), []string{"announce flowspec:dst 203.0.113.10/32" + ntpRule}},
			{ntpVectors(2, "203.0.113.20", 200), nil},
		}, BudgetRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, obs := newBudgetHarness(t, tc.max, tc.extra)
				defer h.stop()
				var want []string
				for _, st := range tc.steps {
					h.send(detect.AttackStarted, st.sig)
					want = append(want, st.want...)
					h.wantCalls(want...)
				}
				if n := h.m.Stats().BudgetFull[BudgetHostgroup+"/"+tc.action]; n != 1 {
					t.Errorf("budget full counts %v, want one %s", h.m.Stats().BudgetFull, tc.action)
				}
				obs.mu.Lock()
				defer obs.mu.Unlock()
				last := obs.events[len(obs.events)-1]
				if last.Action != tc.action || last.Budget != BudgetHostgroup || last.Used > last.Limit {
					t.Errorf("observer got %+v", obs.events)
				}
				budgets, _ := h.m.Budgets(context.Background())
				for _, b := range budgets {
					if b.Budget == BudgetHostgroup && b.Used > b.Limit {
						t.Errorf("budget over its limit: %+v", b)
					}
				}
			})
		})
	}
}

// TestAggregateStaysInside: an aggregate never takes a prefix wider than
// aggregate_prefix_ipv4/ipv6, and IPv6 carpets over a /64 aggregate too.
func TestAggregateStaysInside(t *testing.T) {
	if got := covering([]netip.Prefix{netip.MustParsePrefix("2001:db8::1/128"), netip.MustParsePrefix("2001:db8::ffff:1/128")}); got.String() != "2001:db8::/96" {
		t.Errorf("covering = %s", got)
	}
	synctest.Test(t, func(t *testing.T) {
		h, _ := newBudgetHarness(t, "10", "aggregate_after = 2\n  aggregate_prefix_ipv4 = 28")
		defer h.stop()
		h.send(detect.AttackStarted, ntpVectors(1, "203.0.113.10", 1e5))
		h.send(detect.AttackStarted, ntpVectors(2, "203.0.113.20", 1e5)) // another /28: not merged
		h.send(detect.AttackStarted, ntpVectors(3, "2001:db8::1:5", 1e5))
		h.send(detect.AttackStarted, ntpVectors(4, "2001:db8::ffff:9", 1e5))
		h.wantCalls(
			"announce flowspec:dst 203.0.113.10/32"+ntpRule,
			"announce flowspec:dst 203.0.113.20/32"+ntpRule,
			"announce flowspec:dst 2001:db8::1:5/128"+ntpRule,
			"announce flowspec:dst 2001:db8::/96"+ntpRule,
			"withdraw flowspec:dst 2001:db8::1:5/128"+ntpRule)
	})
}

// TestAggregateNeverOverWhitelist: an aggregate that would match a
// whitelisted flow is not made; the hosts keep their own rules.
func TestAggregateNeverOverWhitelist(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newBudgetHarness(t, "10", `aggregate_after = 2
  whitelist_flow {
    dst      = "203.0.113.9/32"
    protocol = "udp"
    src_port = 123
  }`)
		defer h.stop()
		h.send(detect.AttackStarted, ntpVectors(1, "203.0.113.10", 1e5))
		h.send(detect.AttackStarted, ntpVectors(2, "203.0.113.11", 1e5)) // .10/31: clear of .9
		h.send(detect.AttackStarted, ntpVectors(3, "203.0.113.14", 1e5)) // .8/29 would hold .9
		h.wantCalls(
			"announce flowspec:dst 203.0.113.10/32"+ntpRule,
			"announce flowspec:dst 203.0.113.10/31"+ntpRule,
			"withdraw flowspec:dst 203.0.113.10/32"+ntpRule,
			"announce flowspec:dst 203.0.113.14/32"+ntpRule)
	})
}
