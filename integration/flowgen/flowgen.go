// Package flowgen owns encoding synthetic flow records into NetFlow v5,
// NetFlow v9, IPFIX and sFlow v5 datagrams, byte for byte what a router
// exports, for the collector tests and the traffic generator.
//
// Each format has an encoder type (NetFlowV5, NetFlowV9, IPFIX, SFlowV5)
// whose exported fields describe the simulated exporter and whose unexported
// fields hold its sequence counters. The zero value of each is usable. An
// encoder is not safe for concurrent use: give every sending goroutine its
// own, as a router gives every line card its own exporter.
//
// Every encoding method appends exactly one datagram to a caller-owned buffer
// and returns the extended buffer, in the manner of the strconv.Append
// functions. Once the buffer has capacity for the datagram, appending
// allocates nothing, so a sender can reuse one buffer for every datagram:
//
//	buf = enc.AppendData(buf[:0], now, flows)
//
// On error the buffer is returned unchanged and no sequence counter moves.
// Callers split their flows with MaxRecordsPerDatagram to keep datagrams
// under a path MTU; DatagramSize is the size the project uses.
//
// Encoders do not read the clock: every method takes the export time.
package flowgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// DatagramSize is the datagram size, in bytes, that senders in this project
// aim to stay under, leaving room for IP and UDP headers and a tunnel inside
// a 1500-byte MTU. Pass it to MaxRecordsPerDatagram.
const DatagramSize = 1400

// maxDatagram is the largest UDP payload the length fields of the formats
// and IPv4 itself allow.
const maxDatagram = 65507

// Errors returned by the encoders, wrapped with the format and the index of
// the offending flow. Test with errors.Is.
var (
	// ErrInvalidFlow reports a flow the format cannot carry: an invalid
	// address, source and destination of different families, an IPv6 flow
	// in NetFlow v5, or a counter too large for its field.
	ErrInvalidFlow = errors.New("invalid flow")
	// ErrTooManyRecords reports more flows than one datagram of the format
	// can carry. Split them with MaxRecordsPerDatagram.
	ErrTooManyRecords = errors.New("too many records for one datagram")
	// ErrInvalidExporter reports an encoder whose exported fields are out of
	// range for the format, such as an sFlow agent without an address.
	ErrInvalidExporter = errors.New("invalid exporter settings")
)

// Flow is one synthetic flow or, for sFlow, one sampled packet.
type Flow struct {
	// Src and Dst are the source and destination addresses, both IPv4 or
	// both IPv6. IPv4-mapped IPv6 addresses count as IPv6.
	Src, Dst netip.Addr
	// SrcPort and DstPort are the transport ports. For ICMP and ICMPv6 the
	// convention of NetFlow is followed: SrcPort is 0 and DstPort is
	// type<<8 | code.
	SrcPort, DstPort uint16
	// Proto is the IP protocol number: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6...
	Proto uint8
	// TCPFlags is the union of the TCP flags seen in the flow (the flags
	// of the sampled packet for sFlow), as in the TCP header's flags octet.
	TCPFlags uint8
	// Packets and Bytes are the totals of the flow, bytes counted at the IP
	// layer. NetFlow v5 carries only 32 bits of each. For sFlow, Packets is
	// ignored and Bytes is the frame length of the sampled packet, FCS
	// included; zero means the shortest frame that holds its headers.
	Packets, Bytes uint64
	// Fragment makes the packets IP fragments: FirstFragment (offset 0,
	// more fragments: the transport header is there) or LaterFragment
	// (offset 1480 octets: no transport header, so no ports or flags
	// are seen). NetFlow v9 and IPFIX carry the fragment offset.
	Fragment Fragment
	// Start and End are the times of the first and last packets of the flow
	// (NetFlow and IPFIX only); a zero value means the export time. They are
	// encoded with millisecond resolution, truncated.
	Start, End time.Time
}

// Fragment is a flow's fragment kind.
type Fragment uint8

// Fragment kinds.
const (
	NotFragment Fragment = iota
	FirstFragment
	LaterFragment
)

// laterOffset is the fragment offset of later fragments, in 8-octet units.
const laterOffset = 1480 / 8

// offset returns the 13-bit fragment offset field.
func (f Fragment) offset() uint16 {
	if f == LaterFragment {
		return laterOffset
	}
	return 0
}

// is6 reports whether f is an IPv6 flow, or an ErrInvalidFlow error naming
// the index i and the format if the addresses are unusable.
func (f *Flow) is6(format string, i int) (bool, error) {
	if !f.Src.IsValid() || !f.Dst.IsValid() {
		return false, fmt.Errorf("encode %s: flow %d: missing address: %w", format, i, ErrInvalidFlow)
	}
	if f.Src.Is4() != f.Dst.Is4() {
		return false, fmt.Errorf("encode %s: flow %d: source %s and destination %s differ in address family: %w",
			format, i, f.Src, f.Dst, ErrInvalidFlow)
	}
	return !f.Src.Is4(), nil
}

// times returns the start and end of f, a zero time standing for now.
func (f *Flow) times(now time.Time) (start, end time.Time) {
	start, end = f.Start, f.End
	if start.IsZero() {
		start = now
	}
	if end.IsZero() {
		end = now
	}
	return start, end
}

// uptimeMillis returns the milliseconds from boot to t, modulo 2^32, as a
// router's uptime counter reads them. Both times are truncated to the
// millisecond first, so differences of two readings are exact.
func uptimeMillis(boot, t time.Time) uint32 {
	return uint32(t.UnixMilli() - boot.UnixMilli())
}

// ceilTime rounds t up to a multiple of d since the zero time.
func ceilTime(t time.Time, d time.Duration) time.Time {
	c := t.Truncate(d)
	if c.Before(t) {
		c = c.Add(d)
	}
	return c
}

// pad4 returns the number of zero octets that align n to 4.
func pad4(n int) int {
	return (4 - n%4) % 4
}

// appendZeros appends n zero octets to b.
func appendZeros(b []byte, n int) []byte {
	for range n {
		b = append(b, 0)
	}
	return b
}

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// appendAddr appends the 4 or 16 octets of a.
func appendAddr(b []byte, a netip.Addr, v6 bool) []byte {
	if v6 {
		a16 := a.As16()
		return append(b, a16[:]...)
	}
	a4 := a.As4()
	return append(b, a4[:]...)
}

// putLen16 writes the length of b[start:] as a 16-bit value at b[at:].
func putLen16(b []byte, at, start int) {
	binary.BigEndian.PutUint16(b[at:], uint16(len(b)-start))
}
