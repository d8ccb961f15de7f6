package gen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
)

// DefaultTemplateInterval is how often NetFlowEmitter resends its templates
// and sampling options when TemplateInterval is zero.
const DefaultTemplateInterval = 10 * time.Second

// NetFlowEmitter sends the flows of each interval as NetFlow v5, NetFlow v9
// or IPFIX records to a loopback collector, through the encoders of package
// flowgen.
//
// Each flow of an interval becomes one record whose First and Last times
// are the interval's bounds and whose packets are those of the flow
// sampled 1 in SamplingRate (a flow none of whose packets was sampled is
// not exported, as a router's sampled NetFlow does not); bytes are the
// sampled packets times the packet size. The rate is announced in the v5
// header, or by a sampling options record in v9 and IPFIX, so a collector
// scales the counts back. v9 and IPFIX templates and options are sent
// before the first data and every TemplateInterval after. Datagrams hold
// at most flowgen.DatagramSize octets.
//
// The formats carry no fragment information (flowgen's templates have no
// fragment fields): a non-first fragment is a UDP record with ports 0.
// NetFlow v5 carries IPv4 only; Open refuses an IPv6 scenario.
//
// By default an interval's records are sent during the interval they
// describe, paced over it. With Delayed they are sent at once when the
// next interval starts, as a router sweeping its flow cache every interval
// (an active timeout of one interval) exports them: a record reports
// traffic that has already happened, up to an interval late.
type NetFlowEmitter struct {
	// Version is 5, 9 or 10 (IPFIX).
	Version int
	// To is the collector, a loopback address.
	To netip.AddrPort
	// SamplingRate is N of 1-in-N packet sampling; 0 means 1. NetFlow v5
	// carries at most 16383.
	SamplingRate uint32
	// TemplateInterval is how often templates and sampling options are
	// resent; 0 means DefaultTemplateInterval.
	TemplateInterval time.Duration
	// SourceID is the v9 Source ID, the IPFIX observation domain or the
	// v5 engine ID (low 8 bits).
	SourceID uint32
	// Delayed sends each interval's records, stamped with its bounds, at
	// once when the next interval starts (the records of a scenario's
	// last interval are not sent). Interval.MarkAttack then tells when the
	// first record of attack traffic was sent, an interval after the
	// traffic began.
	Delayed bool

	conn      *net.UDPConn
	to        netip.AddrPort
	v5        flowgen.NetFlowV5
	v9        flowgen.NetFlowV9
	ipfix     flowgen.IPFIX
	perDgram  int
	sampler   *sampler
	templates time.Time     // when templates were last sent
	every     time.Duration // TemplateInterval, default applied
	records   []flowgen.Flow
	attack    []bool // per record: carries attack traffic
	// held and heldAttack are the previous interval's records with
	// Delayed, swapped with records and attack each interval.
	held       []flowgen.Flow
	heldAttack []bool
	buf        []byte
}

var _ Emitter = (*NetFlowEmitter)(nil)

// String describes the emitter.
func (e *NetFlowEmitter) String() string {
	name := fmt.Sprintf("netflow v%d", e.Version)
	if e.Version == 10 {
		name = "ipfix"
	}
	return fmt.Sprintf("%s to %v (sampling 1:%d)", name, e.To, max(e.SamplingRate, 1))
}

// Open checks the settings and opens the socket.
func (e *NetFlowEmitter) Open(s Scenario) error {
	boot := time.Now().Add(-time.Hour).Truncate(time.Second)
	switch e.Version {
	case 5:
		if s.IPv6() {
			return fmt.Errorf("netflow v5 carries IPv4 flows only; the scenario has IPv6 traffic: %w", ErrInvalidEmitter)
		}
		if e.SamplingRate > 0x3fff {
			return fmt.Errorf("netflow v5 sampling rate %d above 16383: %w", e.SamplingRate, ErrInvalidEmitter)
		}
		e.v5 = flowgen.NetFlowV5{Boot: boot, EngineID: uint8(e.SourceID), SamplingInterval: uint16(e.SamplingRate)}
		if e.SamplingRate > 1 {
			e.v5.SamplingMode = 2 // random
		}
		e.perDgram = e.v5.MaxRecordsPerDatagram(flowgen.DatagramSize)
	case 9:
		e.v9 = flowgen.NetFlowV9{SourceID: e.SourceID, Boot: boot}
		e.perDgram = e.v9.MaxRecordsPerDatagram(flowgen.DatagramSize)
	case 10:
		e.ipfix = flowgen.IPFIX{ObservationDomain: e.SourceID}
		e.perDgram = e.ipfix.MaxRecordsPerDatagram(flowgen.DatagramSize)
	default:
		return fmt.Errorf("netflow version %d: write 5, 9 or 10 (ipfix): %w", e.Version, ErrInvalidEmitter)
	}
	if e.TemplateInterval < 0 {
		return fmt.Errorf("template interval %v is negative: %w", e.TemplateInterval, ErrInvalidEmitter)
	}
	e.every = e.TemplateInterval
	if e.every == 0 {
		e.every = DefaultTemplateInterval
	}
	c, err := dialLoopback(e.To)
	if err != nil {
		return fmt.Errorf("%s: %w", e, err)
	}
	e.conn, e.to = c, netip.AddrPortFrom(e.To.Addr().Unmap(), e.To.Port())
	e.sampler = newSampler(e.SamplingRate, s.Seed)
	e.templates = time.Time{}
	e.held, e.heldAttack = e.held[:0], e.heldAttack[:0]
	e.buf = make([]byte, 0, flowgen.DatagramSize)
	return nil
}

