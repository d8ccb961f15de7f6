package flow

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/sources"
)

var (
	exporter = netip.MustParseAddr("192.0.2.1")
	t0       = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cmpRec   = cmp.Options{
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	}
)

func testFlows() []flowgen.Flow {
	return []flowgen.Flow{
		{Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("203.0.113.10"), SrcPort: 123, DstPort: 40000,
			Proto: 17, Packets: 10, Bytes: 4680, Start: t0.Add(-2 * time.Second), End: t0},
		{Src: netip.MustParseAddr("198.51.100.8"), Dst: netip.MustParseAddr("203.0.113.11"), SrcPort: 40001, DstPort: 80,
			Proto: 6, TCPFlags: 0x02, Packets: 3, Bytes: 180, Start: t0.Add(-500 * time.Millisecond), End: t0},
		{Src: netip.MustParseAddr("2001:db8:bad::7"), Dst: netip.MustParseAddr("2001:db8:ffff::10"), SrcPort: 53, DstPort: 5353,
			Proto: 17, Packets: 1, Bytes: 1200, Start: t0, End: t0},
	}
}

// wantRecords is what a collector receiving flows at now with sampling s
// must produce.
func wantRecords(flows []flowgen.Flow, now time.Time, s uint32, exp netip.Addr) []sources.Record {
	var out []sources.Record
	for _, f := range flows {
		dur := f.End.Sub(f.Start)
		out = append(out, sources.Record{
			Src: f.Src, Dst: f.Dst, SrcPort: f.SrcPort, DstPort: f.DstPort, Proto: f.Proto, TCPFlags: f.TCPFlags,
			Packets: f.Packets * uint64(s), Bytes: f.Bytes * uint64(s), Length: uint16(f.Bytes / f.Packets),
			Exporter: exp, Sampling: s, Start: now.Add(-dur).UnixNano(), End: now.UnixNano(),
		})
	}
	return out
}

func TestDecodeNetFlowV9(t *testing.T) {
	enc := &flowgen.NetFlowV9{SourceID: 7, Boot: t0.Add(-time.Hour)}
	d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
	flows := testFlows()
	data, err := enc.AppendData(nil, t0, flows)
	if err != nil {
		t.Fatal(err)
	}

	// Data before templates: counted as unknown template, nothing decoded.
	got, err := d.Decode(exporter, t0, data, nil)
	if !errors.Is(err, ErrUnknownTemplate) || len(got) != 0 {
		t.Fatalf("data before template: %d records, err %v; want 0 and ErrUnknownTemplate", len(got), err)
	}

	if got, err := d.Decode(exporter, t0, enc.AppendTemplates(nil, t0), nil); err != nil || len(got) != 0 {
		t.Fatalf("templates: %d records, err %v", len(got), err)
	}
	got, err = d.Decode(exporter, t0, data, nil)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if diff := cmp.Diff(got, wantRecords(flows, t0, 1, exporter), cmpRec); diff != "" {
		t.Errorf("records (-got +want):\n%s", diff)
	}

	// Sampling announced in options data applies from then on.
	if _, err := d.Decode(exporter, t0, enc.AppendSamplingOptions(nil, t0, 1000), nil); err != nil {
		t.Fatalf("options: %v", err)
	}
	data, _ = enc.AppendData(nil, t0, flows)
	got, err = d.Decode(exporter, t0, data, nil)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if diff := cmp.Diff(got, wantRecords(flows, t0, 1000, exporter), cmpRec); diff != "" {
		t.Errorf("sampled records (-got +want):\n%s", diff)
	}

	// Another exporter with the same source id has no templates yet.
	other := netip.MustParseAddr("192.0.2.2")
	if got, err := d.Decode(other, t0, data, nil); !errors.Is(err, ErrUnknownTemplate) || len(got) != 0 {
		t.Errorf("other exporter: %d records, err %v; want its own template cache", len(got), err)
	}
}

