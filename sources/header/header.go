// Package header owns the allocation-free parser for raw packet headers, as
// they arrive in sFlow raw-header records and from packet inputs: Ethernet
// with 802.1Q/QinQ tags and MPLS label stacks, IPv4 and IPv6 (with extension
// headers and fragments), TCP, UDP, ICMP and ICMPv6. It trusts no length
// field and never slices past the buffer it was given. FillRecord turns a
// parsed packet into the sources.Record every packet input hands on.
package header

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Errors returned by Parse. They are sentinel values so that the caller can
// count them without allocating.
var (
	ErrTruncated   = errors.New("header: truncated")
	ErrUnsupported = errors.New("header: unsupported link or network protocol")
	ErrBadIP       = errors.New("header: malformed IP header")
)

// Link layer types accepted by Parse.
const (
	LinkEthernet = 1   // Ethernet II, as sFlow header protocol 1
	LinkIPv4     = 11  // an IPv4 header, as sFlow header protocol 11
	LinkIPv6     = 12  // an IPv6 header, as sFlow header protocol 12
	LinkRawIP    = 101 // IPv4 or IPv6 told apart by the version, as pcap LINKTYPE_RAW
)

// Maximum number of VLAN tags and MPLS labels walked before giving up.
const (
	maxVLANTags   = 4
	maxMPLSLabels = 8
	maxIPv6ExtHdr = 8
)

// Packet is the result of Parse. The caller owns it and may reuse it for
// every call: Parse overwrites every field.
type Packet struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
	TCPFlags         uint8
	// ICMPType and ICMPCode are set for ICMP and ICMPv6.
	ICMPType, ICMPCode uint8
	// Fragment is true for any IP fragment; FirstFragment distinguishes
	// the one that carries the transport header.
	Fragment      bool
	FirstFragment bool
	// IPLength is the IP packet length from the IP header (IPv6: payload
	// length plus the 40-byte fixed header).
	IPLength uint16
}

// Parse decodes the headers in b, starting at the given link layer, into p.
// Transport fields are zero when the transport header is absent (a non-first
// fragment, or a header truncated by the sampler); that is not an error as
// long as the IP header is complete.
func Parse(b []byte, link int, p *Packet) error {
	*p = Packet{}
	switch link {
	case LinkEthernet:
		return parseEthernet(b, p)
	case LinkIPv4:
		return parseIPv4(b, p)
	case LinkIPv6:
		return parseIPv6(b, p)
	case LinkRawIP:
		if len(b) == 0 {
			return ErrTruncated
		}
		switch b[0] >> 4 {
		case 4:
			return parseIPv4(b, p)
		case 6:
			return parseIPv6(b, p)
		}
		return ErrUnsupported
	}
	return ErrUnsupported
}

func parseEthernet(b []byte, p *Packet) error {
	if len(b) < 14 {
		return ErrTruncated
	}
	etype := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	for i := 0; etype == 0x8100 || etype == 0x88a8 || etype == 0x9100; i++ {
		if i == maxVLANTags {
			return ErrUnsupported
		}
		if len(b) < 4 {
			return ErrTruncated
		}
		etype = binary.BigEndian.Uint16(b[2:4])
		b = b[4:]
	}
	switch etype {
	case 0x0800:
		return parseIPv4(b, p)
	case 0x86dd:
		return parseIPv6(b, p)
	case 0x8847, 0x8848:
		return parseMPLS(b, p)
	}
	return ErrUnsupported
}

func parseMPLS(b []byte, p *Packet) error {
	for i := 0; ; i++ {
		if i == maxMPLSLabels {
			return ErrUnsupported
		}
		if len(b) < 4 {
			return ErrTruncated
		}
		bottom := b[2]&1 == 1
		b = b[4:]
		if bottom {
			break
		}
	}
	if len(b) < 1 {
		return ErrTruncated
	}
	switch b[0] >> 4 {
	case 4:
		return parseIPv4(b, p)
	case 6:
		return parseIPv6(b, p)
	}
	return ErrUnsupported
}

func parseIPv4(b []byte, p *Packet) error {
	if len(b) < 20 {
		return ErrTruncated
	}
	if b[0]>>4 != 4 {
		return ErrBadIP
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return ErrBadIP
	}
	p.IPLength = binary.BigEndian.Uint16(b[2:4])
	flagsFrag := binary.BigEndian.Uint16(b[6:8])
	offset := flagsFrag & 0x1fff
	more := flagsFrag&0x2000 != 0
	p.Proto = b[9]
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	if offset != 0 || more {
		p.Fragment = true
		p.FirstFragment = offset == 0
		if offset != 0 {
			return nil
		}
	}
	if len(b) < ihl {
		return nil // options cut by the sampler: no transport header
	}
	parseTransport(b[ihl:], p)
	return nil
}

func parseIPv6(b []byte, p *Packet) error {
	if len(b) < 40 {
		return ErrTruncated
	}
	if b[0]>>4 != 6 {
		return ErrBadIP
	}
	p.IPLength = binary.BigEndian.Uint16(b[4:6]) + 40
	next := b[6]
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	b = b[40:]
	for i := 0; ; i++ {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < 8 {
				p.Proto = next
				return nil
			}
			n := (int(b[1]) + 1) * 8
			next = b[0]
			if len(b) < n {
				p.Proto = next
				return nil
			}
			b = b[n:]
		case 51: // authentication header: length in 4-byte units, minus 2
			if len(b) < 8 {
				p.Proto = next
				return nil
			}
			n := (int(b[1]) + 2) * 4
			next = b[0]
			if len(b) < n {
				p.Proto = next
				return nil
			}
			b = b[n:]
		case 44: // fragment
			if len(b) < 8 {
				p.Proto = next
				return nil
			}
			offMore := binary.BigEndian.Uint16(b[2:4])
			p.Fragment = true
			p.FirstFragment = offMore>>3 == 0
			next = b[0]
			b = b[8:]
			if !p.FirstFragment {
				p.Proto = next
				return nil
			}
		default:
			p.Proto = next
			parseTransport(b, p)
			return nil
		}
		if i == maxIPv6ExtHdr {
			p.Proto = next
			return nil
		}
	}
}

func parseTransport(b []byte, p *Packet) {
	switch p.Proto {
	case 6:
		if len(b) >= 14 {
			p.SrcPort = binary.BigEndian.Uint16(b[0:2])
			p.DstPort = binary.BigEndian.Uint16(b[2:4])
			p.TCPFlags = b[13]
		} else if len(b) >= 4 {
			p.SrcPort = binary.BigEndian.Uint16(b[0:2])
			p.DstPort = binary.BigEndian.Uint16(b[2:4])
		}
	case 17, 132, 136: // UDP, SCTP, UDP-Lite: ports come first
		if len(b) >= 4 {
			p.SrcPort = binary.BigEndian.Uint16(b[0:2])
			p.DstPort = binary.BigEndian.Uint16(b[2:4])
		}
	case 1, 58:
		if len(b) >= 2 {
			p.ICMPType = b[0]
			p.ICMPCode = b[1]
		}
	}
}
