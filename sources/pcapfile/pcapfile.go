// Package pcapfile owns capture replay as a traffic source: it reads a pcap
// or pcapng file (pure Go, gopacket/pcapgo), parses every packet with the
// zero-allocation header parser of sources/header, and hands the packets to
// a sources.Sink as records, at the speed they were recorded (or a multiple
// of it) or as fast as possible. A replay produces the same records as the
// mirror source would have for the same packets on the wire.
//
// A Replayer plays its file once (or Loops times) and then stops by itself:
// Done is closed and Err says why it stopped. Stop ends it early.
package pcapfile

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/header"
)

// Timestamps says which time a replayed record carries.
type Timestamps string

// Timestamp modes.
const (
	// TimeReplay stamps each record with the time it is handed to the sink,
	// as if the packet had just been seen: what a live detector needs.
	TimeReplay Timestamps = "replay"
	// TimeCapture keeps the time recorded in the file.
	TimeCapture Timestamps = "capture"
)

// Config is the configuration of a Replayer.
type Config struct {
	// Name identifies the source in logs and status ("pcap" when empty).
	Name string
	// Path is the capture file, pcap (microsecond or nanosecond) or pcapng,
	// told apart by its first bytes. Required.
	Path string
	// Speed is the replay speed relative to the recording: 1 replays at
	// the recorded pace, 2 twice as fast, 0 as fast as possible. Default 0.
	Speed float64
	// Loops is how many times the file is played. Default 1.
	Loops int
	// Sampling says that the capture holds 1 packet in Sampling: the counts
	// of every record are multiplied by it. Default 1.
	Sampling uint32
	// Timestamps is TimeReplay (default) or TimeCapture.
	Timestamps Timestamps
	// BatchSize is the number of records handed to the sink at once.
	// Default DefaultBatchSize. When replaying at recorded speed, a batch
	// is also handed over before every wait, so records are never held
	// back for longer than the gap to the next packet.
	BatchSize int
}

// Defaults.
const (
	DefaultBatchSize = 256
	// maxSleepAhead is how far ahead of its packets the replay may run
	// before it waits.
	maxSleepAhead = time.Millisecond
)

// DefaultConfig returns the defaults; Path must still be set.
func DefaultConfig() Config {
	return Config{Loops: 1, Sampling: 1, Timestamps: TimeReplay, BatchSize: DefaultBatchSize}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Loops = cmp.Or(c.Loops, d.Loops)
	c.Sampling = cmp.Or(c.Sampling, d.Sampling)
	c.Timestamps = cmp.Or(c.Timestamps, d.Timestamps)
	c.BatchSize = cmp.Or(c.BatchSize, d.BatchSize)
	return c
}

// Validate reports the first problem of a configuration whose defaults
// have been applied.
func (c *Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("pcap replay: no file")
	case c.Speed < 0 || c.Speed > 1e6:
		return fmt.Errorf("pcap replay %s: speed %g out of range 0..1e6", c.Path, c.Speed)
	case c.Loops < 1:
		return fmt.Errorf("pcap replay %s: loops %d, at least 1", c.Path, c.Loops)
	case c.Sampling < 1 || c.Sampling > 1<<24:
		return fmt.Errorf("pcap replay %s: sampling %d out of range 1..%d", c.Path, c.Sampling, 1<<24)
	case c.Timestamps != TimeReplay && c.Timestamps != TimeCapture:
		return fmt.Errorf("pcap replay %s: timestamps %q, want %q or %q", c.Path, c.Timestamps, TimeReplay, TimeCapture)
	case c.BatchSize < 1 || c.BatchSize > 1<<16:
		return fmt.Errorf("pcap replay %s: batch size %d out of range 1..65536", c.Path, c.BatchSize)
	}
	return nil
}

// Stats are a replayer's counters.
type Stats struct {
	// Packets and Bytes count the packets read (Bytes: their length on
	// the wire as recorded).
	Packets, Bytes uint64
	// Records counts records handed to the sink.
	Records uint64
	// Skipped counts packets that are not IP or whose headers are cut or
	// malformed.
	Skipped uint64
	// Loops counts complete plays of the file.
	Loops uint64
}

