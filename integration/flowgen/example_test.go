package flowgen_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
)

// A sender sends templates first, then data split to fit a datagram,
// reusing one buffer.
func ExampleNetFlowV9() {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	enc := &flowgen.NetFlowV9{SourceID: 1, Boot: now.Add(-time.Hour)}
	flows := make([]flowgen.Flow, 50)
	for i := range flows {
		flows[i] = flowgen.Flow{
			Src: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), Dst: netip.MustParseAddr("198.51.100.10"),
			SrcPort: 53, DstPort: uint16(1024 + i), Proto: 17, Packets: 1, Bytes: 1200,
		}
	}

	buf := make([]byte, 0, flowgen.DatagramSize)
	buf = enc.AppendTemplates(buf[:0], now)
	fmt.Println("templates:", len(buf), "bytes")

	step := enc.MaxRecordsPerDatagram(flowgen.DatagramSize)
	for len(flows) > 0 {
		n := min(step, len(flows))
		var err error
		buf, err = enc.AppendData(buf[:0], now, flows[:n])
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("data:", n, "flows in", len(buf), "bytes")
		flows = flows[n:]
	}
	// Output:
	// templates: 120 bytes
	// data: 21 flows in 864 bytes
	// data: 21 flows in 864 bytes
	// data: 8 flows in 344 bytes
}
