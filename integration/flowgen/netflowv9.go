package flowgen

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// NetFlowV9 encodes NetFlow v9 export packets (RFC 3954).
//
// Templates are TemplateIPv4 and TemplateIPv6, with the fields IPV4_SRC_ADDR
// (8) or IPV6_SRC_ADDR (27), IPV4_DST_ADDR (12) or IPV6_DST_ADDR (28),
// L4_SRC_PORT (7), L4_DST_PORT (11), PROTOCOL (4), TCP_FLAGS (6, one octet),
// IN_PKTS (2, eight octets), IN_BYTES (1, eight octets), FIRST_SWITCHED (22)
// and LAST_SWITCHED (21), in that order. A collector needs the datagram of
// AppendTemplates before it can decode data.
//
// The header's export time is the time passed to a method rounded up to the
// whole second, and sysUptime is read at that same instant, so that a
// collector computing unix_secs − (sysUptime − FIRST_SWITCHED) recovers
// Flow.Start to the millisecond. The sequence number counts datagrams, of
// every kind, from 0. The header count is the number of records, template
// and options records included, as RFC 3954 defines it.
type NetFlowV9 struct {
	// SourceID is the header's Source ID, which scopes template IDs at the
	// collector.
	SourceID uint32
	// Boot is when the simulated exporter booted. sysUptime,
	// FIRST_SWITCHED and LAST_SWITCHED are milliseconds since Boot modulo
	// 2^32, as a router's are, so even a zero Boot gives consistent values;
	// flows should not start before it.
	Boot time.Time

	seq uint32
}

// Lengths of the parts of a NetFlow v9 datagram.
const (
	v9HeaderLen = 20
	// v9TemplatesLen is the template flowset of AppendTemplates.
	v9TemplatesLen = 4 + 2*flowTemplateLen
	// v9OptionsLen is the options template flowset (6 octets of header
	// then three fields, padded) and the options data flowset (scope,
	// interval and algorithm, padded) of AppendSamplingOptions.
	v9OptionsLen = 4 + 6 + 3*4 + 2 + 4 + 4 + 4 + 1 + 3
)

// MaxRecordsPerDatagram returns how many flows, of any mix of address
// families, AppendData always fits in a datagram of at most size bytes.
func (e *NetFlowV9) MaxRecordsPerDatagram(size int) int {
	return min(maxFlowRecords(size, v9HeaderLen, false), math.MaxUint16)
}

// appendHeader appends a packet header announcing count records and
// advances the sequence number.
func (e *NetFlowV9) appendHeader(b []byte, now time.Time, count int) []byte {
	t := ceilTime(now, time.Second)
	b = appendU16(b, 9)
	b = appendU16(b, uint16(count))
	b = appendU32(b, uptimeMillis(e.Boot, t))
	b = appendU32(b, uint32(t.Unix()))
	b = appendU32(b, e.seq)
	b = appendU32(b, e.SourceID)
	e.seq++
	return b
}

// AppendTemplates appends a datagram holding one template flowset with the
// IPv4 and IPv6 flow templates.
func (e *NetFlowV9) AppendTemplates(dst []byte, now time.Time) []byte {
	dst = slices.Grow(dst, v9HeaderLen+v9TemplatesLen)
	dst = e.appendHeader(dst, now, 2)
	set := len(dst)
	dst = appendU16(dst, 0) // template flowset
	dst = appendU16(dst, 0) // length, written below
	dst = appendFlowTemplate(dst, TemplateIPv4, false, false)
	dst = appendFlowTemplate(dst, TemplateIPv6, true, false)
	putLen16(dst, set+2, set)
	return dst
}

// AppendData appends a datagram holding flows: a data flowset of the IPv4
// flows, then one of the IPv6 flows, each in the order given; a family
// without flows gets no flowset. It fails, leaving dst unchanged, if a flow
// is invalid or the flows do not fit in one datagram.
func (e *NetFlowV9) AppendData(dst []byte, now time.Time, flows []Flow) ([]byte, error) {
	n4, n6, err := countFamilies("netflow v9", flows)
	if err != nil {
		return dst, err
	}
	size := v9HeaderLen + flowSetsLen(n4, n6, false)
	if len(flows) > math.MaxUint16 || size > maxDatagram {
		return dst, fmt.Errorf("encode netflow v9: %d flows in %d bytes: %w", len(flows), size, ErrTooManyRecords)
	}
	dst = slices.Grow(dst, size)
	dst = e.appendHeader(dst, now, len(flows))
	dst = appendFlowSet(dst, now, e.Boot, flows, n4, false, false)
	dst = appendFlowSet(dst, now, e.Boot, flows, n6, true, false)
	return dst, nil
}

// AppendSamplingOptions appends a datagram holding an options template
// (TemplateSampling, scope System) and its one data record, carrying
// SAMPLING_INTERVAL (34) = interval and SAMPLING_ALGORITHM (35) = 2
// (random). The scope value is the SourceID.
func (e *NetFlowV9) AppendSamplingOptions(dst []byte, now time.Time, interval uint32) []byte {
	dst = slices.Grow(dst, v9HeaderLen+v9OptionsLen)
	dst = e.appendHeader(dst, now, 2)

	set := len(dst)
	dst = appendU16(dst, 1) // options template flowset
	dst = appendU16(dst, 0) // length, written below
	dst = appendU16(dst, TemplateSampling)
	dst = appendU16(dst, 4) // scope length, in octets
	dst = appendU16(dst, 8) // options length, in octets
	dst = appendField(dst, v9ScopeSystem, 4)
	dst = appendField(dst, ieSamplingInterval, 4)
	dst = appendField(dst, ieSamplingAlgorithm, 1)
	dst = appendZeros(dst, pad4(len(dst)-set))
	putLen16(dst, set+2, set)

	set = len(dst)
	dst = appendU16(dst, TemplateSampling)
	dst = appendU16(dst, 0) // length, written below
	dst = appendU32(dst, e.SourceID)
	dst = appendU32(dst, interval)
	dst = append(dst, samplingRandom)
	dst = appendZeros(dst, pad4(len(dst)-set))
	putLen16(dst, set+2, set)
	return dst
}
