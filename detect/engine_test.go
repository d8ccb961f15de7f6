package detect

import (
	"context"
	"math"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
)

var (
	victim = netip.MustParseAddr("203.0.113.10")
	t0     = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
)

func testPolicy(tau time.Duration, pps uint64) *policies.Policy {
	return &policies.Policy{
		Detection: policies.Detection{Tick: time.Second},
		Hostgroups: []*policies.Hostgroup{{
			Name:     "customers",
			Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")},
			Incoming: policies.Threshold{PPS: pps},
			Outgoing: policies.Threshold{PPS: pps},
			EWMA:     tau,
			BanTime:  time.Minute,
		}},
	}
}

func newEngine(t testing.TB, pol *policies.Policy) *Engine {
	t.Helper()
	e, err := New(Config{}, pol, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// feed ingests pps packets/s of UDP from reflectors to dst for one tick.
func feed(e *Engine, dst netip.Addr, pps uint64, sport uint16) {
	e.Ingest([]sources.Record{{
		Src: netip.MustParseAddr("198.51.100.7"), Dst: dst, SrcPort: sport, DstPort: 40000,
		Proto: 17, Packets: pps, Bytes: pps * 468, Sampling: 1,
	}})
}

func drain(e *Engine) []Event {
	var out []Event
	for {
		select {
		case ev := <-e.events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// predictedTicks is the first tick n at which an EWMA with time constant
// tau, fed a constant rate of factor×threshold from zero, exceeds the
// threshold: factor·(1 − e^(−n·dt/tau)) > 1.
func predictedTicks(factor float64, tau, dt time.Duration) int {
	if factor <= 1 {
		return -1
	}
	n := -math.Log(1-1/factor) * tau.Seconds() / dt.Seconds()
	return int(math.Floor(n)) + 1
}

func TestDetectionTicksFollowEWMA(t *testing.T) {
	const threshold = 10000
	for _, tau := range []time.Duration{time.Second, 3 * time.Second} {
		for _, factor := range []float64{0.9, 2, 5, 10} {
			e := newEngine(t, testPolicy(tau, threshold))
			want := predictedTicks(factor, tau, time.Second)
			got := -1
			for n := 1; n <= 60; n++ {
				feed(e, victim, uint64(factor*threshold), 123)
				e.Tick(t0.Add(time.Duration(n) * time.Second))
				if evs := drain(e); len(evs) > 0 {
					if evs[0].Kind != AttackStarted {
						t.Fatalf("first event %v", evs[0].Kind)
					}
					got = n
					break
				}
			}
			if got != want {
				t.Errorf("tau %s, %.1f× threshold: started at tick %d, EWMA predicts %d", tau, factor, got, want)
			}
		}
	}
}

func TestAttackEndsAfterHold(t *testing.T) {
	e := newEngine(t, testPolicy(time.Second, 1000))
	now := t0
	step := func(pps uint64) []Event {
		if pps > 0 {
			feed(e, victim, pps, 123)
		}
		now = now.Add(time.Second)
		e.Tick(now)
		return drain(e)
	}
	for range 3 {
		step(5000)
	}
	if e.Stats().Attacks != 1 {
		t.Fatalf("attack not started: %+v", e.Stats())
	}
	var ended time.Time
	stopped := now
	for range 30 {
		if evs := step(0); len(evs) > 0 {
			if evs[0].Kind != AttackEnded {
				t.Fatalf("event %v", evs[0].Kind)
			}
			ended = now
			sig := evs[0].Signature
			if sig.Victim != netip.PrefixFrom(victim, 32) || sig.Hostgroup != "customers" || sig.PeakPPS < 4000 {
				t.Errorf("signature %+v", sig)
			}
			break
		}
	}
	if ended.IsZero() {
		t.Fatal("attack never ended")
	}
	// The smoothed rate decays by e^-1 per quiet tick (tau = tick) from
	// 5000·(1−e^-3); the attack ends once it has stayed under 80% of the
	// threshold for the hold time.
	level, quiet := 5000*(1-math.Exp(-3)), 0
	for level >= 800 {
		level *= math.Exp(-1)
		quiet++
	}
	want := time.Duration(quiet)*time.Second + DefaultEndHold
	if got := ended.Sub(stopped); got != want {
		t.Errorf("ended %s after the traffic stopped, want %s", got, want)
	}
}

func TestNoFlappingAroundThreshold(t *testing.T) {
	e := newEngine(t, testPolicy(time.Second, 1000))
	var events []Event
	now := t0
	// Alternating 1.3× and 0.85× never drops under the lower mark (0.8×)
	// for the hold time, so exactly one start and no end.
	for i := range 40 {
		pps := uint64(1300)
		if i%2 == 1 {
			pps = 850
		}
		feed(e, victim, pps, 123)
		now = now.Add(time.Second)
		e.Tick(now)
		events = append(events, drain(e)...)
	}
	if len(events) != 1 || events[0].Kind != AttackStarted {
		t.Errorf("events %v, want one AttackStarted", kinds(events))
	}
}

func kinds(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind.String())
	}
	return out
}

func TestSignatureShowsReflection(t *testing.T) {
	e := newEngine(t, testPolicy(time.Second, 1000))
	// 90% NTP reflection, 10% of the victim's own TCP.
	e.Ingest([]sources.Record{
		{Src: netip.MustParseAddr("198.51.100.7"), Dst: victim, SrcPort: 123, Proto: 17, Packets: 9000, Bytes: 9000 * 468},
		{Src: netip.MustParseAddr("192.0.2.7"), Dst: victim, DstPort: 443, Proto: 6, TCPFlags: 0x10, Packets: 1000, Bytes: 1000 * 60},
	})
	e.Tick(t0.Add(time.Second))
	evs := drain(e)
	if len(evs) != 1 {
		t.Fatalf("events %v", kinds(evs))
	}
	s := evs[0].Signature
	if s.UDP != 0.9 || s.TCP != 0.1 || s.TCPSYN != 0 || s.Direction != Incoming {
		t.Errorf("signature shares %+v", s)
	}
}

func TestOutsideMonitoredIgnored(t *testing.T) {
	e := newEngine(t, testPolicy(time.Second, 1))
	feed(e, netip.MustParseAddr("192.0.2.1"), 1e6, 123)
	e.Tick(t0.Add(time.Second))
	if st := e.Stats(); st.Hosts != 0 || st.Monitored != 0 || st.Records != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestBothDirections(t *testing.T) {
	e := newEngine(t, testPolicy(time.Second, 1000))
	other := netip.MustParseAddr("2001:db8::1")
	e.Ingest([]sources.Record{{Src: other, Dst: netip.MustParseAddr("2001:db8::2"), Proto: 17, Packets: 5000, Bytes: 5000 * 100}})
	e.Tick(t0.Add(time.Second))
	evs := drain(e)
	if len(evs) != 2 {
		t.Fatalf("events %v, want an incoming and an outgoing attack", kinds(evs))
	}
	dirs := map[Direction]netip.Prefix{}
	for _, ev := range evs {
		dirs[ev.Signature.Direction] = ev.Signature.Victim
	}
	if dirs[Outgoing] != netip.MustParsePrefix("2001:db8::1/128") || dirs[Incoming] != netip.MustParsePrefix("2001:db8::2/128") {
		t.Errorf("directions %v", dirs)
	}
}

func TestIdleHostsEvictedAndCapped(t *testing.T) {
	e, err := New(Config{MaxHosts: 100, IdleTicks: 2}, testPolicy(time.Second, 1e9), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]sources.Record, 0, 256)
	for i := range 256 {
		batch = append(batch, sources.Record{Src: netip.MustParseAddr("198.51.100.1"),
			Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), Proto: 17, Packets: 1, Bytes: 100})
	}
	e.Ingest(batch)
	if st := e.Stats(); st.Hosts != 100 || st.Refused != 156 {
		t.Fatalf("after ingest: %+v", st)
	}
	for n := 1; n <= 4; n++ {
		e.Tick(t0.Add(time.Duration(n) * time.Second))
	}
	if st := e.Stats(); st.Hosts != 0 || st.Evicted != 100 {
		t.Errorf("after idle ticks: %+v", st)
	}
}

func TestIngestDoesNotAllocateForKnownHosts(t *testing.T) {
	e := newEngine(t, testPolicy(time.Second, 1e9))
	batch := make([]sources.Record, 0, 64)
	for i := range 64 {
		batch = append(batch, sources.Record{Src: netip.MustParseAddr("198.51.100.1"),
			Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), Proto: 6, TCPFlags: 2, Packets: 1, Bytes: 60})
	}
	e.Ingest(batch)
	if n := testing.AllocsPerRun(100, func() { e.Ingest(batch) }); n != 0 {
		t.Errorf("Ingest allocates %.1f times per batch, want 0", n)
	}
}

// TestTickLoop runs the real tick loop under synctest's fake clock.
func TestTickLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEngine(t, testPolicy(time.Second, 1000))
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		feed(e, victim, 5000, 123)
		ev := <-e.Events()
		if ev.Kind != AttackStarted || time.Since(start) != time.Second {
			t.Errorf("event %v after %s, want AttackStarted after 1s", ev.Kind, time.Since(start))
		}
		if err := e.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			t.Fatalf("restart: %v", err)
		}
		if err := e.Stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkIngest(b *testing.B) {
	e, err := New(Config{}, testPolicy(time.Second, 1e12), hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]sources.Record, 1024)
	for i := range batch {
		batch[i] = sources.Record{Src: netip.MustParseAddr("198.51.100.1"),
			Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), Proto: 17, Packets: 1, Bytes: 100}
	}
	e.Ingest(batch)
	b.ReportAllocs()
	for b.Loop() {
		e.Ingest(batch)
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "records/s")
}
