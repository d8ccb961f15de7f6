package flowgen

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/netsampler/goflow2/v2/decoders/sflow"
)

// sflowFlows returns testFlows with frame lengths for Bytes, one of them
// zero for the shortest frame.
func sflowFlows() []Flow {
	flows := testFlows()
	frames := []uint64{1514, 78, 0, 98, 1518, 118, 64}
	for i := range flows {
		flows[i].Bytes = frames[i]
	}
	return flows
}

// wantSFlow returns what parsing the sampled headers of flows gives back:
// addresses, protocol and frame length, ports of TCP and UDP, flags of TCP,
// ICMP type and code in DstPort.
func wantSFlow(flows []Flow) []Flow {
	want := make([]Flow, len(flows))
	for i, f := range flows {
		w := Flow{Src: f.Src, Dst: f.Dst, Proto: f.Proto, Bytes: f.Bytes}
		switch f.Proto {
		case protoTCP:
			w.SrcPort, w.DstPort, w.TCPFlags = f.SrcPort, f.DstPort, f.TCPFlags
		case protoUDP:
			w.SrcPort, w.DstPort = f.SrcPort, f.DstPort
		case protoICMP, protoICMPv6:
			w.DstPort = f.DstPort
		}
		if w.Bytes == 0 {
			w.Bytes = uint64(frameHeaderLen(&f, f.Src.Is6()) + fcsLen)
		}
		want[i] = w
	}
	return want
}

// headerParser parses sampled frame headers into reused layers.
type headerParser struct {
	eth     layers.Ethernet
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	udp     layers.UDP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6
	parser  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

func newHeaderParser() *headerParser {
	p := &headerParser{}
	p.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet,
		&p.eth, &p.ip4, &p.ip6, &p.tcp, &p.udp, &p.icmp4, &p.icmp6)
	p.parser.IgnoreUnsupported = true
	return p
}

// parse turns the headers of a frame of frameLen octets into a flow and
// checks that the length fields and the IPv4 checksum are right.
func (p *headerParser) parse(t *testing.T, hdr []byte, frameLen uint32) Flow {
	t.Helper()
	if err := p.parser.DecodeLayers(hdr, &p.decoded); err != nil {
		t.Fatalf("parse sampled header: %v", err)
	}
	f := Flow{Bytes: uint64(frameLen)}
	ipLen := int(frameLen) - ethHeaderLen - fcsLen
	l4Len := 0
	for _, typ := range p.decoded {
		switch typ {
		case layers.LayerTypeIPv4:
			f.Src, _ = netip.AddrFromSlice(p.ip4.SrcIP)
			f.Dst, _ = netip.AddrFromSlice(p.ip4.DstIP)
			f.Proto = uint8(p.ip4.Protocol)
			if int(p.ip4.Length) != ipLen || p.ip4.IHL != 5 || p.ip4.TTL == 0 {
				t.Errorf("ipv4 length %d IHL %d TTL %d, want length %d", p.ip4.Length, p.ip4.IHL, p.ip4.TTL, ipLen)
			}
			var sum uint32
			for i := 0; i < 20; i += 2 {
				sum += uint32(hdr[ethHeaderLen+i])<<8 | uint32(hdr[ethHeaderLen+i+1])
			}
			for sum > 0xffff {
				sum = sum>>16 + sum&0xffff
			}
			if sum != 0xffff {
				t.Errorf("ipv4 checksum %#04x does not verify", p.ip4.Checksum)
			}
			l4Len = ipLen - ipv4HeaderLen
		case layers.LayerTypeIPv6:
			f.Src, _ = netip.AddrFromSlice(p.ip6.SrcIP)
			f.Dst, _ = netip.AddrFromSlice(p.ip6.DstIP)
			f.Proto = uint8(p.ip6.NextHeader)
			l4Len = ipLen - ipv6HeaderLen
			if int(p.ip6.Length) != l4Len || p.ip6.HopLimit == 0 {
				t.Errorf("ipv6 payload length %d hop limit %d, want length %d", p.ip6.Length, p.ip6.HopLimit, l4Len)
			}
		case layers.LayerTypeTCP:
			f.SrcPort, f.DstPort = uint16(p.tcp.SrcPort), uint16(p.tcp.DstPort)
			for i, set := range []bool{p.tcp.FIN, p.tcp.SYN, p.tcp.RST, p.tcp.PSH, p.tcp.ACK, p.tcp.URG, p.tcp.ECE, p.tcp.CWR} {
				if set {
					f.TCPFlags |= 1 << i
				}
			}
		case layers.LayerTypeUDP:
			f.SrcPort, f.DstPort = uint16(p.udp.SrcPort), uint16(p.udp.DstPort)
			if int(p.udp.Length) != l4Len {
				t.Errorf("udp length %d, want %d", p.udp.Length, l4Len)
			}
		case layers.LayerTypeICMPv4:
			f.DstPort = uint16(p.icmp4.TypeCode)
		case layers.LayerTypeICMPv6:
			f.DstPort = uint16(p.icmp6.TypeCode)
		}
	}
	return f
}

