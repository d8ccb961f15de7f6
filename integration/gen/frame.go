package gen

import "encoding/binary"

// Lengths of the parts of the frames built.
const (
	ethHeaderLen   = 14
	ipv4HeaderLen  = 20
	ipv6HeaderLen  = 40
	fragHeaderLen  = 8
	tcpHeaderLen   = 20
	udpHeaderLen   = 8
	icmpHeaderLen  = 8
	minFrameLen    = 60 // Ethernet minimum, FCS excluded
	maxFrameLen    = ethHeaderLen + 1500
	synOptionsLen  = 20 // MSS, SACK permitted, timestamps, NOP, window scale
	defaultTTL     = 57 // a packet that crossed a few hops
	tcpWindow      = 64240
	ipv4DontFrag   = 0x4000
	ipv4MoreFrags  = 0x2000
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	ipv6NextFrag   = 44
	tcpSeqPerFrame = 1448
	// maxHeadersLen is the longest run of headers built: Ethernet, IPv6
	// with a fragment header, TCP with SYN options.
	maxHeadersLen = ethHeaderLen + ipv6HeaderLen + fragHeaderLen + tcpHeaderLen + synOptionsLen
)

// MACs are the Ethernet addresses of the frames built.
type MACs struct {
	Dst, Src [6]byte
}

// DefaultMACs returns the locally administered addresses flowgen's sFlow
// frames use: from 02:00:00:00:00:01 to 02:00:00:00:00:02.
func DefaultMACs() MACs {
	return MACs{Dst: [6]byte{2, 0, 0, 0, 0, 2}, Src: [6]byte{2, 0, 0, 0, 0, 1}}
}

// frameLen returns the length of the frames of f, FCS excluded: the
// Ethernet header and the IP packet, padded to the Ethernet minimum.
func frameLen(f *Flow) int {
	return max(ethHeaderLen+int(f.Size), minFrameLen)
}

// ipHeaderLen returns the length of the IP headers of f's packets, the
// IPv6 fragment header included.
func ipHeaderLen(f *Flow) int {
	if f.Src.Is4() {
		return ipv4HeaderLen
	}
	if f.Fragment() {
		return ipv6HeaderLen + fragHeaderLen
	}
	return ipv6HeaderLen
}

// l4HeaderLen returns the length of the transport header of f's packets:
// zero for a non-first fragment or a protocol without one.
func l4HeaderLen(f *Flow) int {
	if f.FragOffset != 0 {
		return 0
	}
	switch f.Proto {
	case protoTCP:
		if f.TCPFlags&tcpSYN != 0 && int(f.Size) >= ipHeaderLen(f)+tcpHeaderLen+synOptionsLen {
			return tcpHeaderLen + synOptionsLen
		}
		return tcpHeaderLen
	case protoUDP:
		return udpHeaderLen
	case protoICMP, protoICMPv6:
		return icmpHeaderLen
	}
	return 0
}

// validFrame reports whether appendFrame can build the packets of f: both
// addresses of one family, a size that holds the headers and fits a
// 1500-octet MTU.
func validFrame(f *Flow) bool {
	if !f.Src.IsValid() || !f.Dst.IsValid() || f.Src.Is4() != f.Dst.Is4() || f.Src.Is4In6() || f.Dst.Is4In6() {
		return false
	}
	return int(f.Size) >= ipHeaderLen(f)+l4HeaderLen(f) && ethHeaderLen+int(f.Size) <= maxFrameLen
}

