package pcapfile

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/internal/sourcetest"
)

// collector keeps copies of the records it is given.
type collector struct {
	mu      sync.Mutex
	records []sources.Record
}

func (c *collector) Ingest(batch []sources.Record) {
	c.mu.Lock()
	c.records = append(c.records, batch...)
	c.mu.Unlock()
}

func (c *collector) all() []sources.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sources.Record(nil), c.records...)
}

// replay plays cfg to the end and returns the records.
func replay(t *testing.T, cfg Config) ([]sources.Record, *Replayer) {
	t.Helper()
	sink := &collector{}
	r, err := New(cfg, sink, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("replay did not end")
	}
	if err := r.Err(); err != nil {
		t.Fatalf("replay: %v", err)
	}
	return sink.all(), r
}

// packets reads every packet of the traffic capture.
func packets(t testing.TB) ([][]byte, []gopacket.CaptureInfo) {
	t.Helper()
	f, err := os.Open(sourcetest.TrafficPcap())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var data [][]byte
	var cis []gopacket.CaptureInfo
	for {
		d, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return data, cis
		}
		if err != nil {
			t.Fatal(err)
		}
		data, cis = append(data, d), append(cis, ci)
	}
}

// rewrite writes the traffic capture again with another link type or
// format, converting each frame with conv (which may drop it).
func rewrite(t *testing.T, ng bool, lt layers.LinkType, conv func([]byte) []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "traffic")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var write func(gopacket.CaptureInfo, []byte) error
	var flush func() error
	if ng {
		w, err := pcapgo.NewNgWriter(f, lt)
		if err != nil {
			t.Fatal(err)
		}
		write, flush = w.WritePacket, w.Flush
	} else {
		w := pcapgo.NewWriterNanos(f)
		if err := w.WriteFileHeader(65535, lt); err != nil {
			t.Fatal(err)
		}
		write, flush = w.WritePacket, func() error { return nil }
	}
	data, cis := packets(t)
	for i, d := range data {
		d = conv(d)
		if d == nil {
			continue
		}
		ci := cis[i]
		ci.CaptureLength, ci.Length = len(d), len(d)
		if err := write(ci, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	return path
}

// ipOnly returns the IP packet of an untagged Ethernet frame, nil for
// anything else.
func ipOnly(frame []byte) []byte {
	if len(frame) < 14 {
		return nil
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x0800, 0x86dd:
		return frame[14:]
	}
	return nil
}

func TestReplayMatchesCapture(t *testing.T) {
	pkts := sourcetest.ReadTraffic(t)
	untagged := func(p sourcetest.Packet) uint64 {
		if p.VLANTags > 0 || p.MPLSLabels > 0 {
			return 0
		}
		return p.IPLen
	}
	sll := func(frame []byte) []byte { // Linux cooked v1: 16-byte header ending with the EtherType
		h := make([]byte, 16, 16+len(frame))
		binary.BigEndian.PutUint16(h[0:], 0) // to us
		binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
		binary.BigEndian.PutUint16(h[4:], 6)
		copy(h[6:], frame[6:12])
		copy(h[14:], frame[12:14])
		return append(h, frame[14:]...)
	}
	null := func(frame []byte) []byte { // BSD loopback: address family in host order
		ip := ipOnly(frame)
		if ip == nil {
			return nil
		}
		af := uint32(2)
		if ip[0]>>4 == 6 {
			af = 30
		}
		return append(binary.LittleEndian.AppendUint32(nil, af), ip...)
	}
	tests := []struct {
		name  string
		path  string
		model sourcetest.Model
	}{
		{"pcap ethernet", sourcetest.TrafficPcap(), sourcetest.Packets},
		{"pcapng ethernet", rewrite(t, true, layers.LinkTypeEthernet, func(b []byte) []byte { return b }), sourcetest.Packets},
		{"pcap linux cooked", rewrite(t, false, layers.LinkTypeLinuxSLL, sll), sourcetest.Packets},
		{"pcap raw ip", rewrite(t, false, layers.LinkTypeRaw, ipOnly), untagged},
		{"pcapng raw ip", rewrite(t, true, layers.LinkTypeRaw, ipOnly), untagged},
		{"pcap bsd loopback", rewrite(t, false, layers.LinkTypeNull, null), untagged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, r := replay(t, Config{Path: tc.path})
			sourcetest.Compare(t, sourcetest.TotalsOfRecords(recs), sourcetest.TotalsOfPackets(pkts, tc.model))
			if st := r.Stats(); st.Records != uint64(len(recs)) || st.Packets != st.Records+st.Skipped || st.Loops != 1 {
				t.Errorf("stats %+v with %d records", st, len(recs))
			}
			for _, rec := range recs {
				if rec.Sampling != 1 || rec.Packets != 1 || rec.Start != rec.End || rec.Exporter.IsValid() {
					t.Fatalf("record %+v", rec)
				}
			}
		})
	}
}