// sampleMeta is what a flow sample says besides the sampled header.
type sampleMeta struct {
	Sequence, SourceType, SourceIndex     uint32
	Rate, Pool, Drops, Input, Output      uint32
	RecordCount, Records, RecordFormat    uint32
	HeaderProtocol, Stripped, HeaderBytes uint32
}

func TestSFlowRoundTrip(t *testing.T) {
	flows := sflowFlows()
	tests := []struct {
		name     string
		enc      SFlowV5
		flows    []Flow
		wantRate uint32
	}{
		{
			name:     "ipv4 agent",
			enc:      SFlowV5{Agent: netip.MustParseAddr("192.0.2.254"), SubAgentID: 3, Boot: testBoot, SamplingRate: 1000, IfIndex: 12},
			flows:    flows,
			wantRate: 1000,
		},
		{
			name:     "ipv6 agent unsampled",
			enc:      SFlowV5{Agent: netip.MustParseAddr("2001:db8::fe"), Boot: testBoot, IfIndex: 1<<24 - 1},
			flows:    flows,
			wantRate: 1,
		},
		{
			name:     "full datagram of the longest headers",
			enc:      SFlowV5{Agent: netip.MustParseAddr("192.0.2.254"), Boot: testBoot, SamplingRate: 2048},
			flows:    worstFlows((&SFlowV5{Agent: netip.MustParseAddr("192.0.2.254")}).MaxRecordsPerDatagram(DatagramSize)),
			wantRate: 2048,
		},
		{
			name: "no flows",
			enc:  SFlowV5{Agent: netip.MustParseAddr("192.0.2.254"), Boot: testBoot},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.enc
			// Decode the second datagram, to see the counters carry over.
			must(t)(enc.AppendData(nil, testNow.Add(-time.Second), tt.flows))
			b := must(t)(enc.AppendData(nil, testNow, tt.flows))
			var p sflow.Packet
			if err := sflow.DecodeMessageVersion(bytes.NewBuffer(b), &p); err != nil {
				t.Fatalf("decode: %v", err)
			}

			type header struct {
				Version, IPVersion                       uint32
				Agent                                    netip.Addr
				SubAgent, Sequence, Uptime, SamplesCount uint32
				Samples                                  int
			}
			agent, _ := netip.AddrFromSlice(p.AgentIP)
			ipVersion := uint32(1)
			if tt.enc.Agent.Is6() {
				ipVersion = 2
			}
			gotHdr := header{p.Version, p.IPVersion, agent, p.SubAgentId, p.SequenceNumber, p.Uptime, p.SamplesCount, len(p.Samples)}
			wantHdr := header{5, ipVersion, tt.enc.Agent, tt.enc.SubAgentID, 1,
				uint32((26*time.Hour + 345*time.Millisecond).Milliseconds()), uint32(len(tt.flows)), len(tt.flows)}
			if diff := cmp.Diff(gotHdr, wantHdr, flowOpts); diff != "" {
				t.Errorf("datagram header (-got +want):\n%s", diff)
			}

			parser := newHeaderParser()
			var got []Flow
			var gotMeta, wantMeta []sampleMeta
			for i, s := range p.Samples {
				fs, ok := s.(sflow.FlowSample)
				if !ok {
					t.Fatalf("sample %d is %T, want a flow sample", i, s)
				}
				meta := sampleMeta{
					Sequence: fs.Header.SampleSequenceNumber, SourceType: fs.Header.SourceIdType, SourceIndex: fs.Header.SourceIdValue,
					Rate: fs.SamplingRate, Pool: fs.SamplePool, Drops: fs.Drops, Input: fs.Input, Output: fs.Output,
					RecordCount: fs.FlowRecordsCount, Records: uint32(len(fs.Records)),
				}
				if len(fs.Records) > 0 {
					meta.RecordFormat = fs.Records[0].Header.DataFormat
					if h, ok := fs.Records[0].Data.(sflow.SampledHeader); ok {
						meta.HeaderProtocol, meta.Stripped, meta.HeaderBytes = h.Protocol, h.Stripped, h.OriginalLength
						got = append(got, parser.parse(t, h.HeaderData[:h.OriginalLength], h.FrameLength))
					}
				}
				gotMeta = append(gotMeta, meta)
				n := uint32(len(tt.flows) + i + 1) // samples sent so far
				wantMeta = append(wantMeta, sampleMeta{
					Sequence: n, SourceIndex: tt.enc.IfIndex,
					Rate: tt.wantRate, Pool: n * tt.wantRate, Input: tt.enc.IfIndex,
					RecordCount: 1, Records: 1, RecordFormat: 1,
					HeaderProtocol: 1, Stripped: fcsLen,
					HeaderBytes: uint32(frameHeaderLen(&tt.flows[i], tt.flows[i].Src.Is6())),
				})
			}
			if diff := cmp.Diff(gotMeta, wantMeta); diff != "" {
				t.Errorf("flow samples (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(got, wantSFlow(tt.flows), flowOpts); diff != "" {
				t.Errorf("sampled headers (-got +want):\n%s", diff)
			}
		})
	}
}

