// Package mirror owns the port-mirror source: it captures the packets of
// one or more interfaces (a switch's SPAN or mirror port, a network tap)
// with AF_PACKET TPACKET_V3 rings through gopacket/afpacket, spreads them
// over several sockets per interface with a kernel fanout group, parses
// each packet with the zero-allocation header parser of sources/header, and
// hands records of one packet each to a sources.Sink.
//
// Capturing needs Linux, cgo (gopacket/afpacket) and CAP_NET_RAW; on other
// builds Start returns an error. Every socket is opened by Start in the
// calling goroutine's network namespace, so a test (or a daemon) can capture
// in a namespace by calling Start from a thread that has entered it.
//
// Promiscuous mode is a membership of the capture's own socket: the kernel
// drops it when the socket closes, so a crash never leaves an interface
// promiscuous.
package mirror

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/sources"
)

// Fanout modes: how the kernel spreads an interface's packets over its
// workers.
const (
	// FanoutHash sends all packets of a flow (by the kernel's flow hash) to
	// the same worker.
	FanoutHash = "hash"
	// FanoutLB spreads packets round-robin.
	FanoutLB = "lb"
	// FanoutCPU sends packets to the worker of the CPU that received them.
	FanoutCPU = "cpu"
	// FanoutRollover fills one worker's ring, then the next.
	FanoutRollover = "rollover"
	// FanoutRandom picks a worker at random.
	FanoutRandom = "random"
)

// Config is the configuration of a Capture. Zero numeric values mean the
// defaults; Promiscuous is false in the zero Config and true in
// DefaultConfig, so start from DefaultConfig.
type Config struct {
	// Name identifies the source in logs and status ("mirror" when
	// empty).
	Name string
	// Interfaces are the interfaces to capture from. Required; each name at
	// most once.
	Interfaces []string
	// Workers is the number of AF_PACKET sockets, each with its own ring
	// and goroutine, per interface; with more than one they form a fanout
	// group. Default 1.
	Workers int
	// Fanout is the fanout mode: FanoutHash (default), FanoutLB,
	// FanoutCPU, FanoutRollover or FanoutRandom.
	Fanout string
	// FanoutGroup is the fanout group ID of the first interface; the n-th
	// interface uses FanoutGroup+n. Groups are shared by every process of
	// the network namespace. Zero means derived from the process ID.
	FanoutGroup uint16
	// Promiscuous captures frames addressed to other hosts too, as a
	// mirror port needs. DefaultConfig sets it.
	Promiscuous bool
	// IncludeOutgoing also captures the packets this host sends on the
	// interfaces. Off, the default, a mirror port (which only receives) is
	// unaffected, and on other interfaces, such as lo, no packet is counted
	// twice.
	IncludeOutgoing bool
	// BlockSize is the size of one ring block in bytes, a multiple of the
	// page size. Default DefaultBlockSize.
	BlockSize int
	// NumBlocks is the number of blocks in each socket's ring. Default
	// DefaultNumBlocks. The ring, BlockSize*NumBlocks per socket, is what
	// absorbs bursts while the workers are busy.
	NumBlocks int
	// BlockTimeout is how long the kernel fills a block before it hands it
	// over partly full; it bounds the delay at low packet rates. Default
	// DefaultBlockTimeout, at least 1 ms.
	BlockTimeout time.Duration
	// BatchSize is the number of records handed to the sink at once. A
	// partial batch is handed over after FlushInterval. Default
	// DefaultBatchSize.
	BatchSize int
	// FlushInterval is the longest a record waits in a partial batch.
	// Default DefaultFlushInterval.
	FlushInterval time.Duration
}

// Defaults.
const (
	DefaultWorkers       = 1
	DefaultBlockSize     = 1 << 20
	DefaultNumBlocks     = 64
	DefaultBlockTimeout  = 10 * time.Millisecond
	DefaultBatchSize     = 256
	DefaultFlushInterval = 100 * time.Millisecond
	// frameSize is the TPACKET frame size. TPACKET_V3 packs packets of
	// any size into blocks; the frame size only has to divide the block.
	frameSize = 2048
	// pollTimeout bounds how long a worker waits for a packet before it
	// flushes its batch and checks for Stop.
	pollTimeout = 100 * time.Millisecond
)

