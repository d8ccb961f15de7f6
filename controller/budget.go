package controller

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

// The rule budgets bound what the routers are asked to hold: every
// mitigation (max_active), those of one hostgroup (its max_rules), and the
// FlowSpec rules each neighbour is sent (its max_flowspec_rules; all
// neighbours get the same rules, so the smallest limit binds). When an
// attack's announcements do not fit, the hostgroup's on_budget_full
// actions run in order; whatever happens is logged, counted and told to
// hooks, never dropped in silence.

// budgets returns the first budget that fresh does not fit, with its use
// before fresh, or nil when all fit.
func (m *Mitigator) budgets(pol *policies.Policy, hg *policies.Hostgroup, fresh []flowspec.Announcement) *BudgetUse {
	if n := len(m.active); n+len(fresh) > pol.Mitigation.MaxActive {
		return &BudgetUse{Budget: BudgetGlobal, Used: n, Limit: pol.Mitigation.MaxActive}
	}
	if n := m.countHostgroup(hg.Name); n+len(fresh) > hg.MaxRules {
		return &BudgetUse{Budget: BudgetHostgroup, Scope: hg.Name, Used: n, Limit: hg.MaxRules}
	}
	if limit, ok := FlowSpecLimit(pol); ok {
		n, add := m.countFlowSpec(), 0
		for i := range fresh {
			if fresh[i].Kind == flowspec.FlowSpec {
				add++
			}
		}
		if add > 0 && n+add > limit {
			return &BudgetUse{Budget: BudgetFlowSpec, Used: n, Limit: limit}
		}
	}
	return nil
}

// FlowSpecLimit is the smallest max_flowspec_rules of the neighbours that
// are sent FlowSpec rules.
func FlowSpecLimit(pol *policies.Policy) (int, bool) {
	limit, ok := 0, false
	for _, n := range pol.BGP.Neighbors {
		if !slices.Contains(n.Announce, policies.KindFlowSpec) || n.MaxFlowSpec <= 0 {
			continue
		}
		if !ok || n.MaxFlowSpec < limit {
			limit, ok = n.MaxFlowSpec, true
		}
	}
	return limit, ok
}

func (m *Mitigator) countFlowSpec() int {
	n := 0
	for _, mt := range m.active {
		if mt.Announcement.Kind == flowspec.FlowSpec {
			n++
		}
	}
	return n
}

// budgetFullEvent counts, logs and tells hooks that a budget was full
// and what was done.
func (m *Mitigator) budgetFullEvent(full BudgetUse, action string, sig *detect.Signature) {
	m.refusedMu.Lock()
	m.budgetFull[full.Budget+"/"+action]++
	m.refusedMu.Unlock()
	m.log.Warn("budget full", "budget", full.Budget, "scope", full.Scope, "used", full.Used, "limit", full.Limit,
		"action", action, "attack", sig.ID, "victim", sig.Victim.String())
	if m.obs != nil {
		m.obs.BudgetFull(BudgetEvent{Budget: full.Budget, Used: full.Used, Limit: full.Limit, Action: action, Signature: *sig})
	}
}

// Budgets returns each budget's use: the global one, the FlowSpec one
// (when a neighbour is sent FlowSpec) and every hostgroup's.
func (m *Mitigator) Budgets(ctx context.Context) ([]BudgetUse, error) {
	var out []BudgetUse
	err := m.do(ctx, func(context.Context) {
		pol := m.pol.Load()
		out = append(out, BudgetUse{Budget: BudgetGlobal, Used: len(m.active), Limit: pol.Mitigation.MaxActive})
		if limit, ok := FlowSpecLimit(pol); ok {
			out = append(out, BudgetUse{Budget: BudgetFlowSpec, Used: m.countFlowSpec(), Limit: limit})
		}
		for _, hg := range pol.Hostgroups {
			out = append(out, BudgetUse{Budget: BudgetHostgroup, Scope: hg.Name, Used: m.countHostgroup(hg.Name), Limit: hg.MaxRules})
		}
	})
	return out, err
}

