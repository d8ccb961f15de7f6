package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

// Mitigation is one active announcement and why it exists. It is what the
// store keeps.
type Mitigation struct {
	// Key is the announcement's key.
	Key string
	// Announcement is what was sent.
	Announcement flowspec.Announcement
	// Hostgroup and Response name the policy that made it ("manual" for
	// a manual ban).
	Hostgroup, Response string
	// AttackID is the attack that caused it: 0 for a manual ban, and for
	// a mitigation restored at start until detection sees its attack
	// again.
	AttackID uint64
	// Merged are the other attacks an aggregate rule stands for (a
	// carpet or a wave of same-shape attacks on several hosts).
	Merged []uint64 `json:",omitempty"`
	// Rule and Rules place the rule in its attack's rule set: rule Rule
	// of Rules (one per vector of the attack).
	Rule, Rules int `json:",omitempty"`
	// Victim is the attacked host or prefix.
	Victim netip.Prefix
	// AttackPPS is the attack's smoothed rate when the mitigation was
	// made.
	AttackPPS float64
	// Reason explains it, for operators.
	Reason string
	// Started is when it was announced; Expires when it will be
	// withdrawn unless extended.
	Started, Expires time.Time
	// Duration, Extend and Hold are the response's settings.
	Duration time.Duration
	Extend   bool
	Hold     time.Duration
	// EscalateAt, when set, is when an escalation is announced if the
	// attack is still on; Escalated records that it was.
	EscalateAt time.Time
	Escalated  bool
	// Escalation marks a mitigation announced by an escalation.
	Escalation bool
	// AttackEnded is when the attack ended (zero while it goes on, or
	// not known).
	AttackEnded time.Time
	// DryRun marks a mitigation that was logged, not sent.
	DryRun bool
	// Manual marks a ban from the CLI or API.
	Manual bool
}

// MitigatorConfig holds the mitigation loop's settings.
type MitigatorConfig struct {
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// RetryWithdraw is how long to wait before retrying a failed
	// withdrawal. Zero means 5s.
	RetryWithdraw time.Duration
}

// Announcer sends announcements to routers. The mitigation loop is its
// only caller.
type Announcer interface {
	// Announce sends a, replacing any route with the same key.
	Announce(ctx context.Context, a *flowspec.Announcement) error
	// Withdraw removes exactly the route with a's key.
	Withdraw(ctx context.Context, a *flowspec.Announcement) error
}

// MitigationStore keeps the active mitigations beyond the process: the
// bbolt Store on a single node, the mitigation topic on a detector of a
// cluster. The mitigation loop is its only caller.
type MitigationStore interface {
	// Put stores m, replacing the one with its key.
	Put(m *Mitigation) error
	// Delete removes the mitigation with key.
	Delete(key string) error
	// Load returns the stored mitigations, for the loop's start.
	Load() ([]*Mitigation, error)
}

// Observer is told about attacks and mitigations, from the mitigation
// loop: it must not block (hooks queue and return).
type Observer interface {
	AttackStarted(sig detect.Signature)
	MitigationAnnounced(mt Mitigation)
	MitigationWithdrawn(mt Mitigation)
	// BudgetFull is told when an attack's announcements did not fit a
	// budget, and what was done about it.
	BudgetFull(ev BudgetEvent)
}

// BudgetEvent tells of a budget that an attack's announcements did not
// fit.
type BudgetEvent struct {
	// Budget is the budget that was full: BudgetGlobal, BudgetHostgroup
	// or BudgetFlowSpec.
	Budget string
	// Used and Limit are its use before the attack and its size.
	Used, Limit int
	// Action is what made room (policies.BudgetAggregate, ...), or
	// BudgetRefused when nothing did.
	Action    string
	Signature detect.Signature
}

// The budgets, and the outcome of a budget that nothing could free.
const (
	BudgetGlobal    = "max_active"
	BudgetHostgroup = "max_rules"
	BudgetFlowSpec  = "max_flowspec_rules"
	BudgetRefused   = "refused"
)

// BudgetUse is one budget's use, for status.
type BudgetUse struct {
	Budget string `json:"budget"`
	// Scope is the hostgroup of a max_rules budget, else empty.
	Scope string `json:"scope,omitempty"`
	Used  int    `json:"used"`
	Limit int    `json:"limit"`
}

// AttackInfo is an attack as the mitigation loop saw it.
type AttackInfo struct {
	Signature detect.Signature
	// Ended is when the attack ended; zero while it goes on.
	Ended time.Time
}

// recentAttacks is how many ended attacks Attacks reports.
const recentAttacks = 100

