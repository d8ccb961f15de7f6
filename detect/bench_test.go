package detect

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
)

// benchPolicy monitors n /24 prefixes in 10.0.0.0/8 (one hostgroup each
// ten prefixes) with thresholds no test traffic reaches.
func benchPolicy(n int) *policies.Policy {
	pol := &policies.Policy{Detection: policies.Detection{Tick: time.Second}}
	var g *policies.Hostgroup
	for i := range n {
		if i%10 == 0 {
			g = &policies.Hostgroup{Name: "g" + string(rune('a'+i%26)) + string(rune('0'+i/10%10)), EWMA: time.Second, Baseline: time.Hour,
				Incoming: policies.Threshold{Total: policies.Limits{PPS: 1e12}}}
			pol.Hostgroups = append(pol.Hostgroups, g)
		}
		g.Prefixes = append(g.Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	return pol
}

// benchHost is the address of active host h of the benchmarks, spread
// over the first prefixes monitored /24s of benchPolicy.
func benchHost(h, prefixes int) [4]byte {
	p := h % prefixes
	return [4]byte{10, byte(p >> 8), byte(p), byte(1 + h/prefixes%254)}
}

// benchRecords makes records to hosts active in the monitored /24s, from
// outside, with a realistic protocol mix.
func benchRecords(n, prefixes, hosts int) []sources.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]sources.Record, n)
	for i := range out {
		h := rng.IntN(hosts)
		dst := netip.AddrFrom4(benchHost(h, prefixes))
		r := sources.Record{Src: netip.AddrFrom4([4]byte{198, 51, byte(rng.IntN(256)), byte(rng.IntN(256))}), Dst: dst,
			SrcPort: uint16(rng.IntN(65536)), DstPort: 443, Packets: 1, Bytes: 1000, Length: 1000}
		switch x := rng.IntN(10); {
		case x < 6:
			r.Proto, r.TCPFlags = 6, 0x18
		case x < 7:
			r.Proto, r.TCPFlags = 6, 0x02
		case x < 9:
			r.Proto = 17
		default:
			r.Proto = 1
		}
		out[i] = r
	}
	return out
}

// ingestStream is what BenchmarkIngest feeds: a batch buffer that is
// rewritten before every Ingest, as the flow decoders and the packet
// capture rewrite theirs, so that the records are in cache as they are in
// the daemon, while the destinations come from a long random sequence
// over all the active hosts.
type ingestStream struct {
	batch []sources.Record
	dsts  [][4]byte
	off   int
}

func newIngestStream(seed uint64, prefixes, hosts, batch int) *ingestStream {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := &ingestStream{batch: benchRecords(batch, prefixes, hosts), dsts: make([][4]byte, 1<<22), off: rng.IntN(1 << 22)}
	for i := range s.dsts {
		s.dsts[i] = benchHost(rng.IntN(hosts), prefixes)
	}
	return s
}

// next rewrites the batch with the next destinations and source ports.
func (s *ingestStream) next() []sources.Record {
	for i := range s.batch {
		s.off++
		s.batch[i].Dst = netip.AddrFrom4(s.dsts[s.off&(len(s.dsts)-1)])
		s.batch[i].SrcPort = uint16(s.off)
	}
	return s.batch
}

