package controller

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/policies"
)

// Reload loads the configuration again from path and, if it is valid,
// swaps it in: detection gets the new hostgroups and thresholds (keeping
// its counters and baselines), the mitigation loop the new responses and
// caps. Mitigations already announced keep the settings that made them.
// An invalid configuration is logged, every error of it, and changes
// nothing. Changes to the bgp, sources or log blocks need a restart; a
// reload says so and applies the rest.
func (d *Daemon) Reload(path string) error {
	pol, err := policies.Load(path)
	if err != nil {
		var cerr *policies.Error
		if errors.As(err, &cerr) {
			for _, diag := range cerr.Diags {
				d.log.Error("reload rejected; the running configuration stays", "error", policies.FormatDiagnostic(diag))
			}
		} else {
			d.log.Error("reload rejected; the running configuration stays", "error", err.Error())
		}
		return err
	}
	d.mu.Lock()
	old := d.pol
	d.pol = pol
	d.Mitigator.SetPolicy(pol)
	d.mu.Unlock()
	d.Engine.SetPolicy(pol)
	for _, name := range RestartNeeded(old, pol) {
		d.log.Warn("configuration change needs a restart to apply", "block", name)
	}
	d.log.Info("configuration reloaded", "files", len(pol.Files), "hostgroups", len(pol.Hostgroups))
	return nil
}

// RestartNeeded names the parts of the configuration that differ between
// old and pol and that a reload does not apply (a restart does).
func RestartNeeded(old, pol *policies.Policy) []string {
	var out []string
	for _, c := range []struct {
		name     string
		old, new any
	}{
		{"bgp", old.BGP, pol.BGP},
		{"sources", []any{old.Listeners, old.Mirrors, old.Pcaps, old.KafkaSources}, []any{pol.Listeners, pol.Mirrors, pol.Pcaps, pol.KafkaSources}},
		{"api", []any{old.API, old.Metrics}, []any{pol.API, pol.Metrics}},
		{"hooks", old.Hooks, pol.Hooks},
		{"log", old.Log, pol.Log},
		{"kafka", old.Kafka, pol.Kafka},
		{"detection", old.Detection, pol.Detection},
		{"mitigation.state_file", old.Mitigation.StateFile, pol.Mitigation.StateFile},
	} {
		if !reflect.DeepEqual(c.old, c.new) {
			out = append(out, c.name)
		}
	}
	return out
}

// Policy returns the running policy.
func (d *Daemon) Policy() *policies.Policy {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pol
}

// Watcher reloads the configuration when its files change: it polls their
// contents every Interval and reloads once they have stayed the same for
// Settle, so that an editor's several writes make one reload.
type Watcher struct {
	path     string
	interval time.Duration
	settle   time.Duration
	reload   func() error
	log      hclog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewWatcher returns a watcher of path (a file or a directory of *.hcl
// files) that calls reload. It starts nothing.
func NewWatcher(path string, interval, settle time.Duration, reload func() error, logger hclog.Logger) *Watcher {
	return &Watcher{path: path, interval: interval, settle: settle, reload: reload, log: logger.Named("config")}
}

// fingerprint hashes the names and contents of the configuration files.
func fingerprint(path string) [32]byte {
	h := sha256.New()
	files := []string{path}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		files, _ = filepath.Glob(filepath.Join(path, "*.hcl"))
		sort.Strings(files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		h.Write([]byte(f))
		h.Write([]byte{0})
		if err == nil {
			h.Write(b)
		}
		h.Write([]byte{0})
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Start begins watching.
func (w *Watcher) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		return errors.New("config watcher: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	w.cancel, w.done = cancel, make(chan struct{})
	current := fingerprint(w.path)
	go func() {
		defer close(w.done)
		t := time.NewTicker(w.interval)
		defer t.Stop()
		var pending [32]byte
		var changedAt time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				fp := fingerprint(w.path)
				switch {
				case fp == current:
					changedAt = time.Time{}
				case changedAt.IsZero() || fp != pending:
					pending, changedAt = fp, now
				case now.Sub(changedAt) >= w.settle:
					w.log.Info("configuration files changed: reloading", "path", w.path)
					_ = w.reload() // errors are logged by the reload
					current, changedAt = fp, time.Time{}
				}
			}
		}
	}()
	return nil
}

// Stop ends watching and waits (a reload in progress finishes first).
func (w *Watcher) Stop(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel == nil {
		return nil
	}
	w.cancel()
	select {
	case <-w.done:
	case <-ctx.Done():
		return fmt.Errorf("config watcher: stop: %w", ctx.Err())
	}
	w.cancel = nil
	return nil
}
