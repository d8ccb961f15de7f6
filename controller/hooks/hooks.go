// Package hooks owns running notification hooks: when an attack starts, a
// mitigation is announced or a mitigation is withdrawn, the controller hands
// an Event to a Dispatcher, which runs every hook that wants it.
//
// A hook is an executable, called with FastNetMon-compatible arguments
//
//	<ip> <direction> <pps> attack_details|ban|unban
//
// and the event as JSON on its standard input,
//
//	{"kind":"mitigation_announced","time":"2026-11-24T17:00:00Z","ip":"198.51.100.7",
//	 "direction":"incoming","pps":123456.7,"hostgroup":"acme","details":{...}}
//
// or a webhook, which receives the same JSON in a POST. Each hook has its
// own worker goroutine and bounded queue, so a slow or failing hook delays
// only its own later events and never detection or mitigation: Notify does
// not wait, and an event that does not fit in a hook's queue is dropped and
// counted. Every run has a timeout (an executable's whole process group is
// killed at its end). Failures are counted and logged, at most one line per
// hook every 10 seconds with the number of lines suppressed.
//
// Events are kept in memory only: one is lost for a hook if its queue is
// full, if the dispatcher is not running, or if it is still queued when
// Stop's grace period ends. Webhooks are retried with exponential backoff
// after a network error or a 408, 429 or 5xx answer (so a receiver may see
// an event twice); executables are not retried.
//
// Metrics (Dispatcher.Collector), labelled with the hook's name and type
// only:
//
//	floodgate_hooks_events_total{hook,type,result="ok|failed|dropped"}
//	floodgate_hooks_retries_total{hook,type}
//	floodgate_hooks_queued_events{hook,type}
package hooks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
)

// Kind is what happened.
type Kind string

// The kinds of events. The comment of each is the action argument an
// executable hook receives for it.
const (
	AttackStarted       Kind = "attack_started"       // attack_details
	MitigationAnnounced Kind = "mitigation_announced" // ban
	MitigationWithdrawn Kind = "mitigation_withdrawn" // unban
	BudgetFull          Kind = "budget_full"          // budget_full
)

// Kinds returns every kind, in the order above.
func Kinds() []Kind {
	return []Kind{AttackStarted, MitigationAnnounced, MitigationWithdrawn, BudgetFull}
}

// action returns the FastNetMon action argument of k, or "" if k is not a
// known kind.
func (k Kind) action() string {
	switch k {
	case AttackStarted:
		return "attack_details"
	case MitigationAnnounced:
		return "ban"
	case MitigationWithdrawn:
		return "unban"
	case BudgetFull:
		return "budget_full"
	}
	return ""
}

// Event is what a hook receives. The controller fills it.
type Event struct {
	Kind Kind
	// Time is when it happened. Zero means when Notify was called.
	Time time.Time
	// IP is the victim's address, or the prefix of a mitigation that is
	// not for one host ("203.0.113.0/24"); an executable gets the address
	// part.
	IP string
	// Direction is "incoming" or "outgoing".
	Direction string
	// PPS is the attack's rate in packets per second (an executable gets
	// it rounded to an integer).
	PPS float64
	// Hostgroup is the victim's hostgroup.
	Hostgroup string
	// Details is any JSON-marshalable value (the attack signature, the
	// mitigation record), put under "details" in the JSON. It is
	// marshaled before Notify returns; the caller may change it after.
	Details any
}

// payload is the JSON a hook receives.
type payload struct {
	Kind      Kind      `json:"kind"`
	Time      time.Time `json:"time"`
	IP        string    `json:"ip"`
	Direction string    `json:"direction"`
	PPS       float64   `json:"pps"`
	Hostgroup string    `json:"hostgroup"`
	Details   any       `json:"details"`
}

// Hook types, as in HookStats.Type and the metrics' type label.
const (
	TypeExec    = "exec"
	TypeWebhook = "webhook"
)

// Defaults.
const (
	DefaultQueueSize      = 1024
	DefaultStopGrace      = 2 * time.Second
	DefaultExecTimeout    = 10 * time.Second
	DefaultWebhookTimeout = 5 * time.Second
	DefaultRetries        = 3
	DefaultRetryBackoff   = time.Second

	// MaxRetries bounds WebhookConfig.Retries.
	MaxRetries = 10
	// maxRetryBackoff caps the exponential backoff between retries.
	maxRetryBackoff = 30 * time.Second
	// failureLogEvery is the least time between two log lines about a
	// hook's failures, or about its drops.
	failureLogEvery = 10 * time.Second
	// maxOutput is how much of an executable's output, or of a webhook's
	// answer, is kept for the log.
	maxOutput = 4 << 10
)

