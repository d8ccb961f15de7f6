// Package topics holds the formats of the Kafka topics of a Floodgate
// cluster, decoupled from any Kafka client: the flow topic (decoded flow
// records, from collectors to detectors), the goflow2 topics a collector
// reads, and the partition key that keeps every count of a host or a
// hostgroup on one detector. Every decoder here checks its input and is
// fuzzed; the flow codec allocates nothing per record.
package topics

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/floodgate-ddos/floodgate/sources"
)

// FlowTopicV1 is the default name of the flow topic. The version is in
// the name and in every message (FlowMagic, FlowVersion), so a new format
// gets a new topic and old and new detectors never read each other's
// messages by mistake.
const FlowTopicV1 = "floodgate-flows-v1"

// A flow message is a header and records:
//
//	header  "FGF" | version (1) | side (1) | count (uint32)
//	record  flags (1) | proto (1) | tcp flags (1) | src port, dst port,
//	        length (uint16 each) | sampling (uint32) | packets, bytes
//	        (uint64 each) | start, end (int64 ns each) | src, dst (4 or
//	        16 bytes each, by flags) | exporter (0, 4 or 16, by flags)
//
// All integers are big-endian. side says which direction the message's
// partition key was chosen for (Side): a record whose source and
// destination are both monitored is published twice, once per side, and
// each detector counts only its side.
const (
	FlowMagic   = "FGF"
	FlowVersion = 1

	flowHeaderLen = 3 + 1 + 1 + 4
	flowFixedLen  = 1 + 1 + 1 + 2 + 2 + 2 + 4 + 8 + 8 + 8 + 8

	// MaxFlowRecord is the largest encoded record.
	MaxFlowRecord = flowFixedLen + 16 + 16 + 16
)

// Side is the direction a flow message is keyed for.
type Side uint8

// The sides of a flow message.
const (
	// SideBoth: count the records in every direction they are monitored
	// (the key covers both).
	SideBoth Side = iota
	// SideIncoming: count only toward the destination.
	SideIncoming
	// SideOutgoing: count only from the source.
	SideOutgoing
)

