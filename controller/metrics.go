package controller

import (
	"cmp"
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/floodgate-ddos/floodgate/bgp"
	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources/flow"
)

// Parts are the components whose statistics the metrics read; any but
// Policy may be nil (a node of a cluster holds only some).
type Parts struct {
	Policy    func() *policies.Policy
	Sources   func() []flow.Stats
	Engine    *detect.Engine
	Mitigator *Mitigator
	Speaker   *bgp.Speaker
}

// NewMetrics returns the Prometheus collector of p's statistics.
func NewMetrics(p Parts) prometheus.Collector { return newMetrics(p) }

// metrics exposes the daemon's counters to Prometheus. It reads each
// component's statistics at scrape time, so the hot paths pay nothing.
// Labels are bounded by the configuration: listener, hostgroup, neighbour,
// family, kind, reason; never an address from traffic.
type metrics struct {
	p Parts

	flowDatagrams, flowBytes, flowRecords, flowMalformed, flowUnknownTemplate, flowDrops *prometheus.Desc
	flowRefused, flowCounterSamples, flowTemplatesDropped, flowExportersDropped          *prometheus.Desc
	expDatagrams, expRecords, expMalformed, expDrops                                     *prometheus.Desc

	detectRecords, detectMonitored, detectHosts, detectRefused, detectEvicted *prometheus.Desc
	detectTick, detectSketches, detectAttacks                                 *prometheus.Desc
	detectFlowSetFull, detectRecordTiming                                     *prometheus.Desc

	mitActive, mitAnnounced, mitWithdrawn, mitExtended, mitEscalations, mitFailures, mitRefused *prometheus.Desc
	mitBudgetFull, mitBudgetUsed, mitBudgetLimit                                                *prometheus.Desc

	bgpUp, bgpAdvertised *prometheus.Desc
}

func newMetrics(p Parts) *metrics {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("floodgate_"+name, help, labels, nil)
	}
	return &metrics{
		p:                    p,
		flowDatagrams:        desc("flow_datagrams_total", "Datagrams received by a flow listener.", "listener", "protocol"),
		flowBytes:            desc("flow_received_bytes_total", "Bytes of datagrams received by a flow listener.", "listener", "protocol"),
		flowRecords:          desc("flow_records_total", "Records decoded by a flow listener.", "listener", "protocol"),
		flowMalformed:        desc("flow_malformed_datagrams_total", "Datagrams rejected as malformed.", "listener", "protocol"),
		flowUnknownTemplate:  desc("flow_unknown_template_datagrams_total", "Datagrams with data for a template not received yet.", "listener", "protocol"),
		flowDrops:            desc("flow_queue_dropped_datagrams_total", "Datagrams dropped because the decode queue was full.", "listener", "protocol"),
		flowRefused:          desc("flow_refused_datagrams_total", "Datagrams from addresses outside allowed_exporters.", "listener", "protocol"),
		flowCounterSamples:   desc("flow_sflow_skipped_samples_total", "sFlow counter samples, skipped.", "listener", "protocol"),
		flowTemplatesDropped: desc("flow_templates_dropped_total", "NetFlow v9/IPFIX templates expired or evicted.", "listener", "protocol"),
		flowExportersDropped: desc("flow_exporters_dropped_total", "Exporters forgotten (idle or evicted).", "listener", "protocol"),
		expDatagrams:         desc("flow_exporter_datagrams_total", "Datagrams from one exporter.", "listener", "exporter"),
		expRecords:           desc("flow_exporter_records_total", "Records from one exporter.", "listener", "exporter"),
		expMalformed:         desc("flow_exporter_malformed_datagrams_total", "Malformed datagrams from one exporter.", "listener", "exporter"),
		expDrops:             desc("flow_exporter_queue_dropped_datagrams_total", "Datagrams from one exporter dropped at the queue.", "listener", "exporter"),
		detectRecords:        desc("detect_records_total", "Records given to detection."),
		detectMonitored:      desc("detect_counted_total", "Host-directions counted (a record between two monitored hosts counts twice)."),
		detectHosts:          desc("detect_hosts", "Host-directions tracked."),
		detectRefused:        desc("detect_refused_total", "Counts not tracked per host because the host cap was reached."),
		detectEvicted:        desc("detect_evicted_hosts_total", "Idle hosts evicted."),
		detectFlowSetFull:    desc("detect_flow_set_full_total", "Records counted as new flows because a distinct-flow set was full."),
		detectRecordTiming:   desc("detect_flow_records_timing_total", "Flow records whose times were off: late (too old to count), future (ended after the tick) or overlong (spanning over 10 minutes).", "kind"),
		detectTick:           desc("detect_tick_duration_seconds", "Duration of the last detection tick."),
		detectSketches:       desc("detect_sketches", "Hosts whose traffic shape is tracked (suspect or attacked)."),
		detectAttacks:        desc("detect_attacks_active", "Attacks going on.", "hostgroup"),
		mitActive:            desc("mitigation_active", "Active mitigations.", "kind", "hostgroup"),
		mitAnnounced:         desc("mitigation_announcements_total", "Mitigations announced."),
		mitWithdrawn:         desc("mitigation_withdrawals_total", "Mitigations withdrawn."),
		mitExtended:          desc("mitigation_extensions_total", "Mitigations extended because the attack went on."),
		mitEscalations:       desc("mitigation_escalations_total", "Escalations announced."),
		mitFailures:          desc("mitigation_failures_total", "Announcements, withdrawals or store writes that failed."),
		mitRefused:           desc("mitigation_refusals_total", "Announcements refused by the safety checks or caps.", "reason"),
		mitBudgetFull:        desc("mitigation_budget_full_total", "Attacks whose announcements did not fit a rule budget, by budget and by what was done (aggregate, replace_smallest, rtbh, refused).", "budget", "action"),
		mitBudgetUsed:        desc("mitigation_budget_used", "A rule budget's use.", "budget", "scope"),
		mitBudgetLimit:       desc("mitigation_budget_limit", "A rule budget's size.", "budget", "scope"),
		bgpUp:                desc("bgp_neighbor_established", "1 when the session with the neighbour is established.", "neighbor"),
		bgpAdvertised:        desc("bgp_neighbor_advertised_routes", "Routes advertised to the neighbour.", "neighbor", "family"),
	}
}

