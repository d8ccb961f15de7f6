package flow

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/sources"
)

// wire builds datagrams field by field for the cases flowgen does not
// encode (enterprise and variable-length IPFIX fields, sampler IDs, sFlow
// expanded samples).
type wire []byte

func (w wire) u8(v uint8) wire   { return append(w, v) }
func (w wire) u16(v uint16) wire { return binary.BigEndian.AppendUint16(w, v) }
func (w wire) u32(v uint32) wire { return binary.BigEndian.AppendUint32(w, v) }
func (w wire) u64(v uint64) wire { return binary.BigEndian.AppendUint64(w, v) }
func (w wire) bytes(b []byte) wire {
	return append(w, b...)
}
func (w wire) addr(a netip.Addr) wire { return append(w, a.AsSlice()...) }

// pad4 pads w to a multiple of 4 bytes from start.
func (w wire) pad4(start int) wire {
	for (len(w)-start)%4 != 0 {
		w = append(w, 0)
	}
	return w
}

// set wraps a body in a v9/IPFIX set header, padded.
func set(id uint16, body wire) wire {
	body = body.pad4(0)
	return wire(nil).u16(id).u16(uint16(4 + len(body))).bytes(body)
}

// ipfixMessage wraps sets in an IPFIX message header.
func ipfixMessage(domain uint32, sets ...wire) []byte {
	var body wire
	for _, s := range sets {
		body = body.bytes(s)
	}
	return wire(nil).u16(10).u16(uint16(16 + len(body))).u32(uint32(t0.Unix())).u32(1).u32(domain).bytes(body)
}

// v9Message wraps flow sets in a NetFlow v9 header.
func v9Message(sourceID uint32, count int, sets ...wire) []byte {
	var body wire
	for _, s := range sets {
		body = body.bytes(s)
	}
	return wire(nil).u16(9).u16(uint16(count)).u32(3_600_000).u32(uint32(t0.Unix())).u32(1).u32(sourceID).bytes(body)
}

// varlen encodes an IPFIX variable-length value, with the three-byte length
// form from 255 bytes on.
func varlen(b []byte) wire {
	if len(b) < 255 {
		return wire(nil).u8(uint8(len(b))).bytes(b)
	}
	return wire(nil).u8(255).u16(uint16(len(b))).bytes(b)
}

func TestDecodeIPFIXEnterpriseAndVariableLength(t *testing.T) {
	const pen = 29305
	// Template 300: an enterprise field numbered like octetDeltaCount and
	// variable-length fields, standard and enterprise, between the
	// standard ones: a decoder that mis-skips any of them reads garbage.
	tmpl := wire(nil).u16(300).u16(10).
		u16(ieSrcIPv4).u16(4).
		u16(ieDstIPv4).u16(4).
		u16(0x8000 | ieOctets).u16(8).u32(pen). // enterprise "octets": must be ignored
		u16(82).u16(0xffff).                    // interfaceName, variable length
		u16(ieProtocol).u16(1).
		u16(0x8000 | 2).u16(0xffff).u32(pen). // enterprise, variable length
		u16(iePackets).u16(4).
		u16(ieOctets).u16(4).
		u16(ieSrcPort).u16(2).
		u16(ieDstPort).u16(2)
	src, dst := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.10")
	long := make([]byte, 300)
	rec := func(ifName, ent []byte, pkts, bytes uint32, dport uint16) wire {
		return wire(nil).addr(src).addr(dst).u64(1 << 60).bytes(varlen(ifName)).u8(17).bytes(varlen(ent)).
			u32(pkts).u32(bytes).u16(123).u16(dport)
	}
	data := rec([]byte("eth0"), long, 10, 4680, 1000).
		bytes(rec(nil, nil, 1, 60, 1001)).
		bytes(rec(long[:254], long[:255], 2, 200, 1002))
	d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
	if _, err := d.Decode(exporter, t0, ipfixMessage(1, set(2, tmpl)), nil); err != nil {
		t.Fatalf("template: %v", err)
	}
	got, err := d.Decode(exporter, t0, ipfixMessage(1, set(300, data)), nil)
	if err != nil {
		t.Fatalf("data: %v", err)
	}
	mk := func(pkts, bytes uint64, dport uint16) sources.Record {
		return sources.Record{Src: src, Dst: dst, SrcPort: 123, DstPort: dport, Proto: 17, Packets: pkts, Bytes: bytes,
			Length: uint16(bytes / pkts), Exporter: exporter, Sampling: 1, Start: t0.UnixNano(), End: t0.UnixNano()}
	}
	want := []sources.Record{mk(10, 4680, 1000), mk(1, 60, 1001), mk(2, 200, 1002)}
	if diff := cmp.Diff(got, want, cmpRec); diff != "" {
		t.Errorf("records (-got +want):\n%s", diff)
	}
}