// ExecConfig describes an executable hook. Zero values mean the defaults.
type ExecConfig struct {
	// Name identifies the hook in logs and metrics. Empty means
	// "exec-<index>". Hook names are unique over all hooks.
	Name string
	// Path is the absolute path of the executable, run directly (not
	// through a shell) in its own process group, with the daemon's
	// environment.
	Path string
	// Timeout bounds a run: past it the executable's whole process group
	// is killed and the run counted as failed. Default
	// DefaultExecTimeout.
	Timeout time.Duration
	// Events are the kinds the hook runs for. Empty means all.
	Events []Kind
}

// WebhookConfig describes a webhook. Zero values mean the defaults.
type WebhookConfig struct {
	// Name identifies the hook in logs and metrics. Empty means
	// "webhook-<index>". Hook names are unique over all hooks.
	Name string
	// URL is where the event is POSTed; http or https. Credentials in it
	// are sent as basic authentication and not logged. Redirects are not
	// followed: a 3xx answer is a failure.
	URL string
	// Headers are added to every request (an Authorization token, say);
	// they may replace User-Agent and Content-Type.
	Headers map[string]string
	// Timeout bounds each attempt, reading the answer included. Default
	// DefaultWebhookTimeout.
	Timeout time.Duration
	// Retries is how many times an attempt that failed with a network
	// error or a 408, 429 or 5xx status is retried. 0 means
	// DefaultRetries, a negative value none; at most MaxRetries.
	Retries int
	// RetryBackoff is the wait before the first retry; it doubles at each
	// retry, up to 30s. Default DefaultRetryBackoff.
	RetryBackoff time.Duration
	// Events are the kinds the hook is called for. Empty means all.
	Events []Kind
}

// Config is the dispatcher's configuration. Zero values mean the defaults
// of DefaultConfig.
type Config struct {
	// Exec are the executable hooks.
	Exec []ExecConfig
	// Webhooks are the webhooks.
	Webhooks []WebhookConfig
	// QueueSize is the number of events each hook's queue holds; past it
	// events for that hook are dropped and counted. Default
	// DefaultQueueSize.
	QueueSize int
	// StopGrace is how long Stop lets queued events be delivered before
	// it cancels the running ones and drops the rest. Default
	// DefaultStopGrace.
	StopGrace time.Duration
}

// DefaultConfig returns a configuration without hooks and with every
// default filled in.
func DefaultConfig() Config {
	return Config{QueueSize: DefaultQueueSize, StopGrace: DefaultStopGrace}
}

// Validate applies the defaults to a copy of cfg and reports the first
// problem. New does the same.
func (cfg Config) Validate() error {
	_, err := cfg.normalize()
	return err
}

func (cfg Config) withDefaults() Config {
	cfg.QueueSize = cmp.Or(cfg.QueueSize, DefaultQueueSize)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, DefaultStopGrace)
	return cfg
}

func (ec ExecConfig) withDefaults(index int) ExecConfig {
	ec.Name = cmp.Or(ec.Name, fmt.Sprintf("%s-%d", TypeExec, index))
	ec.Timeout = cmp.Or(ec.Timeout, DefaultExecTimeout)
	return ec
}

func (wc WebhookConfig) withDefaults(index int) WebhookConfig {
	wc.Name = cmp.Or(wc.Name, fmt.Sprintf("%s-%d", TypeWebhook, index))
	wc.Timeout = cmp.Or(wc.Timeout, DefaultWebhookTimeout)
	switch {
	case wc.Retries == 0:
		wc.Retries = DefaultRetries
	case wc.Retries < 0:
		wc.Retries = 0
	}
	wc.RetryBackoff = cmp.Or(wc.RetryBackoff, DefaultRetryBackoff)
	return wc
}

