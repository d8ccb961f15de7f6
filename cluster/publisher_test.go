package cluster

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/floodgate-ddos/floodgate/sources"
)

// TestPublisherBrokersLost publishes while the brokers are gone: Ingest
// never waits for them, the client keeps at most max_buffered messages,
// and what does not fit is dropped and counted.
func TestPublisherBrokersLost(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	pol := nodePolicy(t, c.ListenAddrs()[0], topicName(t), "c", "collector")
	pol.Kafka.MaxBuffered = 1000
	ensureTopics(t, pol)
	pub, err := NewPublisher(pol, testLogger(t, "publisher"))
	if err != nil {
		t.Fatal(err)
	}
	start(t, "publisher", pub)
	batch := func() []sources.Record {
		var b []sources.Record
		for i := range 40 {
			b = append(b, sources.Record{Src: netip.AddrFrom4([4]byte{192, 0, 2, 1}), Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}),
				Proto: 17, Packets: 1, Bytes: 100, Length: 100, Sampling: 1})
		}
		return b
	}
	pub.Ingest(batch())
	waitFor(t, 10*time.Second, "first batch acknowledged", func() bool { return pub.Stats().Acked == 40 })
	c.Close()
	time.Sleep(time.Second) // the client sees the connection go
	began := time.Now()
	for range 100 { // 4,000 messages
		pub.Ingest(batch())
	}
	took := time.Since(began)
	if took > 2*time.Second {
		t.Errorf("publishing with the brokers gone took %s", took)
	}
	// The client tells of what it refused as it goes.
	waitFor(t, 10*time.Second, "refused messages counted", func() bool { return pub.Stats().DroppedMessages >= 4000-1000 })
	st := pub.Stats()
	t.Logf("100 batches with the brokers gone: %s; %+v", took.Round(time.Millisecond), st)
	if st.Dropped != st.DroppedMessages {
		t.Errorf("dropped %d records in %d one-record messages", st.Dropped, st.DroppedMessages)
	}
	// The stop gives up after FlushTimeout and counts what is left.
	stopped := time.Now()
	if err := pub.Stop(context.Background()); err != nil {
		t.Error(err)
	}
	if took := time.Since(stopped); took > FlushTimeout+5*time.Second {
		t.Errorf("stop took %s with the brokers gone", took)
	}
	waitFor(t, 10*time.Second, "every record accounted for", func() bool {
		st = pub.Stats()
		return st.Acked+st.Dropped == st.Records
	})
	t.Logf("after the stop: %+v", st)
}
