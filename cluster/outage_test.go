package cluster

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/floodgate-ddos/floodgate/sources"
)

// TestBrokersLostAndBack loses the brokers while a collector publishes
// and a detector reads: the collector keeps what it cannot deliver (within
// max_buffered), the broker comes back with its data (kfake persisting to
// a directory, as a Kafka broker does), and the detector, a new process
// that joins the same group, resumes from the committed offsets: every
// record is counted once, none twice.
func TestBrokersLostAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("broker outage")
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	broker := func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := broker()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	pol := nodePolicy(t, addr, topicName(t), "c", "collector", "detector")
	ensureTopics(t, pol)
	log := testLogger(t, "outage")
	pub, err := NewPublisher(pol, log)
	if err != nil {
		t.Fatal(err)
	}
	start(t, "publisher", pub)
	all := &tally{packets: map[string]uint64{}, seenBy: map[seen]map[string]bool{}}
	reader := func(name string) *FlowReader {
		r, err := NewFlowReader(pol, &countingSink{name: name, cls: newClassifier(pol), all: all}, noOwnership{}, log.Named(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return r
	}
	stop := func(r *FlowReader) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Error(err)
		}
	}
	sum := func() (n uint64) {
		all.mu.Lock()
		defer all.mu.Unlock()
		for _, v := range all.packets {
			n += v
		}
		return n
	}
	var sent uint64
	send := func(phase int64) {
		var batch []sources.Record
		for i := range 50 {
			batch = append(batch, sources.Record{Src: netip.AddrFrom4([4]byte{192, 0, 2, 1}), Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}),
				Proto: 17, Packets: 3, Bytes: 300, Length: 100, Sampling: 1, Start: phase, End: phase})
			sent += 3
		}
		pub.Ingest(batch)
	}
	r1 := reader("d1")
	waitFor(t, 20*time.Second, "d1 owns every partition", func() bool { return len(r1.Stats().Partitions) == 6 })
	for range 10 {
		send(1)
	}
	waitFor(t, 20*time.Second, "phase 1 counted", func() bool { return sum() == sent })
	// The detector goes (its offsets committed); then the broker.
	stop(r1)
	for range 10 {
		send(2) // delivered: read by the next detector from the committed offsets
	}
	waitFor(t, 20*time.Second, "phase 2 acknowledged", func() bool { return pub.Stats().Acked*3 == sent })
	c.Close()
	for range 10 {
		send(3) // kept by the collector while the broker is away
	}
	time.Sleep(2 * time.Second)
	if st := pub.Stats(); st.Dropped != 0 || st.Acked*3 == sent {
		t.Fatalf("with the broker away: %+v", st)
	}
	c = broker()
	defer c.Close()
	r2 := reader("d2")
	defer stop(r2)
	waitFor(t, 60*time.Second, "every record counted after the outage", func() bool { return sum() >= sent })
	time.Sleep(time.Second)
	if got := sum(); got != sent {
		t.Errorf("counted %d packets, sent %d", got, sent)
	}
	t.Logf("publisher %+v; reader %+v", pub.Stats(), r2.Stats())
}
