package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/topics"
)

// Announcer sends announcements to routers (bgp.Speaker).
type Announcer interface {
	Announce(ctx context.Context, a *flowspec.Announcement) error
	Withdraw(ctx context.Context, a *flowspec.Announcement) error
}

// Sessions opens a speaker's BGP sessions, as a restarting speaker when
// it already holds routes (bgp.Speaker.OpenSessions).
type Sessions interface {
	OpenSessions(ctx context.Context, restarting bool) error
}

// ExpiryGrace is how long after its expiry a speaker withdraws, on its
// own, a mitigation that no detector extended or withdrew (every detector
// is gone): a detector extends a mitigation when it expires, so a speaker
// that withdrew at the very expiry would flap the rule.
const ExpiryGrace = 15 * time.Second

// SpeakerSet is a speaker's role: it announces exactly the mitigation
// log's active set, each mitigation checked again against this node's own
// policy first (monitored networks, whitelists, breadth, the protocol
// component, max_active, each hostgroup's max_rules and the smallest
// max_flowspec_rules of the neighbours that take FlowSpec: the safety of
// mitigation holds at every speaker, whoever decided), dry runs logged and
// not sent, and expired ones withdrawn ExpiryGrace after their time.
//
// It opens the BGP sessions only once the log has read the whole topic
// and the set is in the RIB, as a restarting speaker when the set is not
// empty, so that routers that kept our routes through a restart never see
// End-of-RIB before them. A speaker that cannot reach Kafka opens no
// session: routers keep what they have (graceful restart) rather than
// learn an empty set.
type SpeakerSet struct {
	log  *Log
	ann  Announcer
	sess Sessions
	pol  atomic.Pointer[policies.Policy]
	lg   hclog.Logger
	now  func() time.Time
	// grace is ExpiryGrace, shorter in tests.
	grace time.Duration

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}

	// Owned by the loop.
	sent    map[string]sentRule
	refused map[string]string

	announced, withdrawn, refusedN, failures atomic.Uint64
	activeN                                  atomic.Int64
	ready                                    atomic.Bool
}

// SpeakerStats are a speaker set's counters.
type SpeakerStats struct {
	// Active is how many mitigations are announced (or logged, in a dry
	// run); Ready is true once the sessions are open.
	Active int
	Ready  bool
	// Announced, Withdrawn, Refused (by this speaker's checks) and
	// Failures (of the BGP speaker) count since the start.
	Announced, Withdrawn, Refused, Failures uint64
}

// NewSpeakerSet returns the speaker role on log. It starts nothing.
func NewSpeakerSet(pol *policies.Policy, log *Log, ann Announcer, sess Sessions, logger hclog.Logger) *SpeakerSet {
	s := &SpeakerSet{log: log, ann: ann, sess: sess, lg: logger.Named("speaker-set"), now: time.Now, grace: ExpiryGrace,
		sent: map[string]sentRule{}, refused: map[string]string{}}
	s.pol.Store(pol)
	return s
}

// SetPolicy makes pol the policy of the checks.
func (s *SpeakerSet) SetPolicy(pol *policies.Policy) { s.pol.Store(pol) }

// Start runs the loop until Stop.
func (s *SpeakerSet) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.mu.Lock()
	s.cancel, s.done = cancel, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		s.run(ctx)
	}()
	return nil
}

// Stop ends the loop. The routes stay in the BGP speaker's RIB: they go
// with its sessions (kept by routers through graceful restart) or are
// withdrawn by it under withdraw_on_shutdown.
func (s *SpeakerSet) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel = nil
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("speaker set: stop: %w", ctx.Err())
	}
}

// Stats returns the counters.
func (s *SpeakerSet) Stats() SpeakerStats {
	return SpeakerStats{Active: int(s.activeN.Load()), Ready: s.ready.Load(), Announced: s.announced.Load(),
		Withdrawn: s.withdrawn.Load(), Refused: s.refusedN.Load(), Failures: s.failures.Load()}
}

