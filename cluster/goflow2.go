package cluster

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate-ddos/floodgate/kafka"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/flow"
	"github.com/floodgate-ddos/floodgate/topics"
)

// GoFlow2Source reads a topic that goflow2 v2 writes (-transport=kafka
// -format=bin) as a member of a consumer group of collectors, so that
// several collectors share its partitions, and feeds the records to a
// sink. Records that no traffic could have made (flow.Implausible, with
// the default bounds) and messages that do not decode are dropped and
// counted.
type GoFlow2Source struct {
	name string
	opts []kgo.Opt
	sink sources.Sink
	log  hclog.Logger
	lim  *rateLimit

	loop clientLoop

	records, messages, malformed, implausible, skipped atomic.Uint64
}

// GoFlow2Stats are a goflow2 source's counters.
type GoFlow2Stats struct {
	Name string
	// Records were fed to the sink; Messages read; Malformed messages
	// and Implausible records dropped; Skipped records were not IP
	// traffic.
	Records, Messages, Malformed, Implausible, Skipped uint64
}

// NewGoFlow2Source returns the source src of pol feeding sink. It opens
// nothing.
func NewGoFlow2Source(pol *policies.Policy, src policies.KafkaSource, sink sources.Sink, logger hclog.Logger) (*GoFlow2Source, error) {
	opts, err := kafka.Options(pol.Kafka)
	if err != nil {
		return nil, err
	}
	s := &GoFlow2Source{name: src.Name, sink: sink, log: logger.Named(src.Name), lim: newRateLimit(time.Minute)}
	s.opts = append(opts,
		kgo.ConsumerGroup(src.Group),
		kgo.ConsumeTopics(src.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(pol.Kafka.SessionTimeout),
		kgo.HeartbeatInterval(max(pol.Kafka.SessionTimeout/6, 100*time.Millisecond)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.AutoCommitInterval(time.Second),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	return s, nil
}

// Start joins the group and reads until Stop.
func (s *GoFlow2Source) Start(context.Context) error {
	return s.loop.start("source "+s.name, s.opts, s.read)
}

// Stop leaves the group and closes the client.
func (s *GoFlow2Source) Stop(ctx context.Context) error { return s.loop.stop(ctx, "source "+s.name) }

// Stats returns the counters.
func (s *GoFlow2Source) Stats() GoFlow2Stats {
	return GoFlow2Stats{Name: s.name, Records: s.records.Load(), Messages: s.messages.Load(), Malformed: s.malformed.Load(),
		Implausible: s.implausible.Load(), Skipped: s.skipped.Load()}
}

func (s *GoFlow2Source) read(ctx context.Context, cl *kgo.Client) {
	var batch []sources.Record
	for ctx.Err() == nil {
		fs := cl.PollRecords(ctx, 4096)
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil && s.lim.allow() {
				s.log.Warn("reading the goflow2 topic", "topic", t, "partition", p, "error", err.Error())
			}
		})
		batch = batch[:0]
		fs.EachRecord(func(m *kgo.Record) {
			s.messages.Add(1)
			from := len(batch)
			var skipped int
			var err error
			batch, skipped, err = topics.AppendGoFlow2(batch, m.Value)
			s.skipped.Add(uint64(skipped))
			if err != nil {
				s.malformed.Add(1)
				if s.lim.allow() {
					s.log.Warn("malformed goflow2 message; skipped", "partition", m.Partition, "offset", m.Offset, "error", err.Error())
				}
				return
			}
			batch = s.dropImplausible(batch, from)
		})
		if len(batch) > 0 {
			s.records.Add(uint64(len(batch)))
			s.sink.Ingest(batch)
		}
	}
}

func (s *GoFlow2Source) dropImplausible(b []sources.Record, from int) []sources.Record {
	kept := from
	for i := from; i < len(b); i++ {
		r := &b[i]
		if why := flow.Implausible(r, flow.DefaultMaxRecordPPS, flow.DefaultMaxRecordBPS, r.Start == r.End); why != "" {
			s.implausible.Add(1)
			if s.lim.allow() {
				s.log.Warn("implausible goflow2 record dropped", "why", why, "exporter", r.Exporter.String())
			}
			continue
		}
		b[kept] = *r
		kept++
	}
	return b[:kept]
}
