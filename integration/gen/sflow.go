package gen

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
)

// DefaultSFlowHeaderBytes is how many octets of each sampled frame an
// SFlowEmitter sends when HeaderBytes is zero, as most agents do.
const DefaultSFlowHeaderBytes = 128

// SFlowEmitter sends sFlow v5 datagrams of flow samples to a loopback
// collector: 1 packet in SamplingRate of each interval's traffic is
// sampled (gaps uniform in [1, 2×SamplingRate−1]), and each sample carries
// a raw packet header record with the first HeaderBytes octets of the
// packet's real Ethernet frame, as RawEmitter would send it.
//
// The datagram framing is this package's own rather than
// flowgen.SFlowV5's: flowgen builds its sampled headers from a flowgen.Flow,
// which cannot express an IP fragment, and fragment floods and fragmented
// DNS answers must reach the collector as fragments. The encoding follows
// sflow_version_5.txt as flowgen's does: one datagram per batch of
// samples of at most flowgen.DatagramSize octets, sequence numbers and the
// sample pool counted from zero, FCS counted in the frame length and
// reported stripped.
type SFlowEmitter struct {
	// To is the collector, a loopback address.
	To netip.AddrPort
	// SamplingRate is N of 1-in-N sampling; 0 means 1.
	SamplingRate uint32
	// Agent is the agent address in the datagrams; zero means the
	// loopback address of To's family.
	Agent netip.Addr
	// SubAgentID tells apart the sub-agents of one agent.
	SubAgentID uint32
	// IfIndex is the sampled interface, below 2^24; 0 means 1.
	IfIndex uint32
	// HeaderBytes is how many octets of each frame are sampled, 14 to
	// 256; 0 means DefaultSFlowHeaderBytes.
	HeaderBytes int

	conn    *net.UDPConn
	to      netip.AddrPort
	agent   netip.Addr
	boot    time.Time
	macs    MACs
	sampler *sampler
	seq     uint32 // datagrams
	flowSeq uint32 // flow samples
	pool    uint32 // packets seen
	id      uint32 // IP identification of the next frame
	samples []sample
	starts  []int // first sample of each datagram
	buf     []byte
}

// sample is one sampled packet: its flow and the sample pool at it.
type sample struct {
	flow int
	pool uint32
}

var _ Emitter = (*SFlowEmitter)(nil)

// Lengths of the parts of an sFlow datagram.
const (
	sflowHeaderLen = 24 // without the agent address
	flowSampleLen  = 64 // a flow sample with one raw header record, without the header octets
)

// String describes the emitter.
func (e *SFlowEmitter) String() string {
	return fmt.Sprintf("sflow to %v (sampling 1:%d)", e.To, max(e.SamplingRate, 1))
}

// Open checks the settings and opens the socket.
func (e *SFlowEmitter) Open(s Scenario) error {
	if e.IfIndex >= 1<<24 {
		return fmt.Errorf("sflow ifindex %d above 24 bits: %w", e.IfIndex, ErrInvalidEmitter)
	}
	if e.HeaderBytes != 0 && (e.HeaderBytes < ethHeaderLen || e.HeaderBytes > 256) {
		return fmt.Errorf("sflow header bytes %d outside [14, 256]: %w", e.HeaderBytes, ErrInvalidEmitter)
	}
	c, err := dialLoopback(e.To)
	if err != nil {
		return fmt.Errorf("%s: %w", e, err)
	}
	e.conn, e.to = c, netip.AddrPortFrom(e.To.Addr().Unmap(), e.To.Port())
	e.agent = e.Agent.Unmap()
	if !e.agent.IsValid() {
		e.agent = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if e.to.Addr().Is6() {
			e.agent = netip.IPv6Loopback()
		}
	}
	e.boot = time.Now().Add(-time.Hour)
	e.macs = DefaultMACs()
	e.sampler = newSampler(e.SamplingRate, s.Seed)
	e.seq, e.flowSeq, e.pool, e.id = 0, 0, 0, 0
	e.buf = make([]byte, 0, flowgen.DatagramSize)
	return nil
}

// Close closes the socket.
func (e *SFlowEmitter) Close() error {
	if e.conn == nil {
		return nil
	}
	err := e.conn.Close()
	e.conn = nil
	return err
}

// headerBytes returns how many octets of a frame of f are sampled.
func (e *SFlowEmitter) headerBytes(f *Flow) int {
	h := e.HeaderBytes
	if h == 0 {
		h = DefaultSFlowHeaderBytes
	}
	return min(h, frameLen(f))
}