// DefaultConfig returns the defaults; Interfaces must still be set.
func DefaultConfig() Config {
	return Config{
		Workers:       DefaultWorkers,
		Fanout:        FanoutHash,
		Promiscuous:   true,
		BlockSize:     DefaultBlockSize,
		NumBlocks:     DefaultNumBlocks,
		BlockTimeout:  DefaultBlockTimeout,
		BatchSize:     DefaultBatchSize,
		FlushInterval: DefaultFlushInterval,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Workers = cmp.Or(c.Workers, d.Workers)
	c.Fanout = cmp.Or(c.Fanout, d.Fanout)
	c.FanoutGroup = cmp.Or(c.FanoutGroup, uint16(os.Getpid()))
	c.BlockSize = cmp.Or(c.BlockSize, d.BlockSize)
	c.NumBlocks = cmp.Or(c.NumBlocks, d.NumBlocks)
	c.BlockTimeout = cmp.Or(c.BlockTimeout, d.BlockTimeout)
	c.BatchSize = cmp.Or(c.BatchSize, d.BatchSize)
	c.FlushInterval = cmp.Or(c.FlushInterval, d.FlushInterval)
	return c
}

// Validate reports the first problem of a configuration whose defaults
// have been applied.
func (c *Config) Validate() error {
	if len(c.Interfaces) == 0 {
		return errors.New("mirror: no interface")
	}
	seen := make(map[string]bool)
	for _, name := range c.Interfaces {
		if name == "" || len(name) > 15 {
			return fmt.Errorf("mirror: interface name %q", name)
		}
		if seen[name] {
			return fmt.Errorf("mirror: interface %q listed twice", name)
		}
		seen[name] = true
	}
	switch c.Fanout {
	case FanoutHash, FanoutLB, FanoutCPU, FanoutRollover, FanoutRandom:
	default:
		return fmt.Errorf("mirror: fanout %q, want one of %s, %s, %s, %s, %s",
			c.Fanout, FanoutHash, FanoutLB, FanoutCPU, FanoutRollover, FanoutRandom)
	}
	page := os.Getpagesize()
	switch {
	case c.Workers < 1 || c.Workers > 64:
		return fmt.Errorf("mirror: %d workers, want 1 to 64", c.Workers)
	case c.BlockSize < page || c.BlockSize%page != 0 || c.BlockSize%frameSize != 0:
		return fmt.Errorf("mirror: block size %d must be a multiple of the page size %d and of %d", c.BlockSize, page, frameSize)
	case c.NumBlocks < 1 || c.BlockSize*c.NumBlocks > 1<<30:
		return fmt.Errorf("mirror: %d blocks of %d bytes: want 1 or more, at most 1 GiB per socket", c.NumBlocks, c.BlockSize)
	case c.BlockTimeout < time.Millisecond:
		return fmt.Errorf("mirror: block timeout %v, at least 1ms", c.BlockTimeout)
	case c.BatchSize < 1 || c.BatchSize > 1<<16:
		return fmt.Errorf("mirror: batch size %d out of range 1..65536", c.BatchSize)
	case c.FlushInterval <= 0:
		return fmt.Errorf("mirror: flush interval %v must be positive", c.FlushInterval)
	case int(c.FanoutGroup)+len(c.Interfaces) > 1<<16:
		return fmt.Errorf("mirror: fanout group %d leaves no ID for %d interfaces", c.FanoutGroup, len(c.Interfaces))
	}
	return nil
}

// Stats are the counters of one interface.
type Stats struct {
	Interface string
	// Packets and Bytes count the packets read from the rings (Bytes:
	// their length on the wire).
	Packets, Bytes uint64
	// Records counts records handed to the sink.
	Records uint64
	// Skipped counts packets that are not IP or whose headers are cut or
	// malformed.
	Skipped uint64
	// KernelPackets and KernelDrops are the kernel's counters for the
	// sockets (drops: the ring was full), updated when Stats is called
	// while capturing.
	KernelPackets, KernelDrops uint64
}

// Capture captures packets from interfaces and hands records to a sink.
type Capture struct {
	cfg  Config
	sink sources.Sink
	log  hclog.Logger

	ifaces []*ifaceState

	mu      sync.Mutex
	running *run       // nil when stopped
	failed  chan error // the last run's; see Failed
}

// failAfter is how long a socket may fail without a packet in between
// before the capture reports itself failed.
const failAfter = 5 * time.Second

// Failed yields the error of a socket that stayed broken while the
// capture ran (see supervisor.Failer); the capture should then be stopped
// and started again. It is nil before the first Start.
func (c *Capture) Failed() <-chan error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// ifaceState holds the counters of one interface across starts.
type ifaceState struct {
	name                             string
	packets, bytes, records, skipped atomic.Uint64
	kernelPackets, kernelDrops       atomic.Uint64
	// The kernel counters of earlier runs' sockets; guarded by
	// Capture.mu.
	kernelPacketsBase, kernelDropsBase uint64
}

// New checks cfg, applies its defaults and returns a capture that has
// opened nothing yet.
func New(cfg Config, sink sources.Sink, logger hclog.Logger) (*Capture, error) {
	if sink == nil {
		return nil, errors.New("mirror: nil sink")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Capture{cfg: cfg, sink: sink, log: logger.Named("mirror")}
	for _, name := range cfg.Interfaces {
		c.ifaces = append(c.ifaces, &ifaceState{name: name})
	}
	return c, nil
}

// Stats returns the counters of every interface, in configuration order.
// It is safe to call at any time, from any goroutine.
func (c *Capture) Stats() []Stats {
	c.mu.Lock()
	if c.running != nil {
		c.running.pollKernelStats()
	}
	c.mu.Unlock()
	out := make([]Stats, 0, len(c.ifaces))
	for _, s := range c.ifaces {
		out = append(out, Stats{
			Interface:     s.name,
			Packets:       s.packets.Load(),
			Bytes:         s.bytes.Load(),
			Records:       s.records.Load(),
			Skipped:       s.skipped.Load(),
			KernelPackets: s.kernelPackets.Load(),
			KernelDrops:   s.kernelDrops.Load(),
		})
	}
	return out
}
