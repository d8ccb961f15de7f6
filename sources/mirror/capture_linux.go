//go:build linux && cgo

package mirror

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/google/gopacket/afpacket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/header"
)

// run is one Start..Stop of a capture: its sockets and goroutines.
type run struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	failed  chan error // yields the first socket that stays broken
	sockets []*socket
	promisc []int // file descriptors holding promiscuous memberships
}

// socket is one AF_PACKET ring of one interface, read by one worker.
type socket struct {
	iface *ifaceState
	tp    *afpacket.TPacket
	link  int // header.Link* of the interface's frames
}

var fanoutModes = map[string]afpacket.FanoutType{
	FanoutHash:     afpacket.FanoutHash,
	FanoutLB:       afpacket.FanoutLoadBalance,
	FanoutCPU:      afpacket.FanoutCPU,
	FanoutRollover: afpacket.FanoutRollover,
	FanoutRandom:   afpacket.FanoutRandom,
}

// incomingOnly is a classic BPF program that drops the packets the host
// sends (packet type PACKET_OUTGOING).
var incomingOnly = func() []bpf.RawInstruction {
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1},
		bpf.RetConstant{Val: 1 << 18},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		panic(err) // a constant program
	}
	return prog
}()

// Start opens every socket (in the network namespace of the calling
// thread), joins the fanout groups, sets promiscuous mode, and starts one
// goroutine per socket. It fails, with nothing left open, if any interface
// cannot be captured.
func (c *Capture) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running != nil {
		return errors.New("mirror: already started")
	}
	r := &run{failed: make(chan error, 1)}
	if err := c.open(r); err != nil {
		r.close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	for _, s := range r.sockets {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := c.read(ctx, s); err != nil {
				select {
				case r.failed <- err:
				default:
				}
			}
		}()
	}
	c.running = r
	c.failed = r.failed
	c.log.Info("capturing", "interfaces", c.cfg.Interfaces, "workers", c.cfg.Workers, "fanout", c.cfg.Fanout)
	return nil
}

func (c *Capture) open(r *run) error {
	for i, st := range c.ifaces {
		ifi, err := net.InterfaceByName(st.name)
		if err != nil {
			return fmt.Errorf("mirror: interface %s: %w", st.name, err)
		}
		link := header.LinkEthernet
		if len(ifi.HardwareAddr) == 0 && ifi.Flags&net.FlagLoopback == 0 {
			link = header.LinkRawIP // tun and other interfaces without a link header
		}
		for range c.cfg.Workers {
			tp, err := afpacket.NewTPacket(
				afpacket.OptInterface(st.name),
				afpacket.TPacketVersion3,
				afpacket.OptFrameSize(frameSize),
				afpacket.OptBlockSize(c.cfg.BlockSize),
				afpacket.OptNumBlocks(c.cfg.NumBlocks),
				afpacket.OptBlockTimeout(c.cfg.BlockTimeout),
				afpacket.OptPollTimeout(pollTimeout),
			)
			if err != nil {
				return fmt.Errorf("mirror: open AF_PACKET socket on %s: %w", st.name, err)
			}
			r.sockets = append(r.sockets, &socket{iface: st, tp: tp, link: link})
			if !c.cfg.IncludeOutgoing {
				if err := tp.SetBPF(incomingOnly); err != nil {
					return fmt.Errorf("mirror: filter outgoing packets on %s: %w", st.name, err)
				}
			}
			if c.cfg.Workers > 1 {
				id := c.cfg.FanoutGroup + uint16(i)
				if err := tp.SetFanout(fanoutModes[c.cfg.Fanout], id); err != nil {
					return fmt.Errorf("mirror: join fanout group %d on %s (another process using that group?): %w", id, st.name, err)
				}
			}
		}
		if c.cfg.Promiscuous {
			fd, err := promiscuous(ifi.Index)
			if err != nil {
				return fmt.Errorf("mirror: promiscuous mode on %s: %w", st.name, err)
			}
			r.promisc = append(r.promisc, fd)
		}
	}
	return nil
}

