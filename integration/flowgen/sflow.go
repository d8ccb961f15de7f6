package flowgen

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"
)

// SFlowV5 encodes sFlow version 5 datagrams (sflow_version_5.txt).
//
// AppendData sends one flow sample (format 1) per Flow, each with one raw
// packet header record (format 1, header protocol 1, Ethernet) holding the
// headers of a real frame of that flow: Ethernet between two fixed locally
// administered MAC addresses, IPv4 (with a valid checksum) or IPv6, then
// TCP, UDP or ICMP/ICMPv6 headers if Proto is one of those; other protocols
// get the IP header only. Transport checksums are zero, since the payload
// is not sent. The frame length is Flow.Bytes, the four octets of FCS are
// reported stripped, and the IP length fields agree with the frame length.
//
// The datagram sequence number counts datagrams, the flow sample sequence
// number counts flow samples and the sample pool grows by the sampling rate
// with each flow sample, all from the zero value of the encoder.
type SFlowV5 struct {
	// Agent is the agent address in the datagram header.
	Agent netip.Addr
	// SubAgentID tells apart the sub-agents of one agent.
	SubAgentID uint32
	// Boot is when the simulated agent booted: the header's uptime is
	// milliseconds since Boot, modulo 2^32.
	Boot time.Time
	// SamplingRate is N of 1-in-N sampling; zero means 1.
	SamplingRate uint32
	// IfIndex is the ifIndex of the sampled interface: the data source of
	// every sample and the input interface of flow samples. It must be
	// below 2^24.
	IfIndex uint32

	seq        uint32
	flowSeq    uint32
	counterSeq uint32
	pool       uint32
}

// IfCounters are the values of a generic interface counters record.
type IfCounters struct {
	// Speed is the interface speed in bits per second.
	Speed uint64
	// InOctets and OutOctets count octets received and sent.
	InOctets, OutOctets uint64
	// InPackets and OutPackets count unicast packets received and sent.
	InPackets, OutPackets uint32
}

// Lengths of the parts of an sFlow datagram and of the sampled frames.
const (
	// sflowHeaderLen is the datagram header without the agent address.
	sflowHeaderLen = 24
	// flowSampleLen is a flow sample with its one raw packet header
	// record, without the header octets: sample format and length, eight
	// fields, record format and length, four fields.
	flowSampleLen = 8 + 32 + 8 + 16
	// counterSampleLen is a counter sample with one generic interface
	// counters record.
	counterSampleLen = 8 + 12 + 8 + ifCountersLen
	ifCountersLen    = 88

	ethHeaderLen  = 14
	fcsLen        = 4
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	// ipv6FragmentLen is the IPv6 fragment extension header.
	ipv6FragmentLen = 8
	tcpHeaderLen    = 20
	// maxFrameHeaderLen is the longest header built: Ethernet, IPv6, TCP.
	maxFrameHeaderLen = ethHeaderLen + ipv6HeaderLen + tcpHeaderLen
)

// IP protocol numbers with a transport header in sampled frames.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// l4HeaderLen returns the length of the transport header built for proto.
func l4HeaderLen(proto uint8) int {
	switch proto {
	case protoTCP:
		return tcpHeaderLen
	case protoUDP, protoICMP, protoICMPv6:
		return 8
	}
	return 0
}

// frameHeaderLen returns the length of the frame headers built for f.
func frameHeaderLen(f *Flow, v6 bool) int {
	n := ethHeaderLen + ipv4HeaderLen
	if v6 {
		n = ethHeaderLen + ipv6HeaderLen
		if f.Fragment != NotFragment {
			n += ipv6FragmentLen
		}
	}
	if f.Fragment == LaterFragment {
		return n
	}
	return n + l4HeaderLen(f.Proto)
}

// frameLen returns the frame length of f, whose headers take hl octets.
func frameLen(f *Flow, hl int) uint64 {
	if f.Bytes == 0 {
		return uint64(hl + fcsLen)
	}
	return f.Bytes
}

// agentLen returns the length of the agent address, or an error if the
// encoder's settings are unusable.
func (e *SFlowV5) agentLen() (int, error) {
	if !e.Agent.IsValid() {
		return 0, fmt.Errorf("encode sflow: no agent address: %w", ErrInvalidExporter)
	}
	if e.IfIndex >= 1<<24 {
		return 0, fmt.Errorf("encode sflow: ifindex %d above 24 bits: %w", e.IfIndex, ErrInvalidExporter)
	}
	if e.Agent.Is4() {
		return 4, nil
	}
	return 16, nil
}

