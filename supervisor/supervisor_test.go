package supervisor

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// part is a component that records its starts and stops in a shared
// journal, can be told to fail to start, and fails at run time when its
// kill function is called.
type part struct {
	name    string
	journal *journal
	// startErrs are returned by the next Starts, one each.
	startErrs []error
	// stopWait makes Stop wait for ctx.
	stopWait bool

	mu     sync.Mutex
	failed chan error
}

type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	j.lines = append(j.lines, s)
	j.mu.Unlock()
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

func (p *part) Start(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.startErrs) > 0 {
		err := p.startErrs[0]
		p.startErrs = p.startErrs[1:]
		if err != nil {
			p.journal.add("start-failed " + p.name)
			return err
		}
	}
	p.failed = make(chan error, 1)
	p.journal.add("start " + p.name)
	return nil
}

func (p *part) Stop(ctx context.Context) error {
	if p.stopWait {
		<-ctx.Done()
		p.journal.add("stop " + p.name + " (deadline)")
		return ctx.Err()
	}
	p.journal.add("stop " + p.name)
	return nil
}

func (p *part) Failed() <-chan error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

func (p *part) kill(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed <- err
}

func newTest(t *testing.T) (*Supervisor, *syncBuffer) {
	buf := &syncBuffer{}
	reg := prometheus.NewRegistry()
	log := hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Debug})
	return New(Config{MinBackoff: time.Second, MaxBackoff: 8 * time.Second, StableAfter: time.Minute}, log, reg), buf
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func TestStartStopOrder(t *testing.T) {
	j := &journal{}
	s, logs := newTest(t)
	for _, n := range []string{"hooks", "speaker", "detection", "source"} {
		s.Add(Spec{Name: n, Component: &part{name: n, journal: j}})
	}
	ctx := context.Background()
	for round := range 2 { // start, stop, start, stop
		if err := s.Start(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, st := range s.Status() {
			if st.State != StateRunning {
				t.Errorf("round %d: %s is %s", round, st.Name, st.State)
			}
		}
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	once := []string{"start hooks", "start speaker", "start detection", "start source",
		"stop source", "stop detection", "stop speaker", "stop hooks"}
	if got, want := j.get(), append(slices.Clone(once), once...); !slices.Equal(got, want) {
		t.Errorf("journal:\n got %q\nwant %q", got, want)
	}
	if !strings.Contains(logs.String(), `stopped: component=source took=`) {
		t.Errorf("no stage line in the log:\n%s", logs)
	}
}

func TestFailedStartUnwinds(t *testing.T) {
	j := &journal{}
	s, _ := newTest(t)
	boom := errors.New("address in use")
	s.Add(
		Spec{Name: "hooks", Component: &part{name: "hooks", journal: j}},
		Spec{Name: "speaker", Component: &part{name: "speaker", journal: j}},
		Spec{Name: "store", Component: &part{name: "store", journal: j, startErrs: []error{boom}}},
		Spec{Name: "source", Component: &part{name: "source", journal: j}},
	)
	err := s.Start(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "start store") {
		t.Fatalf("Start = %v, want the store's error, named", err)
	}
	want := []string{"start hooks", "start speaker", "start-failed store", "stop speaker", "stop hooks"}
	if got := j.get(); !slices.Equal(got, want) {
		t.Errorf("journal:\n got %q\nwant %q", got, want)
	}
	// It can be started again once the cause is gone.
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRestartWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		s, logs := newTest(t)
		src := &part{name: "source", journal: j}
		s.Add(Spec{Name: "detection", Component: &part{name: "detection", journal: j}},
			Spec{Name: "source", Component: src, OnFailure: Restart})
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The first restart fails (the socket cannot be opened yet), the
		// second succeeds: waits of 1 s, then 2 s.
		src.mu.Lock()
		src.startErrs = []error{errors.New("bind: address in use"), nil}
		src.mu.Unlock()
		t0 := time.Now()
		src.kill(errors.New("read udp: connection aborted"))
		synctest.Wait()
		if st := s.Status()[1]; st.State != StateRestarting || st.Failures != 1 {
			t.Errorf("after the failure: %+v", st)
		}
		time.Sleep(3*time.Second + time.Millisecond)
		synctest.Wait()
		st := s.Status()[1]
		if st.State != StateRunning || st.Restarts != 1 || st.Failures != 1 {
			t.Errorf("after the restart: %+v", st)
		}
		if took := time.Since(t0); took < 3*time.Second {
			t.Errorf("restarted after %v, want the 1 s + 2 s backoff", took)
		}
		if n := testutil.ToFloat64(s.m.failures.WithLabelValues("source")); n != 1 {
			t.Errorf("failures metric = %v", n)
		}
		if n := testutil.ToFloat64(s.m.restarts.WithLabelValues("source")); n != 1 {
			t.Errorf("restarts metric = %v", n)
		}
		// A second failure is restarted again, detection untouched.
		src.kill(errors.New("again"))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st := s.Status()[1]; st.State != StateRunning || st.Restarts != 2 || st.Failures != 2 {
			t.Errorf("after the second restart: %+v", st)
		}
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := []string{"start detection", "start source", "stop source", "start-failed source", "start source",
			"stop source", "start source", "stop source", "stop detection"}
		if got := j.get(); !slices.Equal(got, want) {
			t.Errorf("journal:\n got %q\nwant %q", got, want)
		}
		for _, line := range []string{
			`component failed: component=source error="read udp: connection aborted" on_failure=restart`,
			`component restart failed: component=source error="bind: address in use"`,
			`component restarted: component=source`,
		} {
			if !strings.Contains(logs.String(), line) {
				t.Errorf("log lacks %q:\n%s", line, logs)
			}
		}
	})
}

func TestFatalFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		s, _ := newTest(t)
		mit := &part{name: "mitigation", journal: j}
		s.Add(Spec{Name: "speaker", Component: &part{name: "speaker", journal: j}},
			Spec{Name: "mitigation", Component: mit, OnFailure: Fatal},
			Spec{Name: "source", Component: &part{name: "source", journal: j}, OnFailure: Restart})
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		mit.kill(errors.New("store: disk full"))
		var err error
		select {
		case err = <-s.Fatal():
		case <-time.After(time.Minute):
			t.Fatal("no fatal failure reported")
		}
		if !strings.Contains(err.Error(), "mitigation: store: disk full") {
			t.Errorf("fatal = %v", err)
		}
		if st := s.Status()[1]; st.State != StateFailed || st.Failures != 1 {
			t.Errorf("status: %+v", st)
		}
		if n := testutil.ToFloat64(s.m.failures.WithLabelValues("mitigation")); n != 1 {
			t.Errorf("failures metric = %v", n)
		}
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Reaped once at the failure, not stopped again at shutdown.
		want := []string{"start speaker", "start mitigation", "start source", "stop mitigation", "stop source", "stop speaker"}
		if got := j.get(); !slices.Equal(got, want) {
			t.Errorf("journal:\n got %q\nwant %q", got, want)
		}
	})
}

func TestOneDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		s, _ := newTest(t)
		s.Add(Spec{Name: "speaker", Component: &part{name: "speaker", journal: j}},
			Spec{Name: "detection", Component: &part{name: "detection", journal: j, stopWait: true}},
			Spec{Name: "source", Component: &part{name: "source", journal: j}})
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		t0 := time.Now()
		err := s.Stop(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stop detection") {
			t.Errorf("Stop = %v", err)
		}
		if took := time.Since(t0); took != 10*time.Second {
			t.Errorf("Stop took %v, want the 10 s deadline", took)
		}
		want := []string{"start speaker", "start detection", "start source", "stop source", "stop detection (deadline)", "stop speaker"}
		if got := j.get(); !slices.Equal(got, want) {
			t.Errorf("journal:\n got %q\nwant %q", got, want)
		}
	})
}

func TestStopDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &journal{}
		s, _ := newTest(t)
		src := &part{name: "source", journal: j}
		s.Add(Spec{Name: "source", Component: src, OnFailure: Restart})
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		src.kill(errors.New("gone"))
		synctest.Wait()
		t0 := time.Now()
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(t0); took != 0 {
			t.Errorf("Stop waited %v for the backoff", took)
		}
		want := []string{"start source", "stop source"}
		if got := j.get(); !slices.Equal(got, want) {
			t.Errorf("journal:\n got %q\nwant %q", got, want)
		}
	})
}
