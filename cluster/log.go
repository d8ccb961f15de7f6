package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate-ddos/floodgate/kafka"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/topics"
)

// OriginHeader is the header that names the node that wrote a record of
// the mitigation topic, tombstones included.
const OriginHeader = "floodgate-origin"

// Log is the mitigation topic, followed from its start: the cluster's
// active set of mitigations, keyed by announcement key. Every node keeps
// one (speakers announce it, detectors adopt from it, any node's API shows
// it). Writes go to the topic and count once they are acknowledged by the
// brokers; the set changes when they are read back, in the topic's order.
type Log struct {
	topic, node string
	opts        []kgo.Opt
	log         hclog.Logger
	limit       *rateLimit

	loop     clientLoop
	caughtUp chan struct{}
	watch    func(Change)

	mu      sync.Mutex
	state   map[string]topics.Mitigation
	changed chan struct{}

	records, tombstones, malformed, written atomic.Uint64
}

// Change is one record read from the topic: a mitigation (Mitigation
// set) or a tombstone (nil), with the node that wrote it.
type Change struct {
	Key        string
	Mitigation *topics.Mitigation
	Origin     string
}

// WriteTimeout bounds a write to the mitigation topic.
const WriteTimeout = 10 * time.Second

// NewLog returns the log of pol's mitigation topic. It opens nothing.
func NewLog(pol *policies.Policy, logger hclog.Logger) (*Log, error) {
	opts, err := kafka.Options(pol.Kafka)
	if err != nil {
		return nil, err
	}
	l := &Log{topic: pol.Kafka.MitigationTopic.Name, node: pol.Kafka.Node, log: logger.Named("mitigation-log"),
		limit: newRateLimit(time.Minute), state: map[string]topics.Mitigation{}, changed: make(chan struct{}),
		caughtUp: make(chan struct{})}
	l.opts = append(opts,
		kgo.ConsumeTopics(l.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DefaultProduceTopic(l.topic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.ProducerLinger(0),
	)
	return l, nil
}

// Watch sets a function told of every record read, after the set has
// changed; it runs on the log's goroutine and must not block for long.
// Call it before Start.
func (l *Log) Watch(f func(Change)) { l.watch = f }

// Start opens the client and follows the topic until Stop. It does not
// wait for the brokers: CaughtUp tells when the set is whole.
func (l *Log) Start(context.Context) error { return l.loop.start("mitigation log", l.opts, l.follow) }

// Stop ends following and closes the client.
func (l *Log) Stop(ctx context.Context) error { return l.loop.stop(ctx, "mitigation log") }

// CaughtUp is closed once the log has read every record that was in the
// topic when it started following.
func (l *Log) CaughtUp() <-chan struct{} { return l.caughtUp }

// Changed returns a channel closed at the next change of the set.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Active returns the set, oldest first.
func (l *Log) Active() []topics.Mitigation {
	l.mu.Lock()
	out := make([]topics.Mitigation, 0, len(l.state))
	for _, m := range l.state {
		out = append(out, m)
	}
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Get returns the mitigation with key.
func (l *Log) Get(key string) (topics.Mitigation, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.state[key]
	return m, ok
}

// LogStats are the log's counters.
type LogStats struct {
	// Active is the size of the set; Records and Tombstones were read;
	// Malformed records were skipped; Written were acknowledged.
	Active                                  int
	Records, Tombstones, Malformed, Written uint64
}

// Stats returns the counters.
func (l *Log) Stats() LogStats {
	l.mu.Lock()
	n := len(l.state)
	l.mu.Unlock()
	return LogStats{Active: n, Records: l.records.Load(), Tombstones: l.tombstones.Load(), Malformed: l.malformed.Load(), Written: l.written.Load()}
}

// Put writes m under its key and waits for the brokers' acknowledgement.
func (l *Log) Put(ctx context.Context, m *topics.Mitigation) error {
	m.Origin = l.node
	v, err := topics.AppendMitigation(nil, m)
	if err != nil {
		return err
	}
	return l.write(ctx, &kgo.Record{Topic: l.topic, Key: []byte(m.Key), Value: v})
}

// Delete writes the tombstone of key.
func (l *Log) Delete(ctx context.Context, key string) error {
	return l.write(ctx, &kgo.Record{Topic: l.topic, Key: []byte(key)})
}

func (l *Log) write(ctx context.Context, r *kgo.Record) error {
	cl := l.loop.client()
	if cl == nil {
		return errors.New("mitigation log: not running")
	}
	r.Headers = []kgo.RecordHeader{{Key: OriginHeader, Value: []byte(l.node)}}
	ctx, cancel := context.WithTimeout(ctx, WriteTimeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("mitigation log: write %s: %w", r.Key, err)
	}
	l.written.Add(1)
	return nil
}

// follow reads the topic from its start: first the end offsets, to know
// when the set is whole, then every record.
func (l *Log) follow(ctx context.Context, cl *kgo.Client) {
	ends := l.endOffsets(ctx, cl)
	if ends == nil {
		return
	}
	next := map[int32]int64{}
	l.checkCaughtUp(ends, next)
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil && l.limit.allow() {
				l.log.Warn("reading the mitigation topic", "partition", p, "error", err.Error())
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			l.apply(r)
			next[r.Partition] = r.Offset + 1
		})
		l.checkCaughtUp(ends, next)
	}
}

// endOffsets asks for the topic's end offsets until the brokers answer.
func (l *Log) endOffsets(ctx context.Context, cl *kgo.Client) map[int32]int64 {
	adm := kadm.NewClient(cl)
	wait := 500 * time.Millisecond
	for {
		offs, err := adm.ListEndOffsets(ctx, l.topic)
		if err == nil {
			err = offs.Error()
		}
		if err == nil {
			ends := map[int32]int64{}
			offs.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
			if len(ends) > 0 {
				return ends
			}
			err = errors.New("topic has no partitions yet")
		}
		if ctx.Err() != nil {
			return nil
		}
		l.log.Warn("cannot read the mitigation topic's end offsets; trying again", "topic", l.topic, "error", err.Error(), "in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func (l *Log) checkCaughtUp(ends, next map[int32]int64) {
	select {
	case <-l.caughtUp:
		return
	default:
	}
	for p, end := range ends {
		if next[p] < end {
			return
		}
	}
	l.log.Info("mitigation topic read", "active", len(l.Active()))
	close(l.caughtUp)
}

// apply reads one record into the set.
func (l *Log) apply(r *kgo.Record) {
	ch := Change{Key: string(r.Key)}
	for _, h := range r.Headers {
		if h.Key == OriginHeader {
			ch.Origin = string(h.Value)
		}
	}
	if r.Value == nil {
		l.tombstones.Add(1)
	} else {
		m, err := topics.DecodeMitigation(r.Key, r.Value)
		if err != nil {
			l.malformed.Add(1)
			if l.limit.allow() {
				l.log.Warn("malformed record on the mitigation topic; skipped", "partition", r.Partition, "offset", r.Offset, "error", err.Error())
			}
			return
		}
		l.records.Add(1)
		ch.Mitigation = &m
		if ch.Origin == "" {
			ch.Origin = m.Origin
		}
	}
	l.mu.Lock()
	if ch.Mitigation != nil {
		l.state[ch.Key] = *ch.Mitigation
	} else {
		delete(l.state, ch.Key)
	}
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	if l.watch != nil {
		l.watch(ch)
	}
}
