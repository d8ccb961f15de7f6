// Package supervisor runs the daemon's components. It owns their lives:
// it starts them in order and, when one fails to start, stops those already
// started in reverse; while they run it watches those that can fail
// (Failer), logs and counts every failure, restarts with backoff the
// components whose restart is safe (a UDP listener, a capture socket, a
// hook worker) and reports the failure of any other (the state owners:
// detection, the mitigation loop, the store, the BGP speaker) as fatal,
// for the daemon to stop with a non-zero exit. At shutdown it stops every
// component in reverse order under one deadline, which every Stop shares
// through its context, and logs what each stage took.
//
// The supervisor knows nothing of what the components do; the daemon
// (package controller) decides their order and their failure policy.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Component is a part of the daemon. New builds it whole and inert; Start
// opens what it needs and starts its goroutines, which live until Stop
// (never until ctx is done: the supervisor's start context is not the
// shutdown signal); Stop stops them and returns when they have exited or
// when ctx, which carries the shutdown deadline, is done. A component can
// be started again after Stop.
type Component interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Failer is implemented by components whose goroutines can fail while
// they run. Failed returns, after each Start, a channel that yields the
// cause once if the component fails; the supervisor then calls Stop to
// reap it and decides whether to start it again. A component that stops
// normally never sends.
type Failer interface {
	Failed() <-chan error
}

// Policy is what the supervisor does when a component fails at run time.
type Policy int

const (
	// Fatal failures stop the daemon.
	Fatal Policy = iota
	// Restart restarts the component with backoff.
	Restart
)

func (p Policy) String() string {
	if p == Restart {
		return "restart"
	}
	return "fatal"
}

// Spec names a component and its failure policy.
type Spec struct {
	// Name identifies the component in logs, metrics and status
	// ("source/edge-routers", "speaker").
	Name      string
	Component Component
	OnFailure Policy
}

// Config holds the restart backoff.
type Config struct {
	// MinBackoff is the wait before the first restart; each failed or
	// short-lived restart doubles it up to MaxBackoff. Default 500ms.
	MinBackoff time.Duration
	// MaxBackoff bounds the wait. Default 30s.
	MaxBackoff time.Duration
	// StableAfter is how long a restarted component must run for its
	// backoff to start again from MinBackoff. Default one minute.
	StableAfter time.Duration
	// ReapTimeout bounds the Stop that reaps a failed component. Default
	// 10s.
	ReapTimeout time.Duration
}

// DefaultConfig returns the default backoff.
func DefaultConfig() Config {
	return Config{MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second, StableAfter: time.Minute, ReapTimeout: 10 * time.Second}
}

// State is where a component is in its life.
type State string

// Component states.
const (
	StateStopped    State = "stopped"
	StateStarting   State = "starting"
	StateRunning    State = "running"
	StateRestarting State = "restarting"
	StateFailed     State = "failed"
	StateStopping   State = "stopping"
)

// Status is one component's state, for the API and the CLI.
type Status struct {
	Name      string    `json:"name"`
	State     State     `json:"state"`
	OnFailure string    `json:"on_failure"`
	Since     time.Time `json:"since"`
	Failures  uint64    `json:"failures"`
	Restarts  uint64    `json:"restarts"`
	LastError string    `json:"last_error,omitempty"`
}

type entry struct {
	Spec
	// life serialises Start and Stop of the component between the
	// supervisor's Stop and the entry's watcher.
	life sync.Mutex

	mu       sync.Mutex
	state    State
	since    time.Time
	failures uint64
	restarts uint64
	lastErr  string
}

func (e *entry) set(s State) {
	e.mu.Lock()
	e.state, e.since = s, time.Now()
	e.mu.Unlock()
}

// Supervisor starts, watches and stops components. Its methods are safe
// for concurrent use.
type Supervisor struct {
	cfg Config
	log hclog.Logger
	m   metrics

	mu       sync.Mutex
	entries  []*entry
	started  int // entries[:started] were started
	runCtx   context.Context
	cancel   context.CancelFunc
	stopping chan struct{}
	watchers sync.WaitGroup
	fatal    chan error
}

