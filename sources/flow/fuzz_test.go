package flow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/netsampler/goflow2/v2/decoders/netflow"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/sources"
)

// Fuzz targets per decoder entry point. FuzzDecodeNetFlow (decode_test.go)
// fuzzes the version auto-detection; the targets below pin the version so
// that the fuzzer spends its time inside one decoder. Seeds are the real
// exports in testdata/ and synthetic datagrams; crashers found are kept in
// testdata/fuzz/<target>/.

// realSeeds returns the datagrams of the captured exports whose first two
// bytes are version (sFlow: whose first four are 5).
func realSeeds(f *testing.F, version uint16) [][]byte {
	var out [][]byte
	for _, c := range realCases {
		for _, dg := range readDatagrams(f, "testdata/"+c.file) {
			v := binary.BigEndian.Uint16(dg.payload)
			if version == 0 && c.proto == ProtoSFlow || version != 0 && c.proto == ProtoNetFlow && v == version {
				out = append(out, dg.payload)
			}
		}
	}
	return out
}

// fuzzNetFlow decodes templates then data with the version forced into
// both, and checks the invariants every decoded datagram must keep.
func fuzzNetFlow(t *testing.T, version uint16, datagrams ...[]byte) {
	d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow, MaxTemplateFields: 4096})
	for _, b := range datagrams {
		if len(b) >= 2 {
			b = append([]byte(nil), b...)
			binary.BigEndian.PutUint16(b, version)
			if version == 10 && len(b) >= 4 && len(b) <= 0xffff {
				binary.BigEndian.PutUint16(b[2:], uint16(len(b))) // let the fuzzer past the length check
			}
		}
		recs, err := d.Decode(exporter, t0, b, nil)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownTemplate) {
			t.Fatalf("untyped error: %v", err)
		}
		checkRecords(t, recs)
		for _, r := range recs {
			if r.Exporter != exporter {
				t.Fatalf("record with exporter %s", r.Exporter)
			}
		}
	}
	if d.budget.used > d.budget.max || d.budget.used < 0 {
		t.Fatalf("template budget %d of %d", d.budget.used, d.budget.max)
	}
}

func FuzzDecodeNetFlowV5(f *testing.F) {
	v5 := &flowgen.NetFlowV5{SamplingInterval: 100, SamplingMode: 1}
	d5, _ := v5.AppendData(nil, t0, testFlows()[:2])
	f.Add(d5)
	for _, s := range realSeeds(f, 5) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzNetFlow(t, 5, b)
		// A v5 datagram yields at most one record per 48 bytes.
		d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
		b = append([]byte{0, 5}, b[min(2, len(b)):]...)
		if recs, _ := d.Decode(exporter, t0, b, nil); len(recs) > len(b)/v5RecordLen {
			t.Fatalf("%d records from %d bytes", len(recs), len(b))
		}
	})
}

func FuzzDecodeNetFlowV9(f *testing.F) {
	v9 := &flowgen.NetFlowV9{SourceID: 1}
	d9, _ := v9.AppendData(nil, t0, testFlows())
	f.Add(v9.AppendTemplates(nil, t0), d9)
	f.Add(v9.AppendSamplingOptions(nil, t0, 100), d9)
	seeds := realSeeds(f, 9)
	for i := 1; i < len(seeds); i++ {
		f.Add(seeds[0], seeds[i])
	}
	f.Fuzz(func(t *testing.T, templates, data []byte) {
		fuzzNetFlow(t, 9, templates, data)
	})
}

func FuzzDecodeIPFIX(f *testing.F) {
	ipfix := &flowgen.IPFIX{ObservationDomain: 1}
	dx, _ := ipfix.AppendData(nil, t0, testFlows())
	f.Add(ipfix.AppendTemplates(nil, t0), dx)
	f.Add(ipfix.AppendSamplingOptions(nil, t0, 100), dx)
	// Enterprise and variable-length fields.
	tmpl := wire(nil).u16(300).u16(4).u16(ieSrcIPv4).u16(4).u16(ieDstIPv4).u16(4).
		u16(0x8000 | 1).u16(0xffff).u32(9).u16(82).u16(0xffff)
	data := wire(nil).u32(1).u32(2).bytes(varlen([]byte("x"))).bytes(varlen(make([]byte, 300)))
	f.Add(ipfixMessage(1, set(2, tmpl)), ipfixMessage(1, set(300, data)))
	seeds := realSeeds(f, 10)
	for i := 1; i < len(seeds); i++ {
		f.Add(seeds[0], seeds[i])
	}
	f.Fuzz(func(t *testing.T, templates, data []byte) {
		fuzzNetFlow(t, 10, templates, data)
	})
}