// Emit samples the packets of iv and sends the samples.
func (e *SFlowEmitter) Emit(ctx context.Context, iv *Interval) (Counts, error) {
	var c Counts
	if e.conn == nil {
		return c, fmt.Errorf("%s: emit before open: %w", e, ErrInvalidEmitter)
	}
	agentLen := 4
	if e.agent.Is6() {
		agentLen = 16
	}
	// Pick the samples, then cut them into datagrams.
	e.samples, e.starts = e.samples[:0], e.starts[:0]
	size := flowgen.DatagramSize // forces a first datagram
	for i := range iv.Flows {
		f := &iv.Flows[i]
		if !validFrame(f) {
			return c, fmt.Errorf("%s: flow %d (%v > %v, %d octets) cannot be framed: %w", e, i, f.Src, f.Dst, f.Size, ErrInvalidEmitter)
		}
		k := e.sampler.take(f.Packets)
		step := f.Packets / max(k, 1)
		for j := range k {
			// Spread the pool over the flow's packets.
			pool := e.pool + uint32((j+1)*step)
			hl := e.headerBytes(f)
			n := flowSampleLen + hl + pad4(hl)
			if size+n > flowgen.DatagramSize {
				e.starts = append(e.starts, len(e.samples))
				size = sflowHeaderLen + agentLen
			}
			size += n
			e.samples = append(e.samples, sample{flow: i, pool: pool})
		}
		e.pool += uint32(f.Packets)
	}
	rate := uint64(max(e.SamplingRate, 1))
	marked := false
	dgrams := len(e.starts)
	sent, err := pace(ctx, iv.Start, iv.End, dgrams, func(d int) error {
		end := len(e.samples)
		if d+1 < len(e.starts) {
			end = e.starts[d+1]
		}
		batch := e.samples[e.starts[d]:end]
		e.buf = e.appendDatagram(e.buf[:0], time.Now(), iv.Flows, batch)
		if _, err := e.conn.WriteToUDPAddrPort(e.buf, e.to); err != nil {
			return fmt.Errorf("%s: send: %w", e, err)
		}
		c.Datagrams++
		c.Records += uint64(len(batch))
		attack := false
		for _, s := range batch {
			f := &iv.Flows[s.flow]
			c.Packets += rate
			c.Bytes += rate * uint64(f.Size)
			if f.Attack {
				c.AttackPackets += rate
				attack = true
			}
		}
		if attack && !marked {
			marked = true
			t := time.Now()
			c.FirstAttack = t
			iv.MarkAttack(t)
		}
		return nil
	})
	if err != nil {
		return c, err
	}
	c.Late += uint64(dgrams - sent)
	return c, nil
}

// appendDatagram appends an sFlow v5 datagram holding the samples of batch.
func (e *SFlowEmitter) appendDatagram(b []byte, now time.Time, flows []Flow, batch []sample) []byte {
	ifIndex := max(e.IfIndex, 1)
	b = binary.BigEndian.AppendUint32(b, 5)
	if e.agent.Is4() {
		a := e.agent.As4()
		b = binary.BigEndian.AppendUint32(b, 1)
		b = append(b, a[:]...)
	} else {
		a := e.agent.As16()
		b = binary.BigEndian.AppendUint32(b, 2)
		b = append(b, a[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, e.SubAgentID)
	b = binary.BigEndian.AppendUint32(b, e.seq)
	b = binary.BigEndian.AppendUint32(b, uint32(now.Sub(e.boot).Milliseconds()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(batch)))
	e.seq++
	for _, s := range batch {
		f := &flows[s.flow]
		hl := e.headerBytes(f)
		pad := pad4(hl)
		e.flowSeq++
		b = binary.BigEndian.AppendUint32(b, 1) // flow sample
		b = binary.BigEndian.AppendUint32(b, uint32(flowSampleLen-8+hl+pad))
		b = binary.BigEndian.AppendUint32(b, e.flowSeq)
		b = binary.BigEndian.AppendUint32(b, ifIndex) // source type 0, ifIndex
		b = binary.BigEndian.AppendUint32(b, max(e.SamplingRate, 1))
		b = binary.BigEndian.AppendUint32(b, s.pool)
		b = binary.BigEndian.AppendUint32(b, 0) // drops
		b = binary.BigEndian.AppendUint32(b, ifIndex)
		b = binary.BigEndian.AppendUint32(b, 0) // output interface unknown
		b = binary.BigEndian.AppendUint32(b, 1) // records
		b = binary.BigEndian.AppendUint32(b, 1) // raw packet header
		b = binary.BigEndian.AppendUint32(b, uint32(16+hl+pad))
		b = binary.BigEndian.AppendUint32(b, 1) // header protocol Ethernet
		b = binary.BigEndian.AppendUint32(b, uint32(frameLen(f)+4))
		b = binary.BigEndian.AppendUint32(b, 4) // FCS stripped
		b = binary.BigEndian.AppendUint32(b, uint32(hl))
		b = appendFrame(b, f, &e.macs, e.id, hl)
		e.id++
		b = append(b, make([]byte, pad)...)
	}
	return b
}

// pad4 returns the number of zero octets that align n to 4.
func pad4(n int) int { return (4 - n%4) % 4 }
