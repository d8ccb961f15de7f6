package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate-ddos/floodgate/bgp"
	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/controller/hooks"
	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/kafka"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources/flow"
	"github.com/floodgate-ddos/floodgate/sources/mirror"
	"github.com/floodgate-ddos/floodgate/supervisor"
)

// Node is one process of a Floodgate cluster, holding the roles its kafka
// block names, every part a component owned by a supervisor. Start order
// (Stop is the reverse, so intake stops first):
//
//	api, hooks, topics, mitigation-log,
//	speaker, speaker-set                      (speaker)
//	mitigation, detection, flow-reader        (detector)
//	publisher, source/<name>...               (collector)
//	config-watcher
type Node struct {
	controller.Options
	log      hclog.Logger
	sup      *supervisor.Supervisor
	Registry *prometheus.Registry

	mu  sync.Mutex
	pol *policies.Policy
	cls *classifier

	Log *Log
	API *controller.APIServer

	// Collector.
	Publisher  *Publisher
	Collectors []*flow.Collector
	Mirrors    []*mirror.Capture
	GoFlow2    []*GoFlow2Source

	// Detector.
	Engine    *detect.Engine
	Mitigator *controller.Mitigator
	Reader    *FlowReader
	Hooks     *hooks.Dispatcher

	// Speaker.
	Speaker *bgp.Speaker
	Set     *SpeakerSet

	partitions int32
	since      time.Time
}

// NewNode builds the roles of pol's kafka block. It opens nothing.
func NewNode(pol *policies.Policy, logger hclog.Logger, opts ...controller.Options) (*Node, error) {
	if !pol.Kafka.Enabled() {
		return nil, errors.New("cluster: no kafka block")
	}
	n := &Node{log: logger, pol: pol, cls: newClassifier(pol), Registry: prometheus.NewRegistry(),
		partitions: pol.Kafka.FlowTopic.Partitions}
	if len(opts) > 0 {
		n.Options = opts[0]
	}
	n.sup = supervisor.New(supervisor.DefaultConfig(), logger, n.Registry)
	var err error
	if n.Log, err = NewLog(pol, logger); err != nil {
		return nil, err
	}
	n.API = controller.NewAPIServer(nodeBackend{n}, pol.API, pol.Metrics, n.Registry, logger)
	if n.Hooks, err = hooks.New(pol.Hooks, logger); err != nil {
		return nil, fmt.Errorf("hooks: %w", err)
	}
	n.sup.Add(
		supervisor.Spec{Name: "api", Component: n.API},
		supervisor.Spec{Name: "hooks", Component: n.Hooks, OnFailure: supervisor.Restart},
		supervisor.Spec{Name: "topics", Component: &topicsSetup{pol: pol, log: logger.Named("kafka"), partitions: n.setPartitions}},
		supervisor.Spec{Name: "mitigation-log", Component: n.Log},
	)
	k := &pol.Kafka
	if k.Speaker() {
		n.Speaker = bgp.NewSpeaker(pol.BGP, logger)
		n.Set = NewSpeakerSet(pol, n.Log, n.Speaker, n.Speaker, logger)
		n.sup.Add(supervisor.Spec{Name: "speaker", Component: n.Speaker}, supervisor.Spec{Name: "speaker-set", Component: n.Set})
	}
	if k.Detector() {
		if n.Engine, err = detect.New(detect.Config{Tick: pol.Detection.Tick}, pol, logger); err != nil {
			return nil, fmt.Errorf("detection: %w", err)
		}
		n.Mitigator = controller.NewMitigator(controller.MitigatorConfig{}, pol, n.Engine.Events(), published{}, logStore{n.Log}, logger)
		n.Mitigator.SetObserver(controller.HookObserver(n.Hooks))
		n.Log.Watch(n.watch)
		if n.Reader, err = NewFlowReader(pol, n.Engine, n, logger); err != nil {
			return nil, err
		}
		n.sup.Add(
			supervisor.Spec{Name: "mitigation", Component: n.Mitigator},
			supervisor.Spec{Name: "detection", Component: n.Engine},
			supervisor.Spec{Name: "flow-reader", Component: n.Reader},
		)
	}
	if k.Collector() {
		if err := n.addCollector(pol, logger); err != nil {
			return nil, err
		}
	}
	if n.ConfigPath != "" {
		w := controller.NewWatcher(n.ConfigPath, 2*time.Second, time.Second, func() error { return n.Reload(n.ConfigPath) }, logger)
		n.sup.Add(supervisor.Spec{Name: "config-watcher", Component: w, OnFailure: supervisor.Restart})
	}
	n.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "floodgate"}),
		controller.NewMetrics(controller.Parts{Policy: n.Policy, Sources: n.sourceStats, Engine: n.Engine, Mitigator: n.Mitigator, Speaker: n.Speaker}),
		n.Hooks.Collector(),
		newClusterMetrics(n),
	)
	return n, nil
}