func (s Side) String() string {
	switch s {
	case SideBoth:
		return "both"
	case SideIncoming:
		return "incoming"
	case SideOutgoing:
		return "outgoing"
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

const (
	flagSrc6      = 1 << 0
	flagDst6      = 1 << 1
	flagExporter  = 1 << 2
	flagExporter6 = 1 << 3
	flagFragment  = 1 << 4
	flagsKnown    = flagSrc6 | flagDst6 | flagExporter | flagExporter6 | flagFragment
)

// Errors of DecodeFlows; each is wrapped with where it happened.
var (
	ErrNotFlowMessage = errors.New("not a flow message")
	ErrFlowVersion    = errors.New("unknown flow message version")
	ErrTruncated      = errors.New("truncated")
	ErrBadRecord      = errors.New("bad record")
)

// AppendFlows appends a flow message holding recs, keyed for side, to dst.
// A record with an invalid source or destination address is skipped (the
// sources never make one).
func AppendFlows(dst []byte, side Side, recs []sources.Record) []byte {
	start := len(dst)
	dst = append(dst, FlowMagic...)
	dst = append(dst, FlowVersion, byte(side), 0, 0, 0, 0)
	n := uint32(0)
	for i := range recs {
		r := &recs[i]
		if !r.Src.IsValid() || !r.Dst.IsValid() {
			continue
		}
		dst = appendFlow(dst, r)
		n++
	}
	binary.BigEndian.PutUint32(dst[start+5:], n)
	return dst
}

func appendFlow(b []byte, r *sources.Record) []byte {
	var flags byte
	if r.Src.Is6() {
		flags |= flagSrc6
	}
	if r.Dst.Is6() {
		flags |= flagDst6
	}
	if r.Exporter.IsValid() {
		flags |= flagExporter
		if r.Exporter.Is6() {
			flags |= flagExporter6
		}
	}
	if r.Fragment {
		flags |= flagFragment
	}
	b = append(b, flags, r.Proto, r.TCPFlags)
	b = binary.BigEndian.AppendUint16(b, r.SrcPort)
	b = binary.BigEndian.AppendUint16(b, r.DstPort)
	b = binary.BigEndian.AppendUint16(b, r.Length)
	b = binary.BigEndian.AppendUint32(b, r.Sampling)
	b = binary.BigEndian.AppendUint64(b, r.Packets)
	b = binary.BigEndian.AppendUint64(b, r.Bytes)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Start))
	b = binary.BigEndian.AppendUint64(b, uint64(r.End))
	b = appendAddr(b, r.Src)
	b = appendAddr(b, r.Dst)
	if r.Exporter.IsValid() {
		b = appendAddr(b, r.Exporter)
	}
	return b
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		return append(b, v[:]...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

// FlowHeader reads a flow message's header: its side and record count.
func FlowHeader(msg []byte) (Side, int, error) {
	if len(msg) < flowHeaderLen {
		return 0, 0, fmt.Errorf("flow message of %d bytes: %w", len(msg), ErrTruncated)
	}
	if string(msg[:3]) != FlowMagic {
		return 0, 0, ErrNotFlowMessage
	}
	if msg[3] != FlowVersion {
		return 0, 0, fmt.Errorf("flow message version %d: %w", msg[3], ErrFlowVersion)
	}
	side := Side(msg[4])
	if side > SideOutgoing {
		return 0, 0, fmt.Errorf("flow message side %d: %w", msg[4], ErrBadRecord)
	}
	n := binary.BigEndian.Uint32(msg[5:])
	// Each record takes at least flowFixedLen+8 bytes: a count that
	// cannot fit is a lie, refused before anything is sized by it.
	if int64(n)*(flowFixedLen+8) > int64(len(msg)-flowHeaderLen) {
		return 0, 0, fmt.Errorf("flow message claims %d records in %d bytes: %w", n, len(msg), ErrTruncated)
	}
	return side, int(n), nil
}

// DecodeFlows appends the records of the flow message msg to dst and
// returns it with the message's side. It allocates nothing when dst has
// room. On an error, dst is returned as it was: a message is taken whole
// or not at all.
func DecodeFlows(dst []sources.Record, msg []byte) ([]sources.Record, Side, error) {
	side, n, err := FlowHeader(msg)
	if err != nil {
		return dst, 0, err
	}
	orig := len(dst)
	b := msg[flowHeaderLen:]
	for i := range n {
		if len(b) < flowFixedLen {
			return dst[:orig], 0, fmt.Errorf("record %d: %w", i, ErrTruncated)
		}
		flags := b[0]
		if flags&^flagsKnown != 0 || flags&flagExporter6 != 0 && flags&flagExporter == 0 {
			return dst[:orig], 0, fmt.Errorf("record %d: flags %#x: %w", i, flags, ErrBadRecord)
		}
		need := flowFixedLen + addrLen(flags&flagSrc6 != 0) + addrLen(flags&flagDst6 != 0)
		if flags&flagExporter != 0 {
			need += addrLen(flags&flagExporter6 != 0)
		}
		if len(b) < need {
			return dst[:orig], 0, fmt.Errorf("record %d: %w", i, ErrTruncated)
		}
		dst = append(dst, sources.Record{
			Proto:    b[1],
			TCPFlags: b[2],
			SrcPort:  binary.BigEndian.Uint16(b[3:]),
			DstPort:  binary.BigEndian.Uint16(b[5:]),
			Length:   binary.BigEndian.Uint16(b[7:]),
			Sampling: binary.BigEndian.Uint32(b[9:]),
			Packets:  binary.BigEndian.Uint64(b[13:]),
			Bytes:    binary.BigEndian.Uint64(b[21:]),
			Start:    int64(binary.BigEndian.Uint64(b[29:])),
			End:      int64(binary.BigEndian.Uint64(b[37:])),
			Fragment: flags&flagFragment != 0,
		})
		r := &dst[len(dst)-1]
		p := flowFixedLen
		r.Src, p = readAddr(b, p, flags&flagSrc6 != 0)
		r.Dst, p = readAddr(b, p, flags&flagDst6 != 0)
		if flags&flagExporter != 0 {
			r.Exporter, p = readAddr(b, p, flags&flagExporter6 != 0)
		}
		b = b[p:]
	}
	if len(b) != 0 {
		return dst[:orig], 0, fmt.Errorf("%d bytes after the last record: %w", len(b), ErrBadRecord)
	}
	return dst, side, nil
}

func addrLen(v6 bool) int {
	if v6 {
		return 16
	}
	return 4
}

func readAddr(b []byte, p int, v6 bool) (netip.Addr, int) {
	if v6 {
		return netip.AddrFrom16([16]byte(b[p : p+16])), p + 16
	}
	return netip.AddrFrom4([4]byte(b[p : p+4])), p + 4
}