func (s *SpeakerSet) run(ctx context.Context) {
	waiting := time.NewTicker(10 * time.Second)
	for ready := false; !ready; {
		select {
		case <-ctx.Done():
			waiting.Stop()
			return
		case <-s.log.CaughtUp():
			ready = true
		case <-waiting.C:
			s.lg.Warn("waiting for the mitigation topic before opening BGP sessions")
		}
	}
	waiting.Stop()
	changed := s.log.Changed()
	next := s.reconcile(ctx)
	if err := s.sess.OpenSessions(ctx, len(s.sent) > 0); err != nil {
		if ctx.Err() == nil {
			s.lg.Error("cannot open the BGP sessions", "error", err.Error())
		}
		return
	}
	s.ready.Store(true)
	for {
		timer := time.NewTimer(next)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
		changed = s.log.Changed()
		next = s.reconcile(ctx)
	}
}

// sentRule is an announcement the speaker made, or only logged (dry).
type sentRule struct {
	a   flowspec.Announcement
	dry bool
}

// retry is how soon a failed announcement or withdrawal is tried again.
const retry = 2 * time.Second

// reconcile makes the sent set the log's checked, unexpired set, and
// returns how long until it must look again.
func (s *SpeakerSet) reconcile(ctx context.Context) time.Duration {
	pol, now := s.pol.Load(), s.now()
	want := map[string]*topics.Mitigation{}
	perGroup := map[string]int{}
	fsLimit, fsLimited := controller.FlowSpecLimit(pol)
	fsRules := 0
	next := time.Hour
	active := s.log.Active() // oldest first: when a budget is full, the newest wait
	for i := range active {
		m := &active[i]
		end := m.Expires.Add(s.grace)
		if !now.Before(end) {
			continue
		}
		next = min(next, end.Sub(now))
		hg, err := flowspec.Check(&m.Announcement, pol)
		if err == nil {
			switch {
			case len(want) >= pol.Mitigation.MaxActive:
				err = fmt.Errorf("%w: max_active %d reached", flowspec.ErrRefused, pol.Mitigation.MaxActive)
			case perGroup[hg.Name] >= hg.MaxRules:
				err = fmt.Errorf("%w: hostgroup %s max_rules %d reached", flowspec.ErrRefused, hg.Name, hg.MaxRules)
			case m.Announcement.Kind == flowspec.FlowSpec && fsLimited && fsRules >= fsLimit:
				err = fmt.Errorf("%w: max_flowspec_rules %d of a neighbour reached", flowspec.ErrRefused, fsLimit)
			}
		}
		if err != nil {
			if s.refused[m.Key] != err.Error() {
				s.refused[m.Key] = err.Error()
				s.refusedN.Add(1)
				s.lg.Warn("mitigation refused by this speaker", "key", m.Key, "origin", m.Origin, "error", err.Error())
			}
			continue
		}
		delete(s.refused, m.Key)
		perGroup[hg.Name]++
		if m.Announcement.Kind == flowspec.FlowSpec {
			fsRules++
		}
		want[m.Key] = m
	}
	for k := range s.refused {
		if _, ok := s.log.Get(k); !ok {
			delete(s.refused, k)
		}
	}
	failed := false
	for k, r := range s.sent {
		if _, ok := want[k]; ok {
			continue
		}
		a := &r.a
		if r.dry {
			s.lg.Info("dry run: would withdraw", "announcement", a.String())
		} else if err := s.ann.Withdraw(ctx, a); err != nil && !errors.Is(err, context.Canceled) {
			s.failures.Add(1)
			failed = true
			s.lg.Error("withdraw failed, will retry", "key", k, "error", err.Error())
			continue
		}
		delete(s.sent, k)
		s.withdrawn.Add(1)
		s.lg.Info("withdrawn", "announcement", a.String())
	}
	for k, m := range want {
		dry := m.DryRun || pol.Mitigation.DryRun
		if r, ok := s.sent[k]; ok && r.dry == dry && r.a.String() == m.Announcement.String() {
			continue
		}
		a := m.Announcement
		if dry {
			s.lg.Info("dry run: would announce", "announcement", a.String(), "origin", m.Origin)
		} else if err := s.ann.Announce(ctx, &a); err != nil {
			s.failures.Add(1)
			failed = true
			s.lg.Error("announce failed, will retry", "key", k, "error", err.Error())
			continue
		} else {
			s.lg.Info("announced", "announcement", a.String(), "hostgroup", m.Hostgroup, "origin", m.Origin,
				"expires", m.Expires.Format(time.RFC3339))
		}
		s.sent[k] = sentRule{a: a, dry: dry}
		s.announced.Add(1)
	}
	s.activeN.Store(int64(len(s.sent)))
	if failed {
		next = min(next, retry)
	}
	return next
}
