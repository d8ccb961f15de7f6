package gen

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/sources/flow"
)

// TestNetFlowEmitter sends every attack, with background, as NetFlow v5, v9
// and IPFIX to a collector on loopback and checks what the project's
// decoder makes of it: the victim's packets to the packet, the fields of
// each attack, the background over every host.
func TestNetFlowEmitter(t *testing.T) {
	for _, version := range []int{5, 9, 10} {
		for _, a := range Attacks() {
			for _, fam := range families {
				if version == 5 && fam.v6 {
					continue
				}
				t.Run(fmt.Sprintf("v%d/%s/%s", version, a, fam.name), func(t *testing.T) {
					m, err := NewModel(testScenario(a, fam.v6, 20_000, 0, 500*time.Millisecond))
					if err != nil {
						t.Fatal(err)
					}
					c := newCollector(t, flow.ProtoNetFlow)
					counts := emitAll(t, m, &NetFlowEmitter{Version: version, To: c.addr()})
					recs := c.wait(t, counts.Datagrams)
					if uint64(len(recs)) != counts.Records {
						t.Errorf("%d records decoded, %d sent", len(recs), counts.Records)
					}
					want := withoutFragments(attackShapes(a, fam.v6))
					tr := sumRecords(t, m, recs, want)
					if tr.attack != 10_000 || counts.AttackPackets != 10_000 {
						t.Errorf("attack packets: decoded %d, counted %d, want 10000", tr.attack, counts.AttackPackets)
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
					if len(tr.sources) < 1000 {
						t.Errorf("%d attack sources", len(tr.sources))
					}
				})
			}
		}
	}
}

// TestNetFlowSampling checks that sampled exports scale back to the rate
// within sampling error, and that the collector learns the rate from the
// export.
func TestNetFlowSampling(t *testing.T) {
	for _, version := range []int{5, 9, 10} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			s := testScenario(AttackNTP, false, 200_000, 0, time.Second)
			s.BackgroundPPS = 50_000
			m, err := NewModel(s)
			if err != nil {
				t.Fatal(err)
			}
			c := newCollector(t, flow.ProtoNetFlow)
			counts := emitAll(t, m, &NetFlowEmitter{Version: version, To: c.addr(), SamplingRate: 100})
			recs := c.wait(t, counts.Datagrams)
			for _, r := range recs {
				if r.Sampling != 100 {
					t.Fatalf("record sampling %d, want 100", r.Sampling)
				}
			}
			tr := sumRecords(t, m, recs, nil)
			if !within(tr.attack, 200_000, 0.03) {
				t.Errorf("attack packets %d, want 200000 ± 3%%", tr.attack)
			}
			if !within(tr.background, 50_000, 0.05) {
				t.Errorf("background packets %d, want 50000 ± 5%%", tr.background)
			}
			if counts.Records > 200_000/100*3 {
				t.Errorf("%d records for 2,500 sampled packets", counts.Records)
			}
		})
	}
}

