package gen

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/floodgate-ddos/floodgate/sources/header"
)

// sampleFlows returns a few flows of every attack of the family and of the
// background.
func sampleFlows(t testing.TB, v6 bool) []Flow {
	t.Helper()
	var out []Flow
	for _, a := range Attacks() {
		m, err := NewModel(testScenario(a, v6, 3000, 0, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var iv Interval
		m.Fill(0, &iv)
		seen := map[flowShape]bool{}
		for _, f := range iv.Flows {
			sh := shapeOf(&f, append(attackShapes(a, v6), backgroundShapes()...))
			if !seen[sh] {
				seen[sh] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// checkFrame checks a frame of f: its length, the parse of sources/header,
// the IPv4 checksum, the transport checksum, and gopacket's decoding.
func checkFrame(t *testing.T, f *Flow, fr []byte) {
	t.Helper()
	if want := max(14+int(f.Size), 60); len(fr) != want {
		t.Errorf("frame length %d, want %d", len(fr), want)
	}
	var p header.Packet
	if err := header.Parse(fr, header.LinkEthernet, &p); err != nil {
		t.Fatalf("header.Parse: %v", err)
	}
	want := header.Packet{Src: f.Src, Dst: f.Dst, Proto: f.Proto, IPLength: f.Size,
		Fragment: f.Fragment(), FirstFragment: f.Fragment() && f.FragOffset == 0}
	switch {
	case f.FragOffset != 0:
	case f.Proto == protoTCP:
		want.SrcPort, want.DstPort, want.TCPFlags = f.SrcPort, f.DstPort, f.TCPFlags
	case f.Proto == protoUDP:
		want.SrcPort, want.DstPort = f.SrcPort, f.DstPort
	default:
		want.ICMPType, want.ICMPCode = uint8(f.DstPort>>8), uint8(f.DstPort)
	}
	if p != want {
		t.Errorf("parsed\n%+v, want\n%+v", p, want)
	}

	ip := fr[14 : 14+int(f.Size)]
	var pseudo uint32
	l4 := ip[20:]
	if f.Src.Is4() {
		if got := fold(sum(ip[:20], 0)); got != 0xffff {
			t.Errorf("ipv4 header checksum does not verify (sum %#x)", got)
		}
		pseudo = sum(ip[12:20], 0)
	} else {
		l4 = ip[40:]
		if f.Fragment() {
			l4 = ip[48:]
		}
		pseudo = sum(ip[8:40], 0)
	}
	if f.FragOffset == 0 {
		l4Len := len(l4)
		if f.L4Length != 0 {
			l4Len = int(f.L4Length)
		}
		s := sum(l4, 0)
		if f.Proto != protoICMP {
			s += pseudo + uint32(f.Proto) + uint32(l4Len)
		}
		if got := fold(s); got != 0xffff {
			t.Errorf("transport checksum does not verify (sum %#x)", got)
		}
		if f.Proto == protoUDP {
			if got := binary.BigEndian.Uint16(l4[4:]); int(got) != l4Len {
				t.Errorf("udp length %d, want %d", got, l4Len)
			}
		}
	}

	pkt := gopacket.NewPacket(fr, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Errorf("gopacket: %v", el.Error())
	}
	if nl := pkt.NetworkLayer(); nl == nil || nl.NetworkFlow().Src().String() != f.Src.String() {
		t.Errorf("gopacket network layer %v", nl)
	}
}

// TestFrames checks the frames of every kind of flow, whole and as the
// first 128 octets an sFlow sample holds.
func TestFrames(t *testing.T) {
	macs := DefaultMACs()
	for _, fam := range families {
		for i, f := range sampleFlows(t, fam.v6) {
			if !validFrame(&f) {
				t.Fatalf("flow %+v not valid", f)
			}
			fr := appendFrame(nil, &f, &macs, uint32(i*7919), -1)
			t.Run(fam.name, func(t *testing.T) { checkFrame(t, &f, fr) })
			head := appendFrame([]byte{0xaa}, &f, &macs, uint32(i*7919), 128)
			if want := min(128, len(fr)); len(head) != 1+want || string(head[1:]) != string(fr[:want]) {
				t.Errorf("%s: limited frame differs from the start of the whole one", fam.name)
			}
		}
	}
}

// TestFrameAllocs checks that building a frame into a buffer with room
// allocates nothing.
func TestFrameAllocs(t *testing.T) {
	macs := DefaultMACs()
	flows := append(sampleFlows(t, false), sampleFlows(t, true)...)
	buf := make([]byte, 0, maxFrameLen)
	i := 0
	n := testing.AllocsPerRun(100, func() {
		buf = appendFrame(buf[:0], &flows[i%len(flows)], &macs, uint32(i), -1)
		i++
	})
	if n != 0 {
		t.Errorf("appendFrame allocates %.1f times", n)
	}
}