func TestSFlowCounters(t *testing.T) {
	enc := &SFlowV5{Agent: netip.MustParseAddr("192.0.2.254"), Boot: testBoot, IfIndex: 7}
	in := IfCounters{Speed: 100e9, InOctets: 1 << 40, OutOctets: 12345, InPackets: 1 << 31, OutPackets: 99}
	must(t)(enc.AppendCounters(nil, testNow, in))
	b := must(t)(enc.AppendCounters(nil, testNow, in))
	var p sflow.Packet
	if err := sflow.DecodeMessageVersion(bytes.NewBuffer(b), &p); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(p.Samples) != 1 {
		t.Fatalf("%d samples, want 1", len(p.Samples))
	}
	cs, ok := p.Samples[0].(sflow.CounterSample)
	if !ok {
		t.Fatalf("sample is %T, want a counter sample", p.Samples[0])
	}
	if len(cs.Records) != 1 {
		t.Fatalf("%d counter records, want 1", len(cs.Records))
	}
	type sample struct {
		Sequence, Datagram, SourceIndex, Format uint32
		Counters                                any
	}
	got := sample{cs.Header.SampleSequenceNumber, p.SequenceNumber, cs.Header.SourceIdValue, cs.Records[0].Header.DataFormat, cs.Records[0].Data}
	want := sample{2, 1, 7, 1, sflow.IfCounters{
		IfIndex: 7, IfType: 6, IfSpeed: 100e9, IfDirection: 1, IfStatus: 3,
		IfInOctets: 1 << 40, IfInUcastPkts: 1 << 31, IfOutOctets: 12345, IfOutUcastPkts: 99,
	}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("counter sample (-got +want):\n%s", diff)
	}
}

func TestSFlowErrors(t *testing.T) {
	agent := netip.MustParseAddr("192.0.2.254")
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name  string
		enc   SFlowV5
		flows []Flow
		want  error
	}{
		{name: "no agent", flows: sflowFlows(), want: ErrInvalidExporter},
		{name: "ifindex above 24 bits", enc: SFlowV5{Agent: agent, IfIndex: 1 << 24}, want: ErrInvalidExporter},
		{name: "mixed families", enc: SFlowV5{Agent: agent}, flows: []Flow{{Src: v4, Dst: v6}}, want: ErrInvalidFlow},
		{
			name:  "frame shorter than headers",
			enc:   SFlowV5{Agent: agent},
			flows: []Flow{{Src: v6, Dst: v6, Proto: protoTCP, Bytes: 77}},
			want:  ErrInvalidFlow,
		},
		{
			name:  "frame above 32 bits",
			enc:   SFlowV5{Agent: agent},
			flows: []Flow{{Src: v4, Dst: v4, Proto: protoUDP, Bytes: 1 << 32}},
			want:  ErrInvalidFlow,
		},
		{name: "beyond a datagram", enc: SFlowV5{Agent: agent}, flows: worstFlows(500), want: ErrTooManyRecords},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{1, 2, 3}
			enc := tt.enc
			b, err := enc.AppendData(prefix, testNow, tt.flows)
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if diff := cmp.Diff(b, prefix); diff != "" {
				t.Errorf("buffer changed on error (-got +want):\n%s", diff)
			}
			if enc.seq != 0 || enc.flowSeq != 0 || enc.pool != 0 {
				t.Errorf("counters moved on error: %d %d %d", enc.seq, enc.flowSeq, enc.pool)
			}
		})
	}
}

// TestSFlowLargeFrame checks that a jumbo frame keeps its length while the
// IP length fields saturate.
func TestSFlowLargeFrame(t *testing.T) {
	enc := &SFlowV5{Agent: netip.MustParseAddr("192.0.2.254")}
	flow := Flow{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), Proto: protoUDP, Bytes: 100_000}
	b := must(t)(enc.AppendData(nil, testNow, []Flow{flow}))
	var p sflow.Packet
	if err := sflow.DecodeMessageVersion(bytes.NewBuffer(b), &p); err != nil {
		t.Fatalf("decode: %v", err)
	}
	h := p.Samples[0].(sflow.FlowSample).Records[0].Data.(sflow.SampledHeader)
	parser := newHeaderParser()
	if err := parser.parser.DecodeLayers(h.HeaderData[:h.OriginalLength], &parser.decoded); err != nil {
		t.Fatalf("parse: %v", err)
	}
	type lengths struct{ Frame, IP, UDP uint32 }
	got := lengths{h.FrameLength, uint32(parser.ip4.Length), uint32(parser.udp.Length)}
	if diff := cmp.Diff(got, lengths{100_000, 65535, 65535}); diff != "" {
		t.Errorf("lengths (-got +want):\n%s", diff)
	}
}