// Close closes the socket.
func (e *NetFlowEmitter) Close() error {
	if e.conn == nil {
		return nil
	}
	err := e.conn.Close()
	e.conn = nil
	return err
}

// send writes e.buf to the collector.
func (e *NetFlowEmitter) send() error {
	if _, err := e.conn.WriteToUDPAddrPort(e.buf, e.to); err != nil {
		return fmt.Errorf("%s: send: %w", e, err)
	}
	return nil
}

// sendTemplates sends the templates and sampling options of v9 and IPFIX
// if they are due.
func (e *NetFlowEmitter) sendTemplates(now time.Time, c *Counts) error {
	if e.Version == 5 || (!e.templates.IsZero() && now.Sub(e.templates) < e.every) {
		return nil
	}
	rate := max(e.SamplingRate, 1)
	for i := range 2 {
		switch {
		case e.Version == 9 && i == 0:
			e.buf = e.v9.AppendTemplates(e.buf[:0], now)
		case e.Version == 9:
			e.buf = e.v9.AppendSamplingOptions(e.buf[:0], now, rate)
		case i == 0:
			e.buf = e.ipfix.AppendTemplates(e.buf[:0], now)
		default:
			e.buf = e.ipfix.AppendSamplingOptions(e.buf[:0], now, rate)
		}
		if err := e.send(); err != nil {
			return err
		}
		c.Datagrams++
	}
	e.templates = now
	return nil
}

// Emit sends the records of iv.
func (e *NetFlowEmitter) Emit(ctx context.Context, iv *Interval) (Counts, error) {
	var c Counts
	if e.conn == nil {
		return c, fmt.Errorf("%s: emit before open: %w", e, ErrInvalidEmitter)
	}
	start, end := iv.Start, iv.End
	if start.IsZero() || end.IsZero() {
		now := time.Now()
		start, end = now.Add(-(iv.To - iv.From)), now
	}
	rate := uint64(max(e.SamplingRate, 1))
	e.records, e.attack = e.records[:0], e.attack[:0]
	for i := range iv.Flows {
		f := &iv.Flows[i]
		if e.Version == 5 && !f.Src.Is4() {
			continue // refused by Open; never sent
		}
		p := e.sampler.take(f.Packets)
		if p == 0 {
			continue
		}
		e.records = append(e.records, flowgen.Flow{
			Src: f.Src, Dst: f.Dst, SrcPort: f.SrcPort, DstPort: f.DstPort,
			Proto: f.Proto, TCPFlags: f.TCPFlags,
			Packets: p, Bytes: p * uint64(f.Size),
			Start: start, End: end,
		})
		e.attack = append(e.attack, f.Attack)
	}
	if e.Delayed {
		// Send the previous interval's records, stamped with its bounds
		// when they were built; keep this one's for the next.
		e.records, e.held = e.held, e.records
		e.attack, e.heldAttack = e.heldAttack, e.attack
	}
	if err := e.sendTemplates(time.Now(), &c); err != nil {
		return c, err
	}
	dgrams := (len(e.records) + e.perDgram - 1) / e.perDgram
	marked := false
	paceFrom, paceTo := iv.Start, iv.End
	if e.Delayed {
		paceFrom, paceTo = time.Time{}, time.Time{} // at once: the sweep
	}
	sent, err := pace(ctx, paceFrom, paceTo, dgrams, func(j int) error {
		recs := e.records[j*e.perDgram : min((j+1)*e.perDgram, len(e.records))]
		now := time.Now()
		var err error
		switch e.Version {
		case 5:
			e.buf, err = e.v5.AppendData(e.buf[:0], now, recs)
		case 9:
			e.buf, err = e.v9.AppendData(e.buf[:0], now, recs)
		default:
			e.buf, err = e.ipfix.AppendData(e.buf[:0], now, recs)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e, err)
		}
		if err := e.send(); err != nil {
			return err
		}
		c.Datagrams++
		c.Records += uint64(len(recs))
		attack := false
		for k, r := range recs {
			c.Packets += r.Packets * rate
			c.Bytes += r.Bytes * rate
			if e.attack[j*e.perDgram+k] {
				c.AttackPackets += r.Packets * rate
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
