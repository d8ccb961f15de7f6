package gen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// Emitter sends the traffic of intervals in one format.
//
// Run calls Open once, then Emit for each interval in order, then Close,
// all from one goroutine at a time; an emitter is not safe for concurrent
// use. Emit blocks until the interval's output is sent or the interval is
// over: with iv.Start and iv.End set it spreads its output evenly over
// them and drops, counting them in Counts.Late, the outputs it could not
// send by half an interval after iv.End; with zero times it sends
// everything at once. It calls iv.MarkAttack after sending the first
// output of the interval that carries attack traffic. Emit does not
// retain iv or its flows.
type Emitter interface {
	// Open checks the emitter's settings against the scenario (defaults
	// set) and opens its socket.
	Open(s Scenario) error
	// Emit sends the traffic of iv.
	Emit(ctx context.Context, iv *Interval) (Counts, error)
	// Close closes the socket. It may be called more than once.
	Close() error
	// String describes the emitter, as "netflow v9 to 127.0.0.1:2055".
	String() string
}

// Counts are what emitters sent.
type Counts struct {
	// Datagrams is the number of datagrams (templates included) or, for
	// the raw emitter, frames written.
	Datagrams uint64
	// Records is the number of flow records or flow samples written; for
	// the raw emitter, frames.
	Records uint64
	// Packets and Bytes are the traffic the records stand for once scaled
	// back by the sampling rate, as a collector counts it (IP octets).
	Packets, Bytes uint64
	// AttackPackets is the part of Packets that belongs to the attack.
	AttackPackets uint64
	// Late is the number of outputs (datagrams or frames) dropped because
	// the emitter could not send them within their interval (and half an
	// interval of grace): a sign that the rate asked is above what the
	// machine achieves.
	Late uint64
	// Capped is the number of frames not sent because the raw emitter
	// reached its MaxPackets.
	Capped uint64
	// FirstAttack is when the first output carrying attack traffic was
	// sent; zero if none was.
	FirstAttack time.Time
}

// Add adds o to c; FirstAttack becomes the earlier of the two.
func (c *Counts) Add(o Counts) {
	c.Datagrams += o.Datagrams
	c.Records += o.Records
	c.Packets += o.Packets
	c.Bytes += o.Bytes
	c.AttackPackets += o.AttackPackets
	c.Late += o.Late
	c.Capped += o.Capped
	if !o.FirstAttack.IsZero() && (c.FirstAttack.IsZero() || o.FirstAttack.Before(c.FirstAttack)) {
		c.FirstAttack = o.FirstAttack
	}
}

// Errors of the emitters' safety checks. Test with errors.Is.
var (
	// ErrNotLoopback reports a flow destination outside 127.0.0.0/8 and
	// ::1. The generator sends attack traffic descriptions only to this
	// host, so that nothing it makes can reach another machine.
	ErrNotLoopback = errors.New("destination is not a loopback address")
	// ErrUnsafeInterface reports a raw interface that is not a veth, or
	// that lives in the host's initial network namespace, where frames
	// could reach a real network.
	ErrUnsafeInterface = errors.New("interface is not a veth in a separate network namespace")
	// ErrInvalidEmitter reports emitter settings out of range.
	ErrInvalidEmitter = errors.New("invalid emitter settings")
)

// CheckLoopback returns nil if to is a usable loopback destination:
// an address in 127.0.0.0/8 or ::1 (IPv4-mapped too) and a port other
// than 0. Otherwise the error, wrapping ErrNotLoopback or
// ErrInvalidEmitter, says why.
func CheckLoopback(to netip.AddrPort) error {
	if !to.IsValid() {
		return fmt.Errorf("destination %v: no address and port: %w", to, ErrInvalidEmitter)
	}
	if !to.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("refusing to send to %v: %w (127.0.0.0/8 or ::1); the generator never sends attack traffic off this host", to, ErrNotLoopback)
	}
	if to.Port() == 0 {
		return fmt.Errorf("destination %v: port 0: %w", to, ErrInvalidEmitter)
	}
	return nil
}

