package flowgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// Header values expected for testNow: the export time rounded up to the
// second for NetFlow v9, truncated for IPFIX, and the uptime at that instant
// from testBoot, whose sub-millisecond fraction does not count.
var (
	wantV9UnixSecs = uint32(time.Date(2025, 3, 2, 2, 0, 1, 0, time.UTC).Unix())
	wantV9Uptime   = uint32((26*time.Hour + time.Second).Milliseconds())
	wantExportSecs = uint32(time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC).Unix())
)

// decodeNetFlow decodes one NetFlow v9 or IPFIX datagram with goflow2,
// learning and using the templates in ts.
func decodeNetFlow(t *testing.T, ts netflow.NetFlowTemplateSystem, b []byte) (*netflow.NFv9Packet, *netflow.IPFIXPacket) {
	t.Helper()
	var v9 netflow.NFv9Packet
	var ipfix netflow.IPFIXPacket
	if err := netflow.DecodeMessageVersion(bytes.NewBuffer(b), ts, &v9, &ipfix); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return &v9, &ipfix
}

// beUint reads a big-endian unsigned number of up to eight octets.
func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// dataFlows turns the data records of decoded flowsets into flows. toTime
// converts FIRST_SWITCHED and LAST_SWITCHED (v9) or flowStart/EndMilliseconds
// (IPFIX) to a time.
func dataFlows(t *testing.T, flowSets []any, toTime func(typ uint16, v uint64) (time.Time, bool)) (flows []Flow, records int) {
	t.Helper()
	for _, fs := range flowSets {
		ds, ok := fs.(netflow.DataFlowSet)
		if !ok {
			continue
		}
		for _, rec := range ds.Records {
			records++
			if len(rec.Values) != flowTemplateFields {
				t.Errorf("record of template %d has %d fields, want %d", ds.Id, len(rec.Values), flowTemplateFields)
			}
			var f Flow
			for _, df := range rec.Values {
				b, ok := df.Value.([]byte)
				if !ok {
					t.Fatalf("field %d value is %T", df.Type, df.Value)
				}
				switch df.Type {
				case ieSourceIPv4Address, ieSourceIPv6Address, ieDestinationIPv4Address, ieDestinationIPv6Address:
					addr, ok := netip.AddrFromSlice(b)
					if !ok {
						t.Errorf("field %d: %d-byte address", df.Type, len(b))
					}
					if df.Type == ieSourceIPv4Address || df.Type == ieSourceIPv6Address {
						f.Src = addr
					} else {
						f.Dst = addr
					}
				case ieSourceTransportPort:
					f.SrcPort = uint16(beUint(b))
				case ieDestinationTransportPort:
					f.DstPort = uint16(beUint(b))
				case ieProtocolIdentifier:
					f.Proto = uint8(beUint(b))
				case ieTCPControlBits:
					f.TCPFlags = uint8(beUint(b))
				case iePacketDeltaCount:
					f.Packets = beUint(b)
				case ieOctetDeltaCount:
					f.Bytes = beUint(b)
				case ieFragmentOffset:
					switch beUint(b) {
					case 0:
					case laterOffset:
						f.Fragment = LaterFragment
					default:
						t.Errorf("fragment offset %d", beUint(b))
					}
				default:
					tm, ok := toTime(df.Type, beUint(b))
					if !ok {
						t.Errorf("unexpected field %d in template %d", df.Type, ds.Id)
					}
					if df.Type == ieFirstSwitched || df.Type == ieFlowStartMilliseconds {
						f.Start = tm
					} else {
						f.End = tm
					}
				}
			}
			flows = append(flows, f)
		}
	}
	return flows, records
}

// v9Times converts switched times as a collector does, from the export time
// and uptime in the header.
func v9Times(p *netflow.NFv9Packet) func(uint16, uint64) (time.Time, bool) {
	return func(typ uint16, v uint64) (time.Time, bool) {
		if typ != ieFirstSwitched && typ != ieLastSwitched {
			return time.Time{}, false
		}
		ago := int64(p.SystemUptime - uint32(v))
		return time.UnixMilli(int64(p.UnixSeconds)*1000 - ago), true
	}
}