// shapeKey identifies an announcement's rule and action without its
// destination: attacks with equal shape keys are the same attack on
// other hosts.
func shapeKey(a *flowspec.Announcement) (string, bool) {
	if a.Kind != flowspec.FlowSpec || a.Rule == nil {
		return "", false
	}
	r := *a.Rule
	r.Dst = netip.Prefix{}
	return r.String() + " then " + a.Action.String(), true
}

// aggregateLimit is the widest prefix an aggregate around addr may take.
func aggregateLimit(hg *policies.Hostgroup, addr netip.Addr) netip.Prefix {
	bits := hg.Aggregate.MaxPrefix4
	if addr.Is6() {
		bits = hg.Aggregate.MaxPrefix6
	}
	p, _ := addr.Prefix(bits)
	return p
}

// covering returns the smallest prefix that holds every prefix of ps.
func covering(ps []netip.Prefix) netip.Prefix {
	out := ps[0]
	for _, p := range ps[1:] {
		bits := min(out.Bits(), p.Bits())
		for bits > 0 {
			q, _ := p.Addr().Prefix(bits)
			if q.Contains(out.Addr()) {
				break
			}
			bits--
		}
		out, _ = p.Addr().Prefix(bits)
	}
	return out
}

// coveringAggregate returns the active aggregate rule of the hostgroup
// with a's shape whose destination holds a's.
func (m *Mitigator) coveringAggregate(a *flowspec.Announcement, hostgroup string) *Mitigation {
	key, ok := shapeKey(a)
	if !ok {
		return nil
	}
	dst := a.Rule.Dst
	for _, mt := range m.active {
		if mt.Hostgroup != hostgroup || mt.Manual {
			continue
		}
		if k, ok := shapeKey(&mt.Announcement); ok && k == key {
			if d := mt.Announcement.Rule.Dst; d.Bits() < dst.Bits() && d.Contains(dst.Addr()) {
				return mt
			}
		}
	}
	return nil
}

// aggregate turns each FlowSpec announcement of fresh that shares its
// shape with active rules on other hosts of the hostgroup (need hosts in
// all, within the aggregate prefix limit) into one rule for the smallest
// prefix holding them all, announced before the host rules it replaces
// are withdrawn (so a full budget is exceeded by one rule for a moment).
// It returns what is left of fresh.
func (m *Mitigator) aggregate(ctx context.Context, pol *policies.Policy, hg *policies.Hostgroup, r *policies.Response,
	fresh []flowspec.Announcement, sig *detect.Signature, now time.Time, escalation bool, need int) []flowspec.Announcement {
	var out []flowspec.Announcement
	for i := range fresh {
		a := &fresh[i]
		key, ok := shapeKey(a)
		if !ok {
			out = append(out, *a)
			continue
		}
		dst := a.Rule.Dst
		limit := aggregateLimit(hg, dst.Addr())
		var peers []*Mitigation
		for _, mt := range m.active {
			if mt.Hostgroup != hg.Name || mt.Manual {
				continue
			}
			if k, ok := shapeKey(&mt.Announcement); ok && k == key {
				if d := mt.Announcement.Rule.Dst; d != dst && d.Bits() >= limit.Bits() && limit.Contains(d.Addr()) {
					peers = append(peers, mt)
				}
			}
		}
		if len(peers)+1 < need || dst.Bits() < limit.Bits() {
			out = append(out, *a)
			continue
		}
		sort.Slice(peers, func(i, j int) bool { return peers[i].Key < peers[j].Key })
		ps := []netip.Prefix{dst}
		for _, mt := range peers {
			ps = append(ps, mt.Announcement.Rule.Dst)
		}
		rule := *a.Rule
		rule.Dst = covering(ps)
		agg := *a
		agg.Rule = &rule
		if hgOf, err := flowspec.Check(&agg, pol); err != nil || hgOf.Name != hg.Name {
			out = append(out, *a)
			continue
		}
		if !m.announceAggregate(ctx, pol, hg, r, agg, peers, sig, now, escalation) {
			out = append(out, *a)
		}
	}
	return out
}

