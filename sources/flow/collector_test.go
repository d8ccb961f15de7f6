package flow

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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
		if err := c.Stop(context.Background()); err != nil {
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
		c.Stop(context.Background())
		t.Fatal("Start succeeded on a port in use")
	}
}

func TestCollectorIPv6AndPerExporterStats(t *testing.T) {
	sink := &countingSink{}
	c, err := New(Config{Listeners: []ListenerConfig{
		{Name: "nf6", Protocol: ProtoNetFlow, Listen: "[::1]:0"},
	}}, sink, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer c.Stop(context.Background())
	ipfix := &flowgen.IPFIX{ObservationDomain: 1}
	data, _ := ipfix.AppendData(nil, time.Now(), testFlows())
	send(t, c.Addrs()[0], ipfix.AppendTemplates(nil, time.Now()), data, []byte{0, 10, 0, 3})
	waitFor(t, "records", func() bool { return sink.len() == len(testFlows()) })
	waitFor(t, "malformed", func() bool { return c.Stats()[0].Malformed == 1 })
	st := c.Stats()[0]
	if len(st.Exporters) != 1 {
		t.Fatalf("exporters %+v, want one", st.Exporters)
	}
	e := st.Exporters[0]
	if e.Addr != netip.MustParseAddr("::1") || e.Datagrams != 3 || e.Records != uint64(len(testFlows())) || e.Malformed != 1 ||
		e.Bytes != st.Bytes || e.LastSeen.IsZero() {
		t.Errorf("exporter stats %+v (listener %+v)", e, st)
	}
	for _, r := range sink.snapshot() {
		if r.Exporter != netip.MustParseAddr("::1") {
			t.Errorf("record exporter %s, want ::1", r.Exporter)
		}
	}
}

func (s *countingSink) snapshot() []sources.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sources.Record(nil), s.records...)
}

func TestCollectorRefusesUnlistedExporters(t *testing.T) {
	sink := &countingSink{}
	c, err := New(Config{Listeners: []ListenerConfig{{
		Protocol: ProtoNetFlow, Listen: "127.0.0.1:0",
		AllowedExporters: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
	}}}, sink, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	v5 := &flowgen.NetFlowV5{}
	d5, _ := v5.AppendData(nil, time.Now(), testFlows()[:2])
	send(t, c.Addrs()[0], d5, d5)
	waitFor(t, "refusals", func() bool { return c.Stats()[0].Refused == 2 })
	if st := c.Stats()[0]; st.Records != 0 || len(st.Exporters) != 0 || sink.len() != 0 {
		t.Errorf("refused datagrams left traces: %+v", st)
	}
}

// blockingSink blocks in Ingest until released, like a stuck consumer.
type blockingSink struct {
	release chan struct{}
	n       atomic.Int64
}

func (s *blockingSink) Ingest(batch []sources.Record) {
	<-s.release
	s.n.Add(int64(len(batch)))
}

func TestCollectorDropsWhenSinkIsStuck(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	c, err := New(Config{Listeners: []ListenerConfig{{Protocol: ProtoNetFlow, Listen: "127.0.0.1:0", QueueSize: 4}}},
		sink, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	v5 := &flowgen.NetFlowV5{}
	d5, _ := v5.AppendData(nil, time.Now(), testFlows()[:2])
	var dgs [][]byte
	for range 50 {
		dgs = append(dgs, d5)
	}
	send(t, c.Addrs()[0], dgs...)
	// The reader keeps reading (it never waits for the worker): all 50
	// are counted, the queue holds 4, the worker holds in Ingest what it
	// had decoded when it found the queue empty, the rest drop.
	waitFor(t, "datagrams read", func() bool { return c.Stats()[0].Datagrams == 50 })
	st := c.Stats()[0]
	if st.QueueDrops == 0 || st.QueueDrops > 46 || st.Exporters[0].QueueDrops != st.QueueDrops {
		t.Errorf("queue drops %d (exporter %d), want 1 to 46", st.QueueDrops, st.Exporters[0].QueueDrops)
	}
	close(sink.release)
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, want := sink.n.Load(), int64(50-st.QueueDrops)*2; n != want {
		t.Errorf("%d records after release, want the %d of the queued datagrams", n, want)
	}
}

// lockedBuffer is an io.Writer safe for the logger's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestCollectorLogsMalformedAtBoundedRate(t *testing.T) {
	var out lockedBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Debug})
	c, err := New(Config{Listeners: []ListenerConfig{{Protocol: ProtoSFlow, Listen: "127.0.0.1:0"}}}, &countingSink{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	var dgs [][]byte
	for i := range 200 {
		dgs = append(dgs, []byte{0, 0, 0, byte(i)})
	}
	send(t, c.Addrs()[0], dgs...)
	waitFor(t, "malformed", func() bool { return c.Stats()[0].Malformed == 200 })
	if n := strings.Count(out.String(), "bad datagram"); n != 1 {
		t.Errorf("%d log lines for 200 bad datagrams within 10 s, want 1:\n%s", n, out.String())
	}
}

func TestListenerDefaultsValidate(t *testing.T) {
	for _, p := range []Protocol{ProtoNetFlow, ProtoSFlow} {
		lc := DefaultListenerConfig(p)
		lc.Name, lc.Listen = "x", "[::]:2055"
		if err := lc.Validate(); err != nil {
			t.Errorf("defaults of %s do not validate: %v", p, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	ok := ListenerConfig{Protocol: ProtoNetFlow, Listen: "127.0.0.1:2055"}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad protocol", Config{Listeners: []ListenerConfig{{Protocol: "jflow", Listen: "127.0.0.1:1"}}}, "unknown protocol"},
		{"hostname", Config{Listeners: []ListenerConfig{{Protocol: ProtoNetFlow, Listen: "localhost:2055"}}}, "listen address"},
		{"negative queue", Config{Listeners: []ListenerConfig{{Protocol: ProtoNetFlow, Listen: "127.0.0.1:1", QueueSize: -1}}}, "queue size"},
		{"zero override", Config{Listeners: []ListenerConfig{{Protocol: ProtoNetFlow, Listen: "127.0.0.1:1",
			Sampling: map[netip.Addr]uint32{exporter: 0}}}}, "sampling rate 0"},
		{"same address", Config{Listeners: []ListenerConfig{ok, ok}}, "already used"},
		{"same name", Config{Listeners: []ListenerConfig{{Name: "a", Protocol: ProtoNetFlow, Listen: "127.0.0.1:1"},
			{Name: "a", Protocol: ProtoSFlow, Listen: "127.0.0.1:2"}}}, "name used twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