// ipfixTimes converts dateTimeMilliseconds.
func ipfixTimes(typ uint16, v uint64) (time.Time, bool) {
	if typ != ieFlowStartMilliseconds && typ != ieFlowEndMilliseconds {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(v)), true
}

// wantTemplates returns the flow templates as goflow2 decodes them.
func wantTemplates(ipfix bool) []netflow.TemplateRecord {
	common := func(src, dst, addrLen uint16) []netflow.Field {
		fields := []netflow.Field{
			{Type: src, Length: addrLen},
			{Type: dst, Length: addrLen},
			{Type: 7, Length: 2},
			{Type: 11, Length: 2},
			{Type: 4, Length: 1},
			{Type: 6, Length: 1},
			{Type: 2, Length: 8},
			{Type: 1, Length: 8},
			{Type: 22, Length: 4},
			{Type: 21, Length: 4},
			{Type: 88, Length: 2},
		}
		if ipfix {
			fields[5].Length = 2
			fields[8] = netflow.Field{Type: 152, Length: 8}
			fields[9] = netflow.Field{Type: 153, Length: 8}
		}
		return fields
	}
	return []netflow.TemplateRecord{
		{TemplateId: 256, FieldCount: 11, Fields: common(8, 12, 4)},
		{TemplateId: 257, FieldCount: 11, Fields: common(27, 28, 16)},
	}
}

// templateRecords returns the template records of decoded flowsets.
func templateRecords(flowSets []any) []netflow.TemplateRecord {
	var recs []netflow.TemplateRecord
	for _, fs := range flowSets {
		if ts, ok := fs.(netflow.TemplateFlowSet); ok {
			recs = append(recs, ts.Records...)
		}
	}
	return recs
}

// netFlowCases are the flow lists of the v9 and IPFIX round trips.
func netFlowCases() []struct {
	name  string
	boot  time.Time
	flows []Flow
} {
	large := []Flow{
		{
			Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"),
			SrcPort: 1, DstPort: 2, Proto: 17, Packets: 1 << 40, Bytes: 1<<63 + 5,
			Start: testNow.Add(-time.Hour), End: testNow,
		},
		{
			Src: netip.MustParseAddr("::ffff:192.0.2.1"), Dst: netip.MustParseAddr("2001:db8::2"),
			SrcPort: 65535, DstPort: 65535, Proto: 6, TCPFlags: 0xff, Packets: 1<<64 - 1, Bytes: 1<<64 - 1,
			Start: testNow.Add(-time.Minute), End: testNow.Add(-time.Millisecond),
		},
	}
	return []struct {
		name  string
		boot  time.Time
		flows []Flow
	}{
		{name: "mixed families", boot: testBoot, flows: testFlows()},
		{name: "ipv4 only", boot: testBoot, flows: onlyFamily(testFlows(), false)},
		{name: "ipv6 only", boot: testBoot, flows: onlyFamily(testFlows(), true)},
		{name: "large counters and mapped address", boot: testBoot, flows: large},
		{name: "zero boot wraps uptime", flows: testFlows()},
		{name: "no flows", boot: testBoot},
	}
}

func TestNetFlowV9RoundTrip(t *testing.T) {
	for _, tt := range netFlowCases() {
		t.Run(tt.name, func(t *testing.T) {
			enc := &NetFlowV9{SourceID: 42, Boot: tt.boot}
			ts := netflow.CreateTemplateSystem()

			tmpl, _ := decodeNetFlow(t, ts, enc.AppendTemplates(nil, testNow))
			if diff := cmp.Diff(templateRecords(tmpl.FlowSets), wantTemplates(false)); diff != "" {
				t.Errorf("templates (-got +want):\n%s", diff)
			}
			b := must(t)(enc.AppendData(nil, testNow, tt.flows))
			p, _ := decodeNetFlow(t, ts, b)
			got, records := dataFlows(t, p.FlowSets, v9Times(p))
			if diff := cmp.Diff(got, wantNetFlow(tt.flows, testNow, true), flowOpts); diff != "" {
				t.Errorf("flows (-got +want):\n%s", diff)
			}

			type header struct {
				Version, Count             uint16
				Sequence, Source, UnixSecs uint32
				Records                    int
			}
			gotHdr := header{p.Version, p.Count, p.SequenceNumber, p.SourceId, p.UnixSeconds, records}
			wantHdr := header{9, uint16(len(tt.flows)), 1, 42, wantV9UnixSecs, len(tt.flows)}
			if diff := cmp.Diff(gotHdr, wantHdr); diff != "" {
				t.Errorf("header (-got +want):\n%s", diff)
			}
			if !tt.boot.IsZero() && p.SystemUptime != wantV9Uptime {
				t.Errorf("sysUptime = %d, want %d", p.SystemUptime, wantV9Uptime)
			}
			if len(b)%4 != 0 {
				t.Errorf("datagram of %d bytes: flowsets not padded to 4", len(b))
			}
		})
	}
}

