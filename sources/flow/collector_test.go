package flow

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/sources"
)

// countingSink records what it is given, copying because batches are
// reused.
type countingSink struct {
	mu      sync.Mutex
	records []sources.Record
}

func (s *countingSink) Ingest(batch []sources.Record) {
	s.mu.Lock()
	s.records = append(s.records, batch...)
	s.mu.Unlock()
}

func (s *countingSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func send(t *testing.T, to netip.AddrPort, datagrams ...[]byte) {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range datagrams {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCollectorStartStopStart(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	sink := &countingSink{}
	c, err := New(Config{Listeners: []ListenerConfig{
		{Name: "nf", Protocol: ProtoNetFlow, Listen: "127.0.0.1:0", Workers: 2},
		{Name: "sf", Protocol: ProtoSFlow, Listen: "127.0.0.1:0"},
	}}, sink, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	v9 := &flowgen.NetFlowV9{SourceID: 1}
	flows := testFlows()
	sf := &flowgen.SFlowV5{Agent: exporter, SamplingRate: 1}
	for round := range 2 {
		if err := c.Start(context.Background()); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		addrs := c.Addrs()
		data, _ := v9.AppendData(nil, time.Now(), flows)
		sfd, _ := sf.AppendData(nil, time.Now(), flows)
		before := sink.len()
		send(t, addrs[0], v9.AppendTemplates(nil, time.Now()), data, []byte("garbage"))
		send(t, addrs[1], sfd)
		waitFor(t, "records", func() bool { return sink.len() == before+2*len(flows) })
		waitFor(t, "malformed count", func() bool { return c.Stats()[0].Malformed == uint64(round+1) })
		if err := c.Stop(); err != nil {
			t.Fatalf("round %d: Stop: %v", round, err)
		}
	}
	st := c.Stats()
	if st[0].Datagrams != 6 || st[0].Records != 6 || st[1].Datagrams != 2 || st[1].Records != 6 {
		t.Errorf("stats %+v", st)
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= goroutines })
}

func TestCollectorRejectsBadConfig(t *testing.T) {
	for _, lc := range []ListenerConfig{
		{Protocol: "netflow", Listen: "nonsense"},
		{Protocol: "jflow", Listen: "127.0.0.1:0"},
	} {
		if _, err := New(Config{Listeners: []ListenerConfig{lc}}, &countingSink{}, hclog.NewNullLogger()); err == nil {
			t.Errorf("New(%+v) succeeded", lc)
		}
	}
}

func TestCollectorStartFailsWhenPortTaken(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := New(Config{Listeners: []ListenerConfig{
		{Name: "ok", Protocol: ProtoNetFlow, Listen: "127.0.0.1:0"},
		{Name: "taken", Protocol: ProtoNetFlow, Listen: pc.LocalAddr().String()},
	}}, &countingSink{}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err == nil {
		c.Stop()
		t.Fatal("Start succeeded on a port in use")
	}
}
