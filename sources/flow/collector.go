// Package flow owns the flow collector: UDP listeners for sFlow v5, NetFlow
// v5, NetFlow v9 and IPFIX, turned into sources.Record batches scaled by the
// sampling rate and handed to a sources.Sink. Every length and count of a
// datagram is checked first (check.go); then goflow2's decoders parse sFlow,
// NetFlow v5 and the v9/IPFIX templates, and v9/IPFIX data sets are walked
// here against those templates without allocating (templated.go, checked
// against goflow2's own walk by a differential fuzz target).
//
// Each listener has one socket reader that never blocks on the decoders: it
// puts datagrams on bounded per-worker queues and counts what does not fit.
// An exporter's datagrams always go to the same worker, so templates arrive
// before the data that needs them and order is kept. Each worker owns a
// Decoder, which keeps templates and sampling rates per exporter address
// and observation domain, bounded in number and expiring.
//
// Counters are kept per listener and per exporter (Collector.Stats); every
// bound (queue, exporters, templates, template fields) is a setting of
// ListenerConfig with a default.
package flow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/floodgate-ddos/floodgate/sources"
)

// ListenerConfig describes one UDP listener. Zero values mean the defaults
// of DefaultListenerConfig, except for Protocol and Listen, which are
// required.
type ListenerConfig struct {
	// Name identifies the listener in logs and counters. Empty means
	// "<protocol>-<index>".
	Name string
	// Protocol is ProtoNetFlow (v5, v9 and IPFIX on one port, told apart
	// per datagram) or ProtoSFlow.
	Protocol Protocol
	// Listen is the UDP address, an IP literal and a port
	// ("127.0.0.1:2055", "[::]:6343"; "[::]" also receives IPv4 unless
	// the system disables dual-stack sockets).
	Listen string
	// ReceiveBuffer is the socket receive buffer in bytes (SO_RCVBUFFORCE
	// when privileged, else SO_RCVBUF capped by net.core.rmem_max; a
	// smaller buffer than asked is logged). Default DefaultReceiveBuffer.
	// Flow exporters send in bursts; a small buffer loses them in the
	// kernel.
	ReceiveBuffer int
	// QueueSize is the number of datagrams each worker's queue holds.
	// Default DefaultQueueSize. A long queue delays detection more than
	// it saves: a full queue drops and counts (Stats.QueueDrops).
	QueueSize int
	// Workers is the number of decoding goroutines; an exporter always
	// goes to the same one. Default 1.
	Workers int
	// DefaultSampling is the sampling rate assumed when an export carries
	// none. Default 1.
	DefaultSampling uint32
	// Sampling overrides the sampling rate per exporter address (for
	// sFlow, the agent address in the datagram), whatever the export says.
	Sampling map[netip.Addr]uint32
	// AllowedExporters, if not empty, lists the prefixes that may send to
	// this listener; datagrams from other addresses are dropped before
	// decoding and counted (Stats.Refused). Without it, anyone who can
	// reach the port can make the collector keep state (bounded by the
	// settings below).
	AllowedExporters []netip.Prefix
	// MaxExporters bounds the exporters tracked by the listener's
	// counters and by each worker's decoder; past it, idle exporters and
	// then the least recently seen are forgotten. Default
	// DefaultMaxExporters.
	MaxExporters int
	// ExporterIdle is how long an exporter's state (templates, sampling
	// rates, counters) is kept without a datagram. Default
	// DefaultExporterIdle.
	ExporterIdle time.Duration
	// MaxTemplates bounds the NetFlow v9/IPFIX templates kept per exporter
	// over all its observation domains; past it the template announced
	// longest ago is dropped. Default DefaultMaxTemplates.
	MaxTemplates int
	// TemplateTTL is how long a template lives after it was last
	// announced (RFC 7011 template lifetime). Set it well above the
	// exporters' template refresh interval (Cisco's default is 30 minutes).
	// Default DefaultTemplateTTL.
	TemplateTTL time.Duration
	// MaxTemplateFields bounds the template fields each worker holds over
	// all exporters (about 16 bytes each), so that spoofed exporters cannot
	// exhaust memory; a template past it is refused and its datagram counted
	// as malformed. Default DefaultMaxTemplateFields.
	MaxTemplateFields int
	// MaxRecordPPS and MaxRecordBPS bound the rates one record may imply
	// (see DecoderConfig). Defaults DefaultMaxRecordPPS, DefaultMaxRecordBPS.
	MaxRecordPPS, MaxRecordBPS float64
}