func (n *Node) addCollector(pol *policies.Policy, logger hclog.Logger) error {
	var err error
	if n.Publisher, err = NewPublisher(pol, logger); err != nil {
		return err
	}
	n.sup.Add(supervisor.Spec{Name: "publisher", Component: n.Publisher})
	for _, l := range pol.Listeners {
		c, err := flow.New(flow.Config{Listeners: []flow.ListenerConfig{l}}, n.Publisher, logger)
		if err != nil {
			return fmt.Errorf("source %q: %w", l.Name, err)
		}
		n.Collectors = append(n.Collectors, c)
		n.sup.Add(supervisor.Spec{Name: "source/" + l.Name, Component: c, OnFailure: supervisor.Restart})
	}
	for _, m := range pol.Mirrors {
		c, err := mirror.New(m, n.Publisher, logger.Named(m.Name))
		if err != nil {
			return fmt.Errorf("source %q: %w", m.Name, err)
		}
		n.Mirrors = append(n.Mirrors, c)
		n.sup.Add(supervisor.Spec{Name: "source/" + m.Name, Component: c, OnFailure: supervisor.Restart})
	}
	for _, s := range pol.KafkaSources {
		g, err := NewGoFlow2Source(pol, s, n.Publisher, logger)
		if err != nil {
			return fmt.Errorf("source %q: %w", s.Name, err)
		}
		n.GoFlow2 = append(n.GoFlow2, g)
		n.sup.Add(supervisor.Spec{Name: "source/" + s.Name, Component: g, OnFailure: supervisor.Restart})
	}
	if len(pol.Pcaps) > 0 {
		n.log.Warn("pcap sources are replayed by single nodes only; ignored on a cluster node", "count", len(pol.Pcaps))
	}
	return nil
}

// Start starts every component in order.
func (n *Node) Start(ctx context.Context) error {
	if err := n.sup.Start(ctx); err != nil {
		return err
	}
	n.mu.Lock()
	n.since = time.Now()
	n.mu.Unlock()
	n.log.Info("floodgate cluster node running", "node", n.Policy().Kafka.Node, "roles", n.Policy().Kafka.Roles,
		"dry_run", n.Policy().Mitigation.DryRun)
	return nil
}

// Fatal yields the failure of a component that cannot be restarted.
func (n *Node) Fatal() <-chan error { return n.sup.Fatal() }

// Stop stops the components in reverse order under ctx's deadline.
func (n *Node) Stop(ctx context.Context) error { return n.sup.Stop(ctx) }

// Shutdown is the last Stop of a process about to exit: as a single node
// does, a speaker with graceful restart leaves its sessions to close with
// the process, so that routers keep the routes.
func (n *Node) Shutdown(ctx context.Context) error {
	if pol := n.Policy(); n.Speaker != nil && pol.BGP.GracefulRestart.Enabled && !pol.Mitigation.WithdrawOnShutdown {
		n.Speaker.Detach()
	}
	return n.Stop(ctx)
}