// Replayer replays one capture file into a sink.
type Replayer struct {
	cfg  Config
	sink sources.Sink
	log  hclog.Logger

	packets, bytes, records, skipped, loops atomic.Uint64

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// New checks cfg, applies its defaults and returns a replayer that has
// opened nothing yet.
func New(cfg Config, sink sources.Sink, logger hclog.Logger) (*Replayer, error) {
	if sink == nil {
		return nil, errors.New("pcap replay: nil sink")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	close(done)
	return &Replayer{cfg: cfg, sink: sink, log: logger.Named("pcap"), done: done}, nil
}

// Start opens the file, checks its header and starts the replay. It
// returns an error, with nothing running, if the file cannot be read or its
// link type is not supported. A replay that has finished may be started
// again.
func (r *Replayer) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		select {
		case <-r.done:
			r.cancel()
		default:
			return errors.New("pcap replay: already started")
		}
	}
	src, err := open(r.cfg.Path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	r.cancel, r.done, r.err = cancel, make(chan struct{}), nil
	done := r.done
	r.log.Info("replaying", "file", r.cfg.Path, "speed", r.cfg.Speed, "loops", r.cfg.Loops)
	go func() {
		defer close(done)
		err := r.run(ctx, src)
		src.close()
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		if err != nil {
			r.log.Error("replay failed", "file", r.cfg.Path, "error", err.Error())
		} else {
			r.log.Info("replay done", "file", r.cfg.Path, "packets", r.packets.Load(), "records", r.records.Load())
		}
	}()
	return nil
}

// Stop ends the replay, if it is running, and waits for it or for ctx.
func (r *Replayer) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel = nil
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("pcap replay: stop: %w", ctx.Err())
	}
	return nil
}

// Done is closed when the replay has ended: played out, stopped, or
// failed.
func (r *Replayer) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// Err returns why the last replay ended: nil when it played out or was
// stopped, the read error otherwise. It is meaningful once Done is closed.
func (r *Replayer) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Stats returns the counters since the replayer was made.
func (r *Replayer) Stats() Stats {
	return Stats{
		Packets: r.packets.Load(),
		Bytes:   r.bytes.Load(),
		Records: r.records.Load(),
		Skipped: r.skipped.Load(),
		Loops:   r.loops.Load(),
	}
}

// source is an open capture file.
type source struct {
	f    *os.File
	next func() ([]byte, gopacket.CaptureInfo, error)
	// link returns how to parse a packet captured on interface iface
	// (pcapng files may mix link types).
	link func(iface int) (linkType, error)
}

func (s *source) close() { s.f.Close() }

// linkType tells how to reach the network header of a packet.
type linkType struct {
	link   int // header.Link*
	offset int // bytes to skip first
}

// pcapngMagic is the block type of a pcapng section header.
const pcapngMagic = 0x0a0d0d0a

func open(path string) (*source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pcap replay: %w", err)
	}
	s := &source{f: f}
	if err := s.reset(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// reset (re)reads the file header from the start of the file.
func (s *source) reset() error {
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("pcap replay %s: %w", s.f.Name(), err)
	}
	br := bufio.NewReaderSize(s.f, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		return fmt.Errorf("pcap replay %s: read header: %w", s.f.Name(), err)
	}
	if binary.BigEndian.Uint32(magic) == pcapngMagic {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return fmt.Errorf("pcap replay %s: pcapng: %w", s.f.Name(), err)
		}
		s.next = ng.ZeroCopyReadPacketData
		var links []linkType // by interface, resolved as they appear
		s.link = func(iface int) (linkType, error) {
			if iface < len(links) {
				return links[iface], nil
			}
			intf, err := ng.Interface(iface)
			if err != nil {
				return linkType{}, err
			}
			lt, err := linkOf(intf.LinkType)
			if err == nil && iface == len(links) {
				links = append(links, lt)
			}
			return lt, err
		}
		if _, err := s.link(0); err != nil {
			return fmt.Errorf("pcap replay %s: %w", s.f.Name(), err)
		}
		return nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return fmt.Errorf("pcap replay %s: %w", s.f.Name(), err)
	}
	lt, err := linkOf(pr.LinkType())
	if err != nil {
		return fmt.Errorf("pcap replay %s: %w", s.f.Name(), err)
	}
	s.next = pr.ZeroCopyReadPacketData
	s.link = func(int) (linkType, error) { return lt, nil }
	return nil
}