func TestIPFIXRoundTrip(t *testing.T) {
	for _, tt := range netFlowCases() {
		t.Run(tt.name, func(t *testing.T) {
			enc := &IPFIX{ObservationDomain: 42}
			ts := netflow.CreateTemplateSystem()

			_, tmpl := decodeNetFlow(t, ts, enc.AppendTemplates(nil, testNow))
			if diff := cmp.Diff(templateRecords(tmpl.FlowSets), wantTemplates(true)); diff != "" {
				t.Errorf("templates (-got +want):\n%s", diff)
			}
			b := must(t)(enc.AppendData(nil, testNow, tt.flows))
			_, p := decodeNetFlow(t, ts, b)
			got, records := dataFlows(t, p.FlowSets, ipfixTimes)
			if diff := cmp.Diff(got, wantNetFlow(tt.flows, testNow, true), flowOpts); diff != "" {
				t.Errorf("flows (-got +want):\n%s", diff)
			}

			type header struct {
				Version, Length                 uint16
				ExportTime, Sequence, ObsDomain uint32
				Records                         int
			}
			gotHdr := header{p.Version, p.Length, p.ExportTime, p.SequenceNumber, p.ObservationDomainId, records}
			wantHdr := header{10, uint16(len(b)), wantExportSecs, 0, 42, len(tt.flows)}
			if diff := cmp.Diff(gotHdr, wantHdr); diff != "" {
				t.Errorf("header (-got +want):\n%s", diff)
			}
		})
	}
}

// optionValues returns the scope and option values of the options data
// records of decoded flowsets, keyed by field type.
func optionValues(t *testing.T, flowSets []any) (scopes, options map[uint16]uint64) {
	t.Helper()
	scopes, options = map[uint16]uint64{}, map[uint16]uint64{}
	for _, fs := range flowSets {
		ods, ok := fs.(netflow.OptionsDataFlowSet)
		if !ok {
			continue
		}
		for _, rec := range ods.Records {
			for _, v := range rec.ScopesValues {
				scopes[v.Type] = beUint(v.Value.([]byte))
			}
			for _, v := range rec.OptionsValues {
				options[v.Type] = beUint(v.Value.([]byte))
			}
		}
	}
	return scopes, options
}

func TestSamplingOptions(t *testing.T) {
	type values struct {
		Scopes, Options map[uint16]uint64
		Sequence        uint32
	}
	tests := []struct {
		name string
		fn   func(dst []byte) []byte
		want values
	}{
		{
			name: "netflow v9",
			fn: func(dst []byte) []byte {
				return (&NetFlowV9{SourceID: 42, Boot: testBoot}).AppendSamplingOptions(dst, testNow, 1000)
			},
			want: values{map[uint16]uint64{1: 42}, map[uint16]uint64{34: 1000, 35: 2}, 0},
		},
		{
			name: "ipfix sampling interval",
			fn: func(dst []byte) []byte {
				return (&IPFIX{ObservationDomain: 42}).AppendSamplingOptions(dst, testNow, 1000)
			},
			want: values{map[uint16]uint64{149: 42}, map[uint16]uint64{34: 1000, 35: 2}, 0},
		},
		{
			name: "ipfix random sampler",
			fn: func(dst []byte) []byte {
				return (&IPFIX{ObservationDomain: 42, RandomSampler: true}).AppendSamplingOptions(dst, testNow, 4096)
			},
			want: values{map[uint16]uint64{149: 42}, map[uint16]uint64{49: 2, 50: 4096}, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.fn(nil)
			v9, ipfix := decodeNetFlow(t, netflow.CreateTemplateSystem(), b)
			flowSets, seq := v9.FlowSets, v9.SequenceNumber
			if ipfix.Version == 10 {
				flowSets, seq = ipfix.FlowSets, ipfix.SequenceNumber
			} else if v9.Count != 2 {
				t.Errorf("v9 count = %d, want 2 (options template and data)", v9.Count)
			}
			scopes, options := optionValues(t, flowSets)
			if diff := cmp.Diff(values{scopes, options, seq}, tt.want); diff != "" {
				t.Errorf("options (-got +want):\n%s", diff)
			}
			if len(b)%4 != 0 {
				t.Errorf("datagram of %d bytes: sets not padded to 4", len(b))
			}
		})
	}
}

