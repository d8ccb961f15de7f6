package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/floodgate-ddos/floodgate/bgp"
	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
)

// nodeBackend is the API's view of a cluster node: the mitigations are
// the cluster's (the mitigation log), attacks and top talkers are this
// detector's, peers this speaker's; bans and unbans go through the
// mitigation topic, so that they reach every speaker.
type nodeBackend struct{ n *Node }

var _ controller.Backend = nodeBackend{}

func (b nodeBackend) Status(ctx context.Context) (controller.Status, error) {
	n := b.n
	pol := n.Policy()
	n.mu.Lock()
	since := n.since
	n.mu.Unlock()
	st := controller.Status{Version: n.Version, GoBGP: controller.GoBGPVersion(), Started: since,
		Uptime: time.Since(since).Round(time.Second).String(), Config: n.ConfigPath, DryRun: pol.Mitigation.DryRun,
		Components: n.sup.Status(), Sources: n.sourceStats()}
	if n.Engine != nil {
		st.Detection = n.Engine.Stats()
		st.Mitigation = n.Mitigator.Stats()
	}
	var err error
	if n.Speaker != nil {
		st.Neighbors, err = n.Speaker.Peers(ctx)
		if err != nil {
			return st, err
		}
	}
	active := n.Log.Active()
	var attacks []controller.AttackInfo
	if n.Mitigator != nil {
		if attacks, _, err = n.Mitigator.Attacks(ctx); err != nil {
			return st, err
		}
	}
	for _, hg := range pol.Hostgroups {
		s := controller.HostgroupState{Name: hg.Name}
		for _, m := range active {
			if m.Hostgroup == hg.Name {
				s.Mitigations++
			}
		}
		for _, a := range attacks {
			if a.Signature.Hostgroup == hg.Name {
				s.Attacks++
			}
		}
		st.Hostgroups = append(st.Hostgroups, s)
	}
	if n.Mitigator != nil {
		st.Budgets, err = n.Mitigator.Budgets(ctx)
	}
	return st, err
}

func (b nodeBackend) Attacks(ctx context.Context) ([]controller.AttackInfo, []controller.AttackInfo, error) {
	if b.n.Mitigator == nil {
		return nil, nil, nil
	}
	return b.n.Mitigator.Attacks(ctx)
}

// Active is the cluster's active set, as the mitigation topic has it.
func (b nodeBackend) Active(context.Context) ([]controller.Mitigation, error) {
	active := b.n.Log.Active()
	out := make([]controller.Mitigation, len(active))
	for i := range active {
		out[i] = fromTopic(&active[i])
	}
	return out, nil
}

func (b nodeBackend) Peers(ctx context.Context) ([]bgp.PeerStatus, error) {
	if b.n.Speaker == nil {
		return nil, nil
	}
	return b.n.Speaker.Peers(ctx)
}

func (b nodeBackend) Top(k int, by string, dir detect.Direction) []detect.HostRates {
	if b.n.Engine == nil {
		return nil
	}
	return b.n.Engine.Top(k, by, dir)
}

func (b nodeBackend) Policy() *policies.Policy { return b.n.Policy() }