// MaxRecordsPerDatagram returns how many flows, of any family and protocol,
// AppendData always fits in a datagram of at most size bytes.
func (e *SFlowV5) MaxRecordsPerDatagram(size int) int {
	agent := 16
	if e.Agent.Is4() {
		agent = 4
	}
	return max((size-sflowHeaderLen-agent)/(flowSampleLen+maxFrameHeaderLen+pad4(maxFrameHeaderLen)), 0)
}

// appendHeader appends a datagram header announcing samples samples and
// advances the datagram sequence number.
func (e *SFlowV5) appendHeader(b []byte, now time.Time, samples int) []byte {
	b = appendU32(b, 5)
	if e.Agent.Is4() {
		b = appendU32(b, 1)
		b = appendAddr(b, e.Agent, false)
	} else {
		b = appendU32(b, 2)
		b = appendAddr(b, e.Agent, true)
	}
	b = appendU32(b, e.SubAgentID)
	b = appendU32(b, e.seq)
	b = appendU32(b, uptimeMillis(e.Boot, now))
	b = appendU32(b, uint32(samples))
	e.seq++
	return b
}

// AppendData appends a datagram holding one flow sample per flow, in the
// order given. It fails, leaving dst unchanged, if the agent settings are
// unusable, if a flow is invalid or its frame length is shorter than its
// headers plus FCS or above 2^32−1, or if the samples do not fit in one
// datagram.
func (e *SFlowV5) AppendData(dst []byte, now time.Time, flows []Flow) ([]byte, error) {
	size, err := e.agentLen()
	if err != nil {
		return dst, err
	}
	size += sflowHeaderLen
	for i := range flows {
		f := &flows[i]
		v6, err := f.is6("sflow", i)
		if err != nil {
			return dst, err
		}
		hl := frameHeaderLen(f, v6)
		if f.Bytes != 0 && f.Bytes < uint64(hl+fcsLen) || f.Bytes > math.MaxUint32 {
			return dst, fmt.Errorf("encode sflow: flow %d: frame length %d outside [%d, 2^32): %w", i, f.Bytes, hl+fcsLen, ErrInvalidFlow)
		}
		size += flowSampleLen + hl + pad4(hl)
	}
	if size > maxDatagram {
		return dst, fmt.Errorf("encode sflow: %d samples in %d bytes: %w", len(flows), size, ErrTooManyRecords)
	}

	rate := max(e.SamplingRate, 1)
	dst = slices.Grow(dst, size)
	dst = e.appendHeader(dst, now, len(flows))
	for i := range flows {
		f := &flows[i]
		v6 := !f.Src.Is4()
		hl := frameHeaderLen(f, v6)
		pad := pad4(hl)
		e.flowSeq++
		e.pool += rate
		dst = appendU32(dst, 1) // flow sample
		dst = appendU32(dst, uint32(flowSampleLen-8+hl+pad))
		dst = appendU32(dst, e.flowSeq)
		dst = appendU32(dst, e.IfIndex) // source type 0, ifIndex
		dst = appendU32(dst, rate)
		dst = appendU32(dst, e.pool)
		dst = appendU32(dst, 0) // drops
		dst = appendU32(dst, e.IfIndex)
		dst = appendU32(dst, 0) // output interface unknown
		dst = appendU32(dst, 1) // records
		dst = appendU32(dst, 1) // raw packet header
		dst = appendU32(dst, uint32(16+hl+pad))
		dst = appendU32(dst, 1) // header protocol Ethernet
		frame := frameLen(f, hl)
		dst = appendU32(dst, uint32(frame))
		dst = appendU32(dst, fcsLen) // stripped
		dst = appendU32(dst, uint32(hl))
		dst = appendFrameHeader(dst, f, v6, frame, uint16(e.flowSeq))
		dst = appendZeros(dst, pad)
	}
	return dst, nil
}