// Describe sends the descriptors.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

// Collect reads the components' statistics.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	var srcs []flow.Stats
	if m.p.Sources != nil {
		srcs = m.p.Sources()
	}
	for _, s := range srcs {
		p := string(s.Protocol)
		counter(m.flowDatagrams, float64(s.Datagrams), s.Name, p)
		counter(m.flowBytes, float64(s.Bytes), s.Name, p)
		counter(m.flowRecords, float64(s.Records), s.Name, p)
		counter(m.flowMalformed, float64(s.Malformed), s.Name, p)
		counter(m.flowUnknownTemplate, float64(s.UnknownTemplate), s.Name, p)
		counter(m.flowDrops, float64(s.QueueDrops), s.Name, p)
		counter(m.flowRefused, float64(s.Refused), s.Name, p)
		counter(m.flowCounterSamples, float64(s.CounterSamples), s.Name, p)
		counter(m.flowTemplatesDropped, float64(s.TemplatesDropped), s.Name, p)
		counter(m.flowExportersDropped, float64(s.ExportersDropped), s.Name, p)
		// Exporters are bounded by max_exporters and allowed_exporters.
		for _, e := range s.Exporters {
			a := e.Addr.String()
			counter(m.expDatagrams, float64(e.Datagrams), s.Name, a)
			counter(m.expRecords, float64(e.Records), s.Name, a)
			counter(m.expMalformed, float64(e.Malformed), s.Name, a)
			counter(m.expDrops, float64(e.QueueDrops), s.Name, a)
		}
	}
	m.collectDetection(counter, gauge)
	m.collectMitigation(counter, gauge)
	m.collectBGP(gauge)
}

func (m *metrics) collectDetection(counter, gauge func(*prometheus.Desc, float64, ...string)) {
	if m.p.Engine == nil {
		return
	}
	ds := m.p.Engine.Stats()
	counter(m.detectRecords, float64(ds.Records))
	counter(m.detectMonitored, float64(ds.Monitored))
	gauge(m.detectHosts, float64(ds.Hosts))
	counter(m.detectRefused, float64(ds.Refused))
	counter(m.detectEvicted, float64(ds.Evicted))
	gauge(m.detectTick, ds.LastTick.Seconds())
	gauge(m.detectSketches, float64(ds.Sketches))
	counter(m.detectFlowSetFull, float64(ds.FlowSetFull))
	counter(m.detectRecordTiming, float64(ds.Late), "late")
	counter(m.detectRecordTiming, float64(ds.FutureDated), "future")
	counter(m.detectRecordTiming, float64(ds.OverLong), "overlong")

}

func (m *metrics) collectMitigation(counter, gauge func(*prometheus.Desc, float64, ...string)) {
	pol := m.p.Policy()
	mit := m.p.Mitigator
	if mit == nil {
		return
	}
	ms := mit.Stats()
	counter(m.mitAnnounced, float64(ms.Announced))
	counter(m.mitWithdrawn, float64(ms.Withdrawn))
	counter(m.mitExtended, float64(ms.Extended))
	counter(m.mitEscalations, float64(ms.Escalations))
	counter(m.mitFailures, float64(ms.Failures))
	for reason, n := range ms.Refused {
		counter(m.mitRefused, float64(n), reason)
	}
	for k, n := range ms.BudgetFull {
		budget, action, _ := strings.Cut(k, "/")
		counter(m.mitBudgetFull, float64(n), budget, action)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if budgets, err := mit.Budgets(ctx); err == nil {
		for _, b := range budgets {
			gauge(m.mitBudgetUsed, float64(b.Used), b.Budget, b.Scope)
			gauge(m.mitBudgetLimit, float64(b.Limit), b.Budget, b.Scope)
		}
	}
	attacks := map[string]int{}
	active := map[[2]string]int{}
	for _, hg := range pol.Hostgroups {
		attacks[hg.Name] = 0
		active[[2]string{"rtbh", hg.Name}] = 0
		active[[2]string{"flowspec", hg.Name}] = 0
	}
	if a, _, err := mit.Attacks(ctx); err == nil {
		for _, x := range a {
			if _, ok := attacks[x.Signature.Hostgroup]; ok {
				attacks[x.Signature.Hostgroup]++
			}
		}
	}
	if list, err := mit.Active(ctx); err == nil {
		for _, x := range list {
			k := [2]string{x.Announcement.Kind.String(), x.Hostgroup}
			if _, ok := active[k]; ok {
				active[k]++
			}
		}
	}
	for hg, n := range attacks {
		gauge(m.detectAttacks, float64(n), hg)
	}
	for k, n := range active {
		gauge(m.mitActive, float64(n), k[0], k[1])
	}
}

func (m *metrics) collectBGP(gauge func(*prometheus.Desc, float64, ...string)) {
	if m.p.Speaker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if peers, err := m.p.Speaker.Peers(ctx); err == nil {
		for _, p := range peers {
			name := p.Name
			name = cmp.Or(name, p.Address)
			up := 0.0
			if p.Established {
				up = 1
			}
			gauge(m.bgpUp, up, name)
			for fam, n := range p.Advertised {
				gauge(m.bgpAdvertised, float64(n), name, fam)
			}
		}
	}
}
