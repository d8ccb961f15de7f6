package controller

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/floodgate-ddos/floodgate/bgp"
	"github.com/floodgate-ddos/floodgate/controller/hooks"
	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources/flow"
	"github.com/floodgate-ddos/floodgate/sources/mirror"
	"github.com/floodgate-ddos/floodgate/sources/pcapfile"
	"github.com/floodgate-ddos/floodgate/supervisor"
)

// Options are what the daemon knows beyond its policy.
type Options struct {
	// Version is the floodgate version, for status.
	Version string
	// ConfigPath is where the policy was loaded from, for reloads. When
	// set, the daemon also watches it and reloads when the files change.
	ConfigPath string
}

// Daemon is a running Floodgate: the chain sources → detection → decision
// and mitigation → BGP speaker, with the API, hooks, metrics and the
// config watcher beside it, every part a component owned by a supervisor.
//
// NewDaemon builds every component whole and opens nothing. Start starts
// them in this order and Stop stops them in reverse, so that intake stops
// first and the speaker after the mitigation loop:
//
//	hooks, api, speaker, store, mitigation, neighbors, detection, source/<name>..., config-watcher
//
// The speaker starts without sessions; the mitigation loop puts the stored
// mitigations back into its RIB, and only then does "neighbors" open the
// sessions (as a restarting speaker when there were any, see
// bgp.Speaker.OpenSessions), so that routers never see End-of-RIB before
// the routes they already hold.
//
// Sources (flow listeners, mirror captures) and the watcher are restarted
// with backoff when they fail; a failure of anything else is fatal
// (Fatal yields it) and the daemon should stop.
type Daemon struct {
	Options
	log        hclog.Logger
	pol        *policies.Policy
	sup        *supervisor.Supervisor
	store      *Store
	Speaker    *bgp.Speaker
	Mitigator  *Mitigator
	Engine     *detect.Engine
	Collectors []*flow.Collector
	Mirrors    []*mirror.Capture
	Pcaps      []*pcapfile.Replayer
	Hooks      *hooks.Dispatcher
	API        *APIServer
	Watcher    *Watcher
	Registry   *prometheus.Registry

	mu      sync.Mutex
	since   time.Time
	running atomic.Bool
}

// NewDaemon builds every component from pol. It opens nothing.
func NewDaemon(pol *policies.Policy, logger hclog.Logger, opts ...Options) (*Daemon, error) {
	d := &Daemon{log: logger, pol: pol, Registry: prometheus.NewRegistry()}
	if len(opts) > 0 {
		d.Options = opts[0]
	}
	d.sup = supervisor.New(supervisor.DefaultConfig(), logger, d.Registry)
	eng, err := detect.New(detect.Config{Tick: pol.Detection.Tick}, pol, logger)
	if err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	d.Engine = eng
	d.Speaker = bgp.NewSpeaker(pol.BGP, logger)
	d.store = NewStore(pol.Mitigation.StateFile)
	d.Hooks, err = hooks.New(pol.Hooks, logger)
	if err != nil {
		return nil, fmt.Errorf("hooks: %w", err)
	}
	d.Mitigator = NewMitigator(MitigatorConfig{}, pol, eng.Events(), d.Speaker, d.store, logger)
	d.Mitigator.SetObserver(hookObserver{d.Hooks})
	d.API = NewAPIServer(daemonBackend{d}, pol.API, pol.Metrics, d.Registry, logger)
	d.sup.Add(
		supervisor.Spec{Name: "hooks", Component: d.Hooks, OnFailure: supervisor.Restart},
		supervisor.Spec{Name: "api", Component: d.API},
		supervisor.Spec{Name: "speaker", Component: d.Speaker},
		supervisor.Spec{Name: "store", Component: d.store},
		supervisor.Spec{Name: "mitigation", Component: d.Mitigator},
		supervisor.Spec{Name: "neighbors", Component: neighbors{d.Speaker, d.Mitigator}},
		supervisor.Spec{Name: "detection", Component: d.Engine},
	)
	for _, l := range pol.Listeners {
		c, err := flow.New(flow.Config{Listeners: []flow.ListenerConfig{l}}, eng, logger)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", l.Name, err)
		}
		d.Collectors = append(d.Collectors, c)
		d.sup.Add(supervisor.Spec{Name: "source/" + l.Name, Component: c, OnFailure: supervisor.Restart})
	}
	for _, m := range pol.Mirrors {
		c, err := mirror.New(m, eng, logger.Named(m.Name))
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", m.Name, err)
		}
		d.Mirrors = append(d.Mirrors, c)
		d.sup.Add(supervisor.Spec{Name: "source/" + m.Name, Component: c, OnFailure: supervisor.Restart})
	}
	for _, p := range pol.Pcaps {
		r, err := pcapfile.New(p, eng, logger.Named(p.Name))
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", p.Name, err)
		}
		d.Pcaps = append(d.Pcaps, r)
		// A replay cannot resume where it failed: its failure is fatal.
		d.sup.Add(supervisor.Spec{Name: "source/" + p.Name, Component: r})
	}
	if d.ConfigPath != "" {
		d.Watcher = NewWatcher(d.ConfigPath, 2*time.Second, time.Second, func() error { return d.Reload(d.ConfigPath) }, logger)
		d.sup.Add(supervisor.Spec{Name: "config-watcher", Component: d.Watcher, OnFailure: supervisor.Restart})
	}
	d.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "floodgate"}),
		newMetrics(Parts{Policy: d.Policy, Sources: d.sourceStats, Engine: eng, Mitigator: d.Mitigator, Speaker: d.Speaker}),
		d.Hooks.Collector(),
	)
	return d, nil
}

