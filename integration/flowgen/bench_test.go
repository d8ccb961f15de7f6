package flowgen

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// benchSizes are the flows per datagram benchmarked: one, and as many as
// fit in DatagramSize.
func benchSizes(max int) []int { return []int{1, max} }

// benchFlows returns n realistic flows, alternating families.
func benchFlows(n int, v6Too bool) []Flow {
	flows := make([]Flow, n)
	for i := range flows {
		f := Flow{
			Src: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), Dst: netip.MustParseAddr("198.51.100.10"),
			SrcPort: uint16(1024 + i), DstPort: 53, Proto: protoUDP,
			Packets: 1000, Bytes: 1400, Start: testNow.Add(-time.Minute), End: testNow,
		}
		if v6Too && i%2 == 1 {
			f.Src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
			f.Dst = netip.MustParseAddr("2001:db8::10")
			f.Proto, f.TCPFlags, f.DstPort = protoTCP, 0x02, 443
		}
		flows[i] = f
	}
	return flows
}

func BenchmarkNetFlowV5(b *testing.B) {
	enc := &NetFlowV5{Boot: testBoot, SamplingMode: 2, SamplingInterval: 1000}
	for _, n := range benchSizes(enc.MaxRecordsPerDatagram(DatagramSize)) {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			flows := benchFlows(n, false)
			buf := make([]byte, 0, 65536)
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = enc.AppendData(buf[:0], testNow, flows)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkNetFlowV9(b *testing.B) {
	enc := &NetFlowV9{SourceID: 1, Boot: testBoot}
	for _, n := range benchSizes(enc.MaxRecordsPerDatagram(DatagramSize)) {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			flows := benchFlows(n, true)
			buf := make([]byte, 0, 65536)
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = enc.AppendData(buf[:0], testNow, flows)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkIPFIX(b *testing.B) {
	enc := &IPFIX{ObservationDomain: 1}
	for _, n := range benchSizes(enc.MaxRecordsPerDatagram(DatagramSize)) {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			flows := benchFlows(n, true)
			buf := make([]byte, 0, 65536)
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = enc.AppendData(buf[:0], testNow, flows)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkSFlowV5(b *testing.B) {
	enc := &SFlowV5{Agent: netip.MustParseAddr("192.0.2.254"), Boot: testBoot, SamplingRate: 1000}
	for _, n := range benchSizes(enc.MaxRecordsPerDatagram(DatagramSize)) {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			flows := benchFlows(n, true)
			buf := make([]byte, 0, 65536)
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = enc.AppendData(buf[:0], testNow, flows)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
