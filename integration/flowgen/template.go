package flowgen

import "time"

// Template IDs used by the NetFlow v9 and IPFIX encoders. They are fixed so
// that a test can send templates once and data from any encoder of the same
// source ID or observation domain.
const (
	// TemplateIPv4 describes the data records of IPv4 flows.
	TemplateIPv4 uint16 = 256
	// TemplateIPv6 describes the data records of IPv6 flows.
	TemplateIPv6 uint16 = 257
	// TemplateSampling is the options template of the sampling options
	// record.
	TemplateSampling uint16 = 258
)

// Field types. NetFlow v9 (RFC 3954) and IPFIX (the IANA IPFIX registry)
// share the numbers below 128; the names are the IPFIX ones, with the v9 name
// where it differs.
const (
	ieOctetDeltaCount          = 1   // IN_BYTES
	iePacketDeltaCount         = 2   // IN_PKTS
	ieProtocolIdentifier       = 4   // PROTOCOL
	ieTCPControlBits           = 6   // TCP_FLAGS
	ieSourceTransportPort      = 7   // L4_SRC_PORT
	ieSourceIPv4Address        = 8   // IPV4_SRC_ADDR
	ieDestinationTransportPort = 11  // L4_DST_PORT
	ieDestinationIPv4Address   = 12  // IPV4_DST_ADDR
	ieLastSwitched             = 21  // LAST_SWITCHED, v9 only
	ieFirstSwitched            = 22  // FIRST_SWITCHED, v9 only
	ieSourceIPv6Address        = 27  // IPV6_SRC_ADDR
	ieDestinationIPv6Address   = 28  // IPV6_DST_ADDR
	ieSamplingInterval         = 34  // SAMPLING_INTERVAL
	ieSamplingAlgorithm        = 35  // SAMPLING_ALGORITHM
	ieSamplerMode              = 49  // IPFIX only
	ieSamplerRandomInterval    = 50  // IPFIX only
	ieObservationDomainID      = 149 // IPFIX only
	ieFlowStartMilliseconds    = 152 // IPFIX only
	ieFlowEndMilliseconds      = 153 // IPFIX only
	ieFragmentOffset           = 88  // FRAGMENT_OFFSET

	// v9ScopeSystem is the NetFlow v9 options scope "System".
	v9ScopeSystem = 1
	// samplingRandom is the SAMPLING_ALGORITHM and samplerMode value of
	// random 1-in-N sampling.
	samplingRandom = 2
)

// Lengths of the parts of the flow templates and records.
const (
	flowTemplateFields = 11
	// flowTemplateLen is the length of one flow template record: ID,
	// field count, and a type and length per field.
	flowTemplateLen = 4 + 4*flowTemplateFields
	// flowKeyLen4 and flowKeyLen6 cover addresses, ports and protocol.
	flowKeyLen4 = 4 + 4 + 2 + 2 + 1
	flowKeyLen6 = 16 + 16 + 2 + 2 + 1
)

// tcpFlagsLen returns the length of the TCP flags field: one octet in v9,
// two in IPFIX where tcpControlBits is unsigned16 (RFC 7125).
func tcpFlagsLen(ipfix bool) uint16 {
	if ipfix {
		return 2
	}
	return 1
}

// timeLen returns the length of each time field: uptime milliseconds in v9,
// dateTimeMilliseconds in IPFIX.
func timeLen(ipfix bool) uint16 {
	if ipfix {
		return 8
	}
	return 4
}

// flowRecordLen returns the length of one flow data record.
func flowRecordLen(v6, ipfix bool) int {
	n := flowKeyLen4
	if v6 {
		n = flowKeyLen6
	}
	return n + int(tcpFlagsLen(ipfix)) + 8 + 8 + 2*int(timeLen(ipfix)) + 2
}

// appendField appends a field specifier without enterprise number.
func appendField(b []byte, typ, length uint16) []byte {
	return appendU16(appendU16(b, typ), length)
}