func TestDecodeIPFIX(t *testing.T) {
	for _, random := range []bool{false, true} {
		enc := &flowgen.IPFIX{ObservationDomain: 3, RandomSampler: random}
		d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
		flows := testFlows()
		msg := enc.AppendTemplates(nil, t0)
		if _, err := d.Decode(exporter, t0, msg, nil); err != nil {
			t.Fatalf("templates: %v", err)
		}
		if _, err := d.Decode(exporter, t0, enc.AppendSamplingOptions(nil, t0, 64), nil); err != nil {
			t.Fatalf("options: %v", err)
		}
		data, err := enc.AppendData(nil, t0, flows)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.Decode(exporter, t0, data, nil)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if diff := cmp.Diff(got, wantRecords(flows, t0, 64, exporter), cmpRec); diff != "" {
			t.Errorf("random sampler %v: records (-got +want):\n%s", random, diff)
		}
	}
}

func TestDecodeNetFlowV5(t *testing.T) {
	flows := testFlows()[:2] // v5 is IPv4 only
	enc := &flowgen.NetFlowV5{Boot: t0.Add(-time.Hour), SamplingMode: 1, SamplingInterval: 100}
	data, err := enc.AppendData(nil, t0, flows)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
	got, err := d.Decode(exporter, t0, data, nil)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if diff := cmp.Diff(got, wantRecords(flows, t0, 100, exporter), cmpRec); diff != "" {
		t.Errorf("records (-got +want):\n%s", diff)
	}

	// A configured override wins over the header.
	d = NewDecoder(DecoderConfig{Protocol: ProtoNetFlow, Sampling: map[netip.Addr]uint32{exporter: 10}})
	got, _ = d.Decode(exporter, t0, data, nil)
	if diff := cmp.Diff(got, wantRecords(flows, t0, 10, exporter), cmpRec); diff != "" {
		t.Errorf("override (-got +want):\n%s", diff)
	}
}