// MitigatorStats are the counters of the mitigation loop.
type MitigatorStats struct {
	Active      int
	Announced   uint64
	Withdrawn   uint64
	Extended    uint64
	Escalations uint64
	Failures    uint64
	// BudgetFull counts full budgets by budget and action, as
	// "max_rules/aggregate".
	BudgetFull map[string]uint64
	// Refused counts refusals by reason (flowspec.Reason* and "cap",
	// "hostgroup_cap").
	Refused map[string]uint64
}

// Mitigator turns attack events into announcements per policy and
// withdraws them when their time has passed. Its event loop is the only
// owner of mitigation state; everything else asks it through channels.
type Mitigator struct {
	cfg       MitigatorConfig
	log       hclog.Logger
	announcer Announcer
	store     MitigationStore
	pol       atomic.Pointer[policies.Policy]
	events    <-chan detect.Event

	// Owned by the loop.
	active  map[string]*Mitigation
	attacks map[uint64]detect.Signature // attacks going on
	recent  []AttackInfo                // ended attacks, oldest first
	obs     Observer

	ops chan func(context.Context)

	announced, withdrawn, extended, escalations, failures atomic.Uint64
	refusedMu                                             sync.Mutex
	refused                                               map[string]uint64
	budgetFull                                            map[string]uint64
	activeN                                               atomic.Int64
	restored                                              atomic.Int64

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	// loop is the running loop's done channel, nil when no loop runs:
	// requests fail at once instead of waiting for a loop that is not
	// there (before Start, after Stop or a failure).
	loop atomic.Pointer[chan struct{}]
}

// ErrLoopStopped is returned by requests made while the mitigation loop is
// not running.
var ErrLoopStopped = errors.New("mitigation loop not running")

// NewMitigator returns a mitigator that reads events, keeps state in
// store and announces through announcer. It starts nothing.
func NewMitigator(cfg MitigatorConfig, pol *policies.Policy, events <-chan detect.Event, announcer Announcer, store MitigationStore, logger hclog.Logger) *Mitigator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RetryWithdraw <= 0 {
		cfg.RetryWithdraw = 5 * time.Second
	}
	m := &Mitigator{
		cfg:        cfg,
		log:        logger.Named("mitigation"),
		announcer:  announcer,
		store:      store,
		events:     events,
		active:     map[string]*Mitigation{},
		attacks:    map[uint64]detect.Signature{},
		ops:        make(chan func(context.Context)),
		refused:    map[string]uint64{},
		budgetFull: map[string]uint64{},
	}
	m.pol.Store(pol)
	return m
}

// SetObserver sets who is told about attacks and mitigations. Call it
// before Start.
func (m *Mitigator) SetObserver(o Observer) { m.obs = o }

// SetPolicy makes pol the policy for new decisions. Mitigations already
// announced keep the settings of the policy that made them.
func (m *Mitigator) SetPolicy(pol *policies.Policy) { m.pol.Store(pol) }

// Start restores the stored mitigations (re-announcing those that have not
// expired, dropping those that have) and runs the event loop until Stop or
// until ctx is done.
func (m *Mitigator) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		return errors.New("mitigation: already started")
	}
	if err := m.restore(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	m.cancel, m.done = cancel, done
	m.loop.Store(&done)
	go func() {
		defer close(done)
		m.run(ctx)
	}()
	return nil
}

// Stop ends the event loop and waits for it. With withdraw_on_shutdown
// every route is withdrawn and forgotten; otherwise the mitigations stay
// in the store and are re-announced at the next start until they expire.
func (m *Mitigator) Stop(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	select {
	case <-m.done:
	case <-ctx.Done():
		return fmt.Errorf("mitigation: stop: %w", ctx.Err())
	}
	m.loop.Store(nil)
	m.cancel = nil
	if len(m.active) == 0 {
		return nil
	}
	if m.pol.Load().Mitigation.WithdrawOnShutdown {
		for _, mt := range m.active {
			m.withdraw(ctx, mt, "shutdown")
		}
		return nil
	}
	m.log.Info("mitigations kept for the next start", "count", len(m.active),
		"note", "routes go with the BGP sessions now and are re-announced at the next start until they expire")
	return nil
}

