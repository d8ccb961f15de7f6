package gen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// StartTimeLayout is the layout of the time in the start line: RFC 3339
// in UTC with microseconds.
const StartTimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// FormatStartLine returns the line Run prints when the attack starts,
// without a newline: "attack ntp starts at 2026-11-24T18:00:03.123456Z".
func FormatStartLine(a Attack, t time.Time) string {
	return fmt.Sprintf("attack %s starts at %s", a, t.UTC().Format(StartTimeLayout))
}

// ParseStartLine parses a line written by FormatStartLine (surrounding
// space ignored).
func ParseStartLine(line string) (Attack, time.Time, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "attack ")
	name, ts, ok2 := strings.Cut(rest, " starts at ")
	if !ok || !ok2 {
		return "", time.Time{}, fmt.Errorf("parse start line %q: not \"attack TYPE starts at TIME\"", line)
	}
	a, err := ParseAttack(name)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("parse start line %q: %w", line, err)
	}
	t, err := time.Parse(StartTimeLayout, ts)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("parse start line %q: %w", line, err)
	}
	return a, t, nil
}

// Result is what Run did.
type Result struct {
	// Started is the wall-clock time of the start of the scenario.
	Started time.Time
	// AttackStart is when the first datagram or frame carrying attack
	// traffic was sent, the time printed in the start line; zero if none
	// was sent.
	AttackStart time.Time
	// Elapsed is how long the run took.
	Elapsed time.Duration
	// Intervals is the number of intervals played.
	Intervals int
	// AttackPackets and BackgroundPackets are the packets of the model
	// over the intervals played, before sampling: what the emitters had
	// to describe.
	AttackPackets, BackgroundPackets uint64
	// Total sums the counts of the emitters; Emitters has them one by
	// one, in the order given to Run.
	Total    Counts
	Emitters []Counts
}

// Run plays s in real time through the emitters, which it opens first and
// closes at the end: interval k starts k×s.Interval after the start and
// each emitter spreads its output over it. When the first datagram or
// frame carrying attack traffic has been sent, Run writes the start line
// (FormatStartLine and a newline) to out, at once. It returns when the
// scenario is over, at the first error of an emitter, or when ctx is done
// (with ctx's error); the Result counts what was sent until then. A nil out
// discards the line.
func Run(ctx context.Context, s Scenario, out io.Writer, emitters ...Emitter) (Result, error) {
	var res Result
	m, err := NewModel(s)
	if err != nil {
		return res, err
	}
	if len(emitters) == 0 {
		return res, fmt.Errorf("run: no emitter: %w", ErrInvalidEmitter)
	}
	if out == nil {
		out = io.Discard
	}
	s = m.Scenario()
	for i, e := range emitters {
		if err := e.Open(s); err != nil {
			for _, o := range emitters[:i] {
				o.Close()
			}
			return res, fmt.Errorf("open %s: %w", e, err)
		}
	}
	res.Emitters = make([]Counts, len(emitters))
	err = run(ctx, m, out, emitters, &res)
	for _, e := range emitters {
		if cerr := e.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close %s: %w", e, cerr))
		}
	}
	for _, c := range res.Emitters {
		res.Total.Add(c)
	}
	return res, err
}

// run is the loop of Run, with the emitters open.
func run(ctx context.Context, m *Model, out io.Writer, emitters []Emitter, res *Result) error {
	s := m.Scenario()
	var (
		mu       sync.Mutex
		printed  bool
		writeErr error
	)
	onAttack := func(t time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if printed {
			return
		}
		printed = true
		res.AttackStart = t
		if _, err := fmt.Fprintln(out, FormatStartLine(s.Attack, t)); err != nil {
			writeErr = fmt.Errorf("write start line: %w", err)
		}
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	res.Started = time.Now()
	defer func() { res.Elapsed = time.Since(res.Started) }()
	var iv Interval
	counts := make([]Counts, len(emitters))
	for k := range m.Intervals() {
		m.Fill(k, &iv)
		iv.Start, iv.End = res.Started.Add(iv.From), res.Started.Add(iv.To)
		iv.onAttack = onAttack
		if wait := time.Until(iv.Start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		}
		clear(counts)
		var err error
		if len(emitters) == 1 {
			counts[0], err = emitters[0].Emit(ctx, &iv)
		} else {
			var g errgroup.Group
			for i, e := range emitters {
				g.Go(func() error {
					var err error
					counts[i], err = e.Emit(ctx, &iv)
					return err
				})
			}
			err = g.Wait()
		}
		for i, c := range counts {
			res.Emitters[i].Add(c)
		}
		res.Intervals++
		res.AttackPackets += iv.AttackPackets
		res.BackgroundPackets += iv.BackgroundPackets
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return writeErr
}