// Link types (LINKTYPE_* of the pcap format) the replayer reads.
const (
	linkNull     = 0   // BSD loopback: 4-byte address family in host order
	linkEthernet = 1   // Ethernet II
	linkRawOld   = 12  // DLT_RAW as written on some systems
	linkRawOBSD  = 14  // DLT_RAW on OpenBSD
	linkRaw      = 101 // raw IPv4 or IPv6
	linkLoop     = 108 // OpenBSD loopback: family in network order
	linkLinuxSLL = 113 // Linux cooked capture v1 (tcpdump -i any)
	linkIPv4     = 228
	linkIPv6     = 229
	// Linux cooked capture v2 (276) cannot be told apart: gopacket 1.1.19
	// keeps link types in 8 bits.
)

func linkOf(lt layers.LinkType) (linkType, error) {
	switch int(lt) {
	case linkEthernet:
		return linkType{header.LinkEthernet, 0}, nil
	case linkRaw, linkRawOld, linkRawOBSD:
		return linkType{header.LinkRawIP, 0}, nil
	case linkIPv4:
		return linkType{header.LinkIPv4, 0}, nil
	case linkIPv6:
		return linkType{header.LinkIPv6, 0}, nil
	case linkNull, linkLoop:
		return linkType{header.LinkRawIP, 4}, nil
	case linkLinuxSLL:
		// The 16-byte cooked header ends with the EtherType, as an
		// Ethernet header does 2 bytes earlier: parse from offset 2 as
		// Ethernet (VLAN tags and MPLS follow as they would).
		return linkType{header.LinkEthernet, 2}, nil
	}
	return linkType{}, fmt.Errorf("link type %s (%d) not supported", lt, int(lt))
}

// parse parses one packet of the given link type into p.
func parse(data []byte, lt linkType, p *header.Packet) error {
	if len(data) < lt.offset {
		return header.ErrTruncated
	}
	return header.Parse(data[lt.offset:], lt.link, p)
}

func (r *Replayer) run(ctx context.Context, src *source) error {
	batch := make([]sources.Record, 0, r.cfg.BatchSize)
	flush := func() {
		if len(batch) > 0 {
			r.records.Add(uint64(len(batch)))
			r.sink.Ingest(batch)
			batch = batch[:0]
		}
	}
	defer flush()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var p header.Packet
	for loop := 0; loop < r.cfg.Loops; loop++ {
		if loop > 0 {
			if err := src.reset(); err != nil {
				return err
			}
		}
		var first time.Time
		var wallStart time.Time
		for n := 0; ; n++ {
			if n%1024 == 0 && ctx.Err() != nil {
				return nil
			}
			data, ci, err := src.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				r.log.Warn("capture file ends in the middle of a packet", "file", r.cfg.Path)
				break
			}
			if err != nil {
				return fmt.Errorf("pcap replay %s: packet %d: %w", r.cfg.Path, n+1, err)
			}
			r.packets.Add(1)
			r.bytes.Add(uint64(ci.Length))
			if r.cfg.Speed > 0 {
				if first.IsZero() {
					first, wallStart = ci.Timestamp, time.Now()
				}
				due := wallStart.Add(time.Duration(float64(ci.Timestamp.Sub(first)) / r.cfg.Speed))
				if wait := time.Until(due); wait > maxSleepAhead {
					flush()
					if timer == nil {
						timer = time.NewTimer(wait)
					} else {
						timer.Reset(wait)
					}
					select {
					case <-ctx.Done():
						return nil
					case <-timer.C:
					}
				}
			}
			lt, err := src.link(ci.InterfaceIndex)
			if err != nil {
				r.skipped.Add(1)
				continue
			}
			if err := parse(data, lt, &p); err != nil {
				r.skipped.Add(1)
				continue
			}
			batch = append(batch, sources.Record{Sampling: r.cfg.Sampling})
			rec := &batch[len(batch)-1]
			p.FillRecord(rec)
			rec.Packets *= uint64(r.cfg.Sampling)
			rec.Bytes *= uint64(r.cfg.Sampling)
			ts := ci.Timestamp.UnixNano()
			if r.cfg.Timestamps == TimeReplay {
				ts = time.Now().UnixNano()
			}
			rec.Start, rec.End = ts, ts
			if len(batch) == cap(batch) {
				flush()
			}
		}
		r.loops.Add(1)
	}
	return nil
}