func (m *Mitigator) restore(ctx context.Context) error {
	if m.store == nil {
		return nil
	}
	m.restored.Store(0)
	stored, err := m.store.Load()
	if err != nil {
		m.log.Error("some stored mitigations could not be read", "error", err.Error())
	}
	now := m.cfg.Now()
	pol := m.pol.Load()
	for _, mt := range stored {
		keep, err := m.takeOver(mt, now, pol, "stored")
		if err != nil {
			return err
		}
		if !keep {
			continue
		}
		if !mt.DryRun {
			if err := m.announcer.Announce(ctx, &mt.Announcement); err != nil {
				return fmt.Errorf("mitigation: re-announce %s: %w", mt.Key, err)
			}
			m.restored.Add(1)
		}
		m.active[mt.Key] = mt
		m.log.Info("restored mitigation", "announcement", mt.Announcement.String(), "expires", mt.Expires.Format(time.RFC3339), "dry_run", mt.DryRun)
	}
	m.activeN.Store(int64(len(m.active)))
	return nil
}

// takeOver prepares a mitigation that this loop did not decide (stored by
// an earlier process, or adopted from another detector) to be kept: one
// that has expired or that the policy no longer allows is deleted from
// the store instead, and keep is false.
func (m *Mitigator) takeOver(mt *Mitigation, now time.Time, pol *policies.Policy, what string) (keep bool, err error) {
	if !now.Before(mt.Expires) {
		m.log.Info(what+" mitigation has expired", "key", mt.Key, "expired", mt.Expires.Format(time.RFC3339))
		return false, m.forget(mt.Key)
	}
	if _, err := flowspec.Check(&mt.Announcement, pol); err != nil {
		m.log.Warn(what+" mitigation no longer allowed by the policy; dropped", "key", mt.Key, "error", err.Error())
		return false, m.forget(mt.Key)
	}
	// The attack's state is not ours: treat it as over, so the
	// mitigation ends at its expiry unless detection sees the attack
	// again.
	if mt.AttackEnded.IsZero() {
		mt.AttackEnded = now
	}
	// Attack ids are detection's, counted from 1 by every process: the
	// old ones would tie the mitigation to whatever attack of this
	// process has the same id, and extend it while that one lasts. A new
	// detection of its attack ties it again (extend).
	mt.AttackID, mt.Merged = 0, nil
	mt.DryRun = mt.DryRun || pol.Mitigation.DryRun
	return true, nil
}

// forget deletes key from the store.
func (m *Mitigator) forget(key string) error {
	if m.store == nil {
		return nil
	}
	if err := m.store.Delete(key); err != nil {
		return fmt.Errorf("mitigation: %w", err)
	}
	return nil
}

// Adopt takes over mitigations that another detector of a cluster decided
// and can no longer look after (it died, or its flow partitions moved
// here): each is kept as it is, extended while detection here sees its
// attack, and withdrawn at its expiry; one that has already expired is
// withdrawn now. The routes are already announced (the store is the
// mitigation topic that the speakers follow), so nothing is sent. A key
// already active here is left as it is. It returns how many it kept.
func (m *Mitigator) Adopt(ctx context.Context, mts []Mitigation) (int, error) {
	n := 0
	err := m.do(ctx, func(context.Context) {
		now, pol := m.cfg.Now(), m.pol.Load()
		for i := range mts {
			mt := mts[i]
			if _, ok := m.active[mt.Key]; ok {
				continue
			}
			keep, err := m.takeOver(&mt, now, pol, "adopted")
			if err != nil {
				m.failures.Add(1)
				m.log.Error("cannot adopt mitigation", "key", mt.Key, "error", err.Error())
				continue
			}
			if keep {
				m.active[mt.Key] = &mt
				n++
				m.log.Info("adopted mitigation", "announcement", mt.Announcement.String(), "expires", mt.Expires.Format(time.RFC3339))
			}
		}
		m.activeN.Store(int64(len(m.active)))
	})
	return n, err
}

// Release forgets, without withdrawing them, the active mitigations for
// which drop is true: another detector of the cluster looks after them
// now. It returns how many it released.
func (m *Mitigator) Release(ctx context.Context, drop func(*Mitigation) bool) (int, error) {
	n := 0
	err := m.do(ctx, func(context.Context) {
		for k, mt := range m.active {
			if drop(mt) {
				delete(m.active, k)
				n++
			}
		}
		m.activeN.Store(int64(len(m.active)))
	})
	return n, err
}

// Restored is how many stored mitigations the last Start announced again.
func (m *Mitigator) Restored() int { return int(m.restored.Load()) }

