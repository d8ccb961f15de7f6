package detect

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/flow"
)

// TestSpoofedFloodsThroughIPFIX is finding 4 of the detection issue, on
// the real decoding path: ICMP, fragment and GRE floods of spoofed
// sources, exported as unsampled IPFIX beside the victim's own busier TCP
// traffic, caught by the flows limit. The signature must name the flood's
// protocol.
func TestSpoofedFloodsThroughIPFIX(t *testing.T) {
	th := policies.Threshold{Total: policies.Limits{PPS: 20000, BPS: 1e9, Flows: 3500}}
	for _, tc := range []struct {
		name     string
		proto    uint8
		dominant string
	}{{"icmp", 1, "icmp"}, {"fragment", 17, "udp"}, {"gre", 47, "other"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock(newEngine(t, testPolicy(policies.DefaultEWMA, th)))
			enc := &flowgen.IPFIX{ObservationDomain: 1}
			dec := flow.NewDecoder(flow.DecoderConfig{Protocol: flow.ProtoNetFlow})
			exp := netip.MustParseAddr("127.0.0.1")
			if _, err := dec.Decode(exp, c.now, enc.AppendTemplates(nil, c.now), nil); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, uint64(tc.proto)))
			var started *Event
			for n := range 50 {
				var flows []flowgen.Flow
				// The victim's own web traffic: 12 kpps in 100 flows.
				for i := range 100 {
					flows = append(flows, flowgen.Flow{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Dst: victim, SrcPort: 443, DstPort: uint16(40000 + i),
						Proto: 6, TCPFlags: 0x18, Packets: 24, Bytes: 24 * 1200, Start: c.now.Add(-tick), End: c.now})
				}
				if n >= 5 { // the flood: 6,000 spoofed flows/s of 1 packet
					for range 1200 {
						f := flowgen.Flow{Src: netip.AddrFrom4([4]byte{byte(1 + rng.IntN(200)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}),
							Dst: victim, Proto: tc.proto, Packets: 1, Bytes: 84, Start: c.now, End: c.now}
						if tc.proto == 1 {
							f.DstPort = 8 << 8
						}
						flows = append(flows, f)
					}
				}
				var batch []sources.Record
				for len(flows) > 0 {
					k := min(20, len(flows))
					b, err := enc.AppendData(nil, c.now, flows[:k])
					if err != nil {
						t.Fatal(err)
					}
					if batch, err = dec.Decode(exp, c.now, b, batch); err != nil {
						t.Fatal(err)
					}
					flows = flows[k:]
				}
				for _, ev := range c.step(batch) {
					if ev.Kind == AttackStarted && started == nil {
						started = &ev
					}
				}
			}
			if started == nil {
				t.Fatal("no attack")
			}
			s := &started.Signature
			t.Logf("%s: metric %s, tcp %.2f udp %.2f icmp %.2f other %.2f, protocols %v", tc.name, s.Metric, s.TCP, s.UDP, s.ICMP, s.Other, s.Protocols)
			if s.Dominant() != tc.dominant || Top(s.Protocols).Value != int(tc.proto) {
				t.Errorf("dominant %s, top protocol %v; want %s and %d", s.Dominant(), Top(s.Protocols), tc.dominant, tc.proto)
			}
		})
	}
}