func TestDecodeSFlow(t *testing.T) {
	agent := netip.MustParseAddr("192.0.2.9")
	enc := &flowgen.SFlowV5{Agent: agent, SamplingRate: 512}
	flows := testFlows()
	data, err := enc.AppendData(nil, t0, flows)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(DecoderConfig{Protocol: ProtoSFlow})
	got, err := d.Decode(netip.MustParseAddr("127.0.0.1"), t0, data, nil)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(got) != len(flows) {
		t.Fatalf("%d records, want %d", len(got), len(flows))
	}
	for i, f := range flows {
		r := got[i]
		want := sources.Record{Src: f.Src, Dst: f.Dst, SrcPort: f.SrcPort, DstPort: f.DstPort, Proto: f.Proto, TCPFlags: f.TCPFlags,
			Exporter: agent, Sampling: 512, Packets: 512, Start: t0.UnixNano(), End: t0.UnixNano()}
		// Bytes are the sampled packet's IP length times the rate.
		if r.Bytes == 0 || r.Bytes%512 != 0 || uint64(r.Length)*512 != r.Bytes {
			t.Errorf("record %d: bytes %d length %d", i, r.Bytes, r.Length)
		}
		if diff := cmp.Diff(r, want, cmpRec, cmpopts.IgnoreFields(sources.Record{}, "Bytes", "Length")); diff != "" {
			t.Errorf("record %d (-got +want):\n%s", i, diff)
		}
	}
	// Counter samples are skipped.
	cs, err := enc.AppendCounters(nil, t0, flowgen.IfCounters{Speed: 1e9, InOctets: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.Decode(agent, t0, cs, nil); err != nil || len(got) != 0 {
		t.Errorf("counter sample: %d records, err %v", len(got), err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	v9 := &flowgen.NetFlowV9{SourceID: 1}
	tmpl := v9.AppendTemplates(nil, t0)
	sf := &flowgen.SFlowV5{Agent: exporter, SamplingRate: 1}
	sfd, _ := sf.AppendData(nil, t0, testFlows())

	// A NetFlow v5 header claiming 65,535 records in 24 bytes.
	v5Lie := make([]byte, 24)
	binary.BigEndian.PutUint16(v5Lie[0:2], 5)
	binary.BigEndian.PutUint16(v5Lie[2:4], 65535)

	// An 80-byte sFlow datagram whose expanded flow sample claims a huge
	// record count.
	sfLie := make([]byte, 80)
	binary.BigEndian.PutUint32(sfLie[0:4], 5)
	binary.BigEndian.PutUint32(sfLie[4:8], 1)
	copy(sfLie[8:12], []byte{192, 0, 2, 1})
	binary.BigEndian.PutUint32(sfLie[24:28], 1)  // one sample
	binary.BigEndian.PutUint32(sfLie[28:32], 3)  // expanded flow sample
	binary.BigEndian.PutUint32(sfLie[32:36], 44) // sample length
	binary.BigEndian.PutUint32(sfLie[36+40:36+44], 0x7fffffff)

	// A v9 template whose records are zero bytes long would make the
	// data decoder loop for ever.
	zeroTmpl := []byte{0, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // header, count 1
		0, 0, 0, 12, 1, 0, 0, 1, 0, 1, 0, 0} // template set: id 256, one field of length 0

	// A template claiming 65,535 fields in a short set.
	bigTmpl := []byte{0, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
		0, 0, 0, 12, 1, 0, 0xff, 0xff, 0, 1, 0, 4}

	tests := []struct {
		name  string
		proto Protocol
		b     []byte
	}{
		{"empty", ProtoNetFlow, nil},
		{"one byte", ProtoNetFlow, []byte{0}},
		{"unknown version", ProtoNetFlow, []byte{0, 7, 0, 0}},
		{"v5 count lies", ProtoNetFlow, v5Lie},
		{"v5 truncated record", ProtoNetFlow, append(append([]byte(nil), v5Lie[:24]...), make([]byte, 40)...)},
		{"v9 header only", ProtoNetFlow, tmpl[:12]},
		{"v9 set overruns", ProtoNetFlow, tmpl[:len(tmpl)-4]},
		{"v9 zero-length template", ProtoNetFlow, zeroTmpl},
		{"v9 template field count lies", ProtoNetFlow, bigTmpl},
		{"sflow truncated", ProtoSFlow, sfd[:len(sfd)/2]},
		{"sflow record count lies", ProtoSFlow, sfLie},
		{"sflow wrong version", ProtoSFlow, []byte{0, 0, 0, 4, 0, 0, 0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(DecoderConfig{Protocol: tc.proto})
			got, err := d.Decode(exporter, t0, tc.b, nil)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error = %v, want ErrMalformed", err)
			}
			if len(got) != 0 {
				t.Errorf("%d records from malformed input", len(got))
			}
		})
	}
}

func TestDecodeV5DoesNotAllocateForLyingCount(t *testing.T) {
	v5Lie := make([]byte, 24)
	binary.BigEndian.PutUint16(v5Lie[0:2], 5)
	binary.BigEndian.PutUint16(v5Lie[2:4], 65535)
	d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		_, _ = d.Decode(exporter, t0, v5Lie, nil)
	}
	runtime.ReadMemStats(&after)
	// The error message costs a few hundred bytes; 65,535 zero records
	// would cost 3 MB each time.
	if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 2048 {
		t.Errorf("%d bytes allocated per rejected datagram", per)
	}
}

func TestExporterStateIsBounded(t *testing.T) {
	d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow, MaxExporters: 8})
	enc := &flowgen.NetFlowV9{}
	tmpl := enc.AppendTemplates(nil, t0)
	for i := range 100 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if _, err := d.Decode(a, t0.Add(time.Duration(i)*time.Second), tmpl, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.Exporters(); n > 8 {
		t.Errorf("%d exporters kept, cap 8", n)
	}
}

func FuzzDecodeNetFlow(f *testing.F) {
	v9 := &flowgen.NetFlowV9{SourceID: 1}
	ipfix := &flowgen.IPFIX{ObservationDomain: 1}
	v5 := &flowgen.NetFlowV5{}
	d9, _ := v9.AppendData(nil, t0, testFlows())
	dx, _ := ipfix.AppendData(nil, t0, testFlows())
	d5, _ := v5.AppendData(nil, t0, testFlows()[:2])
	f.Add(v9.AppendTemplates(nil, t0), d9)
	f.Add(v9.AppendSamplingOptions(nil, t0, 100), d9)
	f.Add(ipfix.AppendTemplates(nil, t0), dx)
	f.Add(ipfix.AppendSamplingOptions(nil, t0, 100), dx)
	f.Add(d5, d5)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
		for _, b := range [][]byte{first, second} {
			recs, err := d.Decode(exporter, t0, b, nil)
			if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownTemplate) {
				t.Fatalf("untyped error: %v", err)
			}
			checkRecords(t, recs)
		}
	})
}