// Defaults for ListenerConfig.
const (
	DefaultReceiveBuffer     = 32 << 20
	DefaultQueueSize         = 4096
	DefaultWorkers           = 1
	DefaultMaxExporters      = 4096
	DefaultExporterIdle      = time.Hour
	DefaultMaxTemplates      = 512
	DefaultTemplateTTL       = 2 * time.Hour
	DefaultMaxTemplateFields = 1 << 22

	maxDatagram       = 9216 // larger datagrams are truncated and counted as malformed
	maxBatch          = 1024
	malformedLogEvery = 10 * time.Second
)

// DefaultListenerConfig returns a listener configuration for protocol p with
// every default filled in. Listen must still be set.
func DefaultListenerConfig(p Protocol) ListenerConfig {
	return ListenerConfig{
		Protocol:          p,
		ReceiveBuffer:     DefaultReceiveBuffer,
		QueueSize:         DefaultQueueSize,
		Workers:           DefaultWorkers,
		DefaultSampling:   1,
		MaxExporters:      DefaultMaxExporters,
		ExporterIdle:      DefaultExporterIdle,
		MaxTemplates:      DefaultMaxTemplates,
		TemplateTTL:       DefaultTemplateTTL,
		MaxTemplateFields: DefaultMaxTemplateFields,
	}
}

// withDefaults returns lc with zero values replaced by the defaults.
func (lc ListenerConfig) withDefaults(index int) ListenerConfig {
	d := DefaultListenerConfig(lc.Protocol)
	lc.Name = cmp.Or(lc.Name, fmt.Sprintf("%s-%d", lc.Protocol, index))
	lc.ReceiveBuffer = cmp.Or(lc.ReceiveBuffer, d.ReceiveBuffer)
	lc.QueueSize = cmp.Or(lc.QueueSize, d.QueueSize)
	lc.Workers = cmp.Or(lc.Workers, d.Workers)
	lc.DefaultSampling = cmp.Or(lc.DefaultSampling, d.DefaultSampling)
	lc.MaxExporters = cmp.Or(lc.MaxExporters, d.MaxExporters)
	lc.ExporterIdle = cmp.Or(lc.ExporterIdle, d.ExporterIdle)
	lc.MaxTemplates = cmp.Or(lc.MaxTemplates, d.MaxTemplates)
	lc.TemplateTTL = cmp.Or(lc.TemplateTTL, d.TemplateTTL)
	lc.MaxTemplateFields = cmp.Or(lc.MaxTemplateFields, d.MaxTemplateFields)
	return lc
}

// Validate reports the first problem of a listener whose defaults have
// been applied.
func (lc *ListenerConfig) Validate() error {
	if lc.Protocol != ProtoNetFlow && lc.Protocol != ProtoSFlow {
		return fmt.Errorf("flow listener %q: unknown protocol %q (want %q or %q)", lc.Name, lc.Protocol, ProtoNetFlow, ProtoSFlow)
	}
	if _, err := netip.ParseAddrPort(lc.Listen); err != nil {
		return fmt.Errorf("flow listener %q: listen address: %w", lc.Name, err)
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"receive buffer", int64(lc.ReceiveBuffer)},
		{"queue size", int64(lc.QueueSize)},
		{"workers", int64(lc.Workers)},
		{"max exporters", int64(lc.MaxExporters)},
		{"exporter idle time", int64(lc.ExporterIdle)},
		{"max templates", int64(lc.MaxTemplates)},
		{"template TTL", int64(lc.TemplateTTL)},
		{"max template fields", int64(lc.MaxTemplateFields)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("flow listener %q: %s must be positive, got %d", lc.Name, p.name, p.v)
		}
	}
	if lc.Workers > 256 {
		return fmt.Errorf("flow listener %q: %d workers, at most 256", lc.Name, lc.Workers)
	}
	if lc.DefaultSampling == 0 || lc.DefaultSampling > MaxSamplingRate {
		return fmt.Errorf("flow listener %q: default sampling rate %d out of range 1..%d", lc.Name, lc.DefaultSampling, MaxSamplingRate)
	}
	for a, r := range lc.Sampling {
		if !a.IsValid() {
			return fmt.Errorf("flow listener %q: sampling override for an invalid address", lc.Name)
		}
		if r == 0 || r > MaxSamplingRate {
			return fmt.Errorf("flow listener %q: sampling rate %d for exporter %s out of range 1..%d", lc.Name, r, a, MaxSamplingRate)
		}
	}
	for _, p := range lc.AllowedExporters {
		if !p.IsValid() {
			return fmt.Errorf("flow listener %q: invalid allowed exporter prefix", lc.Name)
		}
	}
	return nil
}