// Ban writes a manual ban to the mitigation topic after this node's
// safety checks (every speaker checks it again). A ban of a key already
// active extends it.
func (b nodeBackend) Ban(ctx context.Context, ban controller.Ban) (controller.Mitigation, error) {
	pol := b.n.Policy()
	hg, err := flowspec.Check(&ban.Announcement, pol)
	if err != nil {
		return controller.Mitigation{}, err
	}
	now := time.Now()
	key := ban.Announcement.Key()
	m := controller.Mitigation{Key: key, Announcement: ban.Announcement, Hostgroup: hg.Name, Response: "manual",
		Victim: ban.Announcement.Destination(), Reason: ban.Reason, Started: now, Expires: now.Add(ban.Duration),
		Duration: ban.Duration, AttackEnded: now, Manual: true, DryRun: pol.Mitigation.DryRun}
	if old, ok := b.n.Log.Get(key); ok {
		m = fromTopic(&old)
		m.Expires = later(m.Expires, now.Add(ban.Duration))
	} else if len(b.n.Log.Active()) >= pol.Mitigation.MaxActive {
		return controller.Mitigation{}, fmt.Errorf("%w: %d mitigations active, the global cap", flowspec.ErrRefused, pol.Mitigation.MaxActive)
	}
	t := toTopic(&m)
	if err := b.n.Log.Put(ctx, &t); err != nil {
		return controller.Mitigation{}, err
	}
	return m, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Unban withdraws the mitigation with key: through this node's own
// mitigation loop when it looks after it, else with a tombstone, which
// releases it at the detector that does.
func (b nodeBackend) Unban(ctx context.Context, key string) error {
	if b.n.Mitigator != nil {
		err := b.n.Mitigator.Unban(ctx, key)
		if !errors.Is(err, controller.ErrNotFound) {
			return err
		}
	}
	if _, ok := b.n.Log.Get(key); !ok {
		return fmt.Errorf("%w: %s", controller.ErrNotFound, key)
	}
	return b.n.Log.Delete(ctx, key)
}

func (b nodeBackend) Reload() error {
	if b.n.ConfigPath == "" {
		return controller.ErrNoConfigPath
	}
	return b.n.Reload(b.n.ConfigPath)
}

// clusterMetrics exposes the cluster parts' counters.
type clusterMetrics struct {
	n *Node

	pubRecords, pubMessages, pubUnmonitored, pubDropped, pubAcked *prometheus.Desc
	readRecords, readMalformed, readPartitions                    *prometheus.Desc
	logActive, logRecords, logMalformed, logWritten               *prometheus.Desc
	spkActive, spkAnnounced, spkWithdrawn, spkRefused             *prometheus.Desc
	gf2Records, gf2Messages, gf2Malformed, gf2Implausible         *prometheus.Desc
}

func newClusterMetrics(n *Node) *clusterMetrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("floodgate_cluster_"+name, help, labels, nil)
	}
	return &clusterMetrics{n: n,
		pubRecords:     d("published_records_total", "Flow records handed to Kafka by the collector (once per key)."),
		pubMessages:    d("published_messages_total", "Flow-topic messages handed to Kafka."),
		pubUnmonitored: d("unmonitored_records_total", "Flow records of no monitored address, not published."),
		pubAcked:       d("acked_records_total", "Flow records acknowledged by the brokers."),
		pubDropped:     d("dropped_records_total", "Flow records dropped: buffer full (kafka max_buffered) or not delivered in time."),
		readRecords:    d("read_records_total", "Flow records read from the flow topic by the detector."),
		readMalformed:  d("read_malformed_messages_total", "Flow-topic messages that did not decode."),
		readPartitions: d("owned_partitions", "Flow-topic partitions this detector owns."),
		logActive:      d("mitigations_active", "Mitigations in the cluster's active set (the mitigation topic)."),
		logRecords:     d("mitigation_records_total", "Mitigation-topic records read, by kind.", "kind"),
		logMalformed:   d("mitigation_malformed_records_total", "Mitigation-topic records that did not decode."),
		logWritten:     d("mitigation_written_total", "Mitigation-topic records written by this node."),
		spkActive:      d("speaker_announced", "Mitigations this speaker announces."),
		spkAnnounced:   d("speaker_announcements_total", "Announcements made by this speaker."),
		spkWithdrawn:   d("speaker_withdrawals_total", "Withdrawals made by this speaker."),
		spkRefused:     d("speaker_refused_total", "Mitigations this speaker's own checks refused."),
		gf2Records:     d("goflow2_records_total", "Records read from a goflow2 topic.", "source"),
		gf2Messages:    d("goflow2_messages_total", "Messages read from a goflow2 topic.", "source"),
		gf2Malformed:   d("goflow2_malformed_messages_total", "goflow2 messages that did not decode.", "source"),
		gf2Implausible: d("goflow2_implausible_records_total", "goflow2 records dropped as implausible.", "source"),
	}
}

func (m *clusterMetrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

func (m *clusterMetrics) Collect(ch chan<- prometheus.Metric) {
	c := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	g := func(d *prometheus.Desc, v int, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), l...)
	}
	n := m.n
	ls := n.Log.Stats()
	g(m.logActive, ls.Active)
	c(m.logRecords, ls.Records, "mitigation")
	c(m.logRecords, ls.Tombstones, "tombstone")
	c(m.logMalformed, ls.Malformed)
	c(m.logWritten, ls.Written)
	if p := n.Publisher; p != nil {
		s := p.Stats()
		c(m.pubRecords, s.Records)
		c(m.pubMessages, s.Messages)
		c(m.pubUnmonitored, s.Unmonitored)
		c(m.pubAcked, s.Acked)
		c(m.pubDropped, s.Dropped)
	}
	if r := n.Reader; r != nil {
		s := r.Stats()
		c(m.readRecords, s.Records)
		c(m.readMalformed, s.Malformed)
		g(m.readPartitions, len(s.Partitions))
	}
	if sp := n.Set; sp != nil {
		s := sp.Stats()
		g(m.spkActive, s.Active)
		c(m.spkAnnounced, s.Announced)
		c(m.spkWithdrawn, s.Withdrawn)
		c(m.spkRefused, s.Refused)
	}
	for _, src := range n.GoFlow2 {
		s := src.Stats()
		c(m.gf2Records, s.Records, s.Name)
		c(m.gf2Messages, s.Messages, s.Name)
		c(m.gf2Malformed, s.Malformed, s.Name)
		c(m.gf2Implausible, s.Implausible, s.Name)
	}
}