type metrics struct {
	failures *prometheus.CounterVec
	restarts *prometheus.CounterVec
	up       *prometheus.GaugeVec
}

// New returns a supervisor with no component. Its metrics are registered
// on reg when reg is not nil.
func New(cfg Config, logger hclog.Logger, reg prometheus.Registerer) *Supervisor {
	d := DefaultConfig()
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = d.MinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(d.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = d.StableAfter
	}
	if cfg.ReapTimeout <= 0 {
		cfg.ReapTimeout = d.ReapTimeout
	}
	s := &Supervisor{
		cfg: cfg, log: logger.Named("supervisor"), fatal: make(chan error, 1),
		m: metrics{
			failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "floodgate_component_failures_total",
				Help: "Run-time failures of each component."}, []string{"component"}),
			restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "floodgate_component_restarts_total",
				Help: "Restarts of each component after a failure."}, []string{"component"}),
			up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "floodgate_component_up",
				Help: "1 when the component is running."}, []string{"component"}),
		},
	}
	if reg != nil {
		reg.MustRegister(s.m.failures, s.m.restarts, s.m.up)
	}
	return s
}

// Add appends a component; components start in the order they are added
// and stop in reverse. Add panics once the supervisor has started.
func (s *Supervisor) Add(specs ...Spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runCtx != nil {
		panic("supervisor: Add after Start")
	}
	for _, sp := range specs {
		e := &entry{Spec: sp, state: StateStopped, since: time.Now()}
		s.entries = append(s.entries, e)
		s.m.failures.WithLabelValues(sp.Name)
		s.m.restarts.WithLabelValues(sp.Name)
		s.m.up.WithLabelValues(sp.Name).Set(0)
	}
}

// Start starts every component in order. When one fails to start, those
// already started are stopped in reverse (under ctx) and the error names
// the component. The components' run context is not ctx: it ends only
// after Stop.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.runCtx != nil {
		s.mu.Unlock()
		return errors.New("supervisor: already started")
	}
	s.runCtx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.stopping = make(chan struct{})
	entries := s.entries
	s.mu.Unlock()
	for i, e := range entries {
		e.life.Lock()
		e.set(StateStarting)
		err := e.Component.Start(s.runCtx)
		if err != nil {
			e.set(StateFailed)
			e.mu.Lock()
			e.lastErr = err.Error()
			e.mu.Unlock()
			e.life.Unlock()
			s.log.Error("component failed to start; stopping those started", "component", e.Name, "error", err.Error())
			s.mu.Lock()
			s.started = i
			s.mu.Unlock()
			if serr := s.Stop(ctx); serr != nil {
				s.log.Error("unwinding a failed start", "error", serr.Error())
			}
			return fmt.Errorf("start %s: %w", e.Name, err)
		}
		e.set(StateRunning)
		s.m.up.WithLabelValues(e.Name).Set(1)
		e.life.Unlock()
		s.log.Debug("component started", "component", e.Name)
		s.mu.Lock()
		s.started = i + 1
		s.mu.Unlock()
		s.watch(e)
	}
	return nil
}

// Fatal yields the first failure of a component whose policy is Fatal. The
// daemon stops when it receives one.
func (s *Supervisor) Fatal() <-chan error { return s.fatal }

// watch starts the goroutine that waits for e's failures, if e can fail.
func (s *Supervisor) watch(e *entry) {
	f, ok := e.Component.(Failer)
	if !ok {
		return
	}
	ch := f.Failed()
	s.watchers.Add(1)
	go func() {
		defer s.watchers.Done()
		s.watchLoop(e, f, ch)
	}()
}

