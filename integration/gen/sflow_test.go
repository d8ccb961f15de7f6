package gen

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/sflow"

	"github.com/floodgate-ddos/floodgate/sources/flow"
)

// TestSFlowEmitter sends every attack, with background, as unsampled sFlow
// to a collector on loopback and checks what the project's decoder makes
// of it: one sample per packet, the fields of each attack (fragments
// included), the background over every host.
func TestSFlowEmitter(t *testing.T) {
	for _, a := range Attacks() {
		for _, fam := range families {
			t.Run(fmt.Sprintf("%s/%s", a, fam.name), func(t *testing.T) {
				m, err := NewModel(testScenario(a, fam.v6, 10_000, 0, 500*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				c := newCollector(t, flow.ProtoSFlow)
				counts := emitAll(t, m, &SFlowEmitter{To: c.addr()})
				recs := c.wait(t, counts.Datagrams)
				if uint64(len(recs)) != counts.Records || counts.Records != 6000 {
					t.Errorf("%d records decoded, %d sent, want 6000", len(recs), counts.Records)
				}
				want := attackShapes(a, fam.v6)
				tr := sumRecords(t, m, recs, want)
				if tr.attack != 5000 || counts.AttackPackets != 5000 {
					t.Errorf("attack packets: decoded %d, counted %d, want 5000", tr.attack, counts.AttackPackets)
				}
				if tr.background != 1000 {
					t.Errorf("background packets %d, want 1000", tr.background)
				}
				for h, p := range tr.perHost {
					if p < 4 || p > 6 {
						t.Errorf("host %v got %d packets, want 5 ± 1", h, p)
					}
				}
				checkShapes(t, tr.shapes, want)
			})
		}
	}
}

// TestSFlowSampling checks that sampled packets scale back to the rates
// within sampling error.
func TestSFlowSampling(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			s := testScenario(AttackMemcached, fam.v6, 200_000, 0, time.Second)
			s.BackgroundPPS = 50_000
			m, err := NewModel(s)
			if err != nil {
				t.Fatal(err)
			}
			c := newCollector(t, flow.ProtoSFlow)
			counts := emitAll(t, m, &SFlowEmitter{To: c.addr(), SamplingRate: 64})
			recs := c.wait(t, counts.Datagrams)
			for _, r := range recs {
				if r.Sampling != 64 || r.Packets != 64 {
					t.Fatalf("record sampling %d packets %d, want 64", r.Sampling, r.Packets)
				}
			}
			tr := sumRecords(t, m, recs, nil)
			if !within(tr.attack, 200_000, 0.03) {
				t.Errorf("attack packets %d, want 200000 ± 3%%", tr.attack)
			}
			if !within(tr.background, 50_000, 0.05) {
				t.Errorf("background packets %d, want 50000 ± 5%%", tr.background)
			}
		})
	}
}

// TestSFlowGoflow2 decodes a datagram with goflow2's decoder directly and
// checks the header fields flowgen's encoder would write: agent, sequence
// numbers, sampling rate, pool, and the raw header record.
func TestSFlowGoflow2(t *testing.T) {
	m, _ := NewModel(testScenario(AttackFragment, false, 1000, 0, 100*time.Millisecond))
	var iv Interval
	m.Fill(0, &iv)
	e := &SFlowEmitter{To: netip.MustParseAddrPort("127.0.0.1:6343"), SamplingRate: 1, SubAgentID: 3, IfIndex: 7}
	if err := e.Open(m.Scenario()); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	batch := []sample{{flow: 0, pool: 10}, {flow: 1, pool: 11}}
	for range 2 {
		e.buf = e.appendDatagram(e.buf[:0], time.Now(), iv.Flows, batch)
	}
	var p sflow.Packet
	if err := sflow.DecodeMessageVersion(bytes.NewBuffer(e.buf), &p); err != nil {
		t.Fatal(err)
	}
	if p.SubAgentId != 3 || p.SequenceNumber != 1 || p.SamplesCount != 2 || len(p.Samples) != 2 {
		t.Fatalf("header %+v", p)
	}
	fs, ok := p.Samples[1].(sflow.FlowSample)
	if !ok {
		t.Fatalf("sample %T", p.Samples[1])
	}
	if fs.Header.SampleSequenceNumber != 4 || fs.Header.SourceIdValue != 7 || fs.SamplingRate != 1 || fs.SamplePool != 11 || fs.Input != 7 {
		t.Errorf("flow sample %+v", fs)
	}
	h, ok := fs.Records[0].Data.(sflow.SampledHeader)
	if !ok {
		t.Fatalf("record %T", fs.Records[0].Data)
	}
	f := &iv.Flows[1]
	if h.Protocol != 1 || h.FrameLength != uint32(frameLen(f)+4) || h.Stripped != 4 {
		t.Errorf("sampled header %+v", h)
	}
}