func FuzzDecodeSFlow(f *testing.F) {
	sf := &flowgen.SFlowV5{Agent: exporter, SamplingRate: 10}
	d, _ := sf.AppendData(nil, t0, testFlows())
	c, _ := sf.AppendCounters(nil, t0, flowgen.IfCounters{Speed: 1})
	f.Add(d)
	f.Add(c)
	addSFlowSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		dec := NewDecoder(DecoderConfig{Protocol: ProtoSFlow})
		recs, err := dec.Decode(exporter, t0, b, nil)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("untyped error: %v", err)
		}
		checkRecords(t, recs)
	})
}

func checkRecords(t *testing.T, recs []sources.Record) {
	t.Helper()
	for _, r := range recs {
		if !r.Src.IsValid() || !r.Dst.IsValid() || r.Src.Is4() != r.Dst.Is4() || r.Src.Is4In6() || r.Dst.Is4In6() {
			t.Fatalf("bad addresses in %+v", r)
		}
		if r.Sampling == 0 || r.End < r.Start {
			t.Fatalf("bad record %+v", r)
		}
		if why := Implausible(&r, DefaultMaxRecordPPS, DefaultMaxRecordBPS, false); why != "" {
			t.Fatalf("implausible record returned (%s): %+v", why, r)
		}
	}
}

// BenchmarkDecode measures decoding one datagram into records on one core
// (run with -cpu 1): a full datagram of each format with 1-in-1 sampling,
// records per second reported (for sFlow: flow samples per second).
func BenchmarkDecode(b *testing.B) {
	flows := make([]flowgen.Flow, 0, 40)
	for i := range 40 {
		flows = append(flows, flowgen.Flow{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Dst: netip.MustParseAddr("203.0.113.10"),
			SrcPort: 123, DstPort: uint16(1024 + i), Proto: 17, Packets: 1, Bytes: 468, Start: t0.Add(-time.Second), End: t0})
	}
	v9 := &flowgen.NetFlowV9{SourceID: 1}
	n9 := v9.MaxRecordsPerDatagram(flowgen.DatagramSize)
	d9, _ := v9.AppendData(nil, t0, flows[:n9])
	ipfix := &flowgen.IPFIX{ObservationDomain: 1}
	nx := ipfix.MaxRecordsPerDatagram(flowgen.DatagramSize)
	dx, _ := ipfix.AppendData(nil, t0, flows[:nx])
	v5 := &flowgen.NetFlowV5{}
	d5, _ := v5.AppendData(nil, t0, flows[:30])
	sf := &flowgen.SFlowV5{Agent: exporter, SamplingRate: 1}
	ns := sf.MaxRecordsPerDatagram(flowgen.DatagramSize)
	ds, _ := sf.AppendData(nil, t0, flows[:ns])
	cases := []struct {
		name   string
		proto  Protocol
		setup  []byte
		data   []byte
		n      int
		metric string
	}{
		{"netflow-v5", ProtoNetFlow, nil, d5, 30, "records/s"},
		{"netflow-v9", ProtoNetFlow, v9.AppendTemplates(nil, t0), d9, n9, "records/s"},
		{"ipfix", ProtoNetFlow, ipfix.AppendTemplates(nil, t0), dx, nx, "records/s"},
		{"sflow", ProtoSFlow, nil, ds, ns, "samples/s"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			d := NewDecoder(DecoderConfig{Protocol: c.proto})
			if c.setup != nil {
				if _, err := d.Decode(exporter, t0, c.setup, nil); err != nil {
					b.Fatal(err)
				}
			}
			out := make([]sources.Record, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				out, err = d.Decode(exporter, t0, c.data, out[:0])
				if err != nil || len(out) != c.n {
					b.Fatalf("%d records, %v", len(out), err)
				}
			}
			b.ReportMetric(float64(b.N*c.n)/b.Elapsed().Seconds(), c.metric)
		})
	}
}

