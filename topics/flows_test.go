package topics

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/floodgate-ddos/floodgate/sources"
)

func randomAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		b[0] = 0x20 // never IPv4-mapped
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
}

func randomRecords(r *rand.Rand, n int) []sources.Record {
	recs := make([]sources.Record, n)
	for i := range recs {
		v6 := r.IntN(3) == 0
		rec := sources.Record{
			Src: randomAddr(r, v6), Dst: randomAddr(r, v6),
			SrcPort: uint16(r.Uint32()), DstPort: uint16(r.Uint32()), Proto: uint8(r.Uint32()), TCPFlags: uint8(r.Uint32()),
			Fragment: r.IntN(5) == 0, Packets: r.Uint64(), Bytes: r.Uint64(), Length: uint16(r.Uint32()),
			Sampling: r.Uint32(), Start: r.Int64(), End: -r.Int64(),
		}
		switch r.IntN(3) {
		case 1:
			rec.Exporter = randomAddr(r, false)
		case 2:
			rec.Exporter = randomAddr(r, true)
		}
		recs[i] = rec
	}
	return recs
}

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestFlowsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 1000} {
		recs := randomRecords(r, n)
		for _, side := range []Side{SideBoth, SideIncoming, SideOutgoing} {
			msg := AppendFlows([]byte("prefix"), side, recs)[len("prefix"):]
			got, gotSide, err := DecodeFlows(nil, msg)
			if err != nil {
				t.Fatalf("%d records: %v", n, err)
			}
			if gotSide != side {
				t.Errorf("side %s, want %s", gotSide, side)
			}
			if diff := cmp.Diff(recs, got, cmpAddr); n > 0 && diff != "" {
				t.Fatalf("%d records (-sent +decoded):\n%s", n, diff)
			}
			if len(got) != n {
				t.Fatalf("%d records decoded, want %d", len(got), n)
			}
		}
	}
}

func TestFlowsSkipInvalidAddresses(t *testing.T) {
	recs := []sources.Record{{Src: netip.MustParseAddr("192.0.2.1")}, {Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.1")}}
	got, _, err := DecodeFlows(nil, AppendFlows(nil, SideBoth, recs))
	if err != nil || len(got) != 1 || got[0].Dst != recs[1].Dst {
		t.Fatalf("got %v, %v; want only the record with both addresses", got, err)
	}
}

func TestDecodeFlowsErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	good := AppendFlows(nil, SideIncoming, randomRecords(r, 3))
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, c := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"other magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), ErrNotFlowMessage},
		{"version 2", mutate(func(b []byte) []byte { b[3] = 2; return b }), ErrFlowVersion},
		{"bad side", mutate(func(b []byte) []byte { b[4] = 9; return b }), ErrBadRecord},
		{"huge count", mutate(func(b []byte) []byte { b[5] = 0xff; return b }), ErrTruncated},
		{"one record missing", mutate(func(b []byte) []byte { b[8]++; return b }), ErrTruncated},
		{"cut short", good[:len(good)-1], ErrTruncated},
		{"trailing bytes", append(append([]byte(nil), good...), 0), ErrBadRecord},
		{"unknown flag", mutate(func(b []byte) []byte { b[flowHeaderLen] |= 0x80; return b }), ErrBadRecord},
	} {
		dst := make([]sources.Record, 2, 10)
		got, _, err := DecodeFlows(dst, c.msg)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
		if len(got) != 2 {
			t.Errorf("%s: a refused message left %d records, want the 2 there were", c.name, len(got))
		}
	}
}

func TestDecodeFlowsAllocatesNothing(t *testing.T) {
	msg := AppendFlows(nil, SideBoth, randomRecords(rand.New(rand.NewPCG(5, 6)), 100))
	dst := make([]sources.Record, 0, 100)
	if n := testing.AllocsPerRun(100, func() { dst, _, _ = DecodeFlows(dst[:0], msg) }); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
	buf := make([]byte, 0, 100*MaxFlowRecord+flowHeaderLen)
	recs := randomRecords(rand.New(rand.NewPCG(5, 6)), 100)
	if n := testing.AllocsPerRun(100, func() { buf = AppendFlows(buf[:0], SideBoth, recs) }); n != 0 {
		t.Errorf("%v allocations per encoded message", n)
	}
}

// FuzzDecodeFlows checks that no input crashes the decoder and that what
// it accepts encodes back to the same bytes.
func FuzzDecodeFlows(f *testing.F) {
	seeds(f, "flows", func(b []byte) { f.Add(b) })
	f.Add(AppendFlows(nil, SideOutgoing, randomRecords(rand.New(rand.NewPCG(7, 8)), 4)))
	f.Fuzz(func(t *testing.T, msg []byte) {
		recs, side, err := DecodeFlows(nil, msg)
		if err != nil {
			return
		}
		if again := AppendFlows(nil, side, recs); string(again) != string(msg) {
			t.Fatalf("accepted %x, encodes back as %x", msg, again)
		}
	})
}

// seeds calls add with each file of testdata/dir/*.bin.
func seeds(f *testing.F, dir string, add func([]byte)) {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.bin"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata/%s: %v", dir, err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

func benchRecords() []sources.Record {
	r := rand.New(rand.NewPCG(9, 10))
	recs := randomRecords(r, 256)
	for i := range recs { // the common case: IPv4, no fragment
		if i%4 != 0 {
			recs[i].Src, recs[i].Dst = randomAddr(r, false), randomAddr(r, false)
		}
	}
	return recs
}

func BenchmarkEncodeFlows(b *testing.B) {
	recs := benchRecords()
	buf := make([]byte, 0, len(recs)*MaxFlowRecord+flowHeaderLen)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFlows(buf[:0], SideBoth, recs)
	}
	b.ReportMetric(float64(len(recs)*b.N)/b.Elapsed().Seconds(), "records/s")
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeFlows(b *testing.B) {
	recs := benchRecords()
	msg := AppendFlows(nil, SideBoth, recs)
	dst := make([]sources.Record, 0, len(recs))
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		dst, _, _ = DecodeFlows(dst[:0], msg)
	}
	b.ReportMetric(float64(len(recs)*b.N)/b.Elapsed().Seconds(), "records/s")
}
