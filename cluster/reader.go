package cluster

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate-ddos/floodgate/kafka"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/topics"
)

// DirectedSink counts records in the directions asked (detect.Engine).
type DirectedSink interface {
	IngestDirections(batch []sources.Record, incoming, outgoing bool)
}

// Ownership is told when the reader's group gives it partitions of the
// flow topic or takes them away. Calls come one at a time, from the
// group's own goroutine, before records of an assigned partition are
// read and after the last record of a revoked one.
type Ownership interface {
	Assigned(ctx context.Context, partitions []int32)
	Revoked(ctx context.Context, partitions []int32)
}

// FlowReader is a detector's consumer of the flow topic: a member of the
// detectors' consumer group (cooperative-sticky balancing, the session
// timeout of the kafka block) that decodes each message and counts its
// records in the direction it was keyed for. A detector that dies loses
// its partitions to the others within the session timeout; they resume
// from the committed offsets (committed every second and on revocation).
type FlowReader struct {
	opts []kgo.Opt
	sink DirectedSink
	own  Ownership
	log  hclog.Logger
	lim  *rateLimit

	loop clientLoop

	mu    sync.Mutex
	owned []int32

	records, messages, malformed atomic.Uint64
}

// ReaderStats are a reader's counters.
type ReaderStats struct {
	Records, Messages, Malformed uint64
	// Partitions are the flow topic's partitions it owns now.
	Partitions []int32
}

// NewFlowReader returns a reader of pol's flow topic that feeds sink and
// tells own of ownership changes. It opens nothing.
func NewFlowReader(pol *policies.Policy, sink DirectedSink, own Ownership, logger hclog.Logger) (*FlowReader, error) {
	opts, err := kafka.Options(pol.Kafka)
	if err != nil {
		return nil, err
	}
	r := &FlowReader{sink: sink, own: own, log: logger.Named("flow-reader"), lim: newRateLimit(time.Minute)}
	k := pol.Kafka
	r.opts = append(opts,
		kgo.ConsumerGroup(k.Group),
		kgo.ConsumeTopics(k.FlowTopic.Name),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(k.SessionTimeout),
		kgo.HeartbeatInterval(max(k.SessionTimeout/6, 100*time.Millisecond)),
		// A new group starts at the end: past traffic is not an attack
		// now.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.AutoCommitInterval(time.Second),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.OnPartitionsAssigned(r.assigned),
		kgo.OnPartitionsRevoked(r.revoked),
		kgo.OnPartitionsLost(r.lost),
	)
	return r, nil
}

// Start joins the group and reads until Stop; it does not wait for the
// brokers.
func (r *FlowReader) Start(context.Context) error { return r.loop.start("flow reader", r.opts, r.read) }

// Stop leaves the group (its partitions go to the others at once, the
// offsets read are committed) and closes the client.
func (r *FlowReader) Stop(ctx context.Context) error { return r.loop.stop(ctx, "flow reader") }

// Stats returns the counters.
func (r *FlowReader) Stats() ReaderStats {
	r.mu.Lock()
	owned := slices.Clone(r.owned)
	r.mu.Unlock()
	return ReaderStats{Records: r.records.Load(), Messages: r.messages.Load(), Malformed: r.malformed.Load(), Partitions: owned}
}

func (r *FlowReader) read(ctx context.Context, cl *kgo.Client) {
	var recs []sources.Record
	for ctx.Err() == nil {
		fs := cl.PollRecords(ctx, 4096)
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil && r.lim.allow() {
				r.log.Warn("reading the flow topic", "partition", p, "error", err.Error())
			}
		})
		fs.EachRecord(func(m *kgo.Record) {
			var side topics.Side
			var err error
			recs, side, err = topics.DecodeFlows(recs[:0], m.Value)
			r.messages.Add(1)
			if err != nil {
				r.malformed.Add(1)
				if r.lim.allow() {
					r.log.Warn("malformed message on the flow topic; skipped", "partition", m.Partition, "offset", m.Offset, "error", err.Error())
				}
				return
			}
			r.records.Add(uint64(len(recs)))
			r.sink.IngestDirections(recs, side != topics.SideOutgoing, side != topics.SideIncoming)
		})
	}
}

func (r *FlowReader) assigned(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	parts := flat(m)
	if len(parts) == 0 {
		return
	}
	r.mu.Lock()
	r.owned = sorted(append(r.owned, parts...))
	r.mu.Unlock()
	r.log.Info("flow partitions assigned", "partitions", parts)
	r.own.Assigned(ctx, parts)
}

func (r *FlowReader) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	if err := cl.CommitUncommittedOffsets(ctx); err != nil && r.lim.allow() {
		r.log.Warn("commit on revocation failed", "error", err.Error())
	}
	r.drop(ctx, "revoked", flat(m))
}

func (r *FlowReader) lost(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	r.drop(ctx, "lost", flat(m))
}

func (r *FlowReader) drop(ctx context.Context, why string, parts []int32) {
	if len(parts) == 0 {
		return
	}
	r.mu.Lock()
	r.owned = slices.DeleteFunc(r.owned, func(p int32) bool { return slices.Contains(parts, p) })
	r.mu.Unlock()
	r.log.Info("flow partitions "+why, "partitions", parts)
	r.own.Revoked(ctx, parts)
}

func flat(m map[string][]int32) []int32 {
	var out []int32
	for _, ps := range m {
		out = append(out, ps...)
	}
	return sorted(out)
}

func sorted(ps []int32) []int32 {
	slices.Sort(ps)
	return slices.Compact(ps)
}
