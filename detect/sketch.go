package detect

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/floodgate-ddos/floodgate/sources"
)

// topK counts the heaviest keys of a stream in fixed memory with the
// space-saving algorithm: a key not tracked replaces the lightest one and
// inherits its count, so a heavy hitter is never lost.
type topK[K comparable] struct {
	keys   []K
	counts []float64
}

func newTopK[K comparable](n int) topK[K] {
	return topK[K]{keys: make([]K, 0, n), counts: make([]float64, 0, n)}
}

func (t *topK[K]) add(k K, w float64) {
	for i := range t.keys {
		if t.keys[i] == k {
			t.counts[i] += w
			return
		}
	}
	if len(t.keys) < cap(t.keys) {
		t.keys = append(t.keys, k)
		t.counts = append(t.counts, w)
		return
	}
	min := 0
	for i := 1; i < len(t.counts); i++ {
		if t.counts[i] < t.counts[min] {
			min = i
		}
	}
	t.keys[min] = k
	t.counts[min] += w
}

func (t *topK[K]) decay(f float64) {
	for i := range t.counts {
		t.counts[i] *= f
	}
}

// top returns up to n keys with their counts divided by total, heaviest
// first.
func (t *topK[K]) top(n int, total float64) ([]K, []float64) {
	idx := make([]int, len(t.keys))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case t.counts[a] > t.counts[b]:
			return -1
		case t.counts[a] < t.counts[b]:
			return 1
		}
		return 0
	})
	if len(idx) > n {
		idx = idx[:n]
	}
	keys := make([]K, 0, len(idx))
	shares := make([]float64, 0, len(idx))
	for _, i := range idx {
		if total <= 0 || t.counts[i] <= 0 {
			break
		}
		keys = append(keys, t.keys[i])
		shares = append(shares, min(1, t.counts[i]/total))
	}
	return keys, shares
}

// Sketch sizes and report lengths.
const (
	sketchPorts    = 32
	sketchPrefixes = 32
	sketchProtos   = 8
	sketchFlags    = 16
	reportTop      = 5
	maxSamples     = 8
	sketchDecay    = 0.9 // per tick: shares reflect the last two seconds or so
	// sketchDecayAttack is the decay while the host is attacked: the
	// attack's shape holds still, so the shares rest on the last seven
	// seconds or so, and the evidence behind them (Vector.Records) grows
	// as the attack goes on.
	sketchDecayAttack = 0.97
)

// sketch describes the shape of one host's traffic. It exists only while
// the host is suspect or attacked, so its cost is paid by few hosts.
type sketch struct {
	fresh bool // created this tick: has seen no full tick yet
	// byFlows weighs each new flow as 1 and each record of a flow already
	// seen this tick as 0, instead of weighing records by their packets:
	// a host nearest its flows limit is described by the traffic that
	// makes its flows (a spoofed flood), not by its heaviest streams.
	byFlows bool
	// classes are the weights by traffic class (clsTotal unused), so that
	// a flows-weighted sketch also gives the class shares.
	classes             [numClasses]float64
	packets, tcpPackets float64
	bytes               float64
	srcPorts, dstPorts  topK[uint16]
	protos              topK[uint8]
	flags               topK[uint8]
	srcNets             topK[netip.Prefix]
	lengths             [len(LengthBounds) + 1]float64
	samples             []sources.Record
	// vectors split the traffic by what a FlowSpec rule can tell apart
	// (protocol; TCP SYN without ACK; non-first fragments), each with
	// its own ports and lengths, so that a multi-vector attack gets one
	// rule per vector.
	vectors []vector
}

// vectorKey is the part of a packet that decides its vector.
type vectorKey struct {
	proto uint8
	kind  VectorKind
}

// vector is the sketch of one vector's traffic.
type vector struct {
	key vectorKey
	// w is the vector's weight (as the sketch's packets); n counts the
	// records (samples) behind it, the evidence its shares rest on.
	w, n               float64
	srcPorts, dstPorts topK[uint16]
	lengths            [len(LengthBounds) + 1]float64
	// srcLens and dstLens weigh (port, length bucket) pairs, keyed
	// port<<8 | bucket: the lengths of one port's packets, apart from the
	// rest of the vector (a reflector's answers, not the victim's own).
	srcLens, dstLens topK[uint32]
}