// do runs f in the event loop and waits for it.
func (m *Mitigator) do(ctx context.Context, f func(context.Context)) error {
	loop := m.loop.Load()
	if loop == nil {
		return ErrLoopStopped
	}
	done := make(chan struct{})
	op := func(ctx context.Context) { f(ctx); close(done) }
	select {
	case m.ops <- op:
	case <-*loop:
		return ErrLoopStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Active returns the active mitigations, ordered by start time.
func (m *Mitigator) Active(ctx context.Context) ([]Mitigation, error) {
	var out []Mitigation
	err := m.do(ctx, func(context.Context) {
		for _, mt := range m.active {
			out = append(out, *mt)
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Started.Equal(out[j].Started) {
			return out[i].Key < out[j].Key
		}
		return out[i].Started.Before(out[j].Started)
	})
	return out, err
}

// Attacks returns the attacks going on, then the last ended ones, newest
// first.
func (m *Mitigator) Attacks(ctx context.Context) (active, recent []AttackInfo, err error) {
	err = m.do(ctx, func(context.Context) {
		for _, s := range m.attacks {
			active = append(active, AttackInfo{Signature: s})
		}
		for i := len(m.recent) - 1; i >= 0; i-- {
			recent = append(recent, m.recent[i])
		}
	})
	sort.Slice(active, func(i, j int) bool { return active[i].Signature.ID < active[j].Signature.ID })
	return active, recent, err
}

// Stats returns the loop's counters.
func (m *Mitigator) Stats() MitigatorStats {
	m.refusedMu.Lock()
	refused := make(map[string]uint64, len(m.refused))
	for k, v := range m.refused {
		refused[k] = v
	}
	full := make(map[string]uint64, len(m.budgetFull))
	for k, v := range m.budgetFull {
		full[k] = v
	}
	m.refusedMu.Unlock()
	return MitigatorStats{
		Active: int(m.activeN.Load()), Announced: m.announced.Load(), Withdrawn: m.withdrawn.Load(),
		Extended: m.extended.Load(), Escalations: m.escalations.Load(), Failures: m.failures.Load(), Refused: refused,
		BudgetFull: full,
	}
}

func (m *Mitigator) refuse(reason string) {
	m.refusedMu.Lock()
	m.refused[reason]++
	m.refusedMu.Unlock()
}

func (m *Mitigator) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.activeN.Store(int64(len(m.active)))
		timer.Reset(m.nextWake())
		select {
		case <-ctx.Done():
			return
		case ev := <-m.events:
			m.handle(ctx, ev)
		case <-timer.C:
			m.wake(ctx)
		case op := <-m.ops:
			op(ctx)
		}
	}
}

// nextWake returns how long until the earliest expiry or escalation.
func (m *Mitigator) nextWake() time.Duration {
	now := m.cfg.Now()
	next := time.Hour
	for _, mt := range m.active {
		next = min(next, mt.Expires.Sub(now))
		if !mt.EscalateAt.IsZero() && !mt.Escalated {
			next = min(next, mt.EscalateAt.Sub(now))
		}
	}
	return max(next, 0)
}

func (m *Mitigator) handle(ctx context.Context, ev detect.Event) {
	sig := ev.Signature
	now := m.cfg.Now()
	switch ev.Kind {
	case detect.AttackStarted:
		m.attacks[sig.ID] = sig
		if m.obs != nil {
			m.obs.AttackStarted(sig)
		}
		m.respond(ctx, sig, now)
	case detect.AttackUpdated:
		m.attacks[sig.ID] = sig
		m.refine(ctx, sig, now)
	case detect.AttackEnded:
		delete(m.attacks, sig.ID)
		m.recent = append(m.recent, AttackInfo{Signature: sig, Ended: now})
		if len(m.recent) > recentAttacks {
			m.recent = slices.Delete(m.recent, 0, len(m.recent)-recentAttacks)
		}
		for _, mt := range m.active {
			if !mt.hasAttack(sig.ID) || !mt.AttackEnded.IsZero() || m.ongoing(mt) {
				continue
			}
			mt.AttackEnded = now
			if end := now.Add(mt.Hold); end.After(mt.Expires) {
				mt.Expires = end
			}
			m.persist(mt)
		}
	}
}

// attackView is what response conditions see of a signature.
func attackView(s *detect.Signature) policies.Attack {
	return policies.Attack{
		Victim:          s.Victim.Addr().String(),
		IPVersion:       map[bool]int{true: 4, false: 6}[s.Victim.Addr().Is4()],
		Direction:       s.Direction.String(),
		Hostgroup:       s.Hostgroup,
		Protocol:        s.Dominant(),
		PPS:             s.PPS,
		BPS:             s.BPS,
		Flows:           s.Flows,
		PeakPPS:         s.PeakPPS,
		PeakBPS:         s.PeakBPS,
		Share:           map[string]float64{"tcp": s.TCP, "tcp_syn": s.TCPSYN, "udp": s.UDP, "icmp": s.ICMP, "fragment": s.Fragment, "other": s.Other},
		TopSrcPort:      policies.PortShare{Port: detect.Top(s.SrcPorts).Value, Share: detect.Top(s.SrcPorts).Share},
		TopDstPort:      policies.PortShare{Port: detect.Top(s.DstPorts).Value, Share: detect.Top(s.DstPorts).Share},
		AvgPacketLength: s.AvgLength,
		Reason:          s.Reason,
	}
}

// match returns the first response of the attack's hostgroup whose
// condition holds.
func (m *Mitigator) match(pol *policies.Policy, sig *detect.Signature) (*policies.Hostgroup, *policies.Response) {
	hg, ok := pol.Hostgroup(sig.Hostgroup)
	if !ok {
		if hg, ok = pol.Covering(sig.Victim); !ok {
			return nil, nil
		}
	}
	view := attackView(sig)
	for _, r := range hg.Responses {
		ok, err := r.When.Match(view)
		if err != nil {
			m.log.Warn("response condition failed", "response", r.Name, "error", err.Error())
			continue
		}
		if ok {
			return hg, r
		}
	}
	return hg, nil
}

func (m *Mitigator) respond(ctx context.Context, sig detect.Signature, now time.Time) {
	pol := m.pol.Load()
	hg, r := m.match(pol, &sig)
	switch {
	case hg == nil:
		m.log.Warn("attack outside every hostgroup of the policy", "victim", sig.Victim.String())
		return
	case r == nil:
		m.log.Info("no response matched: not mitigated", "attack", sig.ID, "victim", sig.Victim.String(), "hostgroup", hg.Name)
		return
	case !r.Mitigates():
		m.log.Info("response mitigates nothing", "attack", sig.ID, "victim", sig.Victim.String(), "response", r.Name)
		return
	case sig.Direction != detect.Incoming:
		m.log.Info("outgoing attack: not mitigated (announcements protect the destination)", "attack", sig.ID,
			"host", sig.Victim.Addr().String(), "response", r.Name)
		return
	}
	m.announceAll(ctx, pol, hg, r, r.FlowSpec, r.RTBH, &sig, now, false)
}

// announceAll announces what a response (or its escalation) asks for:
// flowspec.Plan makes and checks the announcements, applySet fits them in
// the budgets.
func (m *Mitigator) announceAll(ctx context.Context, pol *policies.Policy, hg *policies.Hostgroup, r *policies.Response,
	fs *policies.FlowSpecAction, rt *policies.RTBHAction, sig *detect.Signature, now time.Time, escalation bool) {
	set, refused := flowspec.Plan(sig, fs, rt, pol)
	for _, rf := range refused {
		m.refuse(rf.Reason)
		if rf.Announcement != nil {
			m.log.Warn("announcement refused", "announcement", rf.Announcement.String(), "response", r.Name, "error", rf.Err.Error())
		} else {
			m.log.Warn("announcement refused", "response", r.Name, "victim", sig.Victim.String(), "error", rf.Err.Error())
		}
	}
	m.applySet(ctx, pol, hg, r, set, sig, now, escalation)
}

func (m *Mitigator) countHostgroup(name string) int {
	n := 0
	for _, mt := range m.active {
		if mt.Hostgroup == name {
			n++
		}
	}
	return n
}

// applySet takes an attack's checked set (flowspec.Plan), extends the
// announcements already active, and announces the others when they fit
// every budget;
// when they do not, the hostgroup's on_budget_full actions are tried in
// turn, and an attack nothing makes room for is refused loudly.
func (m *Mitigator) applySet(ctx context.Context, pol *policies.Policy, hg *policies.Hostgroup, r *policies.Response,
	set []flowspec.Announcement, sig *detect.Signature, now time.Time, escalation bool) {
	var fresh []flowspec.Announcement
	for i := range set {
		a := &set[i]
		if mt, ok := m.active[a.Key()]; ok {
			m.extend(mt, sig, r.Duration, now)
			continue
		}
		if mt := m.coveringAggregate(a, hg.Name); mt != nil {
			m.extend(mt, sig, r.Duration, now)
			continue
		}
		fresh = append(fresh, *a)
	}
	if len(fresh) == 0 {
		return
	}
	if hg.Aggregate.After > 0 {
		fresh = m.aggregate(ctx, pol, hg, r, fresh, sig, now, escalation, hg.Aggregate.After)
	}
	full := m.budgets(pol, hg, fresh)
	if full != nil {
		tried := map[string]bool{}
		for _, act := range hg.OnBudgetFull {
			if tried[act] {
				continue
			}
			tried[act] = true
			switch act {
			case policies.BudgetAggregate:
				fresh = m.aggregate(ctx, pol, hg, r, fresh, sig, now, escalation, 2)
			case policies.BudgetReplace:
				m.replaceSmallest(ctx, pol, hg, full, fresh, sig)
			case policies.BudgetRTBH:
				fresh = m.asRTBH(pol, hg, r, fresh, sig)
			}
			if m.budgets(pol, hg, fresh) == nil {
				m.budgetFullEvent(*full, act, sig)
				full = nil
				break
			}
		}
		if full != nil {
			m.budgetFullEvent(*full, BudgetRefused, sig)
			for _, a := range fresh {
				m.refuse("budget_full")
				m.log.Warn("announcement refused: budget full", "announcement", a.String(), "attack", sig.ID,
					"budget", full.Budget, "scope", full.Scope, "used", full.Used, "limit", full.Limit,
					"tried", strings.Join(hg.OnBudgetFull, ","))
			}
			return
		}
	}
	for i, a := range fresh {
		mt := m.newMitigation(pol, hg, r, a, sig, now, escalation)
		mt.Rule, mt.Rules = i+1, len(fresh)
		m.announce(ctx, mt)
	}
}

// extend ties mt to the attack and pushes its expiry to now+d.
func (m *Mitigator) extend(mt *Mitigation, sig *detect.Signature, d time.Duration, now time.Time) {
	if !mt.hasAttack(sig.ID) {
		if mt.AttackID != 0 {
			mt.Merged = append(mt.Merged, mt.AttackID)
		}
		mt.AttackID = sig.ID
	}
	mt.AttackEnded = time.Time{}
	if exp := now.Add(d); exp.After(mt.Expires) {
		mt.Expires = exp
	}
	m.extended.Add(1)
	m.persist(mt)
	m.log.Info("mitigation extended", "key", mt.Key, "attack", sig.ID, "expires", mt.Expires.Format(time.RFC3339))
}

func (m *Mitigator) newMitigation(pol *policies.Policy, hg *policies.Hostgroup, r *policies.Response,
	a flowspec.Announcement, sig *detect.Signature, now time.Time, escalation bool) *Mitigation {
	mt := &Mitigation{
		Key: a.Key(), Announcement: a, Hostgroup: hg.Name, Response: r.Name, AttackID: sig.ID, Victim: sig.Victim, AttackPPS: sig.PPS,
		Reason:  fmt.Sprintf("attack %d on %s (%s): %s", sig.ID, sig.Victim, sig.Direction, sig.Reason),
		Started: now, Expires: now.Add(r.Duration), Duration: r.Duration, Extend: r.Extend, Hold: r.Hold,
		Escalation: escalation, DryRun: pol.Mitigation.DryRun,
	}
	if r.Escalate != nil && !escalation {
		mt.EscalateAt = now.Add(r.Escalate.After)
	}
	return mt
}

// hasAttack reports whether mt stands for attack id.
func (mt *Mitigation) hasAttack(id uint64) bool {
	return mt.AttackID == id || slices.Contains(mt.Merged, id)
}

// ongoing reports whether any attack mt stands for goes on.
func (m *Mitigator) ongoing(mt *Mitigation) bool {
	if _, ok := m.attacks[mt.AttackID]; ok {
		return true
	}
	for _, id := range mt.Merged {
		if _, ok := m.attacks[id]; ok {
			return true
		}
	}
	return false
}

// announce stores mt, then sends it; a mitigation that cannot be stored
// is not sent, so the store always accounts for every route.
func (m *Mitigator) announce(ctx context.Context, mt *Mitigation) bool {
	if m.store != nil {
		if err := m.store.Put(mt); err != nil {
			m.failures.Add(1)
			m.log.Error("cannot store mitigation: not announced", "key", mt.Key, "error", err.Error())
			return false
		}
	}
	if mt.DryRun {
		m.log.Info("dry run: would announce", "announcement", mt.Announcement.String(), "duration", mt.Duration.String(), "reason", mt.Reason)
	} else if err := m.announcer.Announce(ctx, &mt.Announcement); err != nil {
		m.failures.Add(1)
		m.log.Error("announce failed", "announcement", mt.Announcement.String(), "error", err.Error())
		if m.store != nil {
			_ = m.store.Delete(mt.Key)
		}
		return false
	} else {
		m.log.Info("announced", "announcement", mt.Announcement.String(), "hostgroup", mt.Hostgroup, "response", mt.Response,
			"duration", mt.Duration.String(), "reason", mt.Reason)
	}
	m.announced.Add(1)
	m.active[mt.Key] = mt
	if m.obs != nil {
		m.obs.MitigationAnnounced(*mt)
	}
	return true
}

func (m *Mitigator) persist(mt *Mitigation) {
	if m.store == nil {
		return
	}
	if err := m.store.Put(mt); err != nil {
		m.failures.Add(1)
		m.log.Error("cannot update stored mitigation", "key", mt.Key, "error", err.Error())
	}
}

// withdraw sends the withdrawal and forgets mt; on failure it retries later.
func (m *Mitigator) withdraw(ctx context.Context, mt *Mitigation, why string) bool {
	if !mt.DryRun {
		if err := m.announcer.Withdraw(ctx, &mt.Announcement); err != nil {
			m.failures.Add(1)
			mt.Expires = m.cfg.Now().Add(m.cfg.RetryWithdraw)
			m.log.Error("withdraw failed, will retry", "key", mt.Key, "retry_in", m.cfg.RetryWithdraw.String(), "error", err.Error())
			return false
		}
	}
	if m.store != nil {
		if err := m.store.Delete(mt.Key); err != nil {
			m.failures.Add(1)
			m.log.Error("cannot delete stored mitigation", "key", mt.Key, "error", err.Error())
		}
	}
	delete(m.active, mt.Key)
	m.withdrawn.Add(1)
	if m.obs != nil {
		m.obs.MitigationWithdrawn(*mt)
	}
	m.log.Info("withdrawn", "announcement", mt.Announcement.String(), "why", why,
		"active_for", m.cfg.Now().Sub(mt.Started).Round(time.Millisecond).String(), "dry_run", mt.DryRun)
	return true
}

// refine replaces an attack's FlowSpec rule set when an updated
// signature calls for another one: the new rules are announced before the
// old ones are withdrawn, and the two sets are never both kept. Aggregate
// rules, which stand for several attacks, are left as they are.
func (m *Mitigator) refine(ctx context.Context, sig detect.Signature, now time.Time) {
	pol := m.pol.Load()
	type setKey struct {
		response   string
		escalation bool
	}
	sets := map[setKey][]*Mitigation{}
	for _, mt := range m.active {
		if mt.AttackID != sig.ID || mt.Manual || len(mt.Merged) > 0 || mt.Announcement.Kind != flowspec.FlowSpec {
			continue
		}
		k := setKey{mt.Response, mt.Escalation}
		sets[k] = append(sets[k], mt)
	}
	for k, old := range sets {
		hg, ok := pol.Hostgroup(old[0].Hostgroup)
		if !ok {
			continue
		}
		act := responseFlowSpec(hg, k.response, k.escalation)
		if act == nil {
			continue
		}
		next, refused := flowspec.Plan(&sig, act, nil, pol)
		if len(refused) > 0 {
			m.log.Warn("refined rule refused; keeping the current set", "attack", sig.ID, "error", refused[0].Err.Error())
			next = nil
		}
		if len(next) == 0 || sameKeys(old, next) {
			continue
		}
		kept := map[string]bool{}
		var fresh []flowspec.Announcement
		for _, a := range next {
			if mt, ok := m.active[a.Key()]; ok {
				kept[a.Key()] = mt.AttackID == sig.ID
				continue
			}
			fresh = append(fresh, a)
		}
		if grow := len(fresh) - len(old); grow > 0 && m.budgets(pol, hg, fresh[:grow]) != nil {
			m.log.Warn("refined rule set does not fit the budget; keeping the current set", "attack", sig.ID)
			continue
		}
		announced := true
		for i, a := range fresh {
			mt := *old[0]
			mt.Key, mt.Announcement, mt.Started, mt.Victim = a.Key(), a, now, sig.Victim
			mt.Rule, mt.Rules = i+1, len(next)
			if !m.announce(ctx, &mt) {
				announced = false
				break
			}
		}
		if !announced {
			continue
		}
		var olds, news []string
		for _, mt := range old {
			olds = append(olds, mt.Announcement.String())
		}
		for _, a := range next {
			news = append(news, a.String())
		}
		m.log.Info("rule set refined", "attack", sig.ID, "old", strings.Join(olds, "; "), "new", strings.Join(news, "; "))
		for _, mt := range old {
			if !kept[mt.Key] {
				m.withdraw(ctx, mt, "replaced by a refined rule set")
			}
		}
	}
}

// sameKeys reports whether the mitigations and the announcements have the
// same keys.
func sameKeys(mts []*Mitigation, as []flowspec.Announcement) bool {
	if len(mts) != len(as) {
		return false
	}
	for _, a := range as {
		if !slices.ContainsFunc(mts, func(mt *Mitigation) bool { return mt.Key == a.Key() }) {
			return false
		}
	}
	return true
}

func responseFlowSpec(hg *policies.Hostgroup, name string, escalation bool) *policies.FlowSpecAction {
	for _, r := range hg.Responses {
		if r.Name != name {
			continue
		}
		if escalation {
			if r.Escalate != nil {
				return r.Escalate.FlowSpec
			}
			return nil
		}
		return r.FlowSpec
	}
	return nil
}

// wake handles expiries and escalations that are due.
func (m *Mitigator) wake(ctx context.Context) {
	now := m.cfg.Now()
	pol := m.pol.Load()
	keys := make([]string, 0, len(m.active))
	for k := range m.active {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		mt, ok := m.active[k]
		if !ok {
			continue
		}
		sig, ok := m.attacks[mt.AttackID]
		ongoing := m.ongoing(mt) && mt.AttackEnded.IsZero()
		if !mt.EscalateAt.IsZero() && !mt.Escalated && !now.Before(mt.EscalateAt) {
			mt.Escalated = true
			m.persist(mt)
			if ongoing && ok {
				m.escalate(ctx, pol, mt, &sig, now)
			}
		}
		if now.Before(mt.Expires) {
			continue
		}
		if ongoing && mt.Extend {
			mt.Expires = now.Add(mt.Duration)
			m.extended.Add(1)
			m.persist(mt)
			m.log.Info("attack still on: mitigation extended", "key", k, "expires", mt.Expires.Format(time.RFC3339))
			continue
		}
		m.withdraw(ctx, mt, "expired")
	}
}

func (m *Mitigator) escalate(ctx context.Context, pol *policies.Policy, mt *Mitigation, sig *detect.Signature, now time.Time) {
	hg, ok := pol.Hostgroup(mt.Hostgroup)
	if !ok {
		return
	}
	for _, r := range hg.Responses {
		if r.Name != mt.Response || r.Escalate == nil {
			continue
		}
		m.escalations.Add(1)
		m.log.Info("attack still on: escalating", "attack", sig.ID, "response", r.Name, "after", r.Escalate.After.String())
		m.announceAll(ctx, pol, hg, r, r.Escalate.FlowSpec, r.Escalate.RTBH, sig, now, true)
	}
}

// Ban is a manual mitigation request.
type Ban struct {
	// Announcement is what to announce (an RTBH route or a FlowSpec
	// rule); it passes the same safety checks as automatic ones.
	Announcement flowspec.Announcement
	// Duration is how long it lasts.
	Duration time.Duration
	// Reason is kept with it.
	Reason string
}

// ErrNotFound reports an unban of an unknown key.
var ErrNotFound = errors.New("no such mitigation")

// Ban announces a manual mitigation, or extends the one with the same key.
func (m *Mitigator) Ban(ctx context.Context, b Ban) (Mitigation, error) {
	var out Mitigation
	var err error
	derr := m.do(ctx, func(ctx context.Context) {
		pol := m.pol.Load()
		var hg *policies.Hostgroup
		if hg, err = flowspec.Check(&b.Announcement, pol); err != nil {
			var re *flowspec.RefusedError
			if errors.As(err, &re) {
				m.refuse(re.Reason)
			}
			return
		}
		now := m.cfg.Now()
		key := b.Announcement.Key()
		if mt, ok := m.active[key]; ok {
			if exp := now.Add(b.Duration); exp.After(mt.Expires) {
				mt.Expires = exp
			}
			m.persist(mt)
			out = *mt
			return
		}
		if len(m.active) >= pol.Mitigation.MaxActive {
			m.refuse("cap")
			err = fmt.Errorf("%w: %d mitigations active, the global cap", flowspec.ErrRefused, len(m.active))
			return
		}
		mt := &Mitigation{Key: key, Announcement: b.Announcement, Hostgroup: hg.Name, Response: "manual", Victim: b.Announcement.Destination(),
			Reason: b.Reason, Started: now, Expires: now.Add(b.Duration), Duration: b.Duration, AttackEnded: now,
			Manual: true, DryRun: pol.Mitigation.DryRun}
		if !m.announce(ctx, mt) {
			err = errors.New("announce failed; see the log")
			return
		}
		out = *mt
	})
	if derr != nil {
		return out, derr
	}
	return out, err
}

// Unban withdraws the mitigation with key, manual or not.
func (m *Mitigator) Unban(ctx context.Context, key string) error {
	var err error
	derr := m.do(ctx, func(ctx context.Context) {
		mt, ok := m.active[key]
		if !ok {
			err = fmt.Errorf("%w: %s", ErrNotFound, key)
			return
		}
		if !m.withdraw(ctx, mt, "unban") {
			err = errors.New("withdraw failed; it will be retried")
		}
	})
	if derr != nil {
		return derr
	}
	return err
}