// Start starts every component in order; when one fails to start, those
// already started are stopped in reverse and the error names it. ctx
// bounds nothing but that unwinding: components run until Stop.
func (d *Daemon) Start(ctx context.Context) error {
	if err := d.sup.Start(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	d.since = time.Now()
	d.mu.Unlock()
	d.running.Store(true)
	d.log.Info("floodgate running", "dry_run", d.Policy().Mitigation.DryRun)
	return nil
}

// Fatal yields the failure of a component that cannot be restarted; the
// caller stops the daemon and exits with an error.
func (d *Daemon) Fatal() <-chan error { return d.sup.Fatal() }

// Stop stops the components in reverse order under the one deadline of
// ctx: the watcher and the sources first (their queues drain into
// detection), then detection, the mitigation loop and the store, then the
// speaker, the API and hooks.
func (d *Daemon) Stop(ctx context.Context) error {
	d.running.Store(false)
	return d.sup.Stop(ctx)
}

// Shutdown is the last Stop of a process about to exit. With graceful
// restart on and withdraw_on_shutdown off it leaves the BGP sessions to
// close with the process, without a NOTIFICATION, so that routers keep
// every route until the next start takes them over (see
// bgp.Speaker.Detach). The daemon cannot be started again.
func (d *Daemon) Shutdown(ctx context.Context) error {
	if pol := d.Policy(); pol.BGP.GracefulRestart.Enabled && !pol.Mitigation.WithdrawOnShutdown {
		d.Speaker.Detach()
	}
	return d.Stop(ctx)
}

// Components returns the state of every component, in start order.
func (d *Daemon) Components() []supervisor.Status { return d.sup.Status() }

// sourceStats returns the counters of every flow listener.
func (d *Daemon) sourceStats() []flow.Stats {
	var out []flow.Stats
	for _, c := range d.Collectors {
		out = append(out, c.Stats()...)
	}
	return out
}

// GoBGPVersion is the version of the embedded GoBGP module.
func GoBGPVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, m := range bi.Deps {
		if m.Path == "github.com/osrg/gobgp/v3" {
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return "unknown"
}

// Status gathers the daemon's state for the API.
func (d *Daemon) Status(ctx context.Context) (Status, error) {
	pol := d.Policy()
	d.mu.Lock()
	since := d.since
	d.mu.Unlock()
	st := Status{
		Version: d.Version, GoBGP: GoBGPVersion(), Started: since, Uptime: time.Since(since).Round(time.Second).String(),
		Config: d.ConfigPath, DryRun: pol.Mitigation.DryRun, Components: d.Components(),
		Sources: d.sourceStats(), Detection: d.Engine.Stats(), Mitigation: d.Mitigator.Stats(),
	}
	peers, err := d.Speaker.Peers(ctx)
	if err != nil {
		return st, err
	}
	st.Neighbors = peers
	active, _, err := d.Mitigator.Attacks(ctx)
	if err != nil {
		return st, err
	}
	mits, err := d.Mitigator.Active(ctx)
	if err != nil {
		return st, err
	}
	for _, hg := range pol.Hostgroups {
		s := HostgroupState{Name: hg.Name}
		for _, a := range active {
			if a.Signature.Hostgroup == hg.Name {
				s.Attacks++
			}
		}
		for _, m := range mits {
			if m.Hostgroup == hg.Name {
				s.Mitigations++
			}
		}
		st.Hostgroups = append(st.Hostgroups, s)
	}
	st.Budgets, err = d.Mitigator.Budgets(ctx)
	return st, err
}

// HookObserver is the Observer that tells hooks of the mitigation loop's
// events.
func HookObserver(d *hooks.Dispatcher) Observer { return hookObserver{d} }

// hookObserver turns the mitigation loop's events into hook events.
type hookObserver struct{ d *hooks.Dispatcher }

func (o hookObserver) AttackStarted(s detect.Signature) {
	o.d.Notify(hooks.Event{Kind: hooks.AttackStarted, Time: s.Started, IP: hookIP(s.Victim), Direction: s.Direction.String(),
		PPS: s.PPS, Hostgroup: s.Hostgroup, Details: s})
}

func (o hookObserver) MitigationAnnounced(m Mitigation) {
	o.d.Notify(hooks.Event{Kind: hooks.MitigationAnnounced, Time: m.Started, IP: hookIP(m.Victim), Direction: "incoming",
		PPS: m.AttackPPS, Hostgroup: m.Hostgroup, Details: m})
}

func (o hookObserver) MitigationWithdrawn(m Mitigation) {
	o.d.Notify(hooks.Event{Kind: hooks.MitigationWithdrawn, IP: hookIP(m.Victim), Direction: "incoming", PPS: m.AttackPPS,
		Hostgroup: m.Hostgroup, Details: m})
}

func (o hookObserver) BudgetFull(ev BudgetEvent) {
	o.d.Notify(hooks.Event{Kind: hooks.BudgetFull, Time: ev.Signature.Started, IP: hookIP(ev.Signature.Victim),
		Direction: ev.Signature.Direction.String(), PPS: ev.Signature.PPS, Hostgroup: ev.Signature.Hostgroup, Details: ev})
}

// hookIP is the victim as hooks show it: an address for a host, else the
// prefix.
func hookIP(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// daemonBackend is the API's view of a daemon in one process.
type daemonBackend struct{ d *Daemon }

func (b daemonBackend) Status(ctx context.Context) (Status, error) { return b.d.Status(ctx) }
func (b daemonBackend) Attacks(ctx context.Context) ([]AttackInfo, []AttackInfo, error) {
	return b.d.Mitigator.Attacks(ctx)
}
func (b daemonBackend) Active(ctx context.Context) ([]Mitigation, error) {
	return b.d.Mitigator.Active(ctx)
}
func (b daemonBackend) Peers(ctx context.Context) ([]bgp.PeerStatus, error) {
	return b.d.Speaker.Peers(ctx)
}
func (b daemonBackend) Top(n int, by string, dir detect.Direction) []detect.HostRates {
	return b.d.Engine.Top(n, by, dir)
}
func (b daemonBackend) Policy() *policies.Policy { return b.d.Policy() }
func (b daemonBackend) Ban(ctx context.Context, ban Ban) (Mitigation, error) {
	return b.d.Mitigator.Ban(ctx, ban)
}
func (b daemonBackend) Unban(ctx context.Context, key string) error {
	return b.d.Mitigator.Unban(ctx, key)
}
func (b daemonBackend) Reload() error {
	if b.d.ConfigPath == "" {
		return ErrNoConfigPath
	}
	return b.d.Reload(b.d.ConfigPath)
}

// neighbors opens the speaker's BGP sessions once the mitigation loop has
// restored the stored mitigations into the RIB. Its Stop does nothing: the
// sessions close with the speaker, after the mitigation loop has withdrawn
// what withdraw_on_shutdown asks for.
type neighbors struct {
	speaker *bgp.Speaker
	mit     *Mitigator
}

func (n neighbors) Start(ctx context.Context) error {
	return n.speaker.OpenSessions(ctx, n.mit.Restored() > 0)
}

func (n neighbors) Stop(context.Context) error { return nil }
