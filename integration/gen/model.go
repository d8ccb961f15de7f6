package gen

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"time"
)

// IP protocol numbers and TCP flags the model uses.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58

	tcpSYN = 0x02
	tcpPSH = 0x08
	tcpACK = 0x10
)

// Flow is a stream of identical packets during one interval: the unit the
// model produces and the emitters consume.
type Flow struct {
	// Src and Dst are the addresses, both IPv4 or both IPv6.
	Src, Dst netip.Addr
	// SrcPort and DstPort are the transport ports. For ICMP and ICMPv6
	// SrcPort is 0 and DstPort is type<<8 | code, as NetFlow has it. A
	// non-first fragment has no ports.
	SrcPort, DstPort uint16
	// Proto is the IP protocol (IPv6: the upper-layer protocol).
	Proto uint8
	// TCPFlags is the flags octet of TCP packets.
	TCPFlags uint8
	// FragOffset is the fragment offset in units of eight octets; not zero
	// for a non-first fragment, which carries no transport header.
	FragOffset uint16
	// MoreFragments is the MF flag: with a zero FragOffset, the packet is
	// the first fragment of a datagram.
	MoreFragments bool
	// Size is the length of each packet at the IP layer, headers included.
	Size uint16
	// L4Length is the length of the whole transport datagram (the UDP
	// length) when the packet is a first fragment; zero otherwise.
	L4Length uint16
	// Packets is the number of packets of the flow in the interval.
	Packets uint64
	// Attack tells the attack's packets from the background's.
	Attack bool
}

// Fragment reports whether the flow's packets are IP fragments, first or
// not.
func (f *Flow) Fragment() bool { return f.FragOffset != 0 || f.MoreFragments }

// Bytes returns the IP octets of the flow in the interval.
func (f *Flow) Bytes() uint64 { return f.Packets * uint64(f.Size) }

// Interval is the traffic of one slice of a scenario.
type Interval struct {
	// Index is the number of the interval, from 0.
	Index int
	// From and To are the interval's bounds, from the start of the
	// scenario.
	From, To time.Duration
	// Start and End are the interval's bounds in wall-clock time, set by
	// Run; emitters spread their output over them. Zero values ask the
	// emitters to send at once, as fast as they can.
	Start, End time.Time
	// Flows is the traffic, attack and background interleaved.
	Flows []Flow
	// AttackPackets and BackgroundPackets count the packets of Flows.
	AttackPackets, BackgroundPackets uint64

	// onAttack, set by Run, is told when an emitter sent its first attack
	// output of the interval.
	onAttack func(time.Time)
}

// MarkAttack tells Run that an emitter sent, at t, an output (datagram or
// frame) carrying attack traffic. Emitters call it after the send of the
// first such output of each interval.
func (iv *Interval) MarkAttack(t time.Time) {
	if iv.onAttack != nil {
		iv.onAttack(t)
	}
}

// Model generates the traffic of a scenario, interval by interval. It
// holds its address pools (bounded by the scenario's limits) and scratch
// space, and is not safe for concurrent use.
type Model struct {
	s         Scenario
	intervals int
	pcg       *rand.PCG
	rng       *rand.Rand

	avoid      []netip.Prefix // where random sources must not come from
	reflectors []netip.Addr   // reflection attacks
	targets    []netip.Addr   // the victim, or the hosts of a carpet
	hosts      []netip.Addr   // background
	servers    []netip.Addr   // background HTTPS servers
	resolvers  []netip.Addr   // background DNS resolvers

	attack, background []Flow // scratch of Fill
}

// Sizes of the background's pools of servers.
const (
	backgroundServers   = 64
	backgroundResolvers = 8
)

// NewModel validates s, sets its defaults and builds the address pools.
func NewModel(s Scenario) (*Model, error) {
	s = s.withDefaults()
	if err := s.validate(); err != nil {
		return nil, err
	}
	pcg := rand.NewPCG(s.Seed, 0)
	m := &Model{
		s:         s,
		intervals: int((s.Duration + s.Interval - 1) / s.Interval),
		pcg:       pcg,
		rng:       rand.New(pcg),
	}
	avoid := reservedSpace()
	if s.BackgroundHosts.IsValid() {
		avoid = append(avoid, s.BackgroundHosts)
	}
	if s.Attack != AttackNone {
		bitsV := 24
		if s.Victim.Is6() {
			bitsV = 64
		}
		net, _ := s.Victim.Prefix(bitsV)
		avoid = append(avoid, net)
		m.targets = m.makeTargets(net)
		if s.Attack.IsReflection() || s.Attack == AttackCarpet {
			m.reflectors = m.randomAddrs(1, s.Sources, s.Victim.Is6(), avoid)
		}
	}
	if s.BackgroundPPS > 0 {
		m.hosts = m.pickHosts(s.BackgroundHosts, s.BackgroundCount)
		v6 := s.BackgroundHosts.Addr().Is6()
		m.servers = m.randomAddrs(2, backgroundServers, v6, avoid)
		m.resolvers = m.randomAddrs(3, backgroundResolvers, v6, avoid)
	}
	m.avoid = avoid
	return m, nil
}

