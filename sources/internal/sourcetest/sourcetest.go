// Package sourcetest owns what the tests of every traffic source compare
// against: testdata/traffic.pcap decoded independently of sources/header,
// with gopacket, and per-host totals of packets and bytes, for the packets
// an input is expected to report. It is for tests only.
package sourcetest

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/floodgate-ddos/floodgate/sources"
)

// TrafficPcap returns the path of the capture every source test decodes,
// made by testdata/mktraffic.py.
func TrafficPcap() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "traffic.pcap")
}

// FillerHost is the destination of packets some captures add after the
// traffic (see sources/flow/testdata/capture.sh); TotalsOfRecords ignores
// it.
var FillerHost = netip.MustParseAddr("192.0.2.250")

// HostTotals are the packets and bytes a host sent and received.
type HostTotals struct {
	OutPkts, OutBytes, InPkts, InBytes uint64
}

// Packet is what the reference decoder keeps of a packet of the capture.
type Packet struct {
	Src, Dst   netip.Addr
	Proto      uint8
	IPLen      uint64 // the IP packet length
	IPv6       bool
	VLANTags   int  // 802.1Q/802.1ad tags
	Outer88a8  bool // the outer tag is 802.1ad (QinQ 0x88a8)
	MPLSLabels int
}

// ReadTraffic decodes the capture with gopacket, independently of the
// parser under test, and returns its IP packets.
func ReadTraffic(t testing.TB) []Packet {
	t.Helper()
	f, err := os.Open(TrafficPcap())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []Packet
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := gopacket.NewPacket(data, layers.LinkTypeEthernet, gopacket.Default)
		var pp Packet
		if eth, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); ok {
			pp.Outer88a8 = eth.EthernetType == layers.EthernetTypeQinQ
		}
		// The outermost IP header: ICMP errors quote another inside.
	walk:
		for _, l := range p.Layers() {
			switch ip := l.(type) {
			case *layers.Dot1Q:
				pp.VLANTags++
			case *layers.MPLS:
				pp.MPLSLabels++
			case *layers.IPv4:
				pp.Src, _ = netip.AddrFromSlice(ip.SrcIP)
				pp.Dst, _ = netip.AddrFromSlice(ip.DstIP)
				pp.IPLen = uint64(ip.Length)
				pp.Proto = uint8(ip.Protocol)
				break walk
			case *layers.IPv6:
				pp.Src, _ = netip.AddrFromSlice(ip.SrcIP)
				pp.Dst, _ = netip.AddrFromSlice(ip.DstIP)
				pp.IPLen = uint64(ip.Length) + 40
				pp.IPv6 = true
				break walk
			}
		}
		if pp.Src.IsValid() {
			pp.Src, pp.Dst = pp.Src.Unmap(), pp.Dst.Unmap()
			out = append(out, pp)
		}
	}
	return out
}

// Model says which packets of the capture an exporter reports and
// how many bytes it counts for each (0: it does not see the packet).
type Model func(p Packet) uint64

// The models. What the exporters were found to do, checked against their own
// statistics: softflowd skips frames with two VLAN tags (its "Ignored
// packets: non-IP") and counts the MPLS label stack in the bytes; NetFlow v5
// carries IPv4 only; pmacctd's sfprobe never samples 802.1ad (0x88a8) frames
// but does sample double 802.1Q ones.
var (
	Softflowd Model = func(p Packet) uint64 {
		if p.VLANTags > 1 {
			return 0
		}
		return p.IPLen + 4*uint64(p.MPLSLabels)
	}
	SoftflowdV5 Model = func(p Packet) uint64 {
		if p.IPv6 {
			return 0
		}
		return Softflowd(p)
	}
	Sfprobe Model = func(p Packet) uint64 {
		if p.Outer88a8 {
			return 0
		}
		return p.IPLen
	}
	// Packets is what a packet input (mirror, capture replay) must
	// report: every IP packet, with its IP length.
	Packets Model = func(p Packet) uint64 { return p.IPLen }
)

// TotalsOfPackets sums the packets the model reports per host.
func TotalsOfPackets(pkts []Packet, model Model) map[netip.Addr]HostTotals {
	m := make(map[netip.Addr]HostTotals)
	for _, p := range pkts {
		n := model(p)
		if n == 0 {
			continue
		}
		s, d := m[p.Src], m[p.Dst]
		s.OutPkts++
		s.OutBytes += n
		m[p.Src] = s
		d.InPkts++
		d.InBytes += n
		m[p.Dst] = d
	}
	return m
}

// TotalsOfRecords sums records per host, ignoring FillerHost.
func TotalsOfRecords(recs []sources.Record) map[netip.Addr]HostTotals {
	m := make(map[netip.Addr]HostTotals)
	for _, r := range recs {
		if r.Dst == FillerHost {
			continue
		}
		s, d := m[r.Src], m[r.Dst]
		s.OutPkts += r.Packets
		s.OutBytes += r.Bytes
		m[r.Src] = s
		d.InPkts += r.Packets
		d.InBytes += r.Bytes
		m[r.Dst] = d
	}
	return m
}

// SortedHosts returns the hosts of all the maps, sorted.
func SortedHosts(m ...map[netip.Addr]HostTotals) []netip.Addr {
	seen := make(map[netip.Addr]bool)
	var out []netip.Addr
	for _, mm := range m {
		for a := range mm {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// Compare reports every host whose totals differ.
func Compare(t testing.TB, got, want map[netip.Addr]HostTotals) {
	t.Helper()
	for _, a := range SortedHosts(got, want) {
		if got[a] != want[a] {
			t.Errorf("host %s: got %+v, want %+v", a, got[a], want[a])
		}
	}
}