func TestDecodeSamplerIDs(t *testing.T) {
	// IPFIX: an options template scoped by selectorId announcing two
	// samplers, and data records naming theirs with selectorId.
	opts := wire(nil).u16(400).u16(2).u16(1).u16(ieSelectorID).u16(4).u16(ieSamplingPktIntv).u16(4)
	optsData := wire(nil).u32(1).u32(100).u32(2).u32(1000)
	tmpl := wire(nil).u16(401).u16(5).u16(ieSrcIPv4).u16(4).u16(ieDstIPv4).u16(4).u16(iePackets).u16(4).
		u16(ieOctets).u16(4).u16(ieSelectorID).u16(4)
	src, dst := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.10")
	data := wire(nil).addr(src).addr(dst).u32(1).u32(100).u32(1). // sampler 1: 1 in 100
									addr(src).addr(dst).u32(1).u32(100).u32(2). // sampler 2: 1 in 1000
									addr(src).addr(dst).u32(1).u32(100).u32(9)  // unknown sampler: the domain's last rate
	d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
	got, err := d.Decode(exporter, t0, ipfixMessage(5, set(3, opts), set(2, tmpl), set(400, optsData), set(401, data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var rates []uint32
	for _, r := range got {
		rates = append(rates, r.Sampling)
	}
	if diff := cmp.Diff(rates, []uint32{100, 1000, 1000}); diff != "" {
		t.Errorf("sampling rates (-got +want):\n%s", diff)
	}

	// Sampling is per observation domain: domain 6 has announced none.
	got, err = d.Decode(exporter, t0, ipfixMessage(6, set(2, tmpl), set(401, data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Sampling != 1 {
		t.Errorf("domain without sampling options: rate %d, want 1", got[0].Sampling)
	}

	// NetFlow v9: FLOW_SAMPLER_ID and FLOW_SAMPLER_RANDOM_INTERVAL in an
	// options record scoped by System (a scope type, not an element).
	v9opts := wire(nil).u16(256).u16(4).u16(8).u16(1).u16(4).u16(ieSamplerID).u16(1).u16(ieSamplerRandIntv).u16(4)
	v9optsData := wire(nil).u32(0).u8(3).u32(512)
	v9tmpl := wire(nil).u16(257).u16(3).u16(ieSrcIPv4).u16(4).u16(ieDstIPv4).u16(4).u16(ieSamplerID).u16(1)
	v9data := wire(nil).addr(src).addr(dst).u8(3)
	got, err = d.Decode(exporter, t0, v9Message(1, 4, set(1, v9opts), set(0, v9tmpl), set(256, v9optsData), set(257, v9data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Sampling != 512 {
		t.Errorf("v9 sampler: %+v, want one record sampled 1 in 512", got)
	}
}

func TestTemplateCacheExpiresAndIsBounded(t *testing.T) {
	enc := &flowgen.NetFlowV9{SourceID: 1}
	flows := testFlows()
	data, err := enc.AppendData(nil, t0, flows)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow, TemplateTTL: time.Minute, MaxTemplates: 4})
	if _, err := d.Decode(exporter, t0, enc.AppendTemplates(nil, t0), nil); err != nil {
		t.Fatal(err)
	}
	// Within the TTL data decodes; data does not refresh templates.
	if got, err := d.Decode(exporter, t0.Add(50*time.Second), data, nil); err != nil || len(got) != len(flows) {
		t.Fatalf("within TTL: %d records, %v", len(got), err)
	}
	if _, err := d.Decode(exporter, t0.Add(61*time.Second), data, nil); !errors.Is(err, ErrUnknownTemplate) {
		t.Fatalf("after TTL: err %v, want ErrUnknownTemplate", err)
	}
	// A refresh brings them back.
	later := t0.Add(2 * time.Minute)
	if _, err := d.Decode(exporter, later, enc.AppendTemplates(nil, later), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Decode(exporter, later, data, nil); err != nil || len(got) != len(flows) {
		t.Fatalf("after refresh: %d records, %v", len(got), err)
	}

	// Templates of many observation domains: at most 4 kept.
	for dom := range uint32(20) {
		e := &flowgen.NetFlowV9{SourceID: 100 + dom}
		if _, err := d.Decode(exporter, later, e.AppendTemplates(nil, later), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.Templates(exporter); n > 4 {
		t.Errorf("%d templates kept, cap 4", n)
	}
	if d.Stats().TemplatesDropped == 0 {
		t.Error("no template counted as dropped")
	}
}

func TestTemplateFieldBudget(t *testing.T) {
	// flowgen's v9 templates: two of 10 fields and one options template of
	// 3; 28 fields with the per-template overhead.
	d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow, MaxTemplateFields: 60})
	enc := &flowgen.NetFlowV9{SourceID: 1}
	tmpl := enc.AppendTemplates(nil, t0)
	opts := enc.AppendSamplingOptions(nil, t0, 10)
	var refused int
	for i := range 10 {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		if _, err := d.Decode(a, t0, tmpl, nil); err != nil {
			refused++
		}
		_, _ = d.Decode(a, t0, opts, nil)
	}
	if refused == 0 {
		t.Fatal("no template refused past the field budget")
	}
	if d.budget.used > 60 {
		t.Errorf("%d template fields held, budget 60", d.budget.used)
	}
	// Forgetting exporters gives their fields back.
	d2 := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow, MaxTemplateFields: 60, MaxExporters: 1})
	for i := range 10 {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		if _, err := d2.Decode(a, t0.Add(time.Duration(i)*time.Second), tmpl, nil); err != nil {
			t.Fatalf("exporter %d: %v (fields of evicted exporters not released?)", i, err)
		}
	}
}

// sflowDatagram wraps samples in an sFlow v5 datagram header from agent.
func sflowDatagram(agent netip.Addr, samples ...wire) []byte {
	w := wire(nil).u32(5)
	if agent.Is4() {
		w = w.u32(1)
	} else {
		w = w.u32(2)
	}
	w = w.addr(agent).u32(0).u32(1).u32(1000).u32(uint32(len(samples)))
	for _, s := range samples {
		w = w.bytes(s)
	}
	return w
}

// rawHeaderRecord is a raw packet header flow record (format 1) of frame,
// truncated to 128 bytes as agents do.
func rawHeaderRecord(frame []byte, proto uint32) wire {
	h := frame[:min(len(frame), 128)]
	body := wire(nil).u32(proto).u32(uint32(len(frame) + 4)).u32(4).u32(uint32(len(h))).bytes(h).pad4(16)
	return wire(nil).u32(1).u32(uint32(len(body))).bytes(body)
}

// expandedFlowSample is a format 3 sample holding records.
func expandedFlowSample(rate uint32, records ...wire) wire {
	body := wire(nil).u32(1).u32(0).u32(7).u32(rate).u32(rate * 10).u32(0).u32(0).u32(7).u32(0).u32(8).u32(uint32(len(records)))
	for _, r := range records {
		body = body.bytes(r)
	}
	return wire(nil).u32(3).u32(uint32(len(body))).bytes(body)
}

// flowSample is a format 1 sample holding records.
func flowSample(rate uint32, records ...wire) wire {
	body := wire(nil).u32(1).u32(7).u32(rate).u32(rate * 10).u32(0).u32(7).u32(8).u32(uint32(len(records)))
	for _, r := range records {
		body = body.bytes(r)
	}
	return wire(nil).u32(1).u32(uint32(len(body))).bytes(body)
}

// counterSample is a format 2 sample with one empty-ish generic counters
// record.
func counterSample() wire {
	rec := wire(nil).u32(1).u32(88).bytes(make([]byte, 88))
	body := wire(nil).u32(1).u32(7).u32(1).bytes(rec)
	return wire(nil).u32(2).u32(uint32(len(body))).bytes(body)
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeSFlowExpandedSamplesAndHeaders(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	s4, d4 := net.IP{198, 51, 100, 7}, net.IP{203, 0, 113, 10}
	s6, d6 := net.ParseIP("2001:db8:bad::7"), net.ParseIP("2001:db8:ffff::10")
	ip4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: p, SrcIP: s4, DstIP: d4}
	}
	vlanICMP := serialize(t, &layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4}, ip4(layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, gopacket.Payload(make([]byte, 28)))
	qinqTCP := serialize(t, &layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: layers.EthernetTypeQinQ},
		&layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeDot1Q}, &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
		ip4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, DataOffset: 5})
	mplsV6 := serialize(t, &layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: layers.EthernetTypeMPLSUnicast},
		&layers.MPLS{Label: 100, TTL: 64}, &layers.MPLS{Label: 200, StackBottom: true, TTL: 64},
		&layers.IPv6{Version: 6, NextHeader: layers.IPProtocolUDP, HopLimit: 64, SrcIP: s6, DstIP: d6},
		&layers.UDP{SrcPort: 53, DstPort: 5353}, gopacket.Payload(make([]byte, 1200)))
	icmp6 := serialize(t, &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 64, SrcIP: s6, DstIP: d6},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, gopacket.Payload(make([]byte, 8)))
	// A sampled IPv4 record (format 3) for an ICMP echo: type in the
	// source port field, code in the destination port field.
	sampledIPv4 := wire(nil).u32(3).u32(32).u32(84).u32(1).bytes(s4).bytes(d4).u32(8).u32(0).u32(0).u32(0)

	agent := netip.MustParseAddr("192.0.2.9")
	dg := sflowDatagram(agent,
		expandedFlowSample(256, rawHeaderRecord(vlanICMP, 1)),
		counterSample(),
		expandedFlowSample(512, rawHeaderRecord(qinqTCP, 1)),
		flowSample(1024, rawHeaderRecord(mplsV6, 1)),
		flowSample(2048, rawHeaderRecord(icmp6, 12)), // header protocol 12: raw IPv6
		flowSample(10, sampledIPv4),
		counterSample(),
	)
	d := NewDecoder(DecoderConfig{Protocol: ProtoSFlow})
	got, err := d.Decode(netip.MustParseAddr("127.0.0.1"), t0, dg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a4s, a4d := netip.AddrFrom4([4]byte(s4)), netip.AddrFrom4([4]byte(d4))
	a6s, a6d := netip.MustParseAddr("2001:db8:bad::7"), netip.MustParseAddr("2001:db8:ffff::10")
	ts := t0.UnixNano()
	rec := func(src, dst netip.Addr, sp, dp uint16, proto, flags uint8, length uint16, rate uint32) sources.Record {
		return sources.Record{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Proto: proto, TCPFlags: flags,
			Packets: uint64(rate), Bytes: uint64(length) * uint64(rate), Length: length, Exporter: agent,
			Sampling: rate, Start: ts, End: ts}
	}
	want := []sources.Record{
		rec(a4s, a4d, 0, 3<<8|3, 1, 0, 56, 256),
		rec(a4s, a4d, 40000, 80, 6, 0x02, 40, 512),
		rec(a6s, a6d, 53, 5353, 17, 0, 1248, 1024),
		rec(a6s, a6d, 0, 128<<8, 58, 0, 52, 2048),
		rec(a4s, a4d, 0, 8<<8, 1, 0, 84, 10),
	}
	if diff := cmp.Diff(got, want, cmpRec); diff != "" {
		t.Errorf("records (-got +want):\n%s", diff)
	}
	if n := d.Stats().CounterSamples; n != 2 {
		t.Errorf("%d counter samples counted, want 2", n)
	}
}

func TestDecodeIPFIXTimes(t *testing.T) {
	src, dst := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.10")
	ntp := func(d time.Duration) uint64 { // NTP timestamp d after an arbitrary second
		return uint64(3_900_000_000)<<32 + uint64(d/time.Second)<<32 + uint64(d%time.Second)<<32/uint64(time.Second)
	}
	tests := []struct {
		name       string
		start, end uint16
		length     uint16
		sv, ev     uint64
		want       time.Duration
	}{
		{"seconds", ieFlowStartSec, ieFlowEndSec, 4, 1000, 1003, 3 * time.Second},
		{"milliseconds", ieFlowStartMs, ieFlowEndMs, 8, 1_700_000_000_000, 1_700_000_001_500, 1500 * time.Millisecond},
		{"microseconds ntp", ieFlowStartUs, ieFlowEndUs, 8, ntp(0), ntp(250 * time.Millisecond), 250 * time.Millisecond},
		{"nanoseconds ntp", ieFlowStartNs, ieFlowEndNs, 8, ntp(0), ntp(2 * time.Second), 2 * time.Second},
		{"uptime", ieFirstSwitched, ieLastSwitched, 4, 5000, 5700, 700 * time.Millisecond},
		{"deltas", ieFlowStartDeltaUs, ieFlowEndDeltaUs, 4, 900_000, 100_000, 800 * time.Millisecond},
		{"end before start", ieFlowStartMs, ieFlowEndMs, 8, 2000, 1000, 0},
		{"beyond the cap", ieFlowStartSec, ieFlowEndSec, 4, 0, 3600, maxFlowDuration},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := wire(nil).u16(500).u16(4).u16(ieSrcIPv4).u16(4).u16(ieDstIPv4).u16(4).u16(tc.start).u16(tc.length).u16(tc.end).u16(tc.length)
			val := func(w wire, v uint64) wire {
				if tc.length == 4 {
					return w.u32(uint32(v))
				}
				return w.u64(v)
			}
			data := val(val(wire(nil).addr(src).addr(dst), tc.sv), tc.ev)
			d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
			got, err := d.Decode(exporter, t0, ipfixMessage(1, set(2, tmpl), set(500, data)), nil)
			if err != nil || len(got) != 1 {
				t.Fatalf("%d records, %v", len(got), err)
			}
			if dur := time.Duration(got[0].End - got[0].Start); dur.Round(time.Microsecond) != tc.want || got[0].End != t0.UnixNano() {
				t.Errorf("duration %v ending %d, want %v ending at the receive time", dur, got[0].End, tc.want)
			}
		})
	}
}

// gopacketICMPFrame is an Ethernet, 802.1Q, IPv4, ICMP echo frame.
func gopacketICMPFrame() []gopacket.SerializableLayer {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	return []gopacket.SerializableLayer{
		&layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP{198, 51, 100, 1}, DstIP: net.IP{203, 0, 113, 1}},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)},
	}
}