// Config is the collector's configuration.
type Config struct {
	// Listeners are the UDP sockets to open; names and addresses must be
	// unique.
	Listeners []ListenerConfig
}

// DefaultConfig returns a configuration without listeners; add them from
// DefaultListenerConfig.
func DefaultConfig() Config { return Config{} }

// Validate applies the defaults to a copy of cfg and reports the first
// problem.
func (cfg Config) Validate() error {
	_, err := cfg.normalize()
	return err
}

func (cfg Config) normalize() ([]ListenerConfig, error) {
	out := make([]ListenerConfig, 0, len(cfg.Listeners))
	names := make(map[string]bool)
	addrs := make(map[netip.AddrPort]string)
	for i, lc := range cfg.Listeners {
		lc = lc.withDefaults(i)
		if err := lc.Validate(); err != nil {
			return nil, err
		}
		if names[lc.Name] {
			return nil, fmt.Errorf("flow listener %q: name used twice", lc.Name)
		}
		names[lc.Name] = true
		ap := netip.MustParseAddrPort(lc.Listen)
		if other, ok := addrs[ap]; ok && ap.Port() != 0 {
			return nil, fmt.Errorf("flow listener %q: address %s already used by listener %q", lc.Name, lc.Listen, other)
		}
		addrs[ap] = lc.Name
		out = append(out, lc)
	}
	return out, nil
}

// Stats are a listener's counters since the collector was made.
type Stats struct {
	Name     string
	Protocol Protocol
	// Addr is the configured listen address.
	Addr string
	// Datagrams and Bytes count what was read from the socket.
	Datagrams uint64
	Bytes     uint64
	// Records counts records handed to the sink.
	Records uint64
	// Malformed counts datagrams rejected, whole or in part.
	Malformed uint64
	// UnknownTemplate counts datagrams with data for a template not (or no
	// longer) known.
	UnknownTemplate uint64
	// QueueDrops counts datagrams dropped because the worker's queue was
	// full.
	QueueDrops uint64
	// Refused counts datagrams from addresses outside AllowedExporters.
	Refused uint64
	// CounterSamples counts sFlow counter samples, skipped.
	CounterSamples uint64
	// TemplatesDropped counts templates that expired or were evicted.
	TemplatesDropped uint64
	// ExportersDropped counts exporters forgotten by the decoders (idle or
	// evicted from a full table).
	ExportersDropped uint64
	// Exporters are the per-exporter counters of the exporters currently
	// tracked, by address.
	Exporters []ExporterStats
}

// ExporterStats are the counters of one exporter address (the UDP source
// address of its datagrams).
type ExporterStats struct {
	Addr            netip.Addr
	Datagrams       uint64
	Bytes           uint64
	Records         uint64
	Malformed       uint64
	UnknownTemplate uint64
	QueueDrops      uint64
	// LastSeen is when the last datagram arrived.
	LastSeen time.Time
}

// Collector receives flow exports on UDP and hands records to a sink.
type Collector struct {
	sink      sources.Sink
	log       hclog.Logger
	listeners []*listener

	mu     sync.Mutex
	cancel context.CancelFunc
	group  *errgroup.Group
	done   chan struct{} // closed when the group has ended
	failed chan error    // yields a reader's failure, once per Start
}

type datagram struct {
	buf  *[]byte
	n    int
	from netip.Addr
	exp  *exporterCounters
	at   time.Time
}

