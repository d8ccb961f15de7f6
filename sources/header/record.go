package header

import "github.com/floodgate-ddos/floodgate/sources"

// FillRecord sets the packet fields of r from a parsed packet: addresses,
// ports, protocol, TCP flags, fragment flag, and one packet of IPLength
// bytes (Length as well). For ICMP and ICMPv6 it follows the NetFlow
// convention, so that every input produces the same record: SrcPort is 0
// and DstPort is type<<8 | code. It leaves Exporter, Sampling and the times
// alone, and does not scale by a sampling rate.
func (p *Packet) FillRecord(r *sources.Record) {
	r.Src, r.Dst = p.Src, p.Dst
	r.Proto, r.TCPFlags, r.Fragment = p.Proto, p.TCPFlags, p.Fragment
	r.SrcPort, r.DstPort = p.SrcPort, p.DstPort
	if p.Proto == 1 || p.Proto == 58 {
		r.SrcPort = 0
		r.DstPort = uint16(p.ICMPType)<<8 | uint16(p.ICMPCode)
	}
	r.Packets = 1
	r.Bytes = uint64(p.IPLength)
	r.Length = p.IPLength
}
