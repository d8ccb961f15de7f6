// Package flow owns the flow collector: UDP listeners for sFlow v5, NetFlow
// v5, NetFlow v9 and IPFIX, decoded with goflow2's decoders after checks of
// their own, turned into sources.Record batches scaled by the sampling rate,
// and handed to a sources.Sink.
//
// Each listener has one socket reader that never blocks on the decoders: it
// puts datagrams on bounded per-worker queues and counts what does not fit.
// An exporter's datagrams always go to the same worker, so templates arrive
// before the data that needs them and order is kept.
package flow

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/floodgate-ddos/floodgate/sources"
)

// ListenerConfig describes one UDP listener.
type ListenerConfig struct {
	// Name identifies the listener in logs and counters.
	Name string
	// Protocol is ProtoNetFlow (v5, v9 and IPFIX on one port) or
	// ProtoSFlow.
	Protocol Protocol
	// Listen is the UDP address, host:port ("127.0.0.1:2055", "[::]:6343").
	Listen string
	// ReceiveBuffer is the socket receive buffer in bytes. Zero means
	// DefaultReceiveBuffer. Flow exporters send in bursts; a small buffer
	// loses them in the kernel.
	ReceiveBuffer int
	// QueueSize is the number of datagrams each worker's queue holds.
	// Zero means DefaultQueueSize. A long queue delays detection more
	// than it saves: a full queue drops and counts.
	QueueSize int
	// Workers is the number of decoding goroutines. Zero means 1.
	Workers int
	// DefaultSampling is the sampling rate assumed when an export carries
	// none. Zero means 1.
	DefaultSampling uint32
	// Sampling overrides the sampling rate per exporter address.
	Sampling map[netip.Addr]uint32
}

// Defaults for ListenerConfig.
const (
	DefaultReceiveBuffer = 32 << 20
	DefaultQueueSize     = 4096
	maxDatagram          = 9216 // larger datagrams are truncated and counted as malformed
	maxBatch             = 1024
	malformedLogEvery    = 10 * time.Second
)

// Config is the collector's configuration.
type Config struct {
	// Listeners are the UDP sockets to open.
	Listeners []ListenerConfig
}

// Stats are a listener's counters since start.
type Stats struct {
	Name            string
	Protocol        Protocol
	Addr            string
	Datagrams       uint64
	Bytes           uint64
	Records         uint64
	Malformed       uint64
	UnknownTemplate uint64
	QueueDrops      uint64
}

// Collector receives flow exports on UDP and hands records to a sink.
type Collector struct {
	cfg       Config
	sink      sources.Sink
	log       hclog.Logger
	listeners []*listener

	mu     sync.Mutex
	cancel context.CancelFunc
	group  *errgroup.Group
}

type datagram struct {
	buf  *[]byte
	n    int
	from netip.Addr
	at   time.Time
}

type listener struct {
	cfg    ListenerConfig
	log    hclog.Logger
	conn   *net.UDPConn
	queues []chan datagram
	pool   sync.Pool
	seed   maphash.Seed

	datagrams, bytes, records      atomic.Uint64
	malformed, unknown, queueDrops atomic.Uint64
	lastMalformedLog               atomic.Int64
	suppressed                     atomic.Uint64
}

// New checks cfg and returns a collector that has opened nothing yet.
func New(cfg Config, sink sources.Sink, logger hclog.Logger) (*Collector, error) {
	if sink == nil {
		return nil, errors.New("flow collector: nil sink")
	}
	c := &Collector{cfg: cfg, sink: sink, log: logger.Named("flow")}
	for i, lc := range cfg.Listeners {
		if lc.Protocol != ProtoNetFlow && lc.Protocol != ProtoSFlow {
			return nil, fmt.Errorf("flow listener %q: unknown protocol %q", lc.Name, lc.Protocol)
		}
		if _, err := netip.ParseAddrPort(lc.Listen); err != nil {
			return nil, fmt.Errorf("flow listener %q: listen address: %w", lc.Name, err)
		}
		if lc.Name == "" {
			lc.Name = fmt.Sprintf("%s-%d", lc.Protocol, i)
		}
		if lc.ReceiveBuffer <= 0 {
			lc.ReceiveBuffer = DefaultReceiveBuffer
		}
		if lc.QueueSize <= 0 {
			lc.QueueSize = DefaultQueueSize
		}
		if lc.Workers <= 0 {
			lc.Workers = 1
		}
		l := &listener{cfg: lc, log: c.log.Named(lc.Name), seed: maphash.MakeSeed()}
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
		g.Go(func() error {
			err := l.read(ctx)
			for _, q := range l.queues {
				close(q)
			}
			return err
		})
		g.Go(func() error {
			<-ctx.Done()
			return l.conn.Close() // unblocks the reader
		})
		l.log.Info("listening", "protocol", l.cfg.Protocol, "addr", l.conn.LocalAddr().String(), "workers", l.cfg.Workers)
	}
	return nil
}

// Stop closes the sockets, lets the workers drain their queues and waits for
// every goroutine. The collector can be started again afterwards.
func (c *Collector) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	err := c.group.Wait()
	c.cancel, c.group = nil, nil
	return err
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

// Stats returns every listener's counters.
func (c *Collector) Stats() []Stats {
	out := make([]Stats, 0, len(c.listeners))
	for _, l := range c.listeners {
		out = append(out, Stats{
			Name:            l.cfg.Name,
			Protocol:        l.cfg.Protocol,
			Addr:            l.cfg.Listen,
			Datagrams:       l.datagrams.Load(),
			Bytes:           l.bytes.Load(),
			Records:         l.records.Load(),
			Malformed:       l.malformed.Load(),
			UnknownTemplate: l.unknown.Load(),
			QueueDrops:      l.queueDrops.Load(),
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
		l.datagrams.Add(1)
		l.bytes.Add(uint64(n))
		src := from.Addr().Unmap()
		q := l.queues[0]
		if len(l.queues) > 1 {
			q = l.queues[maphash.Comparable(l.seed, src)%uint64(len(l.queues))]
		}
		select {
		case q <- datagram{buf: bp, n: n, from: src, at: time.Now()}:
		default:
			l.queueDrops.Add(1)
			l.pool.Put(bp)
		}
	}
}

func (l *listener) work(q <-chan datagram, sink sources.Sink) {
	dec := NewDecoder(DecoderConfig{
		Protocol:        l.cfg.Protocol,
		DefaultSampling: l.cfg.DefaultSampling,
		Sampling:        l.cfg.Sampling,
	})
	batch := make([]sources.Record, 0, maxBatch)
	for dg := range q {
		b := (*dg.buf)[:dg.n]
		var err error
		if dg.n == maxDatagram {
			err = malformed("datagram of %d bytes or more truncated", maxDatagram)
		} else {
			batch, err = dec.Decode(dg.from, dg.at, b, batch[:0])
		}
		l.pool.Put(dg.buf)
		if err != nil {
			l.countError(dg.from, err)
		}
		if len(batch) > 0 {
			l.records.Add(uint64(len(batch)))
			sink.Ingest(batch)
		}
		if cap(batch) > 4*maxBatch {
			batch = make([]sources.Record, 0, maxBatch) // do not keep a huge datagram's batch
		}
	}
}

// countError counts a decode error and logs it at most once per
// malformedLogEvery, with the number of errors not logged since.
func (l *listener) countError(from netip.Addr, err error) {
	if errors.Is(err, ErrUnknownTemplate) {
		l.unknown.Add(1)
	} else {
		l.malformed.Add(1)
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
