package gen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// drain receives and drops datagrams on 127.0.0.1 until the benchmark ends.
func drain(b *testing.B) netip.AddrPort { return drainAddr(b) }

// drainAddr receives and drops datagrams on 127.0.0.1 until the test ends,
// and returns the address to send to.
func drainAddr(b testing.TB) netip.AddrPort {
	b.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = conn.SetReadBuffer(8 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() {
		conn.Close()
		<-done
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// benchScenarios are the traffic of the emit benchmarks: a reflection
// (2,000 sources, few packets per flow) and a SYN flood (a new source per
// packet at this rate), 100,000 pps each, with 10,000 pps of background
// over 200 hosts.
func benchScenarios() []Scenario {
	ntp := testScenario(AttackNTP, false, 100_000, 0, 10*time.Second)
	ntp.BackgroundPPS = 10_000
	syn := testScenario(AttackSYN, false, 100_000, 0, 10*time.Second)
	syn.BackgroundPPS, syn.Sources = 10_000, 10_000
	return []Scenario{ntp, syn}
}

// benchEmit emits the intervals of s through e as fast as it can and
// reports the rates reached: datagrams, records and the packets they stand
// for, per second.
func benchEmit(b *testing.B, s Scenario, e Emitter) {
	m, err := NewModel(s)
	if err != nil {
		b.Fatal(err)
	}
	ivs := make([]Interval, 10)
	for k := range ivs {
		m.Fill(k, &ivs[k])
	}
	if err := e.Open(m.Scenario()); err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	b.ReportAllocs()
	var total Counts
	start := time.Now()
	k := 0
	for b.Loop() {
		c, err := e.Emit(context.Background(), &ivs[k%len(ivs)])
		if err != nil {
			b.Fatal(err)
		}
		total.Add(c)
		k++
	}
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(total.Datagrams)/secs, "datagrams/s")
	b.ReportMetric(float64(total.Records)/secs, "records/s")
	b.ReportMetric(float64(total.Packets)/secs, "pps")
}

// BenchmarkEmit measures the highest rate of each flow emitter: one op is
// one 100 ms interval of the scenario, sent unpaced to a socket that drops
// what it receives.
func BenchmarkEmit(b *testing.B) {
	for _, s := range benchScenarios() {
		for _, f := range []struct {
			name string
			make func(netip.AddrPort) Emitter
		}{
			{"sflow-1:1", func(to netip.AddrPort) Emitter { return &SFlowEmitter{To: to} }},
			{"sflow-1:100", func(to netip.AddrPort) Emitter { return &SFlowEmitter{To: to, SamplingRate: 100} }},
			{"netflow5", func(to netip.AddrPort) Emitter { return &NetFlowEmitter{Version: 5, To: to} }},
			{"netflow9", func(to netip.AddrPort) Emitter { return &NetFlowEmitter{Version: 9, To: to} }},
			{"ipfix", func(to netip.AddrPort) Emitter { return &NetFlowEmitter{Version: 10, To: to} }},
		} {
			b.Run(fmt.Sprintf("%s/%s", s.Attack, f.name), func(b *testing.B) {
				benchEmit(b, s, f.make(drain(b)))
			})
		}
	}
}

// BenchmarkFill measures the model alone: one op is one 100 ms interval of
// 100,000 pps of attack and 10,000 of background.
func BenchmarkFill(b *testing.B) {
	for _, s := range benchScenarios() {
		b.Run(string(s.Attack), func(b *testing.B) {
			m, _ := NewModel(s)
			var iv Interval
			b.ReportAllocs()
			k := 0
			for b.Loop() {
				m.Fill(k%m.Intervals(), &iv)
				k++
			}
		})
	}
}

// BenchmarkAppendFrame measures building one frame.
func BenchmarkAppendFrame(b *testing.B) {
	flows := sampleFlows(b, false)
	macs := DefaultMACs()
	buf := make([]byte, 0, maxFrameLen)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = appendFrame(buf[:0], &flows[i%len(flows)], &macs, uint32(i), -1)
		i++
	}
}