// AppendCounters appends a datagram holding one counter sample with a
// generic interface counters record for IfIndex: an Ethernet interface, full
// duplex, administratively and operationally up. It fails, leaving dst
// unchanged, if the agent settings are unusable.
func (e *SFlowV5) AppendCounters(dst []byte, now time.Time, c IfCounters) ([]byte, error) {
	size, err := e.agentLen()
	if err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, size+sflowHeaderLen+counterSampleLen)
	dst = e.appendHeader(dst, now, 1)
	e.counterSeq++
	dst = appendU32(dst, 2) // counter sample
	dst = appendU32(dst, counterSampleLen-8)
	dst = appendU32(dst, e.counterSeq)
	dst = appendU32(dst, e.IfIndex) // source type 0, ifIndex
	dst = appendU32(dst, 1)         // records
	dst = appendU32(dst, 1)         // generic interface counters
	dst = appendU32(dst, ifCountersLen)
	dst = appendU32(dst, e.IfIndex)
	dst = appendU32(dst, 6) // ifType ethernetCsmacd
	dst = appendU64(dst, c.Speed)
	dst = appendU32(dst, 1) // ifDirection full duplex
	dst = appendU32(dst, 3) // ifStatus admin up, oper up
	dst = appendU64(dst, c.InOctets)
	dst = appendU32(dst, c.InPackets)
	dst = appendZeros(dst, 5*4) // multicast, broadcast, discards, errors, unknown protocols
	dst = appendU64(dst, c.OutOctets)
	dst = appendU32(dst, c.OutPackets)
	dst = appendZeros(dst, 4*4) // multicast, broadcast, discards, errors
	dst = appendU32(dst, 0)     // not promiscuous
	return dst, nil
}

// appendFrameHeader appends the Ethernet, IP and transport headers of a
// frame of f of frame octets, FCS included. id is the IPv4 identification.
func appendFrameHeader(b []byte, f *Flow, v6 bool, frame uint64, id uint16) []byte {
	b = append(b, 0x02, 0, 0, 0, 0, 0x02) // destination MAC
	b = append(b, 0x02, 0, 0, 0, 0, 0x01) // source MAC
	ipLen := frame - ethHeaderLen - fcsLen
	var l4Len uint64
	if v6 {
		b = appendU16(b, 0x86dd)
		l4Len = ipLen - ipv6HeaderLen
		b = appendU32(b, 6<<28) // version, traffic class, flow label
		b = appendU16(b, clamp16(l4Len))
		next := f.Proto
		if f.Fragment != NotFragment {
			next = 44
		}
		b = append(b, next, 64) // next header, hop limit
		b = appendAddr(b, f.Src, true)
		b = appendAddr(b, f.Dst, true)
		if f.Fragment != NotFragment {
			l4Len -= ipv6FragmentLen
			offMore := f.Fragment.offset() << 3
			if f.Fragment == FirstFragment {
				offMore |= 1 // more fragments
			}
			b = append(b, f.Proto, 0)
			b = appendU16(b, offMore)
			b = appendU32(b, uint32(id))
		}
	} else {
		b = appendU16(b, 0x0800)
		l4Len = ipLen - ipv4HeaderLen
		ip := len(b)
		b = append(b, 0x45, 0) // version, IHL, ToS
		b = appendU16(b, clamp16(ipLen))
		b = appendU16(b, id)
		switch f.Fragment {
		case FirstFragment:
			b = appendU16(b, 0x2000) // more fragments
		case LaterFragment:
			b = appendU16(b, f.Fragment.offset())
		default:
			b = appendU16(b, 0x4000) // don't fragment
		}
		b = append(b, 64, f.Proto) // TTL, protocol
		b = appendU16(b, 0)        // checksum, written below
		b = appendAddr(b, f.Src, false)
		b = appendAddr(b, f.Dst, false)
		binary.BigEndian.PutUint16(b[ip+10:], ipv4Checksum(b[ip:]))
	}
	if f.Fragment == LaterFragment {
		return b
	}
	switch f.Proto {
	case protoTCP:
		b = appendU16(b, f.SrcPort)
		b = appendU16(b, f.DstPort)
		b = appendU32(b, 1)             // sequence number
		b = appendU32(b, 0)             // acknowledgment number
		b = append(b, 5<<4, f.TCPFlags) // data offset, flags
		b = appendU16(b, 64240)         // window
		b = appendU32(b, 0)             // checksum, urgent pointer
	case protoUDP:
		b = appendU16(b, f.SrcPort)
		b = appendU16(b, f.DstPort)
		b = appendU16(b, clamp16(l4Len))
		b = appendU16(b, 0) // checksum
	case protoICMP, protoICMPv6:
		b = appendU16(b, f.DstPort) // type, code
		b = appendU16(b, 0)         // checksum
		b = appendU32(b, 0)         // identifier, sequence number
	}
	return b
}

// clamp16 returns v, or 65535 if v does not fit in 16 bits.
func clamp16(v uint64) uint16 {
	return uint16(min(v, math.MaxUint16))
}

// ipv4Checksum returns the Internet checksum of an IPv4 header.
func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