// Scenario returns the model's scenario, defaults set.
func (m *Model) Scenario() Scenario { return m.s }

// Intervals returns the number of intervals of the scenario; the last one
// may be shorter.
func (m *Model) Intervals() int { return m.intervals }

// Targets returns the addresses the attack is sent to: the victim, or the
// hosts of a carpet. The caller must not modify the slice.
func (m *Model) Targets() []netip.Addr { return m.targets }

// BackgroundAddrs returns the hosts that receive background traffic. The
// caller must not modify the slice.
func (m *Model) BackgroundAddrs() []netip.Addr { return m.hosts }

// Fill sets iv to interval k of the scenario, reusing iv.Flows. Start and
// End are reset to zero: Run sets them. The same model seed and k always
// give the same flows, whatever was filled before.
func (m *Model) Fill(k int, iv *Interval) {
	from := time.Duration(k) * m.s.Interval
	to := min(from+m.s.Interval, m.s.Duration)
	*iv = Interval{Index: k, From: from, To: to, Flows: iv.Flows[:0]}
	if k < 0 || k >= m.intervals {
		return
	}
	m.attack, m.background = m.attack[:0], m.background[:0]
	m.pcg.Seed(m.s.Seed, uint64(k)<<1|1)
	iv.AttackPackets = m.fillAttack(k, from, to)
	iv.BackgroundPackets = m.fillBackground(from, to) + m.fillVictim(from, to)
	iv.Flows = interleave(iv.Flows, m.attack, m.background)
}

// interleave appends a and b to dst, mixed in proportion to their lengths,
// starting with a.
func interleave(dst, a, b []Flow) []Flow {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if i < len(a) && (j >= len(b) || i*len(b) <= j*len(a)) {
			dst = append(dst, a[i])
			i++
		} else {
			dst = append(dst, b[j])
			j++
		}
	}
	return dst
}

// due returns how many events of a stream at rate per second, split into
// div equal streams of which this one is shifted by phase (below 1e9×div),
// happened in [0, t): floor((rate×t + phase) / (1e9×div)). The streams of
// phases 0, 1e9, ..., (div−1)×1e9 add up to floor(rate×t/1e9) exactly
// (Hermite's identity), so splitting a rate never loses a packet.
func due(rate uint64, t time.Duration, phase, div uint64) uint64 {
	if t <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(rate, uint64(t))
	var c uint64
	lo, c = bits.Add64(lo, phase, 0)
	q, _ := bits.Div64(hi+c, lo, 1e9*div) // rate ≤ MaxPPS and t ≤ MaxDuration: no overflow
	return q
}

// fillAttack appends the attack flows of interval k, [from, to), to
// m.attack and returns their packets.
func (m *Model) fillAttack(k int, from, to time.Duration) uint64 {
	s := &m.s
	if s.Attack == AttackNone || to <= s.Start {
		return 0
	}
	kind := s.Attack
	if kind == AttackCarpet {
		kind = s.Carpet
	}
	div := uint64(len(m.targets))
	perTarget := uint64(max(1, s.Sources/len(m.targets)))
	var total uint64
	for h, dst := range m.targets {
		phase := uint64(h) * 1e9
		seq := due(s.AttackPPS, from-s.Start, phase, div) // packets sent to dst before
		n := due(s.AttackPPS, to-s.Start, phase, div) - seq
		if n == 0 {
			continue
		}
		total += n
		slots := min(n, perTarget)
		base, extra := n/slots, n%slots
		rot := uint64(k)*slots + uint64(h)*perTarget
		for slot := range slots {
			p := base
			if slot < extra {
				p++
			}
			var src netip.Addr
			if len(m.reflectors) > 0 {
				src = m.reflectors[(rot+slot)%uint64(len(m.reflectors))]
			}
			m.appendAttack(kind, src, dst, p, seq)
			seq += p
		}
	}
	return total
}