// Policy returns the running policy.
func (n *Node) Policy() *policies.Policy {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pol
}

// Reload loads the configuration again from path and applies what can be
// applied while running (detection, the policy's decisions, the
// speaker's checks); a bad configuration is logged and the running one
// stays.
func (n *Node) Reload(path string) error {
	pol, err := policies.Load(path)
	if err != nil {
		var cerr *policies.Error
		if errors.As(err, &cerr) {
			for _, diag := range cerr.Diags {
				n.log.Error("reload rejected; the running configuration stays", "error", policies.FormatDiagnostic(diag))
			}
		} else {
			n.log.Error("reload rejected; the running configuration stays", "error", err.Error())
		}
		return err
	}
	n.mu.Lock()
	old := n.pol
	n.pol = pol
	n.mu.Unlock()
	if n.Mitigator != nil {
		n.Mitigator.SetPolicy(pol)
		n.Engine.SetPolicy(pol)
	}
	if n.Set != nil {
		n.Set.SetPolicy(pol)
	}
	for _, name := range controller.RestartNeeded(old, pol) {
		n.log.Warn("configuration change needs a restart to apply", "block", name)
	}
	if !equalHostgroups(old, pol) {
		n.log.Warn("hostgroup prefixes or group limits changed: the flow topic's partition keys follow at the next restart of every collector and detector")
	}
	n.log.Info("configuration reloaded", "files", len(pol.Files), "hostgroups", len(pol.Hostgroups))
	return nil
}

func equalHostgroups(a, b *policies.Policy) bool {
	key := func(p *policies.Policy) string {
		s := ""
		for _, hg := range p.Hostgroups {
			s += fmt.Sprint(hg.Name, hg.Prefixes, hg.Incoming.Group, hg.Outgoing.Group, ";")
		}
		return s
	}
	return key(a) == key(b)
}

func (n *Node) sourceStats() []flow.Stats {
	var out []flow.Stats
	for _, c := range n.Collectors {
		out = append(out, c.Stats()...)
	}
	return out
}

func (n *Node) setPartitions(p int32) {
	n.mu.Lock()
	n.partitions = p
	n.mu.Unlock()
}

// owner is the flow partition that owns m.
func (n *Node) owner(victim []byte) int32 {
	n.mu.Lock()
	parts := n.partitions
	n.mu.Unlock()
	return int32(partitioner.ForTopic("").Partition(&kgo.Record{Key: victim}, int(parts)))
}

// partitioner is the flow topic's: Kafka's murmur2 of the key, as every
// Kafka client computes it by default.
var partitioner = kgo.StickyKeyPartitioner(nil)

func (n *Node) ownerOf(m *controller.Mitigation) int32 {
	return n.owner(n.cls.ownerKey(nil, m.Victim))
}

// AdoptGrace is the least time an adopted automatic mitigation has left:
// one due to expire sooner, or that expired while its detector was dying
// but that the speakers still hold (ExpiryGrace), is given until then, so
// that the new owner can count the attack (from the partition's committed
// offset) and extend it if it goes on, rather than withdraw a rule its
// dead detector would have extended. A mitigation expires at the later of
// its own expiry and AdoptGrace after the adoption.
const AdoptGrace = 5 * time.Second

// Assigned adopts the active mitigations owned by the flow partitions the
// detector now reads: their detector is gone, or gave them up.
func (n *Node) Assigned(ctx context.Context, parts []int32) {
	select {
	case <-n.Log.CaughtUp():
	case <-ctx.Done():
		return
	}
	var adopt []controller.Mitigation
	soon := time.Now().Add(AdoptGrace)
	for _, t := range n.Log.Active() {
		m := fromTopic(&t)
		if !slices.Contains(parts, n.ownerOf(&m)) {
			continue
		}
		if m.Expires.Before(soon) && time.Now().Before(m.Expires.Add(ExpiryGrace)) && !m.Manual {
			// Its detector extended it at each expiry while the attack
			// lasted (and may have died at one): this one must first
			// count the attack again. The speakers still hold it.
			m.Expires = soon
		}
		adopt = append(adopt, m)
	}
	if len(adopt) == 0 {
		return
	}
	k, err := n.Mitigator.Adopt(ctx, adopt)
	if err != nil {
		n.log.Error("cannot adopt mitigations", "error", err.Error())
		return
	}
	n.log.Info("mitigations adopted with their flow partitions", "partitions", parts, "adopted", k, "offered", len(adopt))
}

