package flow

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
)

// TestImplausibleRecordsDropped is finding 3 of the detection issue:
// bit-flipped NetFlow records that still parse, with a monitored
// destination and a packet count near 2^31, were counted as 2.2 G pps and
// banned two hosts. Such records, and records whose mean packet size no IP
// packet has, are now dropped and counted as malformed; the rest of the
// datagram is kept.
func TestImplausibleRecordsDropped(t *testing.T) {
	good := testFlows()
	dst := netip.MustParseAddr("203.0.113.20")
	bad := []flowgen.Flow{
		// A flipped high bit in the packet count, at 1:1000.
		{Src: netip.MustParseAddr("198.51.100.9"), Dst: dst, SrcPort: 123, DstPort: 1, Proto: 17,
			Packets: 1<<31 + 10, Bytes: (1<<31 + 10) * 468, Start: t0.Add(-time.Second), End: t0},
		// 3 bytes a packet.
		{Src: netip.MustParseAddr("198.51.100.9"), Dst: dst, SrcPort: 123, DstPort: 2, Proto: 17,
			Packets: 1000, Bytes: 3000, Start: t0.Add(-time.Second), End: t0},
		// 100 kB a packet.
		{Src: netip.MustParseAddr("198.51.100.9"), Dst: dst, SrcPort: 123, DstPort: 3, Proto: 17,
			Packets: 10, Bytes: 1_000_000, Start: t0.Add(-time.Second), End: t0},
	}
	for _, tc := range []struct {
		name string
		enc  interface {
			AppendTemplates([]byte, time.Time) []byte
			AppendData([]byte, time.Time, []flowgen.Flow) ([]byte, error)
			AppendSamplingOptions([]byte, time.Time, uint32) []byte
		}
	}{
		{"netflow v9", &flowgen.NetFlowV9{SourceID: 1, Boot: t0.Add(-time.Hour)}},
		{"ipfix", &flowgen.IPFIX{ObservationDomain: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(DecoderConfig{Protocol: ProtoNetFlow})
			if _, err := d.Decode(exporter, t0, tc.enc.AppendTemplates(nil, t0), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Decode(exporter, t0, tc.enc.AppendSamplingOptions(nil, t0, 1000), nil); err != nil {
				t.Fatal(err)
			}
			data, err := tc.enc.AppendData(nil, t0, append(append([]flowgen.Flow{}, bad...), good...))
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Decode(exporter, t0, data, nil)
			if !errors.Is(err, ErrImplausible) || !errors.Is(err, ErrMalformed) {
				t.Errorf("err %v, want ErrImplausible (a malformed datagram)", err)
			}
			if len(got) != len(good) || d.Stats().Implausible != uint64(len(bad)) {
				t.Fatalf("kept %d records, dropped %d; want %d and %d: %v", len(got), d.Stats().Implausible, len(good), len(bad), err)
			}
			for _, r := range got {
				if r.Dst == dst {
					t.Errorf("implausible record kept: %+v", r)
				}
			}
		})
	}
}
