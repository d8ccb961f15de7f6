package flowgen

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// NetFlowV5 encodes NetFlow v5 export packets, which carry IPv4 flows only,
// at most NetFlowV5MaxRecords per datagram, with 32-bit counters. Next hop,
// interfaces, ToS, AS numbers and masks are sent as zero.
//
// The header's export time (unix_secs, unix_nsecs) is the time passed to
// AppendData rounded up to the whole millisecond, and sysUptime is read at
// that same instant, so that a collector computing export time − (sysUptime
// − First) recovers Flow.Start to the millisecond. The flow sequence counts
// the flows sent before the datagram.
type NetFlowV5 struct {
	// Boot is when the simulated exporter booted. sysUptime, First and
	// Last are milliseconds since Boot modulo 2^32, as a router's are, so
	// even a zero Boot gives consistent values; flows should not start
	// before it.
	Boot time.Time
	// EngineType and EngineID identify the flow-switching engine.
	EngineType, EngineID uint8
	// SamplingMode goes in the two high bits of the header's sampling
	// field: 0 none, 1 deterministic, 2 random. It must be below 4.
	SamplingMode uint8
	// SamplingInterval goes in the fourteen low bits of the header's
	// sampling field: one packet in SamplingInterval was sampled. It must
	// be below 16384.
	SamplingInterval uint16

	seq uint32
}

// NetFlowV5MaxRecords is the most flows one NetFlow v5 datagram carries.
const NetFlowV5MaxRecords = 30

// Lengths of the parts of a NetFlow v5 datagram.
const (
	v5HeaderLen = 24
	v5RecordLen = 48
)

// MaxRecordsPerDatagram returns how many flows AppendData fits in a
// datagram of at most size bytes, never more than NetFlowV5MaxRecords.
func (e *NetFlowV5) MaxRecordsPerDatagram(size int) int {
	return max(min((size-v5HeaderLen)/v5RecordLen, NetFlowV5MaxRecords), 0)
}

// AppendData appends a datagram holding flows, in the order given. It fails,
// leaving dst unchanged, if the sampling settings are out of range, if there
// are more than NetFlowV5MaxRecords flows, or if a flow is not IPv4 or has a
// counter above 2^32−1.
func (e *NetFlowV5) AppendData(dst []byte, now time.Time, flows []Flow) ([]byte, error) {
	if e.SamplingMode > 3 || e.SamplingInterval > 0x3fff {
		return dst, fmt.Errorf("encode netflow v5: sampling mode %d interval %d out of range: %w",
			e.SamplingMode, e.SamplingInterval, ErrInvalidExporter)
	}
	if len(flows) > NetFlowV5MaxRecords {
		return dst, fmt.Errorf("encode netflow v5: %d flows, at most %d: %w", len(flows), NetFlowV5MaxRecords, ErrTooManyRecords)
	}
	for i := range flows {
		f := &flows[i]
		v6, err := f.is6("netflow v5", i)
		if err != nil {
			return dst, err
		}
		if v6 {
			return dst, fmt.Errorf("encode netflow v5: flow %d: ipv6 flow %s > %s: %w", i, f.Src, f.Dst, ErrInvalidFlow)
		}
		if f.Packets > math.MaxUint32 || f.Bytes > math.MaxUint32 {
			return dst, fmt.Errorf("encode netflow v5: flow %d: %d packets %d bytes overflow 32 bits: %w",
				i, f.Packets, f.Bytes, ErrInvalidFlow)
		}
	}

	t := ceilTime(now, time.Millisecond)
	dst = slices.Grow(dst, v5HeaderLen+len(flows)*v5RecordLen)
	dst = appendU16(dst, 5)
	dst = appendU16(dst, uint16(len(flows)))
	dst = appendU32(dst, uptimeMillis(e.Boot, t))
	dst = appendU32(dst, uint32(t.Unix()))
	dst = appendU32(dst, uint32(t.Nanosecond()))
	dst = appendU32(dst, e.seq)
	dst = append(dst, e.EngineType, e.EngineID)
	dst = appendU16(dst, uint16(e.SamplingMode)<<14|e.SamplingInterval)
	for i := range flows {
		f := &flows[i]
		start, end := f.times(now)
		dst = appendAddr(dst, f.Src, false)
		dst = appendAddr(dst, f.Dst, false)
		dst = appendU32(dst, 0) // next hop
		dst = appendU32(dst, 0) // input and output interfaces
		dst = appendU32(dst, uint32(f.Packets))
		dst = appendU32(dst, uint32(f.Bytes))
		dst = appendU32(dst, uptimeMillis(e.Boot, start))
		dst = appendU32(dst, uptimeMillis(e.Boot, end))
		dst = appendU16(dst, f.SrcPort)
		dst = appendU16(dst, f.DstPort)
		dst = append(dst, 0, f.TCPFlags, f.Proto, 0) // pad, flags, protocol, ToS
		dst = appendU32(dst, 0)                      // source and destination AS
		dst = appendU32(dst, 0)                      // masks and pad
	}
	e.seq += uint32(len(flows))
	return dst, nil
}
