package flowgen

import (
	"fmt"
	"slices"
	"time"
)

// IPFIX encodes IPFIX messages (RFC 7011).
//
// Templates are TemplateIPv4 and TemplateIPv6, with the information elements
// sourceIPv4Address (8) or sourceIPv6Address (27), destinationIPv4Address
// (12) or destinationIPv6Address (28), sourceTransportPort (7),
// destinationTransportPort (11), protocolIdentifier (4), tcpControlBits (6,
// two octets), packetDeltaCount (2), octetDeltaCount (1),
// flowStartMilliseconds (152) and flowEndMilliseconds (153), in that order.
// A collector needs the message of AppendTemplates before it can decode data.
//
// The export time is the time passed to a method, truncated to the second.
// The sequence number counts the data records sent before the message,
// options data records included, as RFC 7011 defines it; templates do not
// advance it.
type IPFIX struct {
	// ObservationDomain is the header's Observation Domain ID, which
	// scopes template IDs at the collector.
	ObservationDomain uint32
	// RandomSampler selects how AppendSamplingOptions reports sampling:
	// false sends samplingInterval (34) and samplingAlgorithm (35), as
	// many routers still do; true sends samplerMode (49) and
	// samplerRandomInterval (50).
	RandomSampler bool

	seq uint32
}

// Lengths of the parts of an IPFIX message.
const (
	ipfixHeaderLen = 16
	// ipfixTemplatesLen is the template set of AppendTemplates.
	ipfixTemplatesLen = 4 + 2*flowTemplateLen
	// ipfixOptionsLen is the options template set (6 octets of header then
	// three fields, padded) and the options data set (scope and two
	// options, padded) of AppendSamplingOptions.
	ipfixOptionsLen = 4 + 6 + 3*4 + 2 + 4 + 4 + 4 + 1 + 3
)

// MaxRecordsPerDatagram returns how many flows, of any mix of address
// families, AppendData always fits in a message of at most size bytes.
func (e *IPFIX) MaxRecordsPerDatagram(size int) int {
	return maxFlowRecords(size, ipfixHeaderLen, true)
}

// appendHeader appends a message header whose length appendEnd writes.
func (e *IPFIX) appendHeader(b []byte, now time.Time) []byte {
	b = appendU16(b, 10)
	b = appendU16(b, 0) // length, written by appendEnd
	b = appendU32(b, uint32(now.Unix()))
	b = appendU32(b, e.seq)
	b = appendU32(b, e.ObservationDomain)
	return b
}

// appendEnd writes the length of the message starting at msg and counts
// its records data records in the sequence number.
func (e *IPFIX) appendEnd(b []byte, msg, records int) []byte {
	putLen16(b, msg+2, msg)
	e.seq += uint32(records)
	return b
}

// AppendTemplates appends a message holding one template set with the IPv4
// and IPv6 flow templates.
func (e *IPFIX) AppendTemplates(dst []byte, now time.Time) []byte {
	dst = slices.Grow(dst, ipfixHeaderLen+ipfixTemplatesLen)
	msg := len(dst)
	dst = e.appendHeader(dst, now)
	set := len(dst)
	dst = appendU16(dst, 2) // template set
	dst = appendU16(dst, 0) // length, written below
	dst = appendFlowTemplate(dst, TemplateIPv4, false, true)
	dst = appendFlowTemplate(dst, TemplateIPv6, true, true)
	putLen16(dst, set+2, set)
	return e.appendEnd(dst, msg, 0)
}

// AppendData appends a message holding flows: a data set of the IPv4 flows,
// then one of the IPv6 flows, each in the order given; a family without
// flows gets no set. It fails, leaving dst unchanged, if a flow is invalid
// or the flows do not fit in one message.
func (e *IPFIX) AppendData(dst []byte, now time.Time, flows []Flow) ([]byte, error) {
	n4, n6, err := countFamilies("ipfix", flows)
	if err != nil {
		return dst, err
	}
	size := ipfixHeaderLen + flowSetsLen(n4, n6, true)
	if size > maxDatagram {
		return dst, fmt.Errorf("encode ipfix: %d flows in %d bytes: %w", len(flows), size, ErrTooManyRecords)
	}
	dst = slices.Grow(dst, size)
	msg := len(dst)
	dst = e.appendHeader(dst, now)
	dst = appendFlowSet(dst, now, time.Time{}, flows, n4, false, true)
	dst = appendFlowSet(dst, now, time.Time{}, flows, n6, true, true)
	return e.appendEnd(dst, msg, len(flows)), nil
}

// AppendSamplingOptions appends a message holding an options template
// (TemplateSampling, scope observationDomainId (149)) and its one data
// record, carrying interval and random sampling in the elements that
// RandomSampler selects.
func (e *IPFIX) AppendSamplingOptions(dst []byte, now time.Time, interval uint32) []byte {
	dst = slices.Grow(dst, ipfixHeaderLen+ipfixOptionsLen)
	msg := len(dst)
	dst = e.appendHeader(dst, now)

	set := len(dst)
	dst = appendU16(dst, 3) // options template set
	dst = appendU16(dst, 0) // length, written below
	dst = appendU16(dst, TemplateSampling)
	dst = appendU16(dst, 3) // field count
	dst = appendU16(dst, 1) // scope field count
	dst = appendField(dst, ieObservationDomainID, 4)
	if e.RandomSampler {
		dst = appendField(dst, ieSamplerMode, 1)
		dst = appendField(dst, ieSamplerRandomInterval, 4)
	} else {
		dst = appendField(dst, ieSamplingInterval, 4)
		dst = appendField(dst, ieSamplingAlgorithm, 1)
	}
	dst = appendZeros(dst, pad4(len(dst)-set))
	putLen16(dst, set+2, set)

	set = len(dst)
	dst = appendU16(dst, TemplateSampling)
	dst = appendU16(dst, 0) // length, written below
	dst = appendU32(dst, e.ObservationDomain)
	if e.RandomSampler {
		dst = append(dst, samplingRandom)
		dst = appendU32(dst, interval)
	} else {
		dst = appendU32(dst, interval)
		dst = append(dst, samplingRandom)
	}
	dst = appendZeros(dst, pad4(len(dst)-set))
	putLen16(dst, set+2, set)
	return e.appendEnd(dst, msg, 1)
}
