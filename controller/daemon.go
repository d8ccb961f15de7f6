package controller

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/floodgate-ddos/floodgate/controller/hooks"
	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources/flow"
	"github.com/floodgate-ddos/floodgate/sources/mirror"
	"github.com/floodgate-ddos/floodgate/sources/pcapfile"
)

// component is anything the daemon starts and stops.
type component interface {
	Start(ctx context.Context) error
	Stop() error
}

// Options are what the daemon knows beyond its policy.
type Options struct {
	// Version is the floodgate version, for status.
	Version string
	// ConfigPath is where the policy was loaded from, for reloads.
	ConfigPath string
}

// Daemon is a running Floodgate: flow collector, detection engine,
// mitigation loop, BGP speaker and API.
type Daemon struct {
	Options
	log       hclog.Logger
	pol       *policies.Policy
	store     *Store
	Speaker   *Speaker
	Mitigator *Mitigator
	Engine    *detect.Engine
	Collector *flow.Collector
	Mirrors   []*mirror.Capture
	Pcaps     []*pcapfile.Replayer
	Hooks     *hooks.Dispatcher
	API       *APIServer
	Registry  *prometheus.Registry

	mu      sync.Mutex
	started []component
	since   time.Time
}

// NewDaemon builds every component from pol. It opens nothing.
func NewDaemon(pol *policies.Policy, logger hclog.Logger, opts ...Options) (*Daemon, error) {
	d := &Daemon{log: logger, pol: pol, Registry: prometheus.NewRegistry()}
	if len(opts) > 0 {
		d.Options = opts[0]
	}
	eng, err := detect.New(detect.Config{Tick: pol.Detection.Tick}, pol, logger)
	if err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	d.Engine = eng
	d.Speaker = NewSpeaker(pol.BGP, logger)
	var fc flow.Config
	for _, l := range pol.Listeners {
		fc.Listeners = append(fc.Listeners, flow.ListenerConfig{
			Name:              l.Name,
			Protocol:          flow.Protocol(l.Protocol),
			Listen:            l.Listen.String(),
			ReceiveBuffer:     l.ReceiveBuffer,
			QueueSize:         l.QueueSize,
			Workers:           l.Workers,
			DefaultSampling:   l.DefaultSampling,
			Sampling:          l.Sampling,
			AllowedExporters:  l.AllowedExporters,
			MaxExporters:      l.MaxExporters,
			ExporterIdle:      l.ExporterIdle,
			MaxTemplates:      l.MaxTemplates,
			TemplateTTL:       l.TemplateTTL,
			MaxTemplateFields: l.MaxTemplateFields,
			MaxRecordPPS:      float64(l.MaxRecordPPS),
			MaxRecordBPS:      float64(l.MaxRecordBPS),
		})
	}
	d.Collector, err = flow.New(fc, eng, logger)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	for _, m := range pol.Mirrors {
		mc := mirror.DefaultConfig()
		mc.Interfaces, mc.Promiscuous, mc.IncludeOutgoing = m.Interfaces, m.Promiscuous, m.IncludeOutgoing
		mc.Workers, mc.FanoutGroup, mc.BlockSize, mc.NumBlocks = m.Workers, m.FanoutGroup, m.BlockSize, m.Blocks
		mc.BlockTimeout, mc.BatchSize, mc.FlushInterval = m.BlockTimeout, m.BatchSize, m.FlushInterval
		if m.Fanout != "" {
			mc.Fanout = m.Fanout
		}
		c, err := mirror.New(mc, eng, logger.Named(m.Name))
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", m.Name, err)
		}
		d.Mirrors = append(d.Mirrors, c)
	}
	for _, p := range pol.Pcaps {
		pc := pcapfile.DefaultConfig()
		pc.Path, pc.Speed, pc.Loops, pc.Sampling, pc.Timestamps = p.File, p.Speed, p.Loops, p.Sampling, pcapfile.Timestamps(p.Timestamps)
		r, err := pcapfile.New(pc, eng, logger.Named(p.Name))
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", p.Name, err)
		}
		d.Pcaps = append(d.Pcaps, r)
	}
	d.Hooks, err = hooks.New(hooksConfig(pol.Hooks), logger)
	if err != nil {
		return nil, fmt.Errorf("hooks: %w", err)
	}
	d.API = NewAPIServer(d, pol.API, pol.Metrics, d.Registry, logger)
	d.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "floodgate"}),
		newMetrics(d),
		d.Hooks.Collector(),
	)
	return d, nil
}

// Start opens the state file and starts the components in dependency
// order (speaker, hooks, mitigation, detection, sources, API), unwinding
// those already started if one fails.
func (d *Daemon) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	store, err := OpenStore(d.pol.Mitigation.StateFile)
	if err != nil {
		return err
	}
	d.store = store
	d.Mitigator = NewMitigator(MitigatorConfig{}, d.pol, d.Engine.Events(), d.Speaker, store, d.log)
	d.Mitigator.SetObserver(hookObserver{d.Hooks})
	comps := []component{d.Speaker, d.Hooks, d.Mitigator, d.Engine, d.Collector}
	for _, m := range d.Mirrors {
		comps = append(comps, m)
	}
	for _, p := range d.Pcaps {
		comps = append(comps, p)
	}
	comps = append(comps, d.API)
	for _, c := range comps {
		if err := c.Start(ctx); err != nil {
			d.stopLocked()
			return err
		}
		d.started = append(d.started, c)
	}
	d.since = time.Now()
	d.log.Info("floodgate running", "dry_run", d.pol.Mitigation.DryRun)
	return nil
}

// Stop stops the components in reverse order: the API and sources first,
// so that queues drain into detection, and the BGP speaker last.
func (d *Daemon) Stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopLocked()
}

func (d *Daemon) stopLocked() error {
	var first error
	for i := len(d.started) - 1; i >= 0; i-- {
		if err := d.started[i].Stop(); err != nil && first == nil {
			first = err
		}
	}
	d.started = nil
	if d.store != nil {
		if err := d.store.Close(); err != nil && first == nil {
			first = err
		}
		d.store = nil
	}
	return first
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
	st := Status{
		Version: d.Version, GoBGP: GoBGPVersion(), Started: d.since, Uptime: time.Since(d.since).Round(time.Second).String(),
		Config: d.ConfigPath, DryRun: pol.Mitigation.DryRun,
		Sources: d.Collector.Stats(), Detection: d.Engine.Stats(), Mitigation: d.Mitigator.Stats(),
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

func hooksConfig(h policies.Hooks) hooks.Config {
	cfg := hooks.DefaultConfig()
	kinds := func(ev []string) []hooks.Kind {
		out := make([]hooks.Kind, len(ev))
		for i, e := range ev {
			out[i] = hooks.Kind(e)
		}
		return out
	}
	for _, e := range h.Exec {
		cfg.Exec = append(cfg.Exec, hooks.ExecConfig{Name: e.Name, Path: e.Path, Timeout: e.Timeout, Events: kinds(e.Events)})
	}
	for _, w := range h.Webhooks {
		cfg.Webhooks = append(cfg.Webhooks, hooks.WebhookConfig{Name: w.Name, URL: w.URL, Headers: w.Headers, Timeout: w.Timeout,
			Retries: w.Retries, Events: kinds(w.Events)})
	}
	return cfg
}

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
