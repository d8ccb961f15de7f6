package cluster

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/sources"
)

// countingSink counts what a detector would: per monitored address and
// direction, the packets of the directions its messages were keyed for,
// and per phase (a record's Start second) which sinks saw the address.
type countingSink struct {
	name string
	cls  *classifier
	all  *tally
}

type tally struct {
	mu      sync.Mutex
	packets map[string]uint64
	seenBy  map[seen]map[string]bool // sinks that saw a host in a direction in a phase
}

type seen struct {
	addr  netip.Addr
	dir   string
	phase int64
}

func (s *countingSink) IngestDirections(batch []sources.Record, in, out bool) {
	s.all.mu.Lock()
	defer s.all.mu.Unlock()
	for i := range batch {
		r := &batch[i]
		for _, side := range []struct {
			on   bool
			addr netip.Addr
			dir  string
		}{{in, r.Dst, "in"}, {out, r.Src, "out"}} {
			if _, _, ok := s.cls.Classify(side.addr); !side.on || !ok {
				continue
			}
			k := side.addr.String() + "/" + side.dir
			s.all.packets[k] += r.Packets
			pk := seen{side.addr, side.dir, r.Start}
			if s.all.seenBy[pk] == nil {
				s.all.seenBy[pk] = map[string]bool{}
			}
			s.all.seenBy[pk][s.name] = true
		}
	}
}

type noOwnership struct{}

func (noOwnership) Assigned(context.Context, []int32) {}
func (noOwnership) Revoked(context.Context, []int32)  {}

// TestPartitionsKeepCountsWhole publishes records of single hosts (in
// and out), of hosts talking to each other (monitored on both sides) and
// of a hostgroup with group limits through the flow topic to detectors
// of one group, while the group changes (a third detector joins, the
// first leaves), and checks that every host's count in every direction
// arrived exactly once, and that within each phase one detector alone
// saw each host and the whole grouped hostgroup.
func TestPartitionsKeepCountsWhole(t *testing.T) {
	b := brokers(t)
	topic := topicName(t)
	pol := nodePolicy(t, b, topic, "c", "collector", "detector")
	ensureTopics(t, pol)
	log := testLogger(t, "partition")
	pub, err := NewPublisher(pol, log)
	if err != nil {
		t.Fatal(err)
	}
	start(t, "publisher", pub)
	all := &tally{packets: map[string]uint64{}, seenBy: map[seen]map[string]bool{}}
	readers := map[string]*FlowReader{}
	addReader := func(name string) {
		r, err := NewFlowReader(pol, &countingSink{name: name, cls: newClassifier(pol), all: all}, noOwnership{}, log.Named(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		readers[name] = r
	}
	stopReader := func(name string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := readers[name].Stop(ctx); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() {
		for name := range readers {
			stopReader(name)
		}
	})
	owned := func(names ...string) func() bool {
		return func() bool {
			n := 0
			for _, name := range names {
				n += len(readers[name].Stats().Partitions)
			}
			return n == 6
		}
	}
	want := map[string]uint64{}
	host := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }
	carpet := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}) }
	outside := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	phase := func(p int64) {
		var batch []sources.Record
		add := func(src, dst netip.Addr, pk uint64) {
			batch = append(batch, sources.Record{Src: src, Dst: dst, Proto: 17, Packets: pk, Bytes: pk * 100, Length: 100,
				Sampling: 1, Start: p, End: p})
			for _, side := range []struct {
				a   netip.Addr
				dir string
			}{{dst, "in"}, {src, "out"}} {
				if side.a.Is4() && (side.a.As4()[0] == 203 || side.a.As4()[0] == 198) {
					want[side.a.String()+"/"+side.dir] += pk
				}
			}
		}
		for round := range 20 {
			for i := 1; i <= 40; i++ {
				add(outside(i), host(i), uint64(10+i))        // incoming
				add(host(i), outside(i), uint64(1+i))         // outgoing
				add(host(i), host(41+i%40), uint64(100))      // both sides monitored
				add(outside(i), carpet(i+round%3), uint64(7)) // grouped
			}
			pub.Ingest(batch)
			batch = batch[:0]
		}
	}
	addReader("d1")
	addReader("d2")
	waitFor(t, 20*time.Second, "d1 and d2 own every partition", owned("d1", "d2"))
	phase(1)
	sum := func() (n uint64) {
		all.mu.Lock()
		defer all.mu.Unlock()
		for _, v := range all.packets {
			n += v
		}
		return n
	}
	total := func() (n uint64) {
		for _, v := range want {
			n += v
		}
		return n
	}
	waitFor(t, 20*time.Second, "phase 1 counted", func() bool { return sum() == total() })
	addReader("d3")
	waitFor(t, 20*time.Second, "three detectors own every partition", func() bool {
		return owned("d1", "d2", "d3")() && len(readers["d3"].Stats().Partitions) > 0
	})
	phase(2)
	waitFor(t, 20*time.Second, "phase 2 counted", func() bool { return sum() == total() })
	stopReader("d1")
	delete(readers, "d1")
	waitFor(t, 20*time.Second, "d2 and d3 own every partition", owned("d2", "d3"))
	phase(3)
	waitFor(t, 20*time.Second, "phase 3 counted", func() bool { return sum() == total() })
	time.Sleep(500 * time.Millisecond) // nothing more may come
	all.mu.Lock()
	defer all.mu.Unlock()
	for k, w := range want {
		if got := all.packets[k]; got != w {
			t.Errorf("%s: counted %d packets, sent %d", k, got, w)
		}
	}
	if len(all.packets) != len(want) {
		t.Errorf("counted %d host-directions, sent %d", len(all.packets), len(want))
	}
	carpetBy := map[int64]map[string]bool{}
	for pk, sinks := range all.seenBy {
		if len(sinks) != 1 {
			t.Errorf("%v: seen by %d detectors in one phase, want 1", pk, len(sinks))
		}
		if pk.addr.As4()[0] == 198 {
			if carpetBy[pk.phase] == nil {
				carpetBy[pk.phase] = map[string]bool{}
			}
			for s := range sinks {
				carpetBy[pk.phase][s] = true
			}
		}
	}
	for p, sinks := range carpetBy {
		if len(sinks) != 1 {
			t.Errorf("phase %d: the grouped hostgroup was seen by %d detectors, want 1", p, len(sinks))
		}
	}
	st := pub.Stats()
	t.Logf("published %d records in %d messages; %d dropped", st.Records, st.Messages, st.Dropped)
	if st.Dropped != 0 {
		t.Errorf("%d records dropped", st.Dropped)
	}
}