// Vector sketch sizes: vectors per host, ports per vector.
const (
	sketchVectors     = 8
	sketchVectorPorts = 8
	sketchPortLengths = 24
)

// vectorOf returns r's vector key.
func vectorOf(r *sources.Record) vectorKey {
	k := vectorKey{proto: r.Proto}
	transport := r.Proto == 6 || r.Proto == 17
	switch {
	case r.Fragment && (!transport || (r.SrcPort == 0 && r.DstPort == 0)):
		// A non-first fragment: no transport header, so no port or flag
		// component can match it; only the fragment component can.
		k.kind = VectorFragment
	case transport && r.SrcPort == 0 && r.DstPort == 0:
		// Flow exports without fragment fields show non-first fragments
		// as transport traffic without ports.
		k.kind = VectorFragment
	case r.Proto == 6 && r.TCPFlags&0x12 == 0x02:
		k.kind = VectorSYN
	}
	return k
}

func (s *sketch) vector(k vectorKey) *vector {
	for i := range s.vectors {
		if s.vectors[i].key == k {
			return &s.vectors[i]
		}
	}
	if len(s.vectors) < cap(s.vectors) {
		s.vectors = append(s.vectors, vector{key: k, srcPorts: newTopK[uint16](sketchVectorPorts), dstPorts: newTopK[uint16](sketchVectorPorts),
			srcLens: newTopK[uint32](sketchPortLengths), dstLens: newTopK[uint32](sketchPortLengths)})
		return &s.vectors[len(s.vectors)-1]
	}
	// Full: the lightest vector makes room (space-saving, as topK).
	light := 0
	for i := range s.vectors {
		if s.vectors[i].w < s.vectors[light].w {
			light = i
		}
	}
	v := &s.vectors[light]
	v.key = k
	v.srcPorts.keys, v.srcPorts.counts = v.srcPorts.keys[:0], v.srcPorts.counts[:0]
	v.dstPorts.keys, v.dstPorts.counts = v.dstPorts.keys[:0], v.dstPorts.counts[:0]
	v.srcLens.keys, v.srcLens.counts = v.srcLens.keys[:0], v.srcLens.counts[:0]
	v.dstLens.keys, v.dstLens.counts = v.dstLens.keys[:0], v.dstLens.counts[:0]
	v.lengths = [len(LengthBounds) + 1]float64{}
	return v
}

func newSketch(byFlows bool) *sketch {
	return &sketch{
		byFlows:  byFlows,
		srcPorts: newTopK[uint16](sketchPorts),
		dstPorts: newTopK[uint16](sketchPorts),
		protos:   newTopK[uint8](sketchProtos),
		flags:    newTopK[uint8](sketchFlags),
		srcNets:  newTopK[netip.Prefix](sketchPrefixes),
		samples:  make([]sources.Record, 0, maxSamples),
		vectors:  make([]vector, 0, sketchVectors),
		fresh:    true,
	}
}

func lengthBucket(l uint16) int {
	for i, b := range LengthBounds {
		if int(l) <= b {
			return i
		}
	}
	return len(LengthBounds)
}

