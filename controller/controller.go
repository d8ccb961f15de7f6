// Package controller owns the daemon: it wires sources, detection and the
// embedded BGP speaker together, runs the mitigation state machine
// (announce on attack, extend while it lasts, withdraw when the ban time has
// passed), and holds all mutable control-plane state in one event loop.
package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

// Mitigation is one active announcement and why it exists.
type Mitigation struct {
	// Key is the announcement's key.
	Key string
	// Announcement is what was sent.
	Announcement flowspec.Announcement
	// Hostgroup is the hostgroup the prefix is in.
	Hostgroup string
	// AttackID is the attack that caused it.
	AttackID uint64
	// Reason explains it, for operators.
	Reason string
	// Started is when it was announced; Expires when it will be
	// withdrawn unless extended.
	Started, Expires time.Time
	// DryRun marks a mitigation that was logged, not sent.
	DryRun bool
}

// MitigatorConfig holds the mitigation loop's settings.
type MitigatorConfig struct {
	// MaxActive caps the active mitigations; further ones are refused
	// and counted. Zero means DefaultMaxActive.
	MaxActive int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// DefaultMaxActive is the default cap on active mitigations.
const DefaultMaxActive = 10000

// Mitigator turns attack events into announcements and withdraws them when
// their ban time has passed. Its event loop is the only owner of mitigation
// state; everything else asks it through channels.
type Mitigator struct {
	cfg       MitigatorConfig
	log       hclog.Logger
	announcer Announcer
	pol       atomic.Pointer[policies.Policy]
	events    <-chan detect.Event

	// Owned by the loop.
	active  map[string]*Mitigation
	attacks map[uint64]bool // attack ids still going on

	queries  chan chan []Mitigation
	refused  atomic.Uint64
	failures atomic.Uint64

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewMitigator returns a mitigator that reads events and announces through
// announcer. It starts nothing.
func NewMitigator(cfg MitigatorConfig, pol *policies.Policy, events <-chan detect.Event, announcer Announcer, logger hclog.Logger) *Mitigator {
	if cfg.MaxActive <= 0 {
		cfg.MaxActive = DefaultMaxActive
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Mitigator{
		cfg:       cfg,
		log:       logger.Named("mitigation"),
		announcer: announcer,
		events:    events,
		active:    map[string]*Mitigation{},
		attacks:   map[uint64]bool{},
		queries:   make(chan chan []Mitigation),
	}
	m.pol.Store(pol)
	return m
}

// Start runs the event loop until Stop or until ctx is done.
func (m *Mitigator) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		return errors.New("mitigation: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	m.cancel, m.done = cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		m.loop(ctx)
	}()
	return nil
}

// Stop ends the event loop and waits for it. Announced routes are left
// as they are; the speaker's shutdown closes the sessions.
func (m *Mitigator) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	<-m.done
	m.cancel = nil
	return nil
}

// Active returns the active mitigations, ordered by start time.
func (m *Mitigator) Active(ctx context.Context) ([]Mitigation, error) {
	reply := make(chan []Mitigation, 1)
	select {
	case m.queries <- reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case out := <-reply:
		return out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Refused returns how many announcements the safety checks refused.
func (m *Mitigator) Refused() uint64 { return m.refused.Load() }

func (m *Mitigator) loop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.resetTimer(timer)
		select {
		case <-ctx.Done():
			return
		case ev := <-m.events:
			m.handle(ctx, ev)
		case <-timer.C:
			m.expire(ctx)
		case reply := <-m.queries:
			out := make([]Mitigation, 0, len(m.active))
			for _, mt := range m.active {
				out = append(out, *mt)
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
			reply <- out
		}
	}
}

// resetTimer arms the timer for the earliest expiry.
func (m *Mitigator) resetTimer(t *time.Timer) {
	next := time.Duration(-1)
	now := m.cfg.Now()
	for _, mt := range m.active {
		if d := mt.Expires.Sub(now); next < 0 || d < next {
			next = d
		}
	}
	if next < 0 && len(m.active) == 0 {
		next = time.Hour
	}
	if next < 0 {
		next = 0
	}
	t.Reset(next)
}

func (m *Mitigator) handle(ctx context.Context, ev detect.Event) {
	sig := ev.Signature
	switch ev.Kind {
	case detect.AttackStarted:
		m.attacks[sig.ID] = true
		m.mitigate(ctx, sig)
	case detect.AttackUpdated:
		m.attacks[sig.ID] = true
	case detect.AttackEnded:
		delete(m.attacks, sig.ID)
	}
}

func (m *Mitigator) mitigate(ctx context.Context, sig detect.Signature) {
	pol := m.pol.Load()
	if sig.Direction != detect.Incoming {
		m.log.Info("outgoing attack not mitigated", "host", sig.Victim.Addr().String(), "reason", sig.Reason)
		return
	}
	a := flowspec.NewRTBH(sig.Victim.Addr(), pol.BGP)
	hg, err := flowspec.Check(a, pol)
	if err != nil {
		m.refused.Add(1)
		m.log.Warn("announcement refused", "announcement", a.String(), "error", err.Error())
		return
	}
	now := m.cfg.Now()
	if mt, ok := m.active[a.Key()]; ok {
		mt.AttackID = sig.ID
		mt.Expires = now.Add(hg.BanTime)
		m.log.Info("mitigation extended", "key", mt.Key, "expires", mt.Expires.Format(time.RFC3339))
		return
	}
	if len(m.active) >= m.cfg.MaxActive {
		m.refused.Add(1)
		m.log.Warn("announcement refused", "announcement", a.String(), "error", fmt.Sprintf("%d mitigations active, the cap", len(m.active)))
		return
	}
	mt := &Mitigation{
		Key:          a.Key(),
		Announcement: a,
		Hostgroup:    hg.Name,
		AttackID:     sig.ID,
		Reason:       fmt.Sprintf("attack %d: %s %s", sig.ID, sig.Direction, sig.Reason),
		Started:      now,
		Expires:      now.Add(hg.BanTime),
		DryRun:       pol.BGP.DryRun,
	}
	if mt.DryRun {
		m.log.Info("dry run: would announce", "announcement", a.String(), "ban_time", hg.BanTime.String())
	} else if err := m.announcer.Announce(ctx, a); err != nil {
		m.failures.Add(1)
		m.log.Error("announce failed", "announcement", a.String(), "error", err.Error())
		return
	} else {
		m.log.Info("announced", "announcement", a.String(), "hostgroup", hg.Name, "ban_time", hg.BanTime.String(), "reason", mt.Reason)
	}
	m.active[mt.Key] = mt
}

// expire withdraws mitigations whose time has come, or extends those whose
// attack is still going on.
func (m *Mitigator) expire(ctx context.Context) {
	now := m.cfg.Now()
	pol := m.pol.Load()
	for key, mt := range m.active {
		if now.Before(mt.Expires) {
			continue
		}
		if m.attacks[mt.AttackID] {
			ban := policies.DefaultBanTime
			if hg, ok := pol.Hostgroup(mt.Hostgroup); ok {
				ban = hg.BanTime
			}
			mt.Expires = now.Add(ban)
			m.log.Info("attack still active, mitigation extended", "key", key, "expires", mt.Expires.Format(time.RFC3339))
			continue
		}
		if !mt.DryRun {
			if err := m.announcer.Withdraw(ctx, mt.Announcement); err != nil {
				m.failures.Add(1)
				m.log.Error("withdraw failed, retrying in 5s", "key", key, "error", err.Error())
				mt.Expires = now.Add(5 * time.Second)
				continue
			}
		}
		delete(m.active, key)
		m.log.Info("withdrawn", "announcement", mt.Announcement.String(), "active_for", now.Sub(mt.Started).Round(time.Millisecond).String(), "dry_run", mt.DryRun)
	}
}