type listener struct {
	cfg       ListenerConfig
	log       hclog.Logger
	conn      *net.UDPConn
	queues    []chan datagram
	pool      sync.Pool
	seed      maphash.Seed
	exporters exporterTable

	datagrams, bytes, records      atomic.Uint64
	malformed, unknown, queueDrops atomic.Uint64
	refused, counterSamples        atomic.Uint64
	templatesDropped, expDropped   atomic.Uint64
	lastMalformedLog               atomic.Int64
	suppressed                     atomic.Uint64
}

// New checks cfg, applies its defaults and returns a collector that has
// opened nothing yet.
func New(cfg Config, sink sources.Sink, logger hclog.Logger) (*Collector, error) {
	if sink == nil {
		return nil, errors.New("flow collector: nil sink")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	lcs, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	c := &Collector{sink: sink, log: logger.Named("flow")}
	for _, lc := range lcs {
		l := &listener{cfg: lc, log: c.log.Named(lc.Name), seed: maphash.MakeSeed()}
		l.exporters.init(lc.MaxExporters, lc.ExporterIdle)
		l.pool.New = func() any { b := make([]byte, maxDatagram); return &b }
		c.listeners = append(c.listeners, l)
	}
	return c, nil
}

// Start opens every listener and starts its reader and workers. It fails,
// with nothing left open, if any socket cannot be bound.
func (c *Collector) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return errors.New("flow collector: already started")
	}
	for i, l := range c.listeners {
		if err := l.open(); err != nil {
			for _, o := range c.listeners[:i] {
				o.conn.Close()
			}
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	g, ctx := errgroup.WithContext(ctx)
	c.cancel, c.group = cancel, g
	c.done, c.failed = make(chan struct{}), make(chan error, 1)
	for _, l := range c.listeners {
		l.queues = make([]chan datagram, l.cfg.Workers)
		for w := range l.queues {
			q := make(chan datagram, l.cfg.QueueSize)
			l.queues[w] = q
			g.Go(func() error {
				l.work(q, c.sink)
				return nil
			})
		}
		failed := c.failed
		g.Go(func() error {
			err := l.read(ctx)
			for _, q := range l.queues {
				close(q)
			}
			if err != nil {
				// The errgroup stops the other listeners; the
				// supervisor is told and restarts the collector.
				select {
				case failed <- err:
				default:
				}
			}
			return err
		})
		g.Go(func() error {
			<-ctx.Done()
			return l.conn.Close() // unblocks the reader
		})
		l.log.Info("listening", "protocol", l.cfg.Protocol, "addr", l.conn.LocalAddr().String(), "workers", l.cfg.Workers)
	}
	done := c.done
	go func() {
		_ = g.Wait()
		close(done)
	}()
	return nil
}

// Failed yields the error of a listener whose socket failed while the
// collector ran (after which every listener of the collector has
// stopped); see supervisor.Failer. It is nil before the first Start.
func (c *Collector) Failed() <-chan error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// Stop closes the sockets, lets the workers drain their queues into the
// sink and waits for every goroutine, or for ctx. The collector can be
// started again afterwards; counters carry on, decoder state (templates)
// starts afresh. It returns nil after a run-time failure already reported
// by Failed.
func (c *Collector) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("flow collector: stop: %w", ctx.Err())
	}
	c.cancel, c.group = nil, nil
	var recs uint64
	for _, l := range c.listeners {
		recs += l.records.Load()
	}
	c.log.Info("stopped; queues drained", "records", recs)
	return nil
}