// promiscuous opens a packet socket that receives nothing (protocol 0) and
// holds a promiscuous membership on the interface until it is closed.
func promiscuous(ifindex int) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// close closes every socket of the run.
func (r *run) close() {
	for _, s := range r.sockets {
		s.tp.Close()
	}
	for _, fd := range r.promisc {
		unix.Close(fd)
	}
}

// pollKernelStats reads the kernel counters of the run's sockets into the
// interfaces' counters. Caller holds Capture.mu.
func (r *run) pollKernelStats() {
	type sum struct{ packets, drops uint64 }
	sums := make(map[*ifaceState]sum)
	for _, s := range r.sockets {
		_, v3, err := s.tp.SocketStats()
		if err != nil {
			continue
		}
		t := sums[s.iface]
		t.packets += uint64(v3.Packets())
		t.drops += uint64(v3.Drops())
		sums[s.iface] = t
	}
	for st, t := range sums {
		st.kernelPackets.Store(st.kernelPacketsBase + t.packets)
		st.kernelDrops.Store(st.kernelDropsBase + t.drops)
	}
}

// Stop stops the workers, hands over what they hold, closes the sockets
// (which ends promiscuous mode) and waits, or gives up when ctx is done.
// The capture can be started again.
func (c *Capture) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.running
	if r == nil {
		return nil
	}
	r.cancel()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("mirror: stop: %w", ctx.Err())
	}
	r.pollKernelStats()
	for _, st := range c.ifaces {
		st.kernelPacketsBase, st.kernelDropsBase = st.kernelPackets.Load(), st.kernelDrops.Load()
	}
	r.close()
	c.running = nil
	return nil
}

// read is one worker: it reads its ring until ctx is done. Errors (an
// interface going down) are logged at most every 10 s and retried; a
// socket that has failed for failAfter without a packet in between (its
// interface was deleted, and a socket bound to a deleted interface never
// recovers) ends the worker with the error, which Failed yields so that
// the supervisor restarts the capture on fresh sockets.
func (c *Capture) read(ctx context.Context, s *socket) error {
	st := s.iface
	batch := make([]sources.Record, 0, c.cfg.BatchSize)
	var (
		p                      header.Packet
		pkts, bytes, skipped   uint64
		batchStart             int64
		lastErrLog             time.Time
		flushEvery             = int64(c.cfg.FlushInterval)
		sampling               = uint32(1)
		errsSinceLog, nPackets int
		failingSince           time.Time
	)
	flush := func() {
		st.packets.Add(pkts)
		st.bytes.Add(bytes)
		st.skipped.Add(skipped)
		pkts, bytes, skipped = 0, 0, 0
		if len(batch) > 0 {
			st.records.Add(uint64(len(batch)))
			c.sink.Ingest(batch)
			batch = batch[:0]
		}
	}
	defer flush()
	for {
		data, ci, err := s.tp.ZeroCopyReadPacketData()
		if err != nil {
			flush()
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, afpacket.ErrTimeout) {
				continue
			}
			now := time.Now()
			if failingSince.IsZero() {
				failingSince = now
			} else if now.Sub(failingSince) >= failAfter {
				return fmt.Errorf("mirror: interface %s: reads failing for %s: %w", st.name, now.Sub(failingSince).Round(time.Second), err)
			}
			errsSinceLog++
			if time.Since(lastErrLog) > 10*time.Second {
				c.log.Warn("capture error", "interface", st.name, "error", err.Error(), "errors", errsSinceLog)
				lastErrLog, errsSinceLog = time.Now(), 0
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pollTimeout):
			}
			continue
		}
		failingSince = time.Time{}
		pkts++
		bytes += uint64(ci.Length)
		ts := ci.Timestamp.UnixNano()
		if header.Parse(data, s.link, &p) != nil {
			skipped++
		} else {
			if len(batch) == 0 {
				batchStart = ts
			}
			batch = append(batch, sources.Record{Sampling: sampling, Start: ts, End: ts})
			p.FillRecord(&batch[len(batch)-1])
		}
		if len(batch) == cap(batch) || len(batch) > 0 && ts-batchStart > flushEvery {
			flush()
		}
		if nPackets++; nPackets&1023 == 0 && ctx.Err() != nil {
			return nil
		}
	}
}