// Revoked releases the mitigations owned by partitions another detector
// reads now.
func (n *Node) Revoked(ctx context.Context, parts []int32) {
	k, err := n.Mitigator.Release(ctx, func(m *controller.Mitigation) bool { return slices.Contains(parts, n.ownerOf(m)) })
	if err != nil {
		if !errors.Is(err, controller.ErrLoopStopped) {
			n.log.Error("cannot release mitigations", "error", err.Error())
		}
		return
	}
	if k > 0 {
		n.log.Info("mitigations released with their flow partitions", "partitions", parts, "released", k)
	}
}

// watch keeps a detector's mitigation loop in step with what other nodes
// write: a manual ban written by any node's API is looked after by the
// detector owning its partition (withdrawn at its time); a tombstone
// written by another node (an unban) releases the mitigation here.
func (n *Node) watch(ch Change) {
	ctx, cancel := context.WithTimeout(context.Background(), WriteTimeout)
	defer cancel()
	self := n.Policy().Kafka.Node
	if ch.Mitigation == nil {
		if ch.Origin == self {
			return
		}
		_, _ = n.Mitigator.Release(ctx, func(m *controller.Mitigation) bool { return m.Key == ch.Key })
		return
	}
	// A manual ban is adopted whoever wrote it, this node included: its
	// API writes to the topic, not to the loop. Adopt keeps one that is
	// already active as it is.
	if !ch.Mitigation.Manual {
		return
	}
	m := fromTopic(ch.Mitigation)
	if slices.Contains(n.Reader.Stats().Partitions, n.ownerOf(&m)) {
		_, _ = n.Mitigator.Adopt(ctx, []controller.Mitigation{m})
	}
}

// published is a detector's announcer: its store, the mitigation topic,
// is what speakers announce, so there is nothing more to send.
type published struct{}

func (published) Announce(context.Context, *flowspec.Announcement) error { return nil }
func (published) Withdraw(context.Context, *flowspec.Announcement) error { return nil }

// topicsSetup waits for the brokers and creates or checks the topics, in
// the background: a node whose brokers are down starts and waits, logging.
// Topics with the wrong settings fail it (Failed), which stops the node.
type topicsSetup struct {
	pol        *policies.Policy
	log        hclog.Logger
	partitions func(int32)

	cancel context.CancelFunc
	done   chan struct{}
	failed chan error
}

func (t *topicsSetup) Start(context.Context) error {
	opts, err := kafka.Options(t.pol.Kafka)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel, t.done, t.failed = cancel, make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(t.done)
		defer cl.Close()
		if err := kafka.WaitBrokers(ctx, cl, t.log); err != nil {
			return
		}
		adm := kadm.NewClient(cl)
		if err := kafka.EnsureTopics(ctx, adm, t.log, kafka.Topics(t.pol.Kafka)...); err != nil {
			if ctx.Err() == nil {
				t.failed <- err
			}
			return
		}
		if d, err := adm.ListTopics(ctx, t.pol.Kafka.FlowTopic.Name); err == nil {
			if td, ok := d[t.pol.Kafka.FlowTopic.Name]; ok && len(td.Partitions) > 0 {
				t.partitions(int32(len(td.Partitions)))
			}
		}
	}()
	return nil
}

func (t *topicsSetup) Failed() <-chan error { return t.failed }

func (t *topicsSetup) Stop(ctx context.Context) error {
	if t.cancel == nil {
		return nil
	}
	t.cancel()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
