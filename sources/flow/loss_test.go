package flow

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/sources"
)

// EnvPerf opts in to the load tests (TestCollectorLoss), which take half a
// minute of two cores.
const EnvPerf = "FLOODGATE_SOURCES_PERF"

// atomicCounter counts records without keeping them.
type atomicCounter struct{ n atomic.Uint64 }

func (c *atomicCounter) Ingest(b []sources.Record) { c.n.Add(uint64(len(b))) }

// TestCollectorLoss sends NetFlow v9 at 300,000 records/s for 30 s over
// loopback into a collector with default settings and counts what arrives:
// less than 0.1 % may be lost. Opt in with FLOODGATE_SOURCES_PERF=1;
// FLOODGATE_LOSS_RATE and FLOODGATE_LOSS_SECONDS change the load.
func TestCollectorLoss(t *testing.T) {
	if os.Getenv(EnvPerf) != "1" {
		t.Skip("set " + EnvPerf + "=1 to run the loss test")
	}
	rate, seconds := 300_000.0, 30.0
	if v, err := strconv.ParseFloat(os.Getenv("FLOODGATE_LOSS_RATE"), 64); err == nil && v > 0 {
		rate = v
	}
	if v, err := strconv.ParseFloat(os.Getenv("FLOODGATE_LOSS_SECONDS"), 64); err == nil && v > 0 {
		seconds = v
	}
	sink := &atomicCounter{}
	lc := DefaultListenerConfig(ProtoNetFlow)
	lc.Listen = "127.0.0.1:0"
	c, err := New(Config{Listeners: []ListenerConfig{lc}}, sink, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.Addrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// A ring of distinct data datagrams, encoded beforehand so that the
	// sender's cost is a write per datagram.
	enc := &flowgen.NetFlowV9{SourceID: 1, Boot: time.Now().Add(-time.Hour)}
	per := enc.MaxRecordsPerDatagram(flowgen.DatagramSize)
	now := time.Now()
	var ring [][]byte
	for i := range 512 {
		flows := make([]flowgen.Flow, per)
		for j := range flows {
			k := i*per + j
			flows[j] = flowgen.Flow{Src: netip.AddrFrom4([4]byte{198, 51, byte(k >> 8), byte(k)}), Dst: netip.MustParseAddr("203.0.113.10"),
				SrcPort: 123, DstPort: uint16(1024 + k), Proto: 17, Packets: 1, Bytes: 468, Start: now, End: now}
		}
		b, err := enc.AppendData(nil, now, flows)
		if err != nil {
			t.Fatal(err)
		}
		ring = append(ring, b)
	}
	templates := enc.AppendTemplates(nil, now)

	var sent uint64
	start := time.Now()
	end := start.Add(time.Duration(seconds * float64(time.Second)))
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	nextTemplates := start
	for i := 0; ; {
		now := <-tick.C
		if now.After(end) {
			break
		}
		if !now.Before(nextTemplates) { // as exporters do, every second
			if _, err := conn.Write(templates); err != nil {
				t.Fatal(err)
			}
			nextTemplates = nextTemplates.Add(time.Second)
		}
		owed := uint64(now.Sub(start).Seconds() * rate)
		for sent+uint64(per) <= owed {
			if _, err := conn.Write(ring[i%len(ring)]); err != nil {
				t.Fatal(err)
			}
			sent += uint64(per)
			i++
		}
	}
	took := time.Since(start)
	// Let the collector drain.
	for last := uint64(0); ; {
		time.Sleep(200 * time.Millisecond)
		n := sink.n.Load()
		if n == sent || n == last {
			break
		}
		last = n
	}
	got := sink.n.Load()
	st := c.Stats()[0]
	loss := float64(sent-got) / float64(sent)
	t.Logf("sent %d records (%d per datagram) in %v: %.0f records/s; received %d; lost %d (%.4f %%); queue drops %d datagrams, malformed %d, unknown template %d",
		sent, per, took.Round(time.Millisecond), float64(sent)/took.Seconds(), got, sent-got, 100*loss, st.QueueDrops, st.Malformed, st.UnknownTemplate)
	if loss >= 0.001 {
		t.Errorf("lost %.4f %% of the records, want under 0.1 %%", 100*loss)
	}
}
