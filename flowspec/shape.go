package flowspec

import (
	"sort"

	"github.com/floodgate-ddos/floodgate/detect"
)

// ShapeOf is what the rule builder needs of an attack's signature.
func ShapeOf(s *detect.Signature) Shape {
	conv := func(l []detect.Share) []Share {
		out := make([]Share, len(l))
		for i, x := range l {
			out[i] = Share{Value: x.Value, Share: x.Share}
		}
		return out
	}
	sh := Shape{Victim: s.Victim, Protocols: conv(s.Protocols), SrcPorts: conv(s.SrcPorts), DstPorts: conv(s.DstPorts),
		Fragment: s.Fragment}
	if len(sh.Protocols) == 0 { // no sketch: fall back on the class shares
		for _, c := range []struct {
			p int
			v float64
		}{{6, s.TCP}, {17, s.UDP}, {1, s.ICMP}} {
			if c.v > 0 {
				sh.Protocols = append(sh.Protocols, Share{Value: c.p, Share: c.v})
			}
		}
		sort.Slice(sh.Protocols, func(i, j int) bool { return sh.Protocols[i].Share > sh.Protocols[j].Share })
	}
	if s.TCP > 0 {
		sh.TCPSYN = s.TCPSYN
	}
	sh.Lengths = lengthShares(s.Lengths[:])
	for _, v := range s.Vectors {
		fv := Vector{Proto: v.Proto, SYN: v.Kind == detect.VectorSYN, Fragment: v.Kind == detect.VectorFragment,
			Share: v.Share, Records: v.Records, SrcPorts: conv(v.SrcPorts), DstPorts: conv(v.DstPorts), Lengths: lengthShares(v.Lengths[:])}
		for _, l := range v.SrcPortLengths {
			fv.SrcPortLengths = append(fv.SrcPortLengths, lengthShares(l[:]))
		}
		for _, l := range v.DstPortLengths {
			fv.DstPortLengths = append(fv.DstPortLengths, lengthShares(l[:]))
		}
		sh.Vectors = append(sh.Vectors, fv)
	}
	if s.Ratio > 1 {
		// Whatever the host sends below its limit may be its own.
		sh.Attack = 1 - 1/s.Ratio
	}
	return sh
}

// lengthShares turns a detect length histogram into the builder's.
func lengthShares(h []float64) []LengthShare {
	out := make([]LengthShare, 0, len(h))
	lo := 0
	for i, hi := range detect.LengthBounds {
		out = append(out, LengthShare{Lo: uint16(lo), Hi: uint16(hi), Share: h[i]})
		lo = hi + 1
	}
	return append(out, LengthShare{Lo: uint16(lo), Hi: 65535, Share: h[len(detect.LengthBounds)]})
}