// add counts r, weighted by its packets. src is the remote side of the
// monitored host (the source for incoming traffic).
func (s *sketch) add(r *sources.Record, remote netip.Addr, pkts float64, mask uint8) {
	if pkts <= 0 {
		return
	}
	for k := clsTCP; k < numClasses; k++ {
		if mask&(1<<k) != 0 {
			s.classes[k] += pkts
		}
	}
	s.packets += pkts
	s.bytes += float64(r.Bytes) * pkts / float64(max(r.Packets, 1))
	s.protos.add(r.Proto, pkts)
	// Both ports zero is a non-first fragment (no transport header; flow
	// exports without fragment fields show them so) or traffic to port 0:
	// either way a FlowSpec port match would miss later fragments, so
	// such packets say nothing about ports.
	noPorts := r.SrcPort == 0 && r.DstPort == 0
	if (r.Proto == 6 || r.Proto == 17) && !noPorts {
		s.srcPorts.add(r.SrcPort, pkts)
		s.dstPorts.add(r.DstPort, pkts)
	}
	if r.Proto == 6 {
		s.tcpPackets += pkts
		s.flags.add(r.TCPFlags, pkts)
	}
	bits := 24
	if remote.Is6() {
		bits = 64
	}
	if p, err := remote.Prefix(bits); err == nil {
		s.srcNets.add(p, pkts)
	}
	s.lengths[lengthBucket(r.Length)] += pkts
	v := s.vector(vectorOf(r))
	v.w += pkts
	v.n++
	switch {
	case v.key.kind == VectorFragment:
	case r.Proto == 6 || r.Proto == 17:
		v.srcPorts.add(r.SrcPort, pkts)
		v.dstPorts.add(r.DstPort, pkts)
		b := uint32(lengthBucket(r.Length))
		v.srcLens.add(uint32(r.SrcPort)<<8|b, pkts)
		v.dstLens.add(uint32(r.DstPort)<<8|b, pkts)
	case r.Proto == 1 || r.Proto == 58:
		v.dstPorts.add(r.DstPort>>8, pkts) // the ICMP type (records carry type<<8 | code)
	}
	v.lengths[lengthBucket(r.Length)] += pkts
	if len(s.samples) < cap(s.samples) {
		s.samples = append(s.samples, *r)
	}
}

func (s *sketch) decay(f float64) {
	s.fresh = false
	s.packets *= f
	s.tcpPackets *= f
	s.bytes *= f
	for i := range s.classes {
		s.classes[i] *= f
	}
	s.srcPorts.decay(f)
	s.dstPorts.decay(f)
	s.protos.decay(f)
	s.flags.decay(f)
	s.srcNets.decay(f)
	for i := range s.lengths {
		s.lengths[i] *= f
	}
	for i := range s.vectors {
		v := &s.vectors[i]
		v.w *= f
		v.n *= f
		v.srcPorts.decay(f)
		v.dstPorts.decay(f)
		v.srcLens.decay(f)
		v.dstLens.decay(f)
		for j := range v.lengths {
			v.lengths[j] *= f
		}
	}
}

func shares[K uint8 | uint16](t *topK[K], total float64) []Share {
	keys, sh := t.top(reportTop, total)
	out := make([]Share, len(keys))
	for i := range keys {
		out[i] = Share{Value: int(keys[i]), Share: sh[i]}
	}
	return out
}

// fill writes the sketch's view of the traffic into sig.
func (s *sketch) fill(sig *Signature) {
	if s.packets <= 0 {
		return
	}
	sig.Protocols = shares(&s.protos, s.packets)
	sig.SrcPorts = shares(&s.srcPorts, s.packets)
	sig.DstPorts = shares(&s.dstPorts, s.packets)
	sig.TCPFlags = shares(&s.flags, s.tcpPackets)
	keys, sh := s.srcNets.top(reportTop, s.packets)
	sig.SrcPrefixes = make([]PrefixShare, len(keys))
	for i := range keys {
		sig.SrcPrefixes[i] = PrefixShare{Prefix: keys[i], Share: sh[i]}
	}
	for i, v := range s.lengths {
		sig.Lengths[i] = v / s.packets
	}
	sig.AvgLength = s.bytes / s.packets
	sig.Samples = slices.Clone(s.samples)
	sig.Vectors = make([]Vector, 0, len(s.vectors))
	for i := range s.vectors {
		v := &s.vectors[i]
		if v.w <= 0 {
			continue
		}
		out := Vector{Proto: v.key.proto, Kind: v.key.kind, Share: min(1, v.w/s.packets), Records: v.n,
			SrcPorts: shares(&v.srcPorts, v.w), DstPorts: shares(&v.dstPorts, v.w)}
		for j, l := range v.lengths {
			out.Lengths[j] = l / v.w
		}
		out.SrcPortLengths = portLengths(&v.srcLens, out.SrcPorts, v.w)
		out.DstPortLengths = portLengths(&v.dstLens, out.DstPorts, v.w)
		sig.Vectors = append(sig.Vectors, out)
	}
	// Heaviest first; ties in a fixed order, so that the same traffic
	// always reads the same.
	slices.SortFunc(sig.Vectors, func(a, b Vector) int {
		switch {
		case a.Share > b.Share:
			return -1
		case a.Share < b.Share:
			return 1
		case a.Proto != b.Proto:
			return int(a.Proto) - int(b.Proto)
		}
		return int(a.Kind) - int(b.Kind)
	})
	if s.byFlows {
		// The class shares too are of the flows' traffic.
		share := func(k class) float64 { return min(1, s.classes[k]/s.packets) }
		sig.TCP, sig.TCPSYN, sig.UDP, sig.ICMP, sig.Fragment = share(clsTCP), share(clsSYN), share(clsUDP), share(clsICMP), share(clsFrag)
		sig.Other = max(0, 1-sig.TCP-sig.UDP-sig.ICMP)
	}
}

