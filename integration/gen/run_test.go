package gen

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/sources/flow"
)

// stampedWriter records what is written and when.
type stampedWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	times []time.Time
}

func (w *stampedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.times = append(w.times, time.Now())
	return w.buf.Write(p)
}

// TestRun plays an NTP reflection with background in real time through an
// sFlow and a NetFlow v9 emitter at once, and checks the start line (time
// and moment it was written), the pacing (nothing late, nothing of the
// attack before its start) and the victim's rate seen by the collectors.
func TestRun(t *testing.T) {
	s := testScenario(AttackNTP, false, 20_000, 700*time.Millisecond, 1500*time.Millisecond)
	m, _ := NewModel(s)
	sfc := newCollector(t, flow.ProtoSFlow)
	nfc := newCollector(t, flow.ProtoNetFlow)
	var out stampedWriter
	res, err := Run(context.Background(), s, &out,
		&SFlowEmitter{To: sfc.addr(), SamplingRate: 10},
		&NetFlowEmitter{Version: 9, To: nfc.addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result: %+v", res)

	lines := strings.Split(strings.TrimSpace(out.buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("output %q, want one line", out.buf.String())
	}
	a, at, err := ParseStartLine(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	if a != AttackNTP || !at.Equal(res.AttackStart.Truncate(time.Microsecond)) {
		t.Errorf("start line %q, result says %v", lines[0], res.AttackStart)
	}
	if d := at.Sub(res.Started); d < s.Start || d > s.Start+DefaultInterval {
		t.Errorf("attack started %v after the start, want within an interval of %v", d, s.Start)
	}
	if d := out.times[0].Sub(res.AttackStart); d < 0 || d > 50*time.Millisecond {
		t.Errorf("start line written %v after the first attack datagram", d)
	}
	if res.Intervals != 15 || res.Elapsed < s.Duration-DefaultInterval || res.Elapsed > s.Duration+200*time.Millisecond {
		t.Errorf("%d intervals in %v", res.Intervals, res.Elapsed)
	}
	// A loaded machine (the cores are shared) may stall an emitter past an
	// interval's grace; what was sent must still add up.
	if res.Total.Late > 0 {
		t.Logf("%d datagrams late", res.Total.Late)
	}
	if res.AttackPackets != 16_000 || res.BackgroundPackets != 3000 {
		t.Errorf("model packets: attack %d background %d, want 16000 and 3000", res.AttackPackets, res.BackgroundPackets)
	}

	// NetFlow, unsampled: exact; records are stamped when received.
	nf := res.Emitters[1]
	nrecs := nfc.wait(t, nf.Datagrams)
	tr := sumRecords(t, m, nrecs, nil)
	if tr.attack != nf.AttackPackets || tr.attack+tr.background != nf.Packets {
		t.Errorf("netflow: attack %d background %d, sent %d of %d", tr.attack, tr.background, nf.AttackPackets, nf.Packets)
	}
	if !within(tr.attack, 16_000, 0.02) || !within(tr.background, 3000, 0.02) {
		t.Errorf("netflow: attack %d background %d, want 16000 and 3000 (2%% late at most)", tr.attack, tr.background)
	}
	var first time.Time
	for _, r := range nrecs {
		if r.Dst == s.Victim && (first.IsZero() || r.End < first.UnixNano()) {
			first = time.Unix(0, r.End)
		}
	}
	if d := first.Sub(res.AttackStart); d < -5*time.Millisecond || d > 150*time.Millisecond {
		t.Errorf("first attack record received %v after the start line's time", d)
	}
	// sFlow, 1 in 10: within sampling error.
	tr = sumRecords(t, m, sfc.wait(t, res.Emitters[0].Datagrams), nil)
	if !within(tr.attack, 16_000, 0.05) || !within(tr.background, 3000, 0.15) {
		t.Errorf("sflow: attack %d background %d, want 16000 ± 5%% and 3000 ± 15%%", tr.attack, tr.background)
	}
}

// TestRunPacing checks that a paced interval spreads its datagrams: the
// last datagram of a run is sent near the end of the last interval, not at
// its start.
func TestRunPacing(t *testing.T) {
	s := testScenario(AttackSYN, true, 20_000, 0, 300*time.Millisecond)
	c := newCollector(t, flow.ProtoSFlow)
	res, err := Run(context.Background(), s, nil, &SFlowEmitter{To: c.addr()})
	if err != nil {
		t.Fatal(err)
	}
	recs := c.wait(t, res.Total.Datagrams)
	last := time.Unix(0, recs[len(recs)-1].End)
	// The last datagram goes out at the end of the last interval (not at
	// its start, 100 ms before); its receive stamp trails the end by the
	// scheduling delays of a loaded machine (10.3 ms seen on 2 cores with
	// one kept busy and a -race build beside), which the lower bound
	// leaves room for.
	if d := res.Started.Add(s.Duration).Sub(last); d < -100*time.Millisecond || d > 20*time.Millisecond {
		t.Errorf("last sample received %v before the end, want within -100ms..20ms", d)
	}
	if !within(res.Total.AttackPackets, 6000, 0.02) {
		t.Errorf("counts %+v, want 6000 attack packets (2%% late at most)", res.Total)
	}
}

// TestRunCancel checks that Run stops soon after its context is done.
func TestRunCancel(t *testing.T) {
	s := testScenario(AttackACK, false, 10_000, time.Second, 10*time.Second)
	c := newCollector(t, flow.ProtoNetFlow)
	ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, s, &out, &NetFlowEmitter{Version: 5, To: c.addr()})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v, want deadline exceeded", err)
	}
	if res.Elapsed > 500*time.Millisecond || res.Intervals < 3 || res.Intervals > 4 {
		t.Errorf("stopped after %v and %d intervals", res.Elapsed, res.Intervals)
	}
	if out.Len() != 0 || !res.AttackStart.IsZero() {
		t.Errorf("attack reported before its start: %q", out.String())
	}
}

// TestRunRefuses checks that Run refuses a non-loopback destination and
// bad scenarios before sending anything, and closes what it opened.
func TestRunRefuses(t *testing.T) {
	s := testScenario(AttackNTP, false, 1000, 0, time.Second)
	good := &NetFlowEmitter{Version: 9, To: netip.MustParseAddrPort("127.0.0.1:9")}
	var out bytes.Buffer
	_, err := Run(context.Background(), s, &out, good, &SFlowEmitter{To: netip.MustParseAddrPort("192.0.2.7:6343")})
	if !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Run: %v, want ErrNotLoopback", err)
	}
	if !strings.Contains(err.Error(), "192.0.2.7:6343") || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("error %q does not say what and why", err)
	}
	if good.conn != nil {
		t.Error("the emitter opened first was left open")
	}
	if out.Len() != 0 {
		t.Errorf("output %q", out.String())
	}
	if _, err := Run(context.Background(), Scenario{}, nil, good); !errors.Is(err, ErrInvalidScenario) {
		t.Errorf("Run of an empty scenario: %v", err)
	}
	if _, err := Run(context.Background(), s, nil); !errors.Is(err, ErrInvalidEmitter) {
		t.Errorf("Run without emitters: %v", err)
	}
}

