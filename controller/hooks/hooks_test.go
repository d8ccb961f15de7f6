package hooks

import (
	"context"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDefaults(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	path, _ := script(t, "exit 0")
	n, err := Config{
		Exec:     []ExecConfig{{Path: path}},
		Webhooks: []WebhookConfig{{URL: "https://example.net/hook"}, {Name: "quiet", URL: "http://192.0.2.1:8080/", Retries: -1}},
	}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if n.QueueSize != DefaultQueueSize || n.StopGrace != DefaultStopGrace {
		t.Errorf("queue size %d, stop grace %s", n.QueueSize, n.StopGrace)
	}
	if diff := cmp.Diff(n.exec, []ExecConfig{{Name: "exec-0", Path: path, Timeout: 10 * time.Second}}); diff != "" {
		t.Errorf("exec (-got +want):\n%s", diff)
	}
	want := []WebhookConfig{
		{Name: "webhook-0", URL: "https://example.net/hook", Timeout: 5 * time.Second, Retries: 3, RetryBackoff: time.Second},
		{Name: "quiet", URL: "http://192.0.2.1:8080/", Timeout: 5 * time.Second, Retries: 0, RetryBackoff: time.Second},
	}
	if diff := cmp.Diff(n.webhooks, want); diff != "" {
		t.Errorf("webhooks (-got +want):\n%s", diff)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	path, dir := script(t, "exit 0")
	notExec := filepath.Join(dir, "data")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"relative path", Config{Exec: []ExecConfig{{Path: "hook.sh"}}}, `exec hook "exec-0": path "hook.sh" is not absolute`},
		{"missing executable", Config{Exec: []ExecConfig{{Path: filepath.Join(dir, "nope")}}}, "no such file or directory"},
		{"directory", Config{Exec: []ExecConfig{{Path: dir}}}, "is not a regular file"},
		{"not executable", Config{Exec: []ExecConfig{{Path: notExec}}}, "is not executable"},
		{"negative timeout", Config{Exec: []ExecConfig{{Path: path, Timeout: -time.Second}}}, "timeout -1s is negative"},
		{"unknown event", Config{Exec: []ExecConfig{{Path: path, Events: []Kind{"attack_ended"}}}}, `event "attack_ended" is not one of`},
		{"same name twice", Config{Exec: []ExecConfig{{Name: "a", Path: path}}, Webhooks: []WebhookConfig{{Name: "a", URL: "http://127.0.0.1/"}}}, `webhook "a": name already used by an exec hook`},
		{"ftp URL", Config{Webhooks: []WebhookConfig{{URL: "ftp://example.net/"}}}, "scheme is not http or https"},
		{"URL without host", Config{Webhooks: []WebhookConfig{{URL: "http:///hook"}}}, "has no host"},
		{"unparsable URL", Config{Webhooks: []WebhookConfig{{URL: "http://[::1"}}}, "url: parse"},
		{"header name", Config{Webhooks: []WebhookConfig{{URL: "http://127.0.0.1/", Headers: map[string]string{"a b": "c"}}}}, "header name"},
		{"header value", Config{Webhooks: []WebhookConfig{{URL: "http://127.0.0.1/", Headers: map[string]string{"X": "a\r\nEvil: 1"}}}}, "line break"},
		{"host header", Config{Webhooks: []WebhookConfig{{URL: "http://127.0.0.1/", Headers: map[string]string{"host": "x"}}}}, "cannot be set"},
		{"too many retries", Config{Webhooks: []WebhookConfig{{URL: "http://127.0.0.1/", Retries: 11}}}, "retries 11 is more than 10"},
		{"negative queue", Config{QueueSize: -1}, "queue size -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestNotifyNeverBlocks fills the queue of a hook stuck in a run: Notify
// must return at once, count what does not fit as dropped, and Stop must
// cancel the stuck run after its grace.
func TestNotifyNeverBlocks(t *testing.T) {
	const (
		queue = 4
		burst = 100
		grace = 100 * time.Millisecond
	)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (Config, func() bool) // the config, and whether the first run has started
	}{
		{"exec", func(t *testing.T) (Config, func() bool) {
			path, dir := script(t, `echo $$ > "$OUT/pid"; exec sleep 30`)
			started := func() bool { _, err := os.Stat(filepath.Join(dir, "pid")); return err == nil }
			return Config{Exec: []ExecConfig{{Path: path, Timeout: time.Minute}}}, started
		}},
		{"webhook", func(t *testing.T) (Config, func() bool) {
			srv := newServer(t, 0)
			started := func() bool { return len(srv.requests()) > 0 }
			return Config{Webhooks: []WebhookConfig{{URL: srv.URL, Timeout: time.Minute}}}, started
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, started := tc.setup(t)
			cfg.QueueSize, cfg.StopGrace = queue, grace
			d := start(t, cfg, nil)
			ev := Event{Kind: AttackStarted, IP: "192.0.2.1", Direction: "incoming", PPS: 1e6, Details: map[string]int{"x": 1}}
			d.Notify(ev)
			waitFor(t, "the first run to start", started)

			done := make(chan time.Duration)
			go func() {
				var slowest time.Duration
				for range burst {
					begin := time.Now()
					d.Notify(ev)
					slowest = max(slowest, time.Since(begin))
				}
				done <- slowest
			}()
			select {
			case slowest := <-done:
				t.Logf("slowest of %d Notify calls: %s", burst, slowest)
			case <-time.After(5 * time.Second):
				t.Fatal("Notify blocked on a stuck hook")
			}
			want := HookStats{Name: d.hooks[0].name, Type: tc.name, Dropped: burst - queue, Queued: queue}
			if diff := cmp.Diff(d.Stats()[0], want); diff != "" {
				t.Errorf("stats while stuck (-got +want):\n%s", diff)
			}

			begin := time.Now()
			if err := d.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(begin); took > grace+2*time.Second {
				t.Errorf("Stop took %s with a %s grace", took, grace)
			}
			want.Failed, want.Dropped, want.Queued = 1, burst, 0
			if diff := cmp.Diff(d.Stats()[0], want); diff != "" {
				t.Errorf("stats after Stop (-got +want):\n%s", diff)
			}
		})
	}
}

// TestStopDeliversQueued checks that Stop lets queued events be delivered
// within its grace.
func TestStopDeliversQueued(t *testing.T) {
	srv := newServer(t, 200)
	d, err := New(Config{Webhooks: []WebhookConfig{{URL: srv.URL}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		d.Notify(Event{Kind: AttackStarted})
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := d.Stats()[0]; s.Sent != 20 {
		t.Errorf("stats %+v, want 20 sent", s)
	}
}

func TestEventFiltering(t *testing.T) {
	path, dir := script(t, `echo "$4" >> "$OUT/actions"`)
	srv := newServer(t, 200)
	d := start(t, Config{
		Exec: []ExecConfig{{Name: "unban-only", Path: path, Events: []Kind{MitigationWithdrawn}}},
		Webhooks: []WebhookConfig{
			{Name: "attacks-and-bans", URL: srv.URL + "/some", Events: []Kind{AttackStarted, MitigationAnnounced}},
			{Name: "all", URL: srv.URL + "/all"},
		},
	}, nil)
	for _, k := range []Kind{AttackStarted, MitigationAnnounced, MitigationWithdrawn, "not_a_kind"} {
		d.Notify(Event{Kind: k})
	}
	waitDone(t, d, 0, 1)
	waitDone(t, d, 1, 2)
	waitDone(t, d, 2, 3)
	if diff := cmp.Diff(d.Stats(), []HookStats{
		{Name: "unban-only", Type: "exec", Sent: 1},
		{Name: "attacks-and-bans", Type: "webhook", Sent: 2},
		{Name: "all", Type: "webhook", Sent: 3},
	}); diff != "" {
		t.Errorf("stats (-got +want):\n%s", diff)
	}
	actions, err := os.ReadFile(filepath.Join(dir, "actions"))
	if err != nil {
		t.Fatal(err)
	}
	if string(actions) != "unban\n" {
		t.Errorf("exec hook ran for %q, want only unban", actions)
	}
	got := map[string][]Kind{}
	for _, r := range srv.requests() {
		var p struct{ Kind Kind }
		if err := json.Unmarshal([]byte(r.Body), &p); err != nil {
			t.Fatal(err)
		}
		got[r.Path] = append(got[r.Path], p.Kind)
	}
	want := map[string][]Kind{"/some": {AttackStarted, MitigationAnnounced}, "/all": {AttackStarted, MitigationAnnounced, MitigationWithdrawn}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("webhook events (-got +want):\n%s", diff)
	}
}

// TestStartStopStart runs two rounds of start, deliver, stop, and checks
// that no goroutine is left.
func TestStartStopStart(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	path, _ := script(t, "cat > /dev/null")
	srv := newServer(t, 200)
	d, err := New(Config{
		Exec:     []ExecConfig{{Path: path}},
		Webhooks: []WebhookConfig{{URL: srv.URL}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	d.Notify(Event{Kind: AttackStarted}) // not running: dropped
	for round := range 2 {
		if err := d.Start(context.Background()); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		if err := d.Start(context.Background()); err == nil {
			t.Fatalf("round %d: second Start succeeded", round)
		}
		d.Notify(Event{Kind: MitigationAnnounced})
		waitDone(t, d, 0, uint64(round+1))
		waitDone(t, d, 1, uint64(round+1))
		if err := d.Stop(context.Background()); err != nil {
			t.Fatalf("round %d: Stop: %v", round, err)
		}
		if err := d.Stop(context.Background()); err != nil {
			t.Fatalf("round %d: second Stop: %v", round, err)
		}
	}
	d.Notify(Event{Kind: MitigationWithdrawn}) // stopped: dropped
	for _, s := range d.Stats() {
		if s.Sent != 2 || s.Dropped != 2 || s.Failed != 0 {
			t.Errorf("stats %+v, want 2 sent and 2 dropped", s)
		}
	}

	// Cancelling Start's context drops events until Stop.
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	d.Notify(Event{Kind: AttackStarted})
	waitFor(t, "the event to be dropped", func() bool { return d.Stats()[0].Dropped == 3 })
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	srv.Close()
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= goroutines })
}

func TestCollector(t *testing.T) {
	ok, _ := script(t, "exit 0")
	fail, _ := script(t, "exit 1")
	srv := newServer(t, 503, 200)
	d, err := New(Config{
		Exec: []ExecConfig{{Name: "ok", Path: ok}, {Name: "fail", Path: fail, Events: []Kind{AttackStarted}}},
		Webhooks: []WebhookConfig{
			{Name: "web", URL: srv.URL, RetryBackoff: 10 * time.Millisecond, Events: []Kind{MitigationAnnounced, MitigationWithdrawn}},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Notify(Event{Kind: MitigationWithdrawn, IP: "192.0.2.1"}) // dropped by ok and web: not started
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	for _, k := range []Kind{AttackStarted, MitigationAnnounced, MitigationWithdrawn} {
		d.Notify(Event{Kind: k, IP: "192.0.2.1"})
	}
	waitDone(t, d, 0, 3)
	waitDone(t, d, 1, 1)
	waitDone(t, d, 2, 2)

	const want = `
# HELP floodgate_hooks_events_total Events handed to a hook, by result: ok (delivered), failed (after any retries) or dropped (queue full, not running, or stopped first).
# TYPE floodgate_hooks_events_total counter
floodgate_hooks_events_total{hook="fail",result="dropped",type="exec"} 0
floodgate_hooks_events_total{hook="fail",result="failed",type="exec"} 1
floodgate_hooks_events_total{hook="fail",result="ok",type="exec"} 0
floodgate_hooks_events_total{hook="ok",result="dropped",type="exec"} 1
floodgate_hooks_events_total{hook="ok",result="failed",type="exec"} 0
floodgate_hooks_events_total{hook="ok",result="ok",type="exec"} 3
floodgate_hooks_events_total{hook="web",result="dropped",type="webhook"} 1
floodgate_hooks_events_total{hook="web",result="failed",type="webhook"} 0
floodgate_hooks_events_total{hook="web",result="ok",type="webhook"} 2
# HELP floodgate_hooks_queued_events Events waiting in a hook's queue.
# TYPE floodgate_hooks_queued_events gauge
floodgate_hooks_queued_events{hook="fail",type="exec"} 0
floodgate_hooks_queued_events{hook="ok",type="exec"} 0
floodgate_hooks_queued_events{hook="web",type="webhook"} 0
# HELP floodgate_hooks_retries_total Webhook attempts after the first.
# TYPE floodgate_hooks_retries_total counter
floodgate_hooks_retries_total{hook="fail",type="exec"} 0
floodgate_hooks_retries_total{hook="ok",type="exec"} 0
floodgate_hooks_retries_total{hook="web",type="webhook"} 1
`
	if err := testutil.CollectAndCompare(d.Collector(), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(d.Collector())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(d.Collector()); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("pedantic gather: %v", err)
	}
}

// TestNoEventLabels checks that nothing from an event becomes a label.
func TestNoEventLabels(t *testing.T) {
	srv := newServer(t, 200)
	d := start(t, Config{Webhooks: []WebhookConfig{{Name: "web", URL: srv.URL}}}, nil)
	d.Notify(Event{Kind: AttackStarted, IP: "198.51.100.99", Hostgroup: "acme", Direction: "incoming"})
	waitDone(t, d, 0, 1)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(d.Collector()); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"web": true, "webhook": true, "ok": true, "failed": true, "dropped": true}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !allowed[l.GetValue()] {
					t.Errorf("%s has label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestConcurrentNotifyAndRestart notifies from several goroutines while
// the dispatcher is stopped and started: every event must be counted once,
// as sent or dropped.
func TestConcurrentNotifyAndRestart(t *testing.T) {
	const (
		senders = 4
		each    = 200
	)
	srv := newServer(t, 200)
	d, err := New(Config{Webhooks: []WebhookConfig{{URL: srv.URL}}, QueueSize: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for range each {
				d.Notify(Event{Kind: AttackStarted})
			}
		})
	}
	for range 5 {
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		runtime.Gosched()
		if err := d.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	s := d.Stats()[0]
	if s.Sent+s.Failed+s.Dropped != senders*each || s.Failed != 0 || s.Queued != 0 {
		t.Errorf("stats %+v, want %d events counted once", s, senders*each)
	}
	if got := uint64(len(srv.requests())); got != s.Sent {
		t.Errorf("server received %d events, %d counted as sent", got, s.Sent)
	}
}

// TestImports checks that the package imports no other floodgate package,
// so that the controller can import it.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if strings.HasPrefix(strings.Trim(imp.Path.Value, `"`), "github.com/floodgate-ddos/") {
				t.Errorf("%s imports %s", f, imp.Path.Value)
			}
		}
	}
}

func BenchmarkNotify(b *testing.B) {
	// A stopped dispatcher: every Notify marshals and drops, the worst
	// case during an attack storm.
	d, err := New(Config{Webhooks: []WebhookConfig{{URL: "http://127.0.0.1:9/"}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ev := Event{Kind: AttackStarted, Time: eventTime, IP: "198.51.100.7", Direction: "incoming", PPS: 123456,
		Hostgroup: "acme", Details: map[string]any{"protocol": "udp", "top_src_port": 53}}
	b.ReportAllocs()
	for b.Loop() {
		d.Notify(ev)
	}
}
