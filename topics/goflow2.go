package topics

import (
	"errors"
	"fmt"
	"net/netip"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/floodgate-ddos/floodgate/sources"
)

// Field numbers of goflow2 v2's flowpb.FlowMessage (pb/flow.proto) that a
// record is made of.
const (
	gfSamplingRate   = 3
	gfSrcAddr        = 6
	gfDstAddr        = 7
	gfBytes          = 9
	gfPackets        = 10
	gfSamplerAddress = 11
	gfProto          = 20
	gfSrcPort        = 21
	gfDstPort        = 22
	gfTCPFlags       = 26
	gfEtype          = 30
	gfICMPType       = 31
	gfICMPCode       = 32
	gfFragmentOffset = 36
	gfIPFlags        = 38
	gfTimeReceivedNs = 110
	gfTimeStartNs    = 111
	gfTimeEndNs      = 112
)

// ErrGoFlow2 reports a goflow2 message that does not decode.
var ErrGoFlow2 = errors.New("bad goflow2 message")

// AppendGoFlow2 appends the records of a Kafka message written by goflow2
// v2 with -format=bin (flowpb.FlowMessage, each preceded by its length as
// a varint; goflow2 writes one per message) to dst. Counts are multiplied
// by the sampling rate, as goflow2 reports them sampled. Messages that are
// not IPv4 or IPv6 traffic are skipped and counted in skipped. It
// allocates nothing when dst has room; on an error dst is returned as it
// was.
func AppendGoFlow2(dst []sources.Record, msg []byte) (out []sources.Record, skipped int, err error) {
	orig := len(dst)
	for len(msg) > 0 {
		n, l := protowire.ConsumeVarint(msg)
		if l < 0 || n > uint64(len(msg)-l) {
			return dst[:orig], 0, fmt.Errorf("length prefix: %w", ErrGoFlow2)
		}
		var r sources.Record
		ok, err := decodeFlowMessage(msg[l:l+int(n)], &r)
		if err != nil {
			return dst[:orig], 0, err
		}
		if ok {
			dst = append(dst, r)
		} else {
			skipped++
		}
		msg = msg[l+int(n):]
	}
	return dst, skipped, nil
}

// decodeFlowMessage fills r from one FlowMessage; ok is false for a
// message that is not IP traffic.
func decodeFlowMessage(b []byte, r *sources.Record) (ok bool, err error) {
	var sampling, bytes, packets, received, start, end, etype, icmpType, icmpCode, fragOff, ipFlags uint64
	var src, dst, sampler []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, fmt.Errorf("field tag: %w", ErrGoFlow2)
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false, fmt.Errorf("field %d: %w", num, ErrGoFlow2)
			}
			b = b[n:]
			switch num {
			case gfSamplingRate:
				sampling = v
			case gfBytes:
				bytes = v
			case gfPackets:
				packets = v
			case gfProto:
				r.Proto = uint8(v)
			case gfSrcPort:
				r.SrcPort = uint16(v)
			case gfDstPort:
				r.DstPort = uint16(v)
			case gfTCPFlags:
				r.TCPFlags = uint8(v)
			case gfEtype:
				etype = v
			case gfICMPType:
				icmpType = v
			case gfICMPCode:
				icmpCode = v
			case gfFragmentOffset:
				fragOff = v
			case gfIPFlags:
				ipFlags = v
			case gfTimeReceivedNs:
				received = v
			case gfTimeStartNs:
				start = v
			case gfTimeEndNs:
				end = v
			}
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false, fmt.Errorf("field %d: %w", num, ErrGoFlow2)
			}
			b = b[n:]
			switch num {
			case gfSrcAddr:
				src = v
			case gfDstAddr:
				dst = v
			case gfSamplerAddress:
				sampler = v
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false, fmt.Errorf("field %d: %w", num, ErrGoFlow2)
			}
			b = b[n:]
		}
	}
	if etype != 0x0800 && etype != 0x86dd {
		return false, nil
	}
	var okS, okD bool
	r.Src, okS = addrOf(src)
	r.Dst, okD = addrOf(dst)
	if !okS || !okD {
		return false, nil
	}
	r.Exporter, _ = addrOf(sampler)
	if sampling == 0 {
		sampling = 1
	}
	r.Sampling = uint32(min(sampling, 1<<32-1))
	r.Packets, r.Bytes = packets*sampling, bytes*sampling
	if packets > 0 {
		r.Length = uint16(min(bytes/packets, 65535))
	}
	if r.Proto == 1 || r.Proto == 58 {
		r.SrcPort, r.DstPort = 0, uint16(icmpType&0xff)<<8|uint16(icmpCode&0xff)
	}
	// ip_flags holds the IPv4 flags field: 0x1 is More Fragments.
	r.Fragment = fragOff != 0 || ipFlags&1 != 0
	if start == 0 {
		start = received
	}
	if end == 0 {
		end = received
	}
	r.Start, r.End = int64(min(start, 1<<63-1)), int64(min(max(end, start), 1<<63-1))
	return true, nil
}

// addrOf reads a 4- or 16-byte address; IPv4-mapped addresses become
// IPv4, as the sources make them.
func addrOf(b []byte) (netip.Addr, bool) {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b)), true
	case 16:
		return netip.AddrFrom16([16]byte(b)).Unmap(), true
	}
	return netip.Addr{}, false
}
