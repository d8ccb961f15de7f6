package lab

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeRouter serves a scripted sequence of route tables, one per call; the
// last one repeats.
type fakeRouter struct {
	mu     sync.Mutex
	tables [][]Route
	err    error
	calls  int
}

func (f *fakeRouter) WaitEstablished(context.Context, netip.Addr) error { return nil }
func (f *fakeRouter) Stop() error                                       { return nil }

func (f *fakeRouter) Routes(ctx context.Context, fam Family) ([]Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	i := min(f.calls-1, len(f.tables)-1)
	return f.tables[i], nil
}

var _ Router = (*fakeRouter)(nil)

func TestWaitRoute(t *testing.T) {
	a := Route{Family: FamilyIPv4Unicast, Prefix: "203.0.113.10/32"}
	b := Route{Family: FamilyIPv4Unicast, Prefix: "203.0.113.20/32"}

	t.Run("appears", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := &fakeRouter{tables: [][]Route{nil, {b}, {a, b}}}
			start := time.Now()
			got, err := WaitRoute(t.Context(), r, FamilyIPv4Unicast, MatchPrefix(a.Prefix))
			if err != nil {
				t.Fatal(err)
			}
			if got.Prefix != a.Prefix || r.calls != 3 || time.Since(start) != 2*pollInterval {
				t.Errorf("got %s after %d calls and %v", got, r.calls, time.Since(start))
			}
		})
	})
	t.Run("timeout lists last routes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := &fakeRouter{tables: [][]Route{{b}}}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			_, err := WaitRoute(ctx, r, FamilyIPv4Unicast, MatchPrefix(a.Prefix))
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), b.Prefix) {
				t.Errorf("got error %v, want a deadline error listing %s", err, b.Prefix)
			}
		})
	})
	t.Run("router error ends the wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			boom := errors.New("daemon gone")
			r := &fakeRouter{err: boom}
			_, err := WaitRoute(t.Context(), r, FamilyIPv4Unicast, MatchPrefix(a.Prefix))
			if !errors.Is(err, boom) || r.calls != 1 {
				t.Errorf("got error %v after %d calls, want %v after 1", err, r.calls, boom)
			}
		})
	})
}

func TestWaitNoRoute(t *testing.T) {
	a := Route{Family: FamilyIPv4FlowSpec, Prefix: "destination:203.0.113.10/32"}
	b := Route{Family: FamilyIPv4FlowSpec, Prefix: "destination:203.0.113.20/32"}

	t.Run("goes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := &fakeRouter{tables: [][]Route{{a, b}, {a, b}, {b}}}
			if err := WaitNoRoute(t.Context(), r, FamilyIPv4FlowSpec, MatchPrefix(a.Prefix)); err != nil {
				t.Fatal(err)
			}
			if r.calls != 3 {
				t.Errorf("done after %d calls, want 3", r.calls)
			}
		})
	})
	t.Run("timeout lists remaining", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := &fakeRouter{tables: [][]Route{{a, b}}}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			err := WaitNoRoute(ctx, r, FamilyIPv4FlowSpec, MatchPrefix(a.Prefix))
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), a.Prefix) || strings.Contains(err.Error(), b.Prefix) {
				t.Errorf("got error %v, want a deadline error listing only %s", err, a.Prefix)
			}
		})
	})
}

// recordingTB records how a gate ended the test.
type recordingTB struct {
	testing.TB
	skipped, failed bool
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Skipf(string, ...any) {
	r.skipped = true
	runtime.Goexit()
}
func (r *recordingTB) Skip(...any) {
	r.skipped = true
	runtime.Goexit()
}
func (r *recordingTB) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}

// gate runs f against a recordingTB on its own goroutine, so that Goexit
// ends only f.
func gate(f func(testing.TB)) (skipped, failed bool) {
	r := &recordingTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.skipped, r.failed
}

func TestRequire(t *testing.T) {
	if testing.Short() {
		skipped, failed := gate(func(tb testing.TB) { Require(tb) })
		if !skipped || failed {
			t.Errorf("under -short: skipped %v, failed %v; want a skip", skipped, failed)
		}
		return
	}
	const absent = "floodgate-no-such-binary"
	for _, tt := range []struct {
		env        string
		binaries   []string
		skip, fail bool
	}{
		{env: "", binaries: []string{absent}, skip: true},
		{env: "1", binaries: []string{absent}, fail: true},
		{env: "1", binaries: []string{"go"}},
	} {
		t.Setenv(EnvIntegration, tt.env)
		skipped, failed := gate(func(tb testing.TB) { Require(tb, tt.binaries...) })
		if skipped != tt.skip || failed != tt.fail {
			t.Errorf("%s=%q Require(%v): skipped %v, failed %v; want %v, %v", EnvIntegration, tt.env, tt.binaries, skipped, failed, tt.skip, tt.fail)
		}
	}
}