// BenchmarkDecodeReal decodes the unsampled captures of real exporters
// (testdata/), every datagram in turn, templates included.
func BenchmarkDecodeReal(b *testing.B) {
	for _, c := range realCases {
		if c.sampling != 1 {
			continue
		}
		b.Run(strings.TrimSuffix(c.file, ".pcap"), func(b *testing.B) {
			dgs := readDatagrams(b, "testdata/"+c.file)
			d := NewDecoder(DecoderConfig{Protocol: c.proto})
			out := make([]sources.Record, 0, 1024)
			records := 0
			b.ReportAllocs()
			for b.Loop() {
				for _, dg := range dgs {
					out, _ = d.Decode(dg.from, t0, dg.payload, out[:0])
					records += len(out)
				}
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestDecodeAllocationsDoNotGrowWithRecords checks that our layer allocates
// nothing per record: for NetFlow v5, where goflow2's decoder allocates per
// datagram only, a datagram of 30 records costs what one of 1 costs.
// (goflow2's v9, IPFIX and sFlow decoders allocate per record inside.)
func TestDecodeAllocationsDoNotGrowWithRecords(t *testing.T) {
	flows := make([]flowgen.Flow, 30)
	for i := range flows {
		flows[i] = flowgen.Flow{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Dst: netip.MustParseAddr("203.0.113.10"),
			Proto: 17, Packets: 1, Bytes: 100}
	}
	v5 := &flowgen.NetFlowV5{}
	one, _ := v5.AppendData(nil, t0, flows[:1])
	many, _ := v5.AppendData(nil, t0, flows)
	d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
	out := make([]sources.Record, 0, 64)
	allocs := func(b []byte) float64 {
		_, _ = d.Decode(exporter, t0, b, out[:0]) // warm up the reused decode targets
		return testing.AllocsPerRun(200, func() { out, _ = d.Decode(exporter, t0, b, out[:0]) })
	}
	if a1, a30 := allocs(one), allocs(many); a30 > a1 {
		t.Errorf("%.0f allocations for 30 records, %.0f for 1", a30, a1)
	}
}

// TestDecodeTemplatedDataDoesNotAllocate: NetFlow v9 and IPFIX data
// records are walked without allocating (templates allocate when they
// arrive, in goflow2's template decoder).
func TestDecodeTemplatedDataDoesNotAllocate(t *testing.T) {
	v9 := &flowgen.NetFlowV9{SourceID: 1}
	d9, _ := v9.AppendData(nil, t0, testFlows())
	ipfix := &flowgen.IPFIX{ObservationDomain: 1}
	dx, _ := ipfix.AppendData(nil, t0, testFlows())
	for _, c := range []struct {
		name            string
		templates, data []byte
		sampling        []byte
	}{
		{"netflow-v9", v9.AppendTemplates(nil, t0), d9, v9.AppendSamplingOptions(nil, t0, 100)},
		{"ipfix", ipfix.AppendTemplates(nil, t0), dx, ipfix.AppendSamplingOptions(nil, t0, 100)},
	} {
		d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
		for _, b := range [][]byte{c.templates, c.sampling} {
			if _, err := d.Decode(exporter, t0, b, nil); err != nil {
				t.Fatal(err)
			}
		}
		out := make([]sources.Record, 0, 16)
		if n := testing.AllocsPerRun(500, func() { out, _ = d.Decode(exporter, t0, c.data, out[:0]) }); n != 0 || len(out) != 3 {
			t.Errorf("%s: %.1f allocations per data datagram, %d records; want 0 and 3", c.name, n, len(out))
		}
	}
}
