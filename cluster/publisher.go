package cluster

import (
	"context"
	"errors"
	"fmt"
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

// Publisher is a collector's output: a sources.Sink that publishes every
// record of a monitored address to the flow topic under its partition
// keys (topics.Keys), one message per key and direction per batch. While
// the brokers are away it buffers up to kafka.max_buffered messages (of a
// key's records from one batch each) and
// drops, counting them, what does not fit or is not delivered within
// DeliveryTimeout; it never blocks a source.
type Publisher struct {
	topic string
	cls   *classifier
	opts  []kgo.Opt
	log   hclog.Logger
	limit *rateLimit

	mu sync.Mutex
	cl *kgo.Client

	scratch sync.Pool

	records, messages, unmonitored, acked, dropped, droppedMsgs atomic.Uint64
}

// DeliveryTimeout is how long a published message may wait for the
// brokers before it is dropped and counted.
const DeliveryTimeout = 30 * time.Second

// PublisherStats are a publisher's counters.
type PublisherStats struct {
	// Records and Messages were handed to the client (a record monitored
	// on both sides under two keys counts twice).
	Records, Messages uint64
	// Unmonitored records had no monitored address and were not
	// published.
	Unmonitored uint64
	// Acked records were acknowledged by the brokers.
	Acked uint64
	// Dropped records (in DroppedMessages messages) did not fit the
	// buffer or were not delivered in time.
	Dropped, DroppedMessages uint64
}

// pubScratch gathers one batch's records by key and direction.
type pubScratch struct {
	index map[string]int
	keys  []pubKey
	kb    []byte
}

type pubKey struct {
	key  []byte
	side topics.Side
	recs []sources.Record
}

// NewPublisher returns a publisher of pol's flow topic. It opens nothing.
func NewPublisher(pol *policies.Policy, logger hclog.Logger) (*Publisher, error) {
	opts, err := kafka.Options(pol.Kafka)
	if err != nil {
		return nil, err
	}
	p := &Publisher{topic: pol.Kafka.FlowTopic.Name, cls: newClassifier(pol), log: logger.Named("publisher"), limit: newRateLimit(time.Minute)}
	p.opts = append(opts,
		kgo.DefaultProduceTopic(p.topic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.MaxBufferedRecords(pol.Kafka.MaxBuffered),
		kgo.RecordDeliveryTimeout(DeliveryTimeout),
		kgo.ProducerLinger(2*time.Millisecond),
		// Detection counts, and a duplicate would count twice: the
		// client's idempotent writes (its default, with acks from every
		// in-sync replica) let it retry without duplicating.
	)
	p.scratch.New = func() any { return &pubScratch{index: map[string]int{}} }
	return p, nil
}

// Start opens the client; it does not wait for the brokers.
func (p *Publisher) Start(context.Context) error {
	cl, err := kgo.NewClient(p.opts...)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	p.mu.Lock()
	p.cl = cl
	p.mu.Unlock()
	return nil
}

// FlushTimeout bounds how long Stop waits for the buffered records to
// be delivered, so that brokers that are away do not hold up a shutdown.
const FlushTimeout = 2 * time.Second

// Stop delivers what is buffered within FlushTimeout (and ctx) and closes
// the client; what is still buffered then is dropped and counted.
func (p *Publisher) Stop(ctx context.Context) error {
	p.mu.Lock()
	cl := p.cl
	p.cl = nil
	p.mu.Unlock()
	if cl == nil {
		return nil
	}
	fctx, cancel := context.WithTimeout(ctx, FlushTimeout)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		p.log.Warn("flow records still buffered at stop are dropped", "buffered", cl.BufferedProduceRecords(), "error", err.Error())
	}
	cl.Close() // fails what is left: counted as dropped
	return nil
}

// Stats returns the counters.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{Records: p.records.Load(), Messages: p.messages.Load(), Unmonitored: p.unmonitored.Load(),
		Acked: p.acked.Load(), Dropped: p.dropped.Load(), DroppedMessages: p.droppedMsgs.Load()}
}

// Ingest implements sources.Sink.
func (p *Publisher) Ingest(batch []sources.Record) {
	p.mu.Lock()
	cl := p.cl
	p.mu.Unlock()
	sc := p.scratch.Get().(*pubScratch)
	defer p.scratch.Put(sc)
	for i := range batch {
		r := &batch[i]
		keys, n := topics.Keys(r, p.cls)
		if n == 0 {
			p.unmonitored.Add(1)
			continue
		}
		for _, k := range keys[:n] {
			sc.kb = k.Append(append(sc.kb[:0], byte(k.Side)))
			j, ok := sc.index[string(sc.kb)]
			if !ok {
				j = len(sc.keys)
				if j == cap(sc.keys) {
					sc.keys = append(sc.keys, pubKey{})
				}
				sc.keys = sc.keys[:j+1]
				pk := &sc.keys[j]
				pk.key, pk.side, pk.recs = append(pk.key[:0], sc.kb[1:]...), k.Side, pk.recs[:0]
				sc.index[string(sc.kb)] = j
			}
			sc.keys[j].recs = append(sc.keys[j].recs, *r)
		}
	}
	for j := range sc.keys {
		pk := &sc.keys[j]
		n := uint64(len(pk.recs))
		value := topics.AppendFlows(make([]byte, 0, 9+len(pk.recs)*topics.MaxFlowRecord), pk.side, pk.recs)
		rec := &kgo.Record{Topic: p.topic, Key: append([]byte(nil), pk.key...), Value: value}
		if cl == nil {
			p.drop(n, kgo.ErrClientClosed)
			continue
		}
		p.records.Add(n)
		p.messages.Add(1)
		cl.TryProduce(context.Background(), rec, p.done)
	}
	clear(sc.index)
	sc.keys = sc.keys[:0]
}

// done counts a message that was acknowledged, or could not be delivered.
func (p *Publisher) done(r *kgo.Record, err error) {
	_, n, herr := topics.FlowHeader(r.Value)
	if herr != nil {
		n = 0
	}
	if err == nil {
		p.acked.Add(uint64(n))
		return
	}
	p.drop(uint64(n), err)
}

func (p *Publisher) drop(n uint64, err error) {
	p.dropped.Add(n)
	p.droppedMsgs.Add(1)
	if p.limit.allow() {
		what := "flow records dropped: brokers unreachable or slow"
		if errors.Is(err, kgo.ErrMaxBuffered) {
			what = "flow records dropped: the buffer is full (kafka max_buffered)"
		}
		p.log.Warn(what, "error", err.Error(), "dropped_total", p.dropped.Load())
	}
}

// rateLimit lets one event through per interval.
type rateLimit struct {
	every time.Duration
	next  atomic.Int64
}

func newRateLimit(every time.Duration) *rateLimit { return &rateLimit{every: every} }

func (l *rateLimit) allow() bool {
	now := time.Now().UnixNano()
	next := l.next.Load()
	return now >= next && l.next.CompareAndSwap(next, now+int64(l.every))
}