// appendFrame appends to b the first limit octets (all if limit is
// negative) of the Ethernet frame of one packet of f: headers, a zero
// payload up to f.Size and padding to the Ethernet minimum. id numbers the
// packet: it is the IPv4 identification (low 16 bits) or the IPv6
// fragment identification, and moves the TCP sequence number. The IPv4
// header checksum and the transport checksums (payload included: it is
// zero) are computed. f must satisfy validFrame.
func appendFrame(b []byte, f *Flow, macs *MACs, id uint32, limit int) []byte {
	n := frameLen(f)
	if limit < 0 || limit > n {
		limit = n
	}
	// The headers are built in hdr; the rest of the frame is zero.
	var hdr [maxHeadersLen]byte
	hlen := ethHeaderLen + ipHeaderLen(f) + l4HeaderLen(f)
	fr := hdr[:]
	copy(fr[0:6], macs.Dst[:])
	copy(fr[6:12], macs.Src[:])

	v6 := f.Src.Is6()
	ip := fr[ethHeaderLen:]
	l4 := ip[ipHeaderLen(f):]
	// The transport length: the whole datagram for a first fragment.
	l4Len := int(f.Size) - ipHeaderLen(f)
	if f.L4Length != 0 && f.FragOffset == 0 {
		l4Len = int(f.L4Length)
	}
	if v6 {
		binary.BigEndian.PutUint16(fr[12:], etherTypeIPv6)
		binary.BigEndian.PutUint32(ip[0:], 6<<28)
		binary.BigEndian.PutUint16(ip[4:], f.Size-ipv6HeaderLen)
		ip[6], ip[7] = f.Proto, defaultTTL
		a16, d16 := f.Src.As16(), f.Dst.As16()
		copy(ip[8:24], a16[:])
		copy(ip[24:40], d16[:])
		if f.Fragment() {
			ip[6] = ipv6NextFrag
			fh := ip[ipv6HeaderLen:]
			fh[0] = f.Proto
			om := f.FragOffset << 3
			if f.MoreFragments {
				om |= 1
			}
			binary.BigEndian.PutUint16(fh[2:], om)
			binary.BigEndian.PutUint32(fh[4:], id)
		}
	} else {
		binary.BigEndian.PutUint16(fr[12:], etherTypeIPv4)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], f.Size)
		binary.BigEndian.PutUint16(ip[4:], uint16(id))
		ff := f.FragOffset
		switch {
		case f.MoreFragments:
			ff |= ipv4MoreFrags
		case ff == 0:
			ff = ipv4DontFrag
		}
		binary.BigEndian.PutUint16(ip[6:], ff)
		ip[8], ip[9] = defaultTTL, f.Proto
		a4, d4 := f.Src.As4(), f.Dst.As4()
		copy(ip[12:16], a4[:])
		copy(ip[16:20], d4[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip[:ipv4HeaderLen], 0)))
	}

	hl := l4HeaderLen(f)
	if hl == 0 {
		return appendHeaders(b, hdr[:hlen], limit)
	}
	h := l4[:hl]
	csum := 0
	switch f.Proto {
	case protoTCP:
		binary.BigEndian.PutUint16(h[0:], f.SrcPort)
		binary.BigEndian.PutUint16(h[2:], f.DstPort)
		binary.BigEndian.PutUint32(h[4:], mix32(f.SrcPort, f.DstPort)+id*tcpSeqPerFrame)
		if f.TCPFlags&tcpACK != 0 {
			binary.BigEndian.PutUint32(h[8:], mix32(f.DstPort, f.SrcPort))
		}
		h[12] = byte(hl/4) << 4
		h[13] = f.TCPFlags
		binary.BigEndian.PutUint16(h[14:], tcpWindow)
		if hl > tcpHeaderLen {
			o := h[tcpHeaderLen:]
			o[0], o[1] = 2, 4 // MSS
			binary.BigEndian.PutUint16(o[2:], 1500-uint16(ipHeaderLen(f))-tcpHeaderLen)
			o[4], o[5] = 4, 2  // SACK permitted
			o[6], o[7] = 8, 10 // timestamps: value, echo 0
			binary.BigEndian.PutUint32(o[8:], id)
			o[16] = 1                     // NOP
			o[17], o[18], o[19] = 3, 3, 7 // window scale 7
		}
		csum = 16
	case protoUDP:
		binary.BigEndian.PutUint16(h[0:], f.SrcPort)
		binary.BigEndian.PutUint16(h[2:], f.DstPort)
		binary.BigEndian.PutUint16(h[4:], uint16(l4Len))
		csum = 6
	case protoICMP, protoICMPv6:
		h[0], h[1] = byte(f.DstPort>>8), byte(f.DstPort)
		binary.BigEndian.PutUint16(h[4:], uint16(id>>16)) // identifier
		binary.BigEndian.PutUint16(h[6:], uint16(id))     // sequence
		csum = 2
	}
	// The payload is zero, so the header alone gives the checksum of the
	// whole datagram; ICMPv4 has no pseudo-header.
	var s uint32
	if f.Proto != protoICMP {
		s = pseudoSum(f, l4Len)
	}
	c := ^fold(sum(h, s))
	if c == 0 && f.Proto == protoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(h[csum:], c)
	return appendHeaders(b, hdr[:hlen], limit)
}

// appendHeaders appends the first limit octets of a frame made of hdr
// followed by zeros.
func appendHeaders(b, hdr []byte, limit int) []byte {
	if limit <= len(hdr) {
		return append(b, hdr[:limit]...)
	}
	b = append(b, hdr...)
	return append(b, make([]byte, limit-len(hdr))...) // zeroed; no allocation when b has room
}

// pseudoSum returns the sum of the pseudo-header of f's transport
// checksum.
func pseudoSum(f *Flow, l4Len int) uint32 {
	var s uint32
	if f.Src.Is4() {
		a, d := f.Src.As4(), f.Dst.As4()
		s = sum(a[:], sum(d[:], 0))
	} else {
		a, d := f.Src.As16(), f.Dst.As16()
		s = sum(a[:], sum(d[:], 0))
	}
	return s + uint32(f.Proto) + uint32(l4Len)
}

// sum adds the 16-bit big-endian words of b to s.
func sum(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

// fold folds a one's complement sum to 16 bits.
func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// mix32 derives a stable 32-bit number from two ports.
func mix32(a, b uint16) uint32 {
	return uint32(mix(uint64(a), uint64(b)))
}