// Addrs returns the bound address of every listener, in configuration
// order (useful when a listener was configured with port 0).
func (c *Collector) Addrs() []netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(c.listeners))
	for _, l := range c.listeners {
		if l.conn == nil {
			out = append(out, netip.AddrPort{})
			continue
		}
		out = append(out, l.conn.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return out
}

// Stats returns every listener's counters, with its exporters sorted by
// address. It is safe to call at any time, from any goroutine.
func (c *Collector) Stats() []Stats {
	out := make([]Stats, 0, len(c.listeners))
	for _, l := range c.listeners {
		out = append(out, Stats{
			Name:             l.cfg.Name,
			Protocol:         l.cfg.Protocol,
			Addr:             l.cfg.Listen,
			Datagrams:        l.datagrams.Load(),
			Bytes:            l.bytes.Load(),
			Records:          l.records.Load(),
			Malformed:        l.malformed.Load(),
			UnknownTemplate:  l.unknown.Load(),
			QueueDrops:       l.queueDrops.Load(),
			Refused:          l.refused.Load(),
			CounterSamples:   l.counterSamples.Load(),
			TemplatesDropped: l.templatesDropped.Load(),
			ExportersDropped: l.expDropped.Load(),
			Exporters:        l.exporters.stats(),
		})
	}
	return out
}

func (l *listener) open() error {
	addr, err := net.ResolveUDPAddr("udp", l.cfg.Listen)
	if err != nil {
		return fmt.Errorf("flow listener %q: resolve %s: %w", l.cfg.Name, l.cfg.Listen, err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return fmt.Errorf("flow listener %q: listen udp %s: %w", l.cfg.Name, l.cfg.Listen, err)
	}
	got := setReceiveBuffer(conn, l.cfg.ReceiveBuffer)
	if got < l.cfg.ReceiveBuffer {
		l.log.Warn("receive buffer smaller than configured; raise net.core.rmem_max or run as root",
			"configured", l.cfg.ReceiveBuffer, "actual", got)
	}
	l.conn = conn
	return nil
}

// setReceiveBuffer asks for n bytes of receive buffer, forcing past
// net.core.rmem_max when privileged, and returns what the kernel granted
// (Linux reports twice the requested size; halve it back).
func setReceiveBuffer(conn *net.UDPConn, n int) int {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0
	}
	got := 0
	_ = raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
		if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil {
			got = v / 2
		}
	})
	return got
}