// TestRunBackgroundOnly checks that a run without attack prints nothing.
func TestRunBackgroundOnly(t *testing.T) {
	s := testScenario(AttackNone, false, 0, 0, 200*time.Millisecond)
	c := newCollector(t, flow.ProtoNetFlow)
	var out bytes.Buffer
	res, err := Run(context.Background(), s, &out, &NetFlowEmitter{Version: 10, To: c.addr()})
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || !res.AttackStart.IsZero() || res.Total.AttackPackets != 0 || res.Total.Packets != 400 {
		t.Errorf("output %q, result %+v", out.String(), res)
	}
}

// TestStartLine checks the start line's format and parser.
func TestStartLine(t *testing.T) {
	at := time.Date(2026, 11, 24, 18, 0, 3, 123456789, time.FixedZone("CET", 3600))
	line := FormatStartLine(AttackUDPRandom, at)
	if want := "attack udp-random starts at 2026-11-24T17:00:03.123456Z"; line != want {
		t.Errorf("line %q, want %q", line, want)
	}
	a, got, err := ParseStartLine(line + "\n")
	if err != nil || a != AttackUDPRandom || !got.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("parse: %q %v %v", a, got, err)
	}
	for _, bad := range []string{"", "attack ntp", "attack smurf starts at 2026-11-24T17:00:03.123456Z", "attack ntp starts at noon"} {
		if _, _, err := ParseStartLine(bad); err == nil {
			t.Errorf("ParseStartLine(%q) accepted", bad)
		}
	}
}
