package flowspec

import "net/netip"

// Packet is what a rule is matched against: the fields of one IP packet
// that FlowSpec components look at.
type Packet struct {
	Src, Dst netip.Addr
	// Proto is the IP protocol (IPv6: the upper-layer next header).
	Proto uint8
	// SrcPort and DstPort are the TCP or UDP ports; ICMPType and
	// ICMPCode the ICMP (or ICMPv6) type and code. A later fragment has
	// neither.
	SrcPort, DstPort   uint16
	ICMPType, ICMPCode uint8
	TCPFlags           uint8
	// Length is the IP packet length.
	Length uint16
	DSCP   uint8
	// Fragment holds the packet's fragment bits: FragDontFragment,
	// FragIsFragment (a fragment other than the first), FragFirst,
	// FragLast.
	Fragment uint8
}

// Match reports whether r matches p, as a router applies RFC 8955 and
// RFC 8956: every component present must match; a port, type or flags
// component never matches a packet without that header (another protocol,
// or a later fragment).
func (r *Rule) Match(p *Packet) bool {
	if !r.Dst.Contains(p.Dst) || (r.Src.IsValid() && !r.Src.Contains(p.Src)) {
		return false
	}
	if len(r.Protocols) > 0 && !inBytes(r.Protocols, p.Proto) {
		return false
	}
	transport := (p.Proto == 6 || p.Proto == 17) && p.Fragment&FragIsFragment == 0
	if len(r.Ports) > 0 && (!transport || !(inRanges(r.Ports, p.SrcPort) || inRanges(r.Ports, p.DstPort))) {
		return false
	}
	if len(r.SrcPorts) > 0 && (!transport || !inRanges(r.SrcPorts, p.SrcPort)) {
		return false
	}
	if len(r.DstPorts) > 0 && (!transport || !inRanges(r.DstPorts, p.DstPort)) {
		return false
	}
	icmp := (p.Proto == 1 || p.Proto == 58) && p.Fragment&FragIsFragment == 0
	if len(r.ICMPTypes) > 0 && (!icmp || !inBytes(r.ICMPTypes, p.ICMPType)) {
		return false
	}
	if len(r.ICMPCodes) > 0 && (!icmp || !inBytes(r.ICMPCodes, p.ICMPCode)) {
		return false
	}
	if r.TCPFlagsSet != 0 || r.TCPFlagsUnset != 0 {
		if p.Proto != 6 || p.Fragment&FragIsFragment != 0 || p.TCPFlags&r.TCPFlagsSet != r.TCPFlagsSet || p.TCPFlags&r.TCPFlagsUnset != 0 {
			return false
		}
	}
	if len(r.PacketLengths) > 0 && !inRanges32(r.PacketLengths, uint32(p.Length)) {
		return false
	}
	if len(r.DSCP) > 0 && !inBytes(r.DSCP, p.DSCP) {
		return false
	}
	if r.Fragment != 0 && p.Fragment&r.Fragment == 0 {
		return false
	}
	return true
}

func inBytes(vs []uint8, v uint8) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

func inRanges32(rs []Range, v uint32) bool {
	for _, r := range rs {
		if v >= r.Lo && v <= r.Hi {
			return true
		}
	}
	return false
}
