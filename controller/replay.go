package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/pcapfile"
)

// ReplayAction is an announcement or withdrawal a replay would have made.
type ReplayAction struct {
	At           time.Time             `json:"at"`
	Action       string                `json:"action"` // "announce" or "withdraw"
	Announcement flowspec.Announcement `json:"announcement"`
	Hostgroup    string                `json:"hostgroup,omitempty"`
	Response     string                `json:"response,omitempty"`
	Reason       string                `json:"reason,omitempty"`
}

// ReplayResult is what a replay found.
type ReplayResult struct {
	File    string         `json:"file"`
	Stats   pcapfile.Stats `json:"stats"`
	First   time.Time      `json:"first"`
	Last    time.Time      `json:"last"`
	Attacks []AttackInfo   `json:"attacks"`
	Actions []ReplayAction `json:"actions"`
}

// ReplayOptions tune a replay.
type ReplayOptions struct {
	// Sampling says the capture holds 1 packet in Sampling.
	Sampling uint32
	// Progress, if set, is called now and then with the replayer's
	// counters and the file's size.
	Progress func(st pcapfile.Stats, fileSize int64)
	// After is how long to go on after the capture ends, in capture time,
	// so that attacks end and mitigations expire. Default 1h.
	After time.Duration
}

// replayRecorder is the announcer of a replay: it sends nothing and writes down
// what would have been sent, at capture time.
type replayRecorder struct {
	now     *time.Time
	actions []ReplayAction
}

func (r *replayRecorder) Announce(_ context.Context, a *flowspec.Announcement) error {
	r.actions = append(r.actions, ReplayAction{At: *r.now, Action: "announce", Announcement: *a})
	return nil
}

func (r *replayRecorder) Withdraw(_ context.Context, a *flowspec.Announcement) error {
	r.actions = append(r.actions, ReplayAction{At: *r.now, Action: "withdraw", Announcement: *a})
	return nil
}

// replayer drives detection and the mitigation loop on the capture's own
// clock: every record moves time forward, and each tick boundary it passes
// runs a detection tick and the mitigation loop's timers.
type replayer struct {
	ctx     context.Context
	engine  *detect.Engine
	mit     *Mitigator
	rec     *replayRecorder
	tick    time.Duration
	now     time.Time
	next    time.Time
	first   time.Time
	pending []sources.Record
	made    map[string]Mitigation // every mitigation made, by key
	mu      sync.Mutex            // the replayer's sink goroutine and the final flush
}

func (r *replayer) AttackStarted(detect.Signature)   {}
func (r *replayer) MitigationWithdrawn(Mitigation)   {}
func (r *replayer) BudgetFull(BudgetEvent)           {}
func (r *replayer) MitigationAnnounced(m Mitigation) { r.made[m.Key] = m }

func (r *replayer) Ingest(batch []sources.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range batch {
		t := time.Unix(0, batch[i].End)
		if r.next.IsZero() {
			r.first, r.next = t, t.Add(r.tick)
		}
		for !t.Before(r.next) {
			r.advance()
		}
		r.pending = append(r.pending, batch[i])
	}
}

// advance ends the current tick.
func (r *replayer) advance() {
	if len(r.pending) > 0 {
		r.engine.Ingest(r.pending)
		r.pending = r.pending[:0]
	}
	r.now = r.next
	r.engine.Tick(r.now)
	for {
		select {
		case ev := <-r.engine.Events():
			r.mit.handle(r.ctx, ev)
			continue
		default:
		}
		break
	}
	r.mit.wake(r.ctx)
	r.next = r.next.Add(r.tick)
}

// Replay plays a capture through detection and the policy's responses, on
// the capture's clock and as fast as it can, with no BGP session, and
// returns the attacks found and every announcement and withdrawal that
// would have been made.
func Replay(ctx context.Context, pol *policies.Policy, path string, opts ReplayOptions, logger hclog.Logger) (ReplayResult, error) {
	res := ReplayResult{File: path}
	st, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	if opts.After <= 0 {
		opts.After = time.Hour
	}
	eng, err := detect.New(detect.Config{Tick: pol.Detection.Tick}, pol, logger)
	if err != nil {
		return res, err
	}
	r := &replayer{ctx: ctx, engine: eng, tick: pol.Detection.Tick, made: map[string]Mitigation{}}
	r.rec = &replayRecorder{now: &r.now}
	replayPol := *pol
	replayPol.Mitigation.DryRun = false // the replayRecorder sends nothing anyway
	r.mit = NewMitigator(MitigatorConfig{Now: func() time.Time { return r.now }}, &replayPol, nil, r.rec, nil, logger)
	r.mit.SetObserver(r)
	cfg := pcapfile.DefaultConfig()
	cfg.Path, cfg.Speed, cfg.Timestamps = path, 0, pcapfile.TimeCapture
	if opts.Sampling > 0 {
		cfg.Sampling = opts.Sampling
	}
	rp, err := pcapfile.New(cfg, r, logger)
	if err != nil {
		return res, err
	}
	if err := rp.Start(ctx); err != nil {
		return res, err
	}
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
wait:
	for {
		select {
		case <-rp.Done():
			break wait
		case <-ctx.Done():
			_ = rp.Stop(context.WithoutCancel(ctx))
			return res, ctx.Err()
		case <-tk.C:
			if opts.Progress != nil {
				opts.Progress(rp.Stats(), st.Size())
			}
		}
	}
	if err := rp.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return res, fmt.Errorf("replay %s: %w", path, err)
	}
	_ = rp.Stop(context.WithoutCancel(ctx))
	res.Stats = rp.Stats()
	if opts.Progress != nil {
		opts.Progress(res.Stats, st.Size())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next.IsZero() {
		return res, nil // no IP packet at all
	}
	res.First, res.Last = r.first, r.next
	// Let time run on after the capture, so attacks end and mitigations
	// are withdrawn as they would have been.
	end := r.next.Add(opts.After)
	for r.next.Before(end) {
		r.advance()
		if len(r.mit.attacks) == 0 && len(r.mit.active) == 0 {
			break
		}
	}
	for _, s := range r.mit.attacks {
		res.Attacks = append(res.Attacks, AttackInfo{Signature: s})
	}
	res.Attacks = append(res.Attacks, r.mit.recent...)
	sort.Slice(res.Attacks, func(i, j int) bool { return res.Attacks[i].Signature.ID < res.Attacks[j].Signature.ID })
	// Attach the policy's reasons to the recorded actions.
	for i := range r.rec.actions {
		a := &r.rec.actions[i]
		if m, ok := r.made[a.Announcement.Key()]; ok {
			a.Hostgroup, a.Response, a.Reason = m.Hostgroup, m.Response, m.Reason
		}
	}
	res.Actions = r.rec.actions
	return res, nil
}