// addSFlowSeeds adds the real and synthetic sFlow seeds (used by
// FuzzDecodeSFlow in decode_test.go).
func addSFlowSeeds(f *testing.F) {
	for _, s := range realSeeds(f, 0) {
		f.Add(s)
	}
	hdr := serialize(f, gopacketICMPFrame()...)
	f.Add(sflowDatagram(netip.MustParseAddr("2001:db8::1"), expandedFlowSample(64, rawHeaderRecord(hdr, 1)), counterSample()))
}

// referenceTemplated decodes datagrams with goflow2's own NetFlow v9/IPFIX
// decoder and template system, and builds the records of the last one's
// data sets from goflow2's fields: the reference for the set and record
// walk of decodeTemplated. ok is false when goflow2 reports an error other
// than an unknown template.
func referenceTemplated(datagrams [][]byte) (recs []sources.Record, ok bool) {
	ts := netflow.CreateTemplateSystem()
	for i, b := range datagrams {
		var v9 netflow.NFv9Packet
		var ipfix netflow.IPFIXPacket
		err := netflow.DecodeMessageVersion(bytes.NewBuffer(b), ts, &v9, &ipfix)
		if err != nil && !errors.Is(err, netflow.ErrorTemplateNotFound) {
			return nil, false
		}
		if i < len(datagrams)-1 {
			continue
		}
		sets := v9.FlowSets
		if binary.BigEndian.Uint16(b) == 10 {
			sets = ipfix.FlowSets
		}
		for _, s := range sets {
			df, isData := s.(netflow.DataFlowSet)
			if !isData {
				continue
			}
			for _, rec := range df.Records {
				var rb recordBuilder
				for _, f := range rec.Values {
					v, _ := f.Value.([]byte)
					rb.add(f.Type, f.PenProvided, v)
				}
				r, _, ok := rb.record(t0)
				if !ok {
					continue
				}
				r.Exporter = exporter
				finish(&r, 1)
				recs = append(recs, r)
			}
		}
	}
	return recs, true
}

// FuzzDecodeTemplatedDifferential checks the allocation-free walk of data
// sets against goflow2's decoder on the same templates: whenever both
// accept a templates datagram and a data datagram, they must yield the same
// records.
func FuzzDecodeTemplatedDifferential(f *testing.F) {
	v9 := &flowgen.NetFlowV9{SourceID: 1}
	d9, _ := v9.AppendData(nil, t0, testFlows())
	f.Add(v9.AppendTemplates(nil, t0), d9)
	ipfix := &flowgen.IPFIX{ObservationDomain: 1}
	dx, _ := ipfix.AppendData(nil, t0, testFlows())
	f.Add(ipfix.AppendTemplates(nil, t0), dx)
	tmpl := wire(nil).u16(300).u16(4).u16(ieSrcIPv4).u16(4).u16(ieDstIPv4).u16(4).
		u16(0x8000 | 1).u16(0xffff).u32(9).u16(82).u16(0xffff)
	data := wire(nil).u32(1).u32(2).bytes(varlen([]byte("x"))).bytes(varlen(make([]byte, 300)))
	f.Add(ipfixMessage(1, set(2, tmpl)), ipfixMessage(1, set(300, data)))
	for _, v := range []uint16{9, 10} {
		seeds := realSeeds(f, v)
		for i := 1; i < len(seeds); i++ {
			f.Add(seeds[0], seeds[i])
		}
	}
	f.Fuzz(func(t *testing.T, templates, data []byte) {
		if len(templates) < 4 || len(data) < 4 {
			return
		}
		templates, data = bytes.Clone(templates), bytes.Clone(data)
		version := binary.BigEndian.Uint16(templates)
		if version != 9 && version != 10 {
			return
		}
		for _, b := range [][]byte{templates, data} {
			binary.BigEndian.PutUint16(b, version)
			if version == 9 {
				binary.BigEndian.PutUint16(b[2:], 0xffff) // goflow2 stops after "count" sets; we walk them all
			}
		}
		d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow, MaxTemplates: 1 << 16, MaxTemplateFields: 1 << 24,
			Sampling: map[netip.Addr]uint32{exporter: 1}})
		if _, err := d.Decode(exporter, t0, templates, nil); err != nil && !errors.Is(err, ErrUnknownTemplate) {
			return
		}
		got, err := d.Decode(exporter, t0, data, nil)
		if err != nil && !errors.Is(err, ErrUnknownTemplate) {
			return
		}
		// Templates inside the data datagram apply to all of its data here
		// (two passes), in order in goflow2: compare only without them.
		hdr := v9HeaderLen
		if version == 10 {
			hdr = ipfixHeaderLen
			data = data[:binary.BigEndian.Uint16(data[2:4])]
		}
		for rest := data[hdr:]; len(rest) >= setHeaderLen; {
			id, _, next := splitSet(rest)
			if id < 256 {
				return
			}
			rest = next
		}
		want, ok := referenceTemplated([][]byte{templates, data})
		if !ok {
			return
		}
		if diff := cmp.Diff(got, want, cmpRec, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("records differ from goflow2's (-got +want):\n%s", diff)
		}
	})
}