// dialLoopback checks to and opens a UDP socket bound to the loopback
// address of its family, to send to it.
func dialLoopback(to netip.AddrPort) (*net.UDPConn, error) {
	if err := CheckLoopback(to); err != nil {
		return nil, err
	}
	local := netip.IPv6Loopback()
	if to.Addr().Unmap().Is4() {
		local = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		return nil, fmt.Errorf("open udp socket on %s: %w", local, err)
	}
	// Bursts of datagrams must not block on a small send buffer; the
	// kernel caps the size at net.core.wmem_max.
	_ = c.SetWriteBuffer(4 << 20)
	return c, nil
}

// pacing is the granularity of the pacing: outputs due within the next
// tick are sent together, up to a tick early, so that high rates cost one
// timer wake-up per tick rather than one per output.
const pacing = time.Millisecond

// pace calls send(i) for i from 0 to n−1, output i being due at
// start + (end−start)×i/n. It sends the outputs due before the next tick,
// then sleeps a tick, or longer until the tick before the next output is
// due: outputs go at most a tick early, in batches of a tick. Outputs not
// sent half an interval after end (when sending cannot keep up; the grace
// absorbs scheduling delays on a busy machine) are given up. With a zero
// start or end everything is sent at once. It returns the number of
// outputs sent, and stops at the first error of send or ctx.
func pace(ctx context.Context, start, end time.Time, n int, send func(i int) error) (int, error) {
	if start.IsZero() || end.IsZero() {
		for i := range n {
			if err := ctx.Err(); err != nil {
				return i, err
			}
			if err := send(i); err != nil {
				return i, err
			}
		}
		return n, nil
	}
	span := int64(end.Sub(start))
	if span <= 0 {
		return 0, nil
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// dueAt is when output i is due.
	dueAt := func(i int) time.Time { return start.Add(time.Duration(span * int64(i) / int64(n))) }
	deadline := end.Add(time.Duration(span / 2))
	sent := 0
	for sent < n {
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		// Outputs due by the next tick: those with dueAt(i) ≤ now+tick,
		// that is span×i/n < h+1, i < (h+1)×n/span.
		h := int64(now.Add(pacing).Sub(start))
		dueN := n
		if h < span {
			dueN = min(n, int(((h+1)*int64(n)+span-1)/span))
		}
		if dueN <= sent {
			// Wake when the next output comes within a tick, but not
			// before a tick has passed, so that a batch covers a tick.
			wait := max(dueAt(sent).Add(-pacing).Sub(now), pacing)
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-ctx.Done():
				return sent, ctx.Err()
			case <-timer.C:
			}
			continue
		}
		for ; sent < dueN; sent++ {
			if sent > 0 && !time.Now().Before(deadline) {
				break // slow sends: check the deadline within a batch too
			}
			if err := send(sent); err != nil {
				return sent, err
			}
		}
		if err := ctx.Err(); err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// sampler picks 1 packet in rate of a packet stream, as an sFlow agent or
// a router's sampled NetFlow does: the gaps between samples are uniform in
// [1, 2×rate−1], so their mean is rate and totals scaled back by rate are
// right within sampling error.
type sampler struct {
	rate uint64
	skip uint64 // packets until the next sample, the sample included
	rng  *rand.Rand
}

// newSampler returns a sampler of 1 in rate (0 and 1 take every packet)
// seeded by seed.
func newSampler(rate uint32, seed uint64) *sampler {
	s := &sampler{rate: uint64(max(rate, 1)), rng: rand.New(rand.NewPCG(seed, 0x5a3e))}
	s.skip = s.next()
	return s
}

// next returns a gap.
func (s *sampler) next() uint64 {
	if s.rate == 1 {
		return 1
	}
	return 1 + s.rng.Uint64N(2*s.rate-1)
}

// take returns how many of the next n packets are sampled.
func (s *sampler) take(n uint64) uint64 {
	if s.rate == 1 {
		return n
	}
	var k uint64
	for s.skip <= n {
		n -= s.skip
		k++
		s.skip = s.next()
	}
	s.skip -= n
	return k
}