func TestReplayOptions(t *testing.T) {
	pkts := sourcetest.ReadTraffic(t)
	want := sourcetest.TotalsOfPackets(pkts, sourcetest.Packets)

	// Sampling and loops scale the counts.
	recs, r := replay(t, Config{Path: sourcetest.TrafficPcap(), Sampling: 10, Loops: 3})
	got := sourcetest.TotalsOfRecords(recs)
	for a, w := range want {
		w.InPkts, w.InBytes, w.OutPkts, w.OutBytes = 30*w.InPkts, 30*w.InBytes, 30*w.OutPkts, 30*w.OutBytes
		if got[a] != w {
			t.Errorf("host %s: got %+v, want %+v (1 in 10, 3 loops)", a, got[a], w)
		}
	}
	if st := r.Stats(); st.Loops != 3 {
		t.Errorf("loops %d, want 3", st.Loops)
	}

	// Capture timestamps are kept on request: the capture starts at
	// 1,700,000,000 s and lasts under 2 s.
	recs, _ = replay(t, Config{Path: sourcetest.TrafficPcap(), Timestamps: TimeCapture})
	first, last := recs[0].Start, recs[len(recs)-1].End
	if first != 1_700_000_000e9 || last-first > 2e9 || last < first {
		t.Errorf("capture times from %d to %d", first, last)
	}
}

// TestReplayAtRecordedSpeed replays in a synctest bubble, where the clock
// only moves when every goroutine waits: the replay must take the span of
// the capture divided by the speed, and stamp records as it goes.
func TestReplayAtRecordedSpeed(t *testing.T) {
	_, cis := packets(t)
	span := cis[len(cis)-1].Timestamp.Sub(cis[0].Timestamp)
	for _, speed := range []float64{1, 4} {
		synctest.Test(t, func(t *testing.T) {
			sink := &collector{}
			r, err := New(Config{Path: sourcetest.TrafficPcap(), Speed: speed}, sink, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := r.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			<-r.Done()
			took := time.Since(start)
			want := time.Duration(float64(span) / speed)
			if took < want-maxSleepAhead || took > want+maxSleepAhead {
				t.Errorf("speed %g: replay took %v, want %v", speed, took, want)
			}
			recs := sink.all()
			if got := time.Duration(recs[len(recs)-1].End - recs[0].Start); got < want-2*maxSleepAhead {
				t.Errorf("speed %g: records stamped over %v, want about %v", speed, got, want)
			}
		})
	}
}

func TestReplayStartStopStart(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	sink := &collector{}
	// Slowed down a thousand times, the replay would last half an hour.
	r, err := New(Config{Path: sourcetest.TrafficPcap(), Speed: 0.001}, sink, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		if err := r.Start(context.Background()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := r.Start(context.Background()); err == nil {
			t.Fatalf("round %d: second Start succeeded", round)
		}
		time.Sleep(20 * time.Millisecond)
		if err := r.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.Done():
		default:
			t.Fatal("Done not closed after Stop")
		}
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, %d before", runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A finished replay can be started again.
	r2, _ := New(Config{Path: sourcetest.TrafficPcap()}, sink, hclog.NewNullLogger())
	for range 2 {
		if err := r2.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-r2.Done()
	}
	if st := r2.Stats(); st.Loops != 2 {
		t.Errorf("loops %d after two plays", st.Loops)
	}
}

func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("this is not a capture file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	unsupported := rewrite(t, false, layers.LinkTypeIEEE802_11, func(b []byte) []byte { return b })
	for name, path := range map[string]string{
		"missing":     filepath.Join(dir, "missing.pcap"),
		"garbage":     garbage,
		"unsupported": unsupported,
	} {
		r, err := New(Config{Path: path}, &collector{}, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err == nil {
			r.Stop(context.Background())
			t.Errorf("%s: Start succeeded", name)
		}
	}

	// A file cut in the middle of a packet plays what it has.
	full, err := os.ReadFile(sourcetest.TrafficPcap())
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, full[:len(full)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	recs, _ := replay(t, Config{Path: cut})
	if len(recs) == 0 {
		t.Error("nothing replayed from a truncated file")
	}

	for _, cfg := range []Config{
		{},
		{Path: "x", Speed: -1},
		{Path: "x", Loops: -2},
		{Path: "x", Timestamps: "wallclock"},
	} {
		if _, err := New(cfg, &collector{}, nil); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if d := DefaultConfig(); d.Validate() == nil || !strings.Contains(d.Validate().Error(), "no file") {
		t.Errorf("defaults without a path: %v", d.Validate())
	}
	d := DefaultConfig()
	d.Path = "x"
	if err := d.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

// discard counts records without keeping them.
type discard struct{ n int }

func (d *discard) Ingest(b []sources.Record) { d.n += len(b) }

func BenchmarkReplay(b *testing.B) {
	// The capture, replayed as fast as possible from the page cache:
	// file reading, header parsing and record building.
	path := filepath.Join(b.TempDir(), "big.pcap")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		b.Fatal(err)
	}
	data, cis := packets(b)
	for range 100 {
		for i, d := range data {
			if err := w.WritePacket(cis[i], d); err != nil {
				b.Fatal(err)
			}
		}
	}
	f.Close()
	sink := &discard{}
	r, err := New(Config{Path: path}, sink, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		<-r.Done()
	}
	b.ReportMetric(float64(r.Stats().Packets)/b.Elapsed().Seconds(), "packets/s")
}
