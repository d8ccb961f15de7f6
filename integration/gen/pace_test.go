package gen

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// TestPace checks, on a fake clock, that outputs are spread over the
// interval, sent at most a tick early and never late.
func TestPace(t *testing.T) {
	for _, n := range []int{1, 7, 100, 10_000} {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			end := start.Add(100 * time.Millisecond)
			var at []time.Duration
			sent, err := pace(context.Background(), start, end, n, func(i int) error {
				at = append(at, time.Since(start))
				return nil
			})
			if err != nil || sent != n {
				t.Fatalf("n %d: sent %d, %v", n, sent, err)
			}
			for i, d := range at {
				due := 100 * time.Millisecond * time.Duration(i) / time.Duration(n)
				if d > due || d < due-pacing {
					t.Fatalf("n %d: output %d sent at %v, due at %v", n, i, d, due)
				}
			}
			if n >= 100 {
				// Batches: one wake-up per tick at most.
				batches := 1
				for i := 1; i < len(at); i++ {
					if at[i] != at[i-1] {
						batches++
					}
				}
				if batches > 101 {
					t.Errorf("n %d: %d batches, want at most one per tick", n, batches)
				}
			}
		})
	}
}

// TestPaceLate checks that outputs that cannot be sent within the interval
// and its grace are given up.
func TestPaceLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		end := start.Add(100 * time.Millisecond)
		sent, err := pace(context.Background(), start, end, 100, func(int) error {
			time.Sleep(3 * time.Millisecond) // a send that takes 3 ms: 150 ms worth fit
			return nil
		})
		if err != nil || sent != 50 {
			t.Errorf("sent %d, %v; want 50 (150 ms of 3 ms sends)", sent, err)
		}
		if d := time.Since(start); d != 150*time.Millisecond {
			t.Errorf("took %v", d)
		}
	})
}

// TestPaceCancel checks that a done context stops pacing at once, and
// that unpaced sending stops on errors.
func TestPaceCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		time.AfterFunc(30*time.Millisecond, cancel)
		sent, err := pace(ctx, start, start.Add(time.Second), 10, func(int) error { return nil })
		if !errors.Is(err, context.Canceled) || sent != 1 || time.Since(start) != 30*time.Millisecond {
			t.Errorf("sent %d, %v after %v", sent, err, time.Since(start))
		}
	})
	boom := errors.New("boom")
	sent, err := pace(context.Background(), time.Time{}, time.Time{}, 10, func(i int) error {
		if i == 4 {
			return boom
		}
		return nil
	})
	if sent != 4 || !errors.Is(err, boom) {
		t.Errorf("sent %d, %v", sent, err)
	}
}

// TestSampler checks the sampler's mean and that rate 1 takes everything.
func TestSampler(t *testing.T) {
	s := newSampler(1, 1)
	if got := s.take(12345); got != 12345 {
		t.Errorf("rate 1 took %d of 12345", got)
	}
	s = newSampler(100, 1)
	var k uint64
	for range 10_000 {
		k += s.take(137)
	}
	if !within(k, 13_700, 0.03) {
		t.Errorf("rate 100 took %d of 1,370,000, want 13700 ± 3%%", k)
	}
}

// TestRunNoGoroutineLeft checks that Run leaves no goroutine behind.
func TestRunNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	s := testScenario(AttackNTP, false, 5000, 0, 200*time.Millisecond)
	e1 := &NetFlowEmitter{Version: 9, To: drainAddr(t)}
	e2 := &SFlowEmitter{To: drainAddr(t)}
	if _, err := Run(context.Background(), s, nil, e1, e2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) { // the two drains
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Run, %d before (+2 drains):\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