// validate checks an exec hook with its defaults applied.
func (ec ExecConfig) validate() error {
	if !filepath.IsAbs(ec.Path) {
		return fmt.Errorf("path %q is not absolute", ec.Path)
	}
	fi, err := os.Stat(ec.Path)
	if err != nil {
		return fmt.Errorf("path: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("path %q is not a regular file", ec.Path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("path %q is not executable", ec.Path)
	}
	if ec.Timeout < 0 {
		return fmt.Errorf("timeout %s is negative", ec.Timeout)
	}
	return validateKinds(ec.Events)
}

// validate checks a webhook with its defaults applied.
func (wc WebhookConfig) validate() error {
	u, err := url.Parse(wc.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: scheme is not http or https", u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("url %q has no host", u.Redacted())
	}
	for k, v := range wc.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return fmt.Errorf("header name %q is not valid", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("header %q: value has a line break or NUL", k)
		}
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length", "Transfer-Encoding":
			return fmt.Errorf("header %q cannot be set", k)
		}
	}
	if wc.Timeout < 0 {
		return fmt.Errorf("timeout %s is negative", wc.Timeout)
	}
	if wc.Retries > MaxRetries {
		return fmt.Errorf("retries %d is more than %d", wc.Retries, MaxRetries)
	}
	if wc.RetryBackoff < 0 {
		return fmt.Errorf("retry backoff %s is negative", wc.RetryBackoff)
	}
	return validateKinds(wc.Events)
}

func validateKinds(kinds []Kind) error {
	for _, k := range kinds {
		if k.action() == "" {
			return fmt.Errorf("event %q is not one of %s, %s, %s, %s", k, AttackStarted, MitigationAnnounced, MitigationWithdrawn, BudgetFull)
		}
	}
	return nil
}

// normalized is a configuration with defaults applied, checked.
type normalized struct {
	Config
	exec     []ExecConfig
	webhooks []WebhookConfig
}

func (cfg Config) normalize() (normalized, error) {
	n := normalized{Config: cfg.withDefaults()}
	if n.QueueSize < 0 {
		return n, fmt.Errorf("hooks: queue size %d is negative", n.QueueSize)
	}
	if n.StopGrace < 0 {
		return n, fmt.Errorf("hooks: stop grace %s is negative", n.StopGrace)
	}
	names := make(map[string]string) // hook name → "an exec hook" or "a webhook"
	unique := func(name, what, article string) error {
		if other, ok := names[name]; ok {
			return fmt.Errorf("hooks: %s %q: name already used by %s", what, name, other)
		}
		names[name] = article + " " + what
		return nil
	}
	for i, ec := range cfg.Exec {
		ec = ec.withDefaults(i)
		if err := ec.validate(); err != nil {
			return n, fmt.Errorf("hooks: exec hook %q: %w", ec.Name, err)
		}
		if err := unique(ec.Name, "exec hook", "an"); err != nil {
			return n, err
		}
		n.exec = append(n.exec, ec)
	}
	for i, wc := range cfg.Webhooks {
		wc = wc.withDefaults(i)
		if err := wc.validate(); err != nil {
			return n, fmt.Errorf("hooks: webhook %q: %w", wc.Name, err)
		}
		if err := unique(wc.Name, "webhook", "a"); err != nil {
			return n, err
		}
		n.webhooks = append(n.webhooks, wc)
	}
	return n, nil
}

// Notifier is what the controller needs of a Dispatcher. Notify must not
// block and may be called from any goroutine; it owns nothing of ev after
// it returns.
type Notifier interface {
	Notify(ev Event)
}

var _ Notifier = (*Dispatcher)(nil)

// Dispatcher runs hooks. Make it with New, then Start it; Notify, Stats
// and Collector may be called at any time, from any goroutine.
type Dispatcher struct {
	log       hclog.Logger
	hooks     []*hook
	grace     time.Duration
	transport *http.Transport
	metrics   *collector
	// now is the clock of the log rate limits and of events without a
	// time; tests replace it before Start.
	now func() time.Time
	// marshalLog limits the log lines about events whose details cannot
	// be marshaled.
	marshalLog limiter

	// life serializes Start and Stop, and guards cancel, drain and group.
	life   sync.Mutex
	cancel context.CancelFunc
	drain  chan struct{}
	group  *errgroup.Group

	// mu guards running; Notify reads it, Start and Stop hold it only to
	// change it, so Notify never waits for a hook.
	mu      sync.RWMutex
	running bool
}

// hook is one configured hook: its queue, counters and runner.
type hook struct {
	name, typ string
	wants     map[Kind]bool
	queue     chan item
	run       runner
	log       hclog.Logger

	sent, failed, dropped, retries atomic.Uint64
	failLog, dropLog               limiter
}

// runner delivers one event. It returns an error if the delivery failed;
// it must return soon after ctx is done.
type runner interface {
	deliver(ctx context.Context, it *item) error
}

// item is a queued event: its fields for the exec arguments and its JSON.
type item struct {
	ev   Event // without Details
	body []byte
}

