package gen

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultRawMaxPackets bounds the frames a RawEmitter sends in its life when
// MaxPackets is zero.
const DefaultRawMaxPackets = 50_000_000

// RawEmitter writes every packet of each interval as an Ethernet frame onto
// a veth, through an AF_PACKET socket, for the mirror input.
//
// Frames are built by hand: Ethernet between MACs (DefaultMACs by
// default), IPv4 (checksummed, don't-fragment set unless a fragment) or
// IPv6 (with a fragment header for fragments), then the TCP, UDP, ICMP or
// ICMPv6 header with its checksum, and a zero payload up to the packet's
// size; frames are padded to the Ethernet minimum. The packets of an
// interval are spread over it, sent in batches every millisecond at high
// rates, one write per frame; what cannot be sent within the interval
// (and half an interval of grace), or what the kernel drops because the
// peer's backlog is full (ENOBUFS), is counted in Counts.Late.
//
// Open refuses an interface that is not a veth (ethtool driver "veth") or
// that lives in the host's initial network namespace: frames carry spoofed
// addresses and must stay inside a namespace the caller made. Linux only.
type RawEmitter struct {
	// Interface is the veth to write to.
	Interface string
	// Netns, if set, is the name of the network namespace (under
	// /run/netns) that holds Interface; the socket is opened there.
	// Otherwise the interface is looked up in the namespace of the
	// calling thread (as under `ip netns exec`).
	Netns string
	// MaxPackets bounds the frames sent over the emitter's life; 0 means
	// DefaultRawMaxPackets. Frames past it are counted in Counts.Capped.
	MaxPackets uint64
	// MACs are the frames' addresses; the zero value means DefaultMACs.
	MACs MACs

	sock   rawSocket
	macs   MACs
	limit  uint64 // MaxPackets, default applied
	sent   uint64 // frames sent over the emitter's life
	id     uint32
	frame  []byte
	cursor struct {
		flow int    // flow of the next frame
		left uint64 // frames of that flow still to send
	}
}

var _ Emitter = (*RawEmitter)(nil)

// String describes the emitter.
func (e *RawEmitter) String() string {
	if e.Netns != "" {
		return fmt.Sprintf("raw frames on %s in netns %s", e.Interface, e.Netns)
	}
	return "raw frames on " + e.Interface
}

// Open checks the interface and opens the socket.
func (e *RawEmitter) Open(Scenario) error {
	if e.Interface == "" {
		return fmt.Errorf("raw emitter: no interface: %w", ErrInvalidEmitter)
	}
	e.limit = e.MaxPackets
	if e.limit == 0 {
		e.limit = DefaultRawMaxPackets
	}
	e.macs = e.MACs
	if e.macs == (MACs{}) {
		e.macs = DefaultMACs()
	}
	if err := e.sock.open(e.Interface, e.Netns); err != nil {
		return fmt.Errorf("%s: %w", e, err)
	}
	e.sent, e.id = 0, 0
	e.frame = make([]byte, 0, maxFrameLen)
	return nil
}

// Close closes the socket.
func (e *RawEmitter) Close() error { return e.sock.close() }

// Emit sends the frames of iv.
func (e *RawEmitter) Emit(ctx context.Context, iv *Interval) (Counts, error) {
	var c Counts
	if !e.sock.isOpen() {
		return c, fmt.Errorf("%s: emit before open: %w", e, ErrInvalidEmitter)
	}
	var total uint64
	for i := range iv.Flows {
		f := &iv.Flows[i]
		if !validFrame(f) {
			return c, fmt.Errorf("%s: flow %d (%v > %v, %d octets) cannot be framed: %w", e, i, f.Src, f.Dst, f.Size, ErrInvalidEmitter)
		}
		total += f.Packets
	}
	n := total
	if room := e.limit - e.sent; n > room {
		c.Capped = n - room
		n = room
	}
	e.cursor.flow, e.cursor.left = 0, 0
	if len(iv.Flows) > 0 {
		e.cursor.left = iv.Flows[0].Packets
	}
	marked := false
	sent, err := pace(ctx, iv.Start, iv.End, int(n), func(int) error {
		for e.cursor.left == 0 {
			e.cursor.flow++
			e.cursor.left = iv.Flows[e.cursor.flow].Packets
		}
		f := &iv.Flows[e.cursor.flow]
		e.cursor.left--
		e.frame = appendFrame(e.frame[:0], f, &e.macs, e.id, -1)
		e.id++
		if err := e.sock.send(e.frame); err != nil {
			if errors.Is(err, errNoBuffer) {
				c.Late++ // dropped by the kernel: the peer's backlog is full
				return nil
			}
			return fmt.Errorf("%s: send: %w", e, err)
		}
		e.sent++
		c.Datagrams++
		c.Records++
		c.Packets++
		c.Bytes += uint64(f.Size)
		if f.Attack {
			c.AttackPackets++
			if !marked {
				marked = true
				t := time.Now()
				c.FirstAttack = t
				iv.MarkAttack(t)
			}
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	c.Late += n - uint64(sent)
	return c, nil
}