func (l *listener) allowed(a netip.Addr) bool {
	if len(l.cfg.AllowedExporters) == 0 {
		return true
	}
	for _, p := range l.cfg.AllowedExporters {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (l *listener) read(ctx context.Context) error {
	for {
		bp := l.pool.Get().(*[]byte)
		n, from, err := l.conn.ReadFromUDPAddrPort(*bp)
		if err != nil {
			l.pool.Put(bp)
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return fmt.Errorf("flow listener %q: read: %w", l.cfg.Name, err)
		}
		now := time.Now()
		l.datagrams.Add(1)
		l.bytes.Add(uint64(n))
		src := from.Addr().Unmap()
		if !l.allowed(src) {
			l.refused.Add(1)
			l.pool.Put(bp)
			continue
		}
		exp := l.exporters.get(src, now)
		exp.datagrams.Add(1)
		exp.bytes.Add(uint64(n))
		q := l.queues[0]
		if len(l.queues) > 1 {
			q = l.queues[maphash.Comparable(l.seed, src)%uint64(len(l.queues))]
		}
		select {
		case q <- datagram{buf: bp, n: n, from: src, exp: exp, at: now}:
		default:
			l.queueDrops.Add(1)
			exp.queueDrops.Add(1)
			l.pool.Put(bp)
		}
	}
}

func (l *listener) work(q <-chan datagram, sink sources.Sink) {
	dec := NewDecoder(DecoderConfig{
		Protocol:          l.cfg.Protocol,
		DefaultSampling:   l.cfg.DefaultSampling,
		Sampling:          l.cfg.Sampling,
		MaxExporters:      l.cfg.MaxExporters,
		ExporterIdle:      l.cfg.ExporterIdle,
		MaxTemplates:      l.cfg.MaxTemplates,
		TemplateTTL:       l.cfg.TemplateTTL,
		MaxTemplateFields: l.cfg.MaxTemplateFields,
		MaxRecordPPS:      l.cfg.MaxRecordPPS,
		MaxRecordBPS:      l.cfg.MaxRecordBPS,
	})
	var last DecoderStats
	batch := make([]sources.Record, 0, 2*maxBatch)
	// Records of datagrams that are already waiting go to the sink in one
	// batch: detection counts large batches about twice as fast per record
	// as one datagram's worth, and a batch goes out as soon as
	// the queue is empty, so nothing waits for more traffic.
	flush := func() {
		if len(batch) > 0 {
			sink.Ingest(batch)
		}
		if cap(batch) > 4*maxBatch {
			batch = make([]sources.Record, 0, 2*maxBatch) // do not keep a huge datagram's batch
		}
		batch = batch[:0]
	}
	for dg := range q {
		b := (*dg.buf)[:dg.n]
		had := len(batch)
		var err error
		if dg.n == maxDatagram {
			err = malformed("datagram of %d bytes or more truncated", maxDatagram)
		} else {
			batch, err = dec.Decode(dg.from, dg.at, b, batch)
		}
		l.pool.Put(dg.buf)
		if err != nil {
			l.countError(dg.from, dg.exp, err)
		}
		if n := len(batch) - had; n > 0 {
			l.records.Add(uint64(n))
			dg.exp.records.Add(uint64(n))
		}
		if st := dec.Stats(); st != last {
			l.counterSamples.Add(st.CounterSamples - last.CounterSamples)
			l.templatesDropped.Add(st.TemplatesDropped - last.TemplatesDropped)
			l.expDropped.Add(st.ExportersDropped - last.ExportersDropped)
			last = st
		}
		if len(batch) >= maxBatch || len(q) == 0 {
			flush()
		}
	}
	flush()
}

// countError counts a decode error and logs it at most once per
// malformedLogEvery, with the number of errors not logged since.
func (l *listener) countError(from netip.Addr, exp *exporterCounters, err error) {
	if errors.Is(err, ErrUnknownTemplate) {
		l.unknown.Add(1)
		exp.unknown.Add(1)
	} else {
		l.malformed.Add(1)
		exp.malformed.Add(1)
	}
	now := time.Now().UnixNano()
	last := l.lastMalformedLog.Load()
	if now-last < int64(malformedLogEvery) || !l.lastMalformedLog.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	level := hclog.Warn
	if errors.Is(err, ErrUnknownTemplate) {
		level = hclog.Debug // normal until an exporter's next template refresh
	}
	l.log.Log(level, "bad datagram", "exporter", from.String(), "error", err.Error(), "suppressed_since_last", l.suppressed.Swap(0))
}

// exporterCounters are the counters of one exporter. The reader creates
// them; workers add to them through the pointer carried by each datagram.
type exporterCounters struct {
	addr                           netip.Addr
	datagrams, bytes, records      atomic.Uint64
	malformed, unknown, queueDrops atomic.Uint64
	lastSeen                       atomic.Int64 // Unix nanoseconds
}

// exporterTable maps exporter addresses to their counters, bounded. Only
// the listener's reader goroutine looks entries up and changes the map; it
// reads without the lock (it is the only writer) and writes under it, and
// Stats reads under it, so a datagram costs no lock.
type exporterTable struct {
	max  int
	idle time.Duration
	mu   sync.Mutex
	m    map[netip.Addr]*exporterCounters
}

func (t *exporterTable) init(max int, idle time.Duration) {
	t.max, t.idle = max, idle
	t.m = make(map[netip.Addr]*exporterCounters)
}

// get returns the counters of a, creating them (and making room) if
// needed, and marks a as seen at now. Reader goroutine only.
func (t *exporterTable) get(a netip.Addr, now time.Time) *exporterCounters {
	e, ok := t.m[a]
	if !ok {
		e = &exporterCounters{addr: a}
		t.mu.Lock()
		if len(t.m) >= t.max {
			evictOldest(t.m, t.max, now.Add(-t.idle),
				func(e *exporterCounters) time.Time { return time.Unix(0, e.lastSeen.Load()) }, nil)
		}
		t.m[a] = e
		t.mu.Unlock()
	}
	e.lastSeen.Store(now.UnixNano())
	return e
}

func (t *exporterTable) stats() []ExporterStats {
	t.mu.Lock()
	out := make([]ExporterStats, 0, len(t.m))
	for _, e := range t.m {
		out = append(out, ExporterStats{
			Addr:            e.addr,
			Datagrams:       e.datagrams.Load(),
			Bytes:           e.bytes.Load(),
			Records:         e.records.Load(),
			Malformed:       e.malformed.Load(),
			UnknownTemplate: e.unknown.Load(),
			QueueDrops:      e.queueDrops.Load(),
			LastSeen:        time.Unix(0, e.lastSeen.Load()),
		})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b ExporterStats) int { return a.Addr.Compare(b.Addr) })
	return out
}