// service returns the source port and the IP length of the answers of a
// reflection service (DNS answers are fragmented: see appendDNS).
func service(kind Attack) (port, size uint16) {
	switch kind {
	case AttackNTP:
		return 123, 468
	case AttackDNS:
		return 53, 0
	case AttackMemcached:
		return 11211, 1400
	case AttackSSDP:
		return 1900, 300
	case AttackCLDAP:
		return 389, 1400
	}
	return 0, 0
}

// appendAttack appends the flows of p packets of attack kind to dst, from
// src for a reflection (floods pick a spoofed source); seq is the number of
// packets of the attack sent to dst before.
func (m *Model) appendAttack(kind Attack, src, dst netip.Addr, p, seq uint64) {
	v6 := dst.Is6()
	r := m.rng
	f := Flow{Src: src, Dst: dst, Packets: p, Attack: true}
	switch kind {
	case AttackDNS:
		m.appendDNS(f, v6, seq)
		return
	case AttackNTP, AttackMemcached, AttackSSDP, AttackCLDAP:
		port, size := service(kind)
		f.Proto, f.SrcPort, f.DstPort, f.Size = protoUDP, port, highPort(r), size
	case AttackSYN:
		f.Proto, f.TCPFlags, f.SrcPort, f.DstPort = protoTCP, tcpSYN, highPort(r), webPort(r)
		f.Size = pick(v6, 60, 80)
	case AttackACK:
		f.Proto, f.TCPFlags, f.SrcPort, f.DstPort = protoTCP, tcpACK, highPort(r), webPort(r)
		f.Size = pick(v6, 40, 60)
	case AttackUDPRandom:
		f.Proto, f.SrcPort, f.DstPort = protoUDP, highPort(r), uint16(1+r.IntN(65535))
		f.Size = pick(v6, 540, 560)
	case AttackICMP:
		f.Proto, f.DstPort, f.Size = protoICMP, 8<<8, 84 // echo request
		if v6 {
			f.Proto, f.DstPort, f.Size = protoICMPv6, 128<<8, 104
		}
	case AttackFragment:
		// Offsets of the 2nd to 41st fragment of 1480-octet pieces.
		f.Proto, f.Size = protoUDP, 1480
		f.FragOffset = uint16(185 * (1 + r.IntN(40)))
		f.MoreFragments = r.IntN(2) == 0
	}
	if !f.Src.IsValid() {
		f.Src = randomAddr(r, v6, m.avoid)
	}
	m.attack = append(m.attack, f)
}

// appendDNS appends the fragments of f.Packets packets of large DNS
// answers from f.Src, packets seq, seq+1, ... of the stream to f.Dst, whose
// every answer is three fragments: the first with the UDP header, then two
// without ports.
func (m *Model) appendDNS(f Flow, v6 bool, seq uint64) {
	const udpLen = 3200 // 8 octets of header, 3192 of answer
	p := f.Packets
	first, mid, last := f, f, f
	first.Packets, mid.Packets, last.Packets = countMod3(seq, p, 0), countMod3(seq, p, 1), countMod3(seq, p, 2)
	first.Proto, mid.Proto, last.Proto = protoUDP, protoUDP, protoUDP
	first.SrcPort, first.DstPort, first.L4Length = 53, highPort(m.rng), udpLen
	first.MoreFragments, mid.MoreFragments = true, true
	// Pieces of 1480 octets in IPv4; 1232 in IPv6, which fragments at
	// its minimum MTU of 1280 behind a 40-octet header and an 8-octet
	// fragment header.
	piece, hdr := uint16(1480), uint16(20)
	if v6 {
		piece, hdr = 1232, 48
	}
	first.Size, mid.Size, last.Size = hdr+piece, hdr+piece, hdr+udpLen-2*piece
	mid.FragOffset, last.FragOffset = piece/8, 2*piece/8
	for _, fr := range []*Flow{&first, &mid, &last} {
		if fr.Packets > 0 {
			m.attack = append(m.attack, *fr)
		}
	}
}

// countMod3 returns how many of the integers in [seq, seq+n) are r modulo
// 3.
func countMod3(seq, n, r uint64) uint64 {
	below := func(x uint64) uint64 { return (x + 2 - r) / 3 } // of [0, x); r ≤ 2
	return below(seq+n) - below(seq)
}

