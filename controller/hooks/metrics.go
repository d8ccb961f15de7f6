package hooks

import "github.com/prometheus/client_golang/prometheus"

// collector exposes the hooks' counters to Prometheus, read at scrape
// time. Labels are the hook's name and type, from the configuration, and
// the result; never anything from an event.
type collector struct {
	d                       *Dispatcher
	events, retries, queued *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(d *Dispatcher) *collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("floodgate_hooks_"+name, help, labels, nil)
	}
	return &collector{
		d:       d,
		events:  desc("events_total", "Events handed to a hook, by result: ok (delivered), failed (after any retries) or dropped (queue full, not running, or stopped first).", "hook", "type", "result"),
		retries: desc("retries_total", "Webhook attempts after the first.", "hook", "type"),
		queued:  desc("queued_events", "Events waiting in a hook's queue.", "hook", "type"),
	}
}

// Collector returns a Prometheus collector of the hooks' counters, for the
// caller to register.
func (d *Dispatcher) Collector() prometheus.Collector { return d.metrics }

// Describe sends the descriptors.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.retries
	ch <- c.queued
}

// Collect reads the hooks' counters.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.d.Stats() {
		counter := func(d *prometheus.Desc, v uint64, l ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{s.Name, s.Type}, l...)...)
		}
		counter(c.events, s.Sent, "ok")
		counter(c.events, s.Failed, "failed")
		counter(c.events, s.Dropped, "dropped")
		counter(c.retries, s.Retries)
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued), s.Name, s.Type)
	}
}