// benchEngine returns an engine monitoring 10k /24s with all of the 100k
// active hosts of the ingest benchmarks already tracked.
func benchEngine(b *testing.B) *Engine {
	e, err := New(Config{}, benchPolicy(10000), hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	all := benchRecords(100000, 10000, 100000)
	for h := range all {
		all[h].Dst = netip.AddrFrom4(benchHost(h, 10000))
	}
	e.Ingest(all)
	if n := e.Stats().Hosts; n != 100000 {
		b.Fatalf("%d hosts", n)
	}
	return e
}

// BenchmarkIngest: 10k monitored prefixes, 100k active hosts, records to
// random hosts (see ingestStream), in batches of 1024 from one and from two
// goroutines, and in batches of 32 (a flow datagram's worth) from one.
func BenchmarkIngest(b *testing.B) {
	for _, c := range []struct {
		name         string
		procs, batch int
	}{{"goroutines=1", 1, 1024}, {"goroutines=2", 2, 1024}, {"goroutines=1/batch=32", 1, 32}} {
		b.Run(c.name, func(b *testing.B) {
			e := benchEngine(b)
			streams := []*ingestStream{newIngestStream(1, 10000, 100000, c.batch), newIngestStream(2, 10000, 100000, c.batch)}
			var next atomic.Int32
			b.ReportAllocs()
			b.SetParallelism(1)
			prev := runtime.GOMAXPROCS(c.procs)
			defer runtime.GOMAXPROCS(prev)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				s := streams[next.Add(1)-1]
				for pb.Next() {
					e.Ingest(s.next())
				}
			})
			b.ReportMetric(float64(b.N)*float64(c.batch)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkIngestWithTicks is BenchmarkIngest on one goroutine with a tick
// every 2000 batches (200 ms at 10 M records/s), included in the time:
// the distinct-flow sets empty at every tick and grow to their largest,
// so most records (all distinct flows here) are looked up in them.
func BenchmarkIngestWithTicks(b *testing.B) {
	e := benchEngine(b)
	s := newIngestStream(1, 10000, 100000, 1024)
	now := time.Now()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		e.Ingest(s.next())
		if n++; n%2000 == 0 {
			now = now.Add(200 * time.Millisecond)
			e.Tick(now)
		}
	}
	b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(e.Stats().FlowSetFull)/float64(b.N*1024), "full/record")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIngestColdRecords is BenchmarkIngest on one goroutine with
// every batch read from a 128 MB array of records, never in cache: the
// cost of records that arrive from memory rather than from a decoder.
func BenchmarkIngestColdRecords(b *testing.B) {
	e, err := New(Config{}, benchPolicy(10000), hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	recs := benchRecords(1<<20, 10000, 100000)
	e.Ingest(recs)
	b.ReportAllocs()
	n := len(recs) / 1024
	i := 0
	for b.Loop() {
		e.Ingest(recs[i%n*1024 : (i%n+1)*1024])
		i++
	}
	b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkTick: one tick over 1M active hosts.
func BenchmarkTick(b *testing.B) {
	e, err := New(Config{}, benchPolicy(10000), hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	recs := benchRecords(1<<22, 10000, 1_000_000)
	e.Ingest(recs)
	b.Logf("hosts: %d", e.Stats().Hosts)
	now := time.Now()
	b.ResetTimer()
	for b.Loop() {
		now = now.Add(time.Second)
		e.Tick(now)
	}
}

// TestMemoryPerHost measures the heap cost of active hosts: the total for
// 100k hosts in a /8, and the marginal cost of a host from 100k to 1M
// (where fixed costs such as the flow sets no longer count).
func TestMemoryPerHost(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MB")
	}
	pol := &policies.Policy{Detection: policies.Detection{Tick: time.Second}, Hostgroups: []*policies.Hostgroup{{
		Name: "slash8", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, EWMA: time.Second, Baseline: time.Hour,
		Incoming: policies.Threshold{Total: policies.Limits{PPS: 1e12}},
	}}}
	batch := make([]sources.Record, 1000)
	feed := func(e *Engine, from, to int) {
		for i := from; i < to; i += len(batch) {
			for j := range batch {
				v := uint32(i + j)
				batch[j] = sources.Record{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}),
					Proto: 17, Packets: 1, Bytes: 100}
			}
			e.Ingest(batch)
		}
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	e, err := New(Config{}, pol, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	feed(e, 0, 100_000)
	at100k := heap()
	feed(e, 100_000, 1_000_000)
	at1M := heap()
	if n := e.Stats().Hosts; n != 1_000_000 {
		t.Fatalf("%d hosts tracked", n)
	}
	total := float64(at100k-base) / 1e6
	per := float64(at1M-at100k) / 900_000
	t.Logf("100k hosts: %.1f MB of heap in all (%.0f bytes per host with fixed costs); marginal cost %.0f bytes per host", total, float64(at100k-base)/100_000, per)
	if total > 100 {
		t.Errorf("%.1f MB of heap for 100k hosts in a /8, want under 100", total)
	}
	if per > 256 {
		t.Errorf("%.0f bytes per host, want at most 256", per)
	}
	runtime.KeepAlive(e)
}