// fillBackground appends the background flows of [from, to) to
// m.background and returns their packets.
func (m *Model) fillBackground(from, to time.Duration) uint64 {
	s := &m.s
	if len(m.hosts) == 0 || s.BackgroundPPS == 0 {
		return 0
	}
	div := uint64(len(m.hosts))
	var total uint64
	for h, dst := range m.hosts {
		phase := uint64(h) * 1e9
		c0, c1 := due(s.BackgroundPPS, from, phase, div), due(s.BackgroundPPS, to, phase, div)
		if c0 == c1 {
			continue
		}
		total += c1 - c0
		// One packet in eight is a DNS answer, the rest HTTPS; hosts are
		// shifted so that their DNS answers do not all fall together.
		shift := uint64(h % 8)
		dns := (c1+shift)/8 - (c0+shift)/8
		https := c1 - c0 - dns
		hh := mix(s.Seed, uint64(h))
		if https > 0 {
			m.background = append(m.background, Flow{
				Src: m.servers[hh%uint64(len(m.servers))], Dst: dst,
				SrcPort: 443, DstPort: uint16(32768 + (hh>>16)%28232),
				Proto: protoTCP, TCPFlags: tcpACK | tcpPSH, Size: 1500, Packets: https,
			})
		}
		if dns > 0 {
			m.background = append(m.background, Flow{
				Src: m.resolvers[(hh>>32)%uint64(len(m.resolvers))], Dst: dst,
				SrcPort: 53, DstPort: highPort(m.rng),
				Proto: protoUDP, Size: 140, Packets: dns,
			})
		}
	}
	return total
}

// VictimMix is the victim's own traffic, as shares of VictimPPS: a web
// server's clients (requests and ACKs of 52 or 72 octets for IPv4 or
// IPv6, and 1200-octet uploads, to port 443), their new connections'
// SYNs, answers to the victim's own DNS and NTP queries, and to its pings.
var VictimMix = []struct {
	Name  string
	Share float64
}{{"web ack", 0.4675}, {"web upload", 0.4675}, {"syn", 0.02}, {"dns answer", 0.03}, {"ntp answer", 0.005}, {"echo reply", 0.01}}

// fillVictim appends the victim's own traffic of [from, to) to
// m.background and returns its packets.
func (m *Model) fillVictim(from, to time.Duration) uint64 {
	s := &m.s
	if s.VictimPPS == 0 || len(m.targets) == 0 {
		return 0
	}
	dst := m.targets[0]
	v6 := dst.Is6()
	src := func(i int) netip.Addr {
		if v6 {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xc1, 0x1e, 14: byte(i >> 8), 15: byte(i)})
		}
		return netip.AddrFrom4([4]byte{192, 0, 2, byte(200 + i)})
	}
	var total uint64
	for i, c := range VictimMix {
		rate := uint64(float64(s.VictimPPS) * c.Share * 1e3)
		n := due(rate, to, uint64(i)*1e9, 1e3) - due(rate, from, uint64(i)*1e9, 1e3)
		if n == 0 {
			continue
		}
		total += n
		f := Flow{Src: src(i), Dst: dst, Packets: n}
		switch c.Name {
		case "web ack":
			f.SrcPort, f.DstPort, f.Proto, f.TCPFlags, f.Size = 51000, 443, protoTCP, tcpACK, pick(v6, 52, 72)
		case "web upload":
			f.SrcPort, f.DstPort, f.Proto, f.TCPFlags, f.Size = 51001, 443, protoTCP, tcpACK|tcpPSH, 1200
		case "syn":
			f.SrcPort, f.DstPort, f.Proto, f.TCPFlags, f.Size = 51002, 443, protoTCP, tcpSYN, pick(v6, 60, 80)
		case "dns answer":
			f.SrcPort, f.DstPort, f.Proto, f.Size = 53, 41000, protoUDP, 150
		case "ntp answer":
			f.SrcPort, f.DstPort, f.Proto, f.Size = 123, 123, protoUDP, 76
		case "echo reply":
			f.Proto, f.DstPort, f.Size = protoICMP, 0, 84
			if v6 {
				f.Proto, f.DstPort, f.Size = protoICMPv6, 129<<8, 104
			}
		}
		m.background = append(m.background, f)
	}
	return total
}

// pick returns v4 or v6 by family.
func pick(v6 bool, v4val, v6val uint16) uint16 {
	if v6 {
		return v6val
	}
	return v4val
}

// highPort returns a random port in [1024, 65535].
func highPort(r *rand.Rand) uint16 { return uint16(1024 + r.IntN(65536-1024)) }

// webPort returns 80 or 443.
func webPort(r *rand.Rand) uint16 {
	if r.IntN(2) == 0 {
		return 80
	}
	return 443
}