// portLengths returns the length histogram of each port of ports, as
// shares of the vector's packets (weight w), from the (port, bucket)
// pairs of t.
func portLengths(t *topK[uint32], ports []Share, w float64) [][len(LengthBounds) + 1]float64 {
	if len(ports) == 0 {
		return nil
	}
	out := make([][len(LengthBounds) + 1]float64, len(ports))
	for i, k := range t.keys {
		for j, p := range ports {
			if uint32(p.Value) == k>>8 {
				out[j][k&0xff] += t.counts[i] / w
			}
		}
	}
	return out
}

// groupSketch describes a hostgroup's total while it is suspect or
// attacked (a carpet): its vectors, as a host's sketch, and which of its
// addresses receive the traffic, so that the attack's rule covers the
// smallest prefix that holds them. Records of every shard feed it, hence
// its lock; it exists only for the few groups near a group limit.
type groupSketch struct {
	mu   sync.Mutex
	sk   *sketch
	dsts topK[netip.Addr]
	// win is the group's confidence window, as a host's: its burst
	// path, with records placed in the ticks they cover.
	win *window
}

// groupSketchHosts is how many of a group's addresses the sketch follows:
// a carpet over a /24, or 256 hosts of a /64.
const groupSketchHosts = 256

func newGroupSketch() *groupSketch {
	return &groupSketch{sk: newSketch(false), dsts: newTopK[netip.Addr](groupSketchHosts)}
}

// add counts a record of the group; v is the variance of its packet
// count, now and tick place it in the window (see window.add).
func (g *groupSketch) add(r *sources.Record, remote, local netip.Addr, mask uint8, v float64, now, tick int64) {
	g.mu.Lock()
	g.sk.add(r, remote, float64(r.Packets), mask)
	g.dsts.add(local, float64(r.Packets))
	if g.win != nil {
		g.win.add(float64(r.Packets), float64(r.Bytes), v, r.Start, r.End, now, tick)
	}
	g.mu.Unlock()
}

func (g *groupSketch) decay(attacked bool) {
	f := sketchDecay
	if attacked {
		f = sketchDecayAttack
	}
	g.mu.Lock()
	g.sk.decay(f)
	g.dsts.decay(f)
	g.mu.Unlock()
}

// carpetCover is the share of a group's traffic whose addresses its
// attack's prefix must hold.
const carpetCover = 0.95

// fill writes the group's shape into sig, and as its victim the smallest
// prefix holding the addresses that receive carpetCover of the traffic,
// when that prefix is inside within (the monitored prefix that receives
// the most).
func (g *groupSketch) fill(sig *Signature, within netip.Prefix) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sk.fill(sig)
	keys, shares := g.dsts.top(groupSketchHosts, g.sk.packets)
	var p netip.Prefix
	sum := 0.0
	for i, a := range keys {
		if !within.Contains(a) {
			continue
		}
		if !p.IsValid() {
			p = netip.PrefixFrom(a, a.BitLen())
		}
		for !p.Contains(a) {
			p, _ = p.Addr().Prefix(p.Bits() - 1)
		}
		sum += shares[i]
		if sum >= carpetCover {
			break
		}
	}
	if p.IsValid() && sum >= carpetCover && p.Bits() >= within.Bits() {
		sig.Victim = p.Masked()
	}
}