// appendFlowTemplate appends the flow template record id, for IPv6 flows if
// v6, in the IPFIX variant if ipfix. appendFlowRecord writes the fields in
// the same order.
func appendFlowTemplate(b []byte, id uint16, v6, ipfix bool) []byte {
	b = appendU16(b, id)
	b = appendU16(b, flowTemplateFields)
	if v6 {
		b = appendField(b, ieSourceIPv6Address, 16)
		b = appendField(b, ieDestinationIPv6Address, 16)
	} else {
		b = appendField(b, ieSourceIPv4Address, 4)
		b = appendField(b, ieDestinationIPv4Address, 4)
	}
	b = appendField(b, ieSourceTransportPort, 2)
	b = appendField(b, ieDestinationTransportPort, 2)
	b = appendField(b, ieProtocolIdentifier, 1)
	b = appendField(b, ieTCPControlBits, tcpFlagsLen(ipfix))
	b = appendField(b, iePacketDeltaCount, 8)
	b = appendField(b, ieOctetDeltaCount, 8)
	if ipfix {
		b = appendField(b, ieFlowStartMilliseconds, 8)
		b = appendField(b, ieFlowEndMilliseconds, 8)
	} else {
		b = appendField(b, ieFirstSwitched, 4)
		b = appendField(b, ieLastSwitched, 4)
	}
	return appendField(b, ieFragmentOffset, 2)
}

// appendFlowRecord appends the data record of f in the layout of
// appendFlowTemplate. start and end are uptime milliseconds in v9 and Unix
// milliseconds in IPFIX.
func appendFlowRecord(b []byte, f *Flow, v6, ipfix bool, start, end uint64) []byte {
	b = appendAddr(b, f.Src, v6)
	b = appendAddr(b, f.Dst, v6)
	b = appendU16(b, f.SrcPort)
	b = appendU16(b, f.DstPort)
	b = append(b, f.Proto)
	if ipfix {
		b = appendU16(b, uint16(f.TCPFlags))
	} else {
		b = append(b, f.TCPFlags)
	}
	b = appendU64(b, f.Packets)
	b = appendU64(b, f.Bytes)
	if ipfix {
		b = appendU64(b, start)
		b = appendU64(b, end)
	} else {
		b = appendU32(b, uint32(start))
		b = appendU32(b, uint32(end))
	}
	return appendU16(b, f.Fragment.offset())
}

// flowSetsLen returns the length of the data sets holding n4 IPv4 and n6
// IPv6 flow records, headers and padding included; a family without records
// gets no set.
func flowSetsLen(n4, n6 int, ipfix bool) int {
	n := 0
	if n4 > 0 {
		l := 4 + n4*flowRecordLen(false, ipfix)
		n += l + pad4(l)
	}
	if n6 > 0 {
		l := 4 + n6*flowRecordLen(true, ipfix)
		n += l + pad4(l)
	}
	return n
}

// maxFlowRecords returns how many flows of any mix of families always fit in
// size bytes after a message header of hdrLen bytes.
func maxFlowRecords(size, hdrLen int, ipfix bool) int {
	// The worst mixes are all IPv6 records, or all but one, whose IPv4
	// record adds a set: an IPv4 record is shorter than an IPv6 one.
	fits := func(n int) bool {
		return hdrLen+flowSetsLen(0, n, ipfix) <= size && (n == 0 || hdrLen+flowSetsLen(1, n-1, ipfix) <= size)
	}
	n := max((size-hdrLen)/flowRecordLen(false, ipfix), 0)
	for n > 0 && !fits(n) {
		n--
	}
	return n
}

// countFamilies checks every flow and counts the IPv4 and IPv6 ones.
func countFamilies(format string, flows []Flow) (n4, n6 int, err error) {
	for i := range flows {
		v6, err := flows[i].is6(format, i)
		if err != nil {
			return 0, 0, err
		}
		if v6 {
			n6++
		} else {
			n4++
		}
	}
	return n4, n6, nil
}

// appendFlowSet appends the data set of the IPv6 flows if v6, else of the
// IPv4 ones; n is their number, and no set is written if it is zero. Times
// are uptime milliseconds since boot in v9 and Unix milliseconds in IPFIX.
func appendFlowSet(b []byte, now, boot time.Time, flows []Flow, n int, v6, ipfix bool) []byte {
	if n == 0 {
		return b
	}
	id := TemplateIPv4
	if v6 {
		id = TemplateIPv6
	}
	set := len(b)
	b = appendU16(b, id)
	b = appendU16(b, 0) // length, written below
	for i := range flows {
		f := &flows[i]
		if f.Src.Is4() == v6 {
			continue
		}
		start, end := f.times(now)
		var s, e uint64
		if ipfix {
			s, e = uint64(start.UnixMilli()), uint64(end.UnixMilli())
		} else {
			s, e = uint64(uptimeMillis(boot, start)), uint64(uptimeMillis(boot, end))
		}
		b = appendFlowRecord(b, f, v6, ipfix, s, e)
	}
	b = appendZeros(b, pad4(len(b)-set))
	putLen16(b, set+2, set)
	return b
}