// mix is SplitMix64's finaliser of a and b: a hash for stable per-host
// choices.
func mix(a, b uint64) uint64 {
	z := a + b*0x9e3779b97f4a7c15 + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// randomAddr returns a random global unicast address of the family, outside
// private, shared, reserved and documentation space and outside avoid.
func randomAddr(r *rand.Rand, v6 bool, avoid []netip.Prefix) netip.Addr {
	for {
		var a netip.Addr
		if v6 {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:8], 0x2000_0000_0000_0000|r.Uint64()>>3) // 2000::/3
			binary.BigEndian.PutUint64(b[8:], r.Uint64())
			a = netip.AddrFrom16(b)
		} else {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], r.Uint32())
			a = netip.AddrFrom4(b)
		}
		if usable(a, avoid) {
			return a
		}
	}
}

// reservedSpace returns the address space, besides private and
// non-unicast space, that a random source must not come from: shared,
// reserved, benchmarking and documentation prefixes.
func reservedSpace() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("240.0.0.0/4"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("2002::/16"),
	}
}

// usable reports whether a may be a random source: global unicast, not
// private, outside avoid.
func usable(a netip.Addr, avoid []netip.Prefix) bool {
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range avoid {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// randomAddrs returns n distinct random addresses, drawn from the model's
// seed and stream.
func (m *Model) randomAddrs(stream uint64, n int, v6 bool, avoid []netip.Prefix) []netip.Addr {
	r := rand.New(rand.NewPCG(m.s.Seed, 1<<63|stream))
	out := make([]netip.Addr, 0, n)
	seen := make(map[netip.Addr]struct{}, n)
	for len(out) < n {
		a := randomAddr(r, v6, avoid)
		if _, dup := seen[a]; !dup {
			seen[a] = struct{}{}
			out = append(out, a)
		}
	}
	return out
}

// addOffset returns the address off past the start of p; off must be below
// the size of p (for IPv6, only the low 64 bits are added to).
func addOffset(p netip.Prefix, off uint64) netip.Addr {
	if p.Addr().Is4() {
		b := p.Addr().As4()
		binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])+uint32(off))
		return netip.AddrFrom4(b)
	}
	b := p.Addr().As16()
	binary.BigEndian.PutUint64(b[8:], binary.BigEndian.Uint64(b[8:])+off)
	return netip.AddrFrom16(b)
}

// hostSpace returns the number of host offsets addOffset accepts in p,
// capped at 2^62.
func hostSpace(p netip.Prefix) uint64 {
	hb := p.Addr().BitLen() - p.Bits()
	return 1 << min(hb, 62)
}

// pickHosts returns n distinct addresses of p (all of them if it has
// fewer): consecutive ones from the first after the network address when p
// is small, random ones otherwise.
func (m *Model) pickHosts(p netip.Prefix, n int) []netip.Addr {
	size := hostSpace(p)
	if uint64(n) >= size {
		n = int(size)
	}
	out := make([]netip.Addr, 0, n)
	if size <= 2*uint64(n) {
		for i := range uint64(n) {
			out = append(out, addOffset(p, (i+1)%size))
		}
		return out
	}
	r := rand.New(rand.NewPCG(m.s.Seed, 1<<63|4))
	seen := make(map[uint64]struct{}, n)
	for len(out) < n {
		off := 1 + r.Uint64N(size-1)
		if _, dup := seen[off]; !dup {
			seen[off] = struct{}{}
			out = append(out, addOffset(p, off))
		}
	}
	return out
}

// makeTargets returns the addresses attacked: the victim alone, or for a
// carpet every address of its /24, or the victim and random hosts of its
// /64.
func (m *Model) makeTargets(net netip.Prefix) []netip.Addr {
	if m.s.Attack != AttackCarpet {
		return []netip.Addr{m.s.Victim}
	}
	if net.Addr().Is4() {
		out := make([]netip.Addr, 0, 256)
		for i := range uint64(256) {
			out = append(out, addOffset(net, i))
		}
		return out
	}
	out := []netip.Addr{m.s.Victim}
	seen := map[netip.Addr]struct{}{m.s.Victim: {}}
	r := rand.New(rand.NewPCG(m.s.Seed, 1<<63|5))
	for len(out) < m.s.CarpetHosts {
		a := addOffset(net, r.Uint64())
		if _, dup := seen[a]; !dup {
			seen[a] = struct{}{}
			out = append(out, a)
		}
	}
	return out
}
