package topics

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	flowpb "github.com/netsampler/goflow2/v2/pb"
	"google.golang.org/protobuf/encoding/protodelim"

	"github.com/floodgate-ddos/floodgate/sources"
)

// goflow2Message encodes ms as goflow2 -format=bin writes them: each a
// varint length and the FlowMessage, with goflow2's own types.
func goflow2Message(t testing.TB, ms ...*flowpb.FlowMessage) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, m := range ms {
		if _, err := protodelim.MarshalTo(&b, m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestGoFlow2Records(t *testing.T) {
	ntp := &flowpb.FlowMessage{
		Type: flowpb.FlowMessage_NETFLOW_V9, TimeReceivedNs: 1_700_000_002_000_000_000, SamplingRate: 1000,
		SamplerAddress: []byte{192, 0, 2, 1}, TimeFlowStartNs: 1_700_000_000_000_000_000, TimeFlowEndNs: 1_700_000_001_000_000_000,
		Bytes: 4680, Packets: 10, SrcAddr: []byte{198, 51, 100, 7}, DstAddr: []byte{203, 0, 113, 10}, Etype: 0x800,
		Proto: 17, SrcPort: 123, DstPort: 40000, InIf: 3, SrcAs: 64500,
	}
	v6 := netip.MustParseAddr("2001:db8::10").As16()
	v6src := netip.MustParseAddr("2001:db8:1::1").As16()
	icmp6 := &flowpb.FlowMessage{
		Type: flowpb.FlowMessage_SFLOW_5, TimeReceivedNs: 1_700_000_003_000_000_000, SamplingRate: 0,
		SamplerAddress: netip.MustParseAddr("2001:db8::1").AsSlice(), Bytes: 104, Packets: 1,
		SrcAddr: v6src[:], DstAddr: v6[:], Etype: 0x86dd, Proto: 58, IcmpType: 128, IcmpCode: 0, IpFlags: 0,
	}
	mapped := netip.AddrFrom4([4]byte{203, 0, 113, 11}).As16()
	mapped[10], mapped[11] = 0xff, 0xff
	frag := &flowpb.FlowMessage{TimeReceivedNs: 5, SamplingRate: 2, Bytes: 3000, Packets: 2,
		SrcAddr: []byte{198, 51, 100, 8}, DstAddr: mapped[:], Etype: 0x800, Proto: 17, FragmentOffset: 185, TcpFlags: 0}
	arp := &flowpb.FlowMessage{Etype: 0x806, Bytes: 60, Packets: 1}

	got, skipped, err := AppendGoFlow2(nil, goflow2Message(t, ntp, icmp6, frag, arp))
	if err != nil {
		t.Fatal(err)
	}
	want := []sources.Record{
		{Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("203.0.113.10"), SrcPort: 123, DstPort: 40000, Proto: 17,
			Packets: 10_000, Bytes: 4_680_000, Length: 468, Exporter: netip.MustParseAddr("192.0.2.1"), Sampling: 1000,
			Start: 1_700_000_000_000_000_000, End: 1_700_000_001_000_000_000},
		{Src: netip.MustParseAddr("2001:db8:1::1"), Dst: netip.MustParseAddr("2001:db8::10"), DstPort: 128 << 8, Proto: 58,
			Packets: 1, Bytes: 104, Length: 104, Exporter: netip.MustParseAddr("2001:db8::1"), Sampling: 1,
			Start: 1_700_000_003_000_000_000, End: 1_700_000_003_000_000_000},
		{Src: netip.MustParseAddr("198.51.100.8"), Dst: netip.MustParseAddr("203.0.113.11"), Proto: 17, Fragment: true,
			Packets: 4, Bytes: 6000, Length: 1500, Sampling: 2, Start: 5, End: 5},
	}
	if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if skipped != 1 {
		t.Errorf("skipped %d, want the ARP one", skipped)
	}
	dst := make([]sources.Record, 0, 8)
	msg := goflow2Message(t, ntp)
	if n := testing.AllocsPerRun(100, func() { dst, _, _ = AppendGoFlow2(dst[:0], msg) }); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
}

func TestGoFlow2Errors(t *testing.T) {
	good := goflow2Message(t, &flowpb.FlowMessage{Etype: 0x800, SrcAddr: []byte{1, 2, 3, 4}, DstAddr: []byte{5, 6, 7, 8}})
	for name, msg := range map[string][]byte{
		"length past the end": append([]byte{0x7f}, good[1:]...),
		"cut field":           good[:len(good)-2],
		"bad varint":          {0x02, 0x18, 0xff},
	} {
		dst := make([]sources.Record, 1)
		got, _, err := AppendGoFlow2(dst, msg)
		if !errors.Is(err, ErrGoFlow2) || len(got) != 1 {
			t.Errorf("%s: %v, %d records", name, err, len(got))
		}
	}
}

func FuzzGoFlow2(f *testing.F) {
	seeds(f, "goflow2", func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, msg []byte) {
		recs, _, err := AppendGoFlow2(nil, msg)
		if err != nil {
			return
		}
		for _, r := range recs {
			if !r.Src.IsValid() || !r.Dst.IsValid() || r.Src.Is4In6() || r.Dst.Is4In6() || r.Sampling == 0 || r.End < r.Start {
				t.Fatalf("accepted a record the sources never make: %+v", r)
			}
		}
	})
}

func BenchmarkGoFlow2(b *testing.B) {
	m := &flowpb.FlowMessage{Type: flowpb.FlowMessage_NETFLOW_V9, TimeReceivedNs: 1_700_000_002_000_000_000, SamplingRate: 1000,
		SamplerAddress: []byte{192, 0, 2, 1}, TimeFlowStartNs: 1, TimeFlowEndNs: 2, Bytes: 4680, Packets: 10,
		SrcAddr: []byte{198, 51, 100, 7}, DstAddr: []byte{203, 0, 113, 10}, Etype: 0x800, Proto: 17, SrcPort: 123, DstPort: 40000,
		InIf: 3, OutIf: 4, SrcAs: 64500, DstAs: 64501, NextHop: []byte{192, 0, 2, 254}, SrcNet: 24, DstNet: 24}
	msg := goflow2Message(b, m)
	dst := make([]sources.Record, 0, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		dst, _, _ = AppendGoFlow2(dst[:0], msg)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