func (m *Mitigator) announceAggregate(ctx context.Context, pol *policies.Policy, hg *policies.Hostgroup, r *policies.Response,
	agg flowspec.Announcement, peers []*Mitigation, sig *detect.Signature, now time.Time, escalation bool) bool {
	mt, exists := m.active[agg.Key()]
	if !exists {
		mt = m.newMitigation(pol, hg, r, agg, sig, now, escalation)
		mt.Victim = agg.Rule.Dst
		mt.Reason = fmt.Sprintf("aggregate of %d attacks of one shape in %s (last: attack %d on %s: %s)",
			len(peers)+1, agg.Rule.Dst, sig.ID, sig.Victim, sig.Reason)
	}
	for _, p := range peers {
		for _, id := range append([]uint64{p.AttackID}, p.Merged...) {
			if id != 0 && !mt.hasAttack(id) {
				mt.Merged = append(mt.Merged, id)
			}
		}
		if p.Expires.After(mt.Expires) {
			mt.Expires = p.Expires
		}
		mt.AttackPPS += p.AttackPPS
	}
	if exists {
		m.extend(mt, sig, r.Duration, now)
	} else if !m.announce(ctx, mt) {
		return false
	}
	m.log.Info("attacks aggregated", "announcement", agg.String(), "hosts", len(peers)+1, "attacks", len(mt.Merged)+1)
	for _, p := range peers {
		m.withdraw(ctx, p, "merged into "+agg.Rule.Dst.String())
	}
	return true
}

// replaceSmallest withdraws the mitigations of the smallest attacks in
// the full budget's scope, smaller than sig, until fresh fits.
func (m *Mitigator) replaceSmallest(ctx context.Context, pol *policies.Policy, hg *policies.Hostgroup, full *BudgetUse,
	fresh []flowspec.Announcement, sig *detect.Signature) {
	inScope := func(mt *Mitigation) bool {
		switch full.Budget {
		case BudgetHostgroup:
			return mt.Hostgroup == hg.Name
		case BudgetFlowSpec:
			return mt.Announcement.Kind == flowspec.FlowSpec
		}
		return true
	}
	for m.budgets(pol, hg, fresh) != nil {
		var victim *Mitigation
		for _, mt := range m.active {
			if mt.Manual || mt.AttackID == 0 || mt.hasAttack(sig.ID) || !inScope(mt) || mt.AttackPPS >= sig.PPS {
				continue
			}
			if victim == nil || mt.AttackPPS < victim.AttackPPS || (mt.AttackPPS == victim.AttackPPS && mt.Key < victim.Key) {
				victim = mt
			}
		}
		if victim == nil {
			return
		}
		id := victim.AttackID
		for _, mt := range m.active {
			if mt.AttackID == id && !mt.Manual && inScope(mt) {
				m.withdraw(ctx, mt, fmt.Sprintf("replaced by attack %d (%.0f pps): budget %s full", sig.ID, sig.PPS, full.Budget))
			}
		}
	}
}

// asRTBH replaces the FlowSpec announcements of fresh with one blackhole
// route for the victim (the response's rtbh settings, or the host).
func (m *Mitigator) asRTBH(pol *policies.Policy, hg *policies.Hostgroup, r *policies.Response,
	fresh []flowspec.Announcement, sig *detect.Signature) []flowspec.Announcement {
	var out []flowspec.Announcement
	for _, a := range fresh {
		if a.Kind != flowspec.FlowSpec {
			out = append(out, a)
		}
	}
	if len(out) == len(fresh) {
		return fresh
	}
	rt := r.RTBH
	if rt == nil {
		rt = &policies.RTBHAction{PrefixLength4: 32, PrefixLength6: 128}
	}
	p, ok := flowspec.RTBHPrefix(sig.Victim, rt)
	if !ok {
		return fresh
	}
	b := flowspec.NewRTBH(p, pol.BGP, rt.Communities)
	if hgOf, err := flowspec.Check(&b, pol); err != nil || hgOf.Name != hg.Name {
		return fresh
	}
	if slices.ContainsFunc(out, func(x flowspec.Announcement) bool { return x.Key() == b.Key() }) {
		return out
	}
	if _, active := m.active[b.Key()]; active {
		return out
	}
	return append(out, b)
}