// New checks cfg, applies its defaults and returns a dispatcher that runs
// nothing until Start. logger may be nil.
func New(cfg Config, logger hclog.Logger) (*Dispatcher, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	n, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{
		log:   logger.Named("hooks"),
		grace: n.StopGrace,
		now:   time.Now,
	}
	newHook := func(name, typ string, kinds []Kind, r runner) *hook {
		if len(kinds) == 0 {
			kinds = Kinds()
		}
		h := &hook{
			name:  name,
			typ:   typ,
			wants: make(map[Kind]bool, len(kinds)),
			queue: make(chan item, n.QueueSize),
			run:   r,
			log:   d.log.With("hook", name, "type", typ),
		}
		for _, k := range kinds {
			h.wants[k] = true
		}
		d.hooks = append(d.hooks, h)
		return h
	}
	for _, ec := range n.exec {
		newHook(ec.Name, TypeExec, ec.Events, &execRunner{path: ec.Path, timeout: ec.Timeout})
		if fi, err := os.Stat(ec.Path); err == nil && fi.Mode().Perm()&0o002 != 0 {
			d.log.Warn("hook executable is writable by anyone", "hook", ec.Name, "path", ec.Path)
		}
	}
	if len(n.webhooks) > 0 {
		d.transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	for _, wc := range n.webhooks {
		w := &webhookRunner{
			url:     wc.URL,
			headers: make(http.Header, len(wc.Headers)),
			timeout: wc.Timeout,
			retries: wc.Retries,
			backoff: wc.RetryBackoff,
			client:  newClient(d.transport),
		}
		for k, v := range wc.Headers {
			w.headers.Set(k, v)
		}
		h := newHook(wc.Name, TypeWebhook, wc.Events, w)
		w.retried = &h.retries
	}
	d.metrics = newCollector(d)
	return d, nil
}

// Start starts one worker per hook. The hooks' runs are cancelled when ctx
// is done; events are then dropped until Stop. It fails if the dispatcher
// is already running.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.life.Lock()
	defer d.life.Unlock()
	if d.cancel != nil {
		return errors.New("hooks: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	d.cancel, d.drain, d.group = cancel, make(chan struct{}), new(errgroup.Group)
	for _, h := range d.hooks {
		drain := d.drain
		d.group.Go(func() error {
			d.work(ctx, h, drain)
			return nil
		})
	}
	d.mu.Lock()
	d.running = true
	d.mu.Unlock()
	d.log.Debug("started", "hooks", len(d.hooks))
	return nil
}

// Stop stops accepting events, lets the queued ones be delivered for at
// most the stop grace or until ctx is done, then cancels the runs going
// on (killing executables) and drops what is still queued; it returns
// when every worker has exited. The dispatcher can be started again. Stop
// without Start does nothing.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.life.Lock()
	defer d.life.Unlock()
	if d.cancel == nil {
		return nil
	}
	d.mu.Lock()
	d.running = false
	d.mu.Unlock()

	before := make([]uint64, len(d.hooks))
	for i, h := range d.hooks {
		before[i] = h.dropped.Load()
	}
	close(d.drain)
	expired := time.AfterFunc(d.grace, d.cancel)
	stopExpired := context.AfterFunc(ctx, d.cancel)
	err := d.group.Wait()
	expired.Stop()
	stopExpired()
	d.cancel()
	for i, h := range d.hooks {
		if n := h.dropped.Load() - before[i]; n > 0 {
			h.log.Warn("events dropped at stop", "dropped", n, "grace", d.grace)
		}
	}
	if d.transport != nil {
		d.transport.CloseIdleConnections()
	}
	d.cancel, d.drain, d.group = nil, nil, nil
	d.log.Debug("stopped")
	return err
}

// Notify hands ev to every hook that wants its kind, without waiting: an
// event that does not fit in a hook's queue, or that comes while the
// dispatcher is not running, is dropped and counted. Events of unknown
// kinds are ignored.
func (d *Dispatcher) Notify(ev Event) {
	wanted := false
	for _, h := range d.hooks {
		if h.wants[ev.Kind] {
			wanted = true
			break
		}
	}
	if !wanted {
		return
	}
	now := d.now()
	it := item{ev: ev, body: d.marshal(&ev, now)}
	it.ev.Details = nil

	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, h := range d.hooks {
		if !h.wants[ev.Kind] {
			continue
		}
		if d.running {
			select {
			case h.queue <- it:
				continue
			default:
			}
		}
		h.dropped.Add(1)
		if ok, suppressed := h.dropLog.allow(now); ok {
			reason := "queue full"
			if !d.running {
				reason = "not running"
			}
			h.log.Warn("event dropped", "reason", reason, "kind", string(ev.Kind), "suppressed_since_last", suppressed)
		}
	}
}

// marshal returns the JSON of ev, filling in its time if it is zero. If
// the details cannot be marshaled, they are sent as null.
func (d *Dispatcher) marshal(ev *Event, now time.Time) []byte {
	if ev.Time.IsZero() {
		ev.Time = now
	}
	p := payload{
		Kind:      ev.Kind,
		Time:      ev.Time.UTC(),
		IP:        ev.IP,
		Direction: ev.Direction,
		PPS:       finite(ev.PPS),
		Hostgroup: ev.Hostgroup,
		Details:   ev.Details,
	}
	b, err := json.Marshal(p)
	if err == nil {
		return b
	}
	if ok, suppressed := d.marshalLog.allow(now); ok {
		d.log.Error("event details cannot be marshaled; sending them as null", "kind", string(ev.Kind), "error", err, "suppressed_since_last", suppressed)
	}
	p.Details = nil
	b, _ = json.Marshal(p) // cannot fail: every other field is a string, a time or a finite number
	return b
}

// finite returns f, or 0 if f is NaN or infinite (JSON has neither).
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// work delivers h's events until drain is closed, then delivers what is
// left in the queue and returns. Once ctx is done, events are dropped.
func (d *Dispatcher) work(ctx context.Context, h *hook, drain <-chan struct{}) {
	for {
		select {
		case it := <-h.queue:
			d.handle(ctx, h, &it)
		case <-drain:
			for {
				select {
				case it := <-h.queue:
					d.handle(ctx, h, &it)
				default:
					return
				}
			}
		}
	}
}

// handle delivers one event and counts the result.
func (d *Dispatcher) handle(ctx context.Context, h *hook, it *item) {
	if ctx.Err() != nil {
		h.dropped.Add(1)
		return
	}
	start := time.Now()
	err := h.run.deliver(ctx, it)
	// The result is logged before it is counted: once Stats shows an event
	// as sent or failed, its log line (if the rate limit let it through)
	// has been written. Tests and operators may rely on that order.
	if err == nil {
		h.log.Trace("hook ran", "kind", string(it.ev.Kind), "duration", time.Since(start))
		h.sent.Add(1)
		return
	}
	if ok, suppressed := h.failLog.allow(d.now()); ok {
		h.log.Warn("hook failed", "kind", string(it.ev.Kind), "ip", it.ev.IP, "duration", time.Since(start), "error", err, "suppressed_since_last", suppressed)
	}
	h.failed.Add(1)
}

// HookStats are a hook's counters since the dispatcher was made.
type HookStats struct {
	Name string
	// Type is TypeExec or TypeWebhook.
	Type string
	// Sent counts events delivered: the executable exited with status 0,
	// the webhook answered 2xx.
	Sent uint64
	// Failed counts events whose delivery failed, after any retries.
	Failed uint64
	// Dropped counts events never delivered: the queue was full, the
	// dispatcher was not running, or it stopped before their turn.
	Dropped uint64
	// Retries counts webhook attempts after the first.
	Retries uint64
	// Queued is the number of events waiting in the queue now.
	Queued int
}

// Stats returns every hook's counters: exec hooks, then webhooks, each in
// configuration order.
func (d *Dispatcher) Stats() []HookStats {
	out := make([]HookStats, 0, len(d.hooks))
	for _, h := range d.hooks {
		out = append(out, HookStats{
			Name:    h.name,
			Type:    h.typ,
			Sent:    h.sent.Load(),
			Failed:  h.failed.Load(),
			Dropped: h.dropped.Load(),
			Retries: h.retries.Load(),
			Queued:  len(h.queue),
		})
	}
	return out
}

// limiter allows one log line per failureLogEvery and counts the lines it
// suppressed. It is safe for concurrent use.
type limiter struct {
	last       atomic.Int64 // unix nanoseconds of the last line allowed; 0 for none
	suppressed atomic.Uint64
}

// allow reports whether a line may be logged at now, and if so how many
// were suppressed since the last one.
func (l *limiter) allow(now time.Time) (bool, uint64) {
	n := now.UnixNano()
	last := l.last.Load()
	if (last != 0 && n-last < int64(failureLogEvery)) || !l.last.CompareAndSwap(last, n) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