// TestNetFlowEmitterRefuses checks the settings Open refuses, before any
// socket is opened.
func TestNetFlowEmitterRefuses(t *testing.T) {
	v4 := testScenario(AttackNTP, false, 1000, 0, time.Second).withDefaults()
	v6 := testScenario(AttackNTP, true, 1000, 0, time.Second).withDefaults()
	lo := netip.MustParseAddrPort("127.0.0.1:2055")
	tests := []struct {
		name string
		e    Emitter
		s    Scenario
		want error
	}{
		{"documentation address", &NetFlowEmitter{Version: 9, To: netip.MustParseAddrPort("192.0.2.1:2055")}, v4, ErrNotLoopback},
		{"unspecified", &NetFlowEmitter{Version: 9, To: netip.MustParseAddrPort("0.0.0.0:2055")}, v4, ErrNotLoopback},
		{"private", &NetFlowEmitter{Version: 10, To: netip.MustParseAddrPort("10.0.0.1:2055")}, v4, ErrNotLoopback},
		{"ipv6 global", &NetFlowEmitter{Version: 9, To: netip.MustParseAddrPort("[2001:db8::1]:2055")}, v4, ErrNotLoopback},
		{"mapped non-loopback", &NetFlowEmitter{Version: 9, To: netip.MustParseAddrPort("[::ffff:192.0.2.1]:2055")}, v4, ErrNotLoopback},
		{"sflow elsewhere", &SFlowEmitter{To: netip.MustParseAddrPort("198.51.100.1:6343")}, v4, ErrNotLoopback},
		{"no destination", &NetFlowEmitter{Version: 9}, v4, ErrInvalidEmitter},
		{"port 0", &NetFlowEmitter{Version: 9, To: netip.MustParseAddrPort("127.0.0.1:0")}, v4, ErrInvalidEmitter},
		{"version 7", &NetFlowEmitter{Version: 7, To: lo}, v4, ErrInvalidEmitter},
		{"v5 with ipv6", &NetFlowEmitter{Version: 5, To: lo}, v6, ErrInvalidEmitter},
		{"v5 sampling", &NetFlowEmitter{Version: 5, To: lo, SamplingRate: 20000}, v4, ErrInvalidEmitter},
		{"sflow header", &SFlowEmitter{To: lo, HeaderBytes: 4}, v4, ErrInvalidEmitter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.e.Open(tt.s)
			defer tt.e.Close()
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestNetFlowEmitterReopen checks that an emitter can be opened again
// after Close and sends templates again.
func TestNetFlowEmitterReopen(t *testing.T) {
	m, _ := NewModel(testScenario(AttackSYN, false, 5000, 0, 300*time.Millisecond))
	c := newCollector(t, flow.ProtoNetFlow)
	e := &NetFlowEmitter{Version: 10, To: c.addr()}
	var total Counts
	for range 2 {
		total.Add(emitAll(t, m, e))
	}
	recs := c.wait(t, total.Datagrams)
	tr := sumRecords(t, m, recs, nil)
	if tr.attack != 2*1500 {
		t.Errorf("attack packets %d over two runs, want 3000", tr.attack)
	}
}

// TestNetFlowEmitterDelayed checks the Delayed export: each interval's
// records leave when the next interval's Emit runs, not before, the last
// interval's not at all.
func TestNetFlowEmitterDelayed(t *testing.T) {
	m, _ := NewModel(testScenario(AttackSYN, false, 5000, 0, 300*time.Millisecond))
	c := newCollector(t, flow.ProtoNetFlow)
	e := &NetFlowEmitter{Version: 9, To: c.addr(), Delayed: true}
	if err := e.Open(m.Scenario()); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var total Counts
	var iv Interval
	for k := range m.Intervals() {
		m.Fill(k, &iv)
		n, err := e.Emit(context.Background(), &iv)
		if err != nil {
			t.Fatal(err)
		}
		// Each Emit sends the previous interval's attack: 500 packets.
		if want := uint64(min(k, 1) * 500); n.AttackPackets != want {
			t.Errorf("interval %d sent %d attack packets, want %d", k, n.AttackPackets, want)
		}
		total.Add(n)
		if got := len(c.wait(t, total.Datagrams)); uint64(got) != total.Records {
			t.Errorf("after interval %d: %d records arrived, %d sent", k, got, total.Records)
		}
	}
	recs := c.wait(t, total.Datagrams)
	tr := sumRecords(t, m, recs, nil)
	if tr.attack != 1000 {
		t.Errorf("attack packets decoded %d, want 1000 (two of three intervals)", tr.attack)
	}
	for _, r := range recs {
		if d := time.Duration(r.End - r.Start); d < 99*time.Millisecond || d > 101*time.Millisecond {
			t.Fatalf("a record spans %v, want its interval's 100 ms", d)
		}
	}
}