// TestSequenceNumbers checks that NetFlow v9 counts datagrams and IPFIX
// counts data records, options records included.
func TestSequenceNumbers(t *testing.T) {
	flows := testFlows()
	seqAt := func(b []byte) uint32 {
		if binary.BigEndian.Uint16(b) == 9 {
			return binary.BigEndian.Uint32(b[12:])
		}
		return binary.BigEndian.Uint32(b[8:])
	}
	v9 := &NetFlowV9{}
	ipfix := &IPFIX{}
	tests := []struct {
		name string
		fn   func() []byte
		want uint32
	}{
		{"v9 templates", func() []byte { return v9.AppendTemplates(nil, testNow) }, 0},
		{"v9 data", func() []byte { return must(t)(v9.AppendData(nil, testNow, flows)) }, 1},
		{"v9 options", func() []byte { return v9.AppendSamplingOptions(nil, testNow, 10) }, 2},
		{"v9 data again", func() []byte { return must(t)(v9.AppendData(nil, testNow, flows[:1])) }, 3},
		{"ipfix templates", func() []byte { return ipfix.AppendTemplates(nil, testNow) }, 0},
		{"ipfix data", func() []byte { return must(t)(ipfix.AppendData(nil, testNow, flows)) }, 0},
		{"ipfix options", func() []byte { return ipfix.AppendSamplingOptions(nil, testNow, 10) }, uint32(len(flows))},
		{"ipfix templates again", func() []byte { return ipfix.AppendTemplates(nil, testNow) }, uint32(len(flows)) + 1},
		{"ipfix data again", func() []byte { return must(t)(ipfix.AppendData(nil, testNow, flows)) }, uint32(len(flows)) + 1},
	}
	// The steps share encoders, so they run in order, not as subtests.
	for _, tt := range tests {
		if got := seqAt(tt.fn()); got != tt.want {
			t.Errorf("%s: sequence %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestNetFlowErrors(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name  string
		flows []Flow
		want  error
	}{
		{"mixed families", []Flow{{Src: v4, Dst: v6}}, ErrInvalidFlow},
		{"missing destination", []Flow{{Src: v6}}, ErrInvalidFlow},
		{"no addresses", []Flow{{}}, ErrInvalidFlow},
		{"beyond a datagram", worstFlows(1100), ErrTooManyRecords},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{1, 2, 3}
			v9 := &NetFlowV9{}
			b, err := v9.AppendData(prefix, testNow, tt.flows)
			if !errors.Is(err, tt.want) {
				t.Errorf("netflow v9: error %v, want %v", err, tt.want)
			}
			if diff := cmp.Diff(b, prefix); diff != "" {
				t.Errorf("netflow v9: buffer changed on error (-got +want):\n%s", diff)
			}
			ipfix := &IPFIX{}
			b, err = ipfix.AppendData(prefix, testNow, tt.flows)
			if !errors.Is(err, tt.want) {
				t.Errorf("ipfix: error %v, want %v", err, tt.want)
			}
			if diff := cmp.Diff(b, prefix); diff != "" {
				t.Errorf("ipfix: buffer changed on error (-got +want):\n%s", diff)
			}
			if v9.seq != 0 || ipfix.seq != 0 {
				t.Errorf("sequence moved on error: v9 %d, ipfix %d", v9.seq, ipfix.seq)
			}
		})
	}
}