func (s *Supervisor) watchLoop(e *entry, f Failer, ch <-chan error) {
	backoff := s.cfg.MinBackoff
	for {
		var cause error
		startedAt := time.Now()
		select {
		case <-s.stopping:
			return
		case cause = <-ch:
		}
		if cause == nil {
			cause = errors.New("stopped without a cause")
		}
		e.life.Lock()
		select {
		case <-s.stopping:
			// The shutdown got here first; its Stop reaps the component.
			e.life.Unlock()
			return
		default:
		}
		s.m.failures.WithLabelValues(e.Name).Inc()
		s.m.up.WithLabelValues(e.Name).Set(0)
		e.mu.Lock()
		e.failures++
		e.lastErr = cause.Error()
		e.mu.Unlock()
		s.log.Error("component failed", "component", e.Name, "error", cause.Error(), "on_failure", e.OnFailure.String())
		rctx, cancel := context.WithTimeout(s.runCtx, s.cfg.ReapTimeout)
		if err := e.Component.Stop(rctx); err != nil && !errors.Is(err, cause) {
			s.log.Warn("stopping the failed component", "component", e.Name, "error", err.Error())
		}
		cancel()
		if e.OnFailure != Restart {
			e.set(StateFailed)
			e.life.Unlock()
			select {
			case s.fatal <- fmt.Errorf("%s: %w", e.Name, cause):
			default:
			}
			return
		}
		e.set(StateRestarting)
		e.life.Unlock()
		if time.Since(startedAt) >= s.cfg.StableAfter {
			backoff = s.cfg.MinBackoff
		}
		for {
			s.log.Info("restarting component", "component", e.Name, "in", backoff.String())
			t := time.NewTimer(backoff)
			select {
			case <-s.stopping:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, s.cfg.MaxBackoff)
			e.life.Lock()
			select {
			case <-s.stopping:
				e.life.Unlock()
				return
			default:
			}
			err := e.Component.Start(s.runCtx)
			if err == nil {
				ch = f.Failed()
				e.mu.Lock()
				e.restarts++
				e.mu.Unlock()
				e.set(StateRunning)
				s.m.restarts.WithLabelValues(e.Name).Inc()
				s.m.up.WithLabelValues(e.Name).Set(1)
				e.life.Unlock()
				s.log.Info("component restarted", "component", e.Name)
				break
			}
			e.mu.Lock()
			e.lastErr = err.Error()
			e.mu.Unlock()
			e.life.Unlock()
			s.log.Error("component restart failed", "component", e.Name, "error", err.Error())
		}
	}
}

// Stop stops the started components in reverse order. Every Stop shares
// ctx, the one shutdown deadline; once it has passed the remaining
// components are still asked to stop (with the expired context, so that
// they release what they can at once). Each stage is logged with what it
// took. Stop returns the first error.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.runCtx == nil {
		s.mu.Unlock()
		return nil
	}
	select {
	case <-s.stopping:
	default:
		close(s.stopping)
	}
	entries := s.entries[:s.started]
	s.mu.Unlock()
	began := time.Now()
	var first error
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		e.life.Lock()
		e.mu.Lock()
		st := e.state
		e.mu.Unlock()
		if st != StateRunning {
			// Failed or waiting for a restart: already reaped.
			e.set(StateStopped)
			e.life.Unlock()
			continue
		}
		e.set(StateStopping)
		t0 := time.Now()
		err := e.Component.Stop(ctx)
		e.set(StateStopped)
		s.m.up.WithLabelValues(e.Name).Set(0)
		e.life.Unlock()
		took := time.Since(t0).Round(time.Millisecond)
		if err != nil {
			s.log.Error("stopped with an error", "component", e.Name, "took", took.String(), "error", err.Error())
			if first == nil {
				first = fmt.Errorf("stop %s: %w", e.Name, err)
			}
			continue
		}
		s.log.Info("stopped", "component", e.Name, "took", took.String())
	}
	s.watchers.Wait()
	s.mu.Lock()
	s.cancel()
	s.runCtx, s.cancel, s.started = nil, nil, 0
	s.mu.Unlock()
	if ctx.Err() != nil && first == nil {
		first = fmt.Errorf("shutdown deadline passed: %w", ctx.Err())
	}
	s.log.Info("all components stopped", "took", time.Since(began).Round(time.Millisecond).String())
	return first
}

// Status returns every component's state, in start order.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	entries := s.entries
	s.mu.Unlock()
	out := make([]Status, len(entries))
	for i, e := range entries {
		e.mu.Lock()
		out[i] = Status{Name: e.Name, State: e.state, OnFailure: e.OnFailure.String(), Since: e.since,
			Failures: e.failures, Restarts: e.restarts, LastError: e.lastErr}
		e.mu.Unlock()
	}
	return out
}
