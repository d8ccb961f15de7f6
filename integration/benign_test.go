package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/integration/lab"
)

// TestBenignTraffic plays traffic that must not be taken for an attack,
// each close to but under the thresholds (100 kpps, 1 Gbit/s per host),
// and checks that nothing is detected or announced: a flash crowd to one
// host at 0.8× the packet threshold, a large download at 0.8× the bit
// threshold, and a NetFlow exporter with 60 s active timeouts whose records
// each carry a minute of normal traffic at half the packet threshold.
func TestBenignTraffic(t *testing.T) {
	lab.Require(t, "gobgpd", "go")
	bin := lab.BuildFloodgate(t)
	router := lab.StartGoBGP(t, lab.GoBGPConfig{
		Name: "router", ASN: routerASN, ListenAddr: netip.MustParseAddr("127.0.0.6"),
		Neighbors: []lab.GoBGPNeighbor{{Address: controllerAddr, ASN: controllerASN, Passive: true,
			Families: []lab.Family{lab.FamilyIPv4Unicast, lab.FamilyIPv4FlowSpec}}},
	})
	dir := t.TempDir()
	nf := netip.AddrPortFrom(controllerAddr, uint16(lab.FreeUDPPort(t, "127.0.0.1")))
	cfg := fmt.Sprintf(`
sources {
  netflow "routers" { listen = "%s" }
}
bgp {
  asn       = %d
  router_id = "192.0.2.254"
  rtbh_next_hop_ipv4 = "192.0.2.1"
  neighbor "router" {
    address       = "%s"
    port          = %d
    asn           = %d
    local_address = "127.0.0.1"
    families      = ["ipv4-unicast", "ipv4-flowspec"]
  }
}
api { socket = "%s" }
mitigation { state_file = "%s" }
hostgroup "customers" {
  prefixes = ["203.0.113.0/24"]
  threshold "incoming" {
    pps = "100kpps"
    bps = "1Gbps"
  }
  response "blackhole" {
    rtbh {}
    duration = "1m"
  }
}
`, nf, controllerASN, router.BGPAddr().Addr(), router.BGPAddr().Port(), routerASN, filepath.Join(dir, "api.sock"), filepath.Join(dir, "state.db"))
	fg := lab.StartFloodgate(t, bin, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := router.WaitEstablished(ctx, controllerAddr); err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(nf))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	enc := flowgen.NetFlowV9{SourceID: 1}
	send := func(now time.Time, flows []flowgen.Flow) {
		for len(flows) > 0 {
			n := min(20, len(flows))
			b, err := enc.AppendData(nil, now, flows[:n])
			if err != nil {
				t.Fatal(err)
			}
			conn.Write(b)
			flows = flows[n:]
		}
	}
	conn.Write(enc.AppendTemplates(nil, time.Now()))

	// The 60 s exporter: every long-lived flow's record arrives at once,
	// each covering the last minute at its share of 50 kpps. Counted in
	// one tick they would look like 12 Mpps.
	now := time.Now()
	var long []flowgen.Flow
	for i := range 50 {
		long = append(long, flowgen.Flow{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), Dst: netip.MustParseAddr("203.0.113.3"),
			SrcPort: 443, DstPort: uint16(40000 + i), Proto: 6, TCPFlags: 0x18, Packets: 1000 * 60, Bytes: 1000 * 60 * 1200,
			Start: now.Add(-time.Minute), End: now})
	}
	send(now, long)
	// Backdated over the minute they cover, the records raise the host to
	// their own rate and no higher; then the rate decays, since nothing
	// newer is reported.
	api := controller.NewClient(filepath.Join(dir, "api.sock"), "")
	rates := func() map[string]float64 {
		hosts, err := api.Hosts(ctx, "pps", "incoming", 5)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, h := range hosts.Hosts {
			got[h.Addr.String()] = h.PPS
		}
		return got
	}
	// Poll until the host shows the records' rate (a tick or two; the
	// deadline leaves room for a loaded machine), never above it.
	peak := 0.0
	for deadline := time.Now().Add(15 * time.Second); peak < 50000*0.7 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r := rates()["203.0.113.3"]
		if r > 50000*1.05 {
			t.Errorf("203.0.113.3 at %.0f pps after its 60-s records, over their 50000", r)
		}
		peak = max(peak, r)
	}
	if peak < 50000*0.7 {
		t.Errorf("203.0.113.3 peaked at %.0f pps after its 60-s records, want about 50000", peak)
	}

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for n := range 80 { // 8 s
		now := <-tick.C
		if n%10 == 0 {
			conn.Write(enc.AppendTemplates(nil, now))
		}
		var flows []flowgen.Flow
		// Flash crowd: 2,000 clients, 80 kpps of small packets in all to
		// one web server.
		for i := range 200 {
			flows = append(flows, flowgen.Flow{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Dst: netip.MustParseAddr("203.0.113.1"),
				SrcPort: uint16(20000 + (n*200+i)%40000), DstPort: 443, Proto: 6, TCPFlags: 0x1a, Packets: 40, Bytes: 40 * 400,
				Start: now.Add(-100 * time.Millisecond), End: now})
		}
		// Large download: one flow at 800 Mbit/s in 1500-byte packets
		// (66.7 kpps).
		flows = append(flows, flowgen.Flow{Src: netip.MustParseAddr("192.0.2.250"), Dst: netip.MustParseAddr("203.0.113.2"),
			SrcPort: 443, DstPort: 50000, Proto: 6, TCPFlags: 0x18, Packets: 6667, Bytes: 6667 * 1500,
			Start: now.Add(-100 * time.Millisecond), End: now})
		send(now, flows)
	}
	got := rates()
	if got["203.0.113.3"] > 50000 {
		t.Errorf("203.0.113.3 at %.0f pps, over the rate its records describe", got["203.0.113.3"])
	}
	// The traffic was seen, at about its real rates.
	for host, want := range map[string]float64{"203.0.113.1": 80000, "203.0.113.2": 66670} {
		if got[host] < want*0.7 || got[host] > want*1.2 {
			t.Errorf("%s at %.0f pps, want about %.0f", host, got[host], want)
		}
	}
	time.Sleep(time.Second) // the last ticks of detection
	for _, bad := range []string{"attack started", "announced"} {
		if strings.Contains(fg.Log(), bad) {
			t.Errorf("benign traffic: log has %q", bad)
		}
	}
	routes, err := router.Routes(ctx, lab.FamilyIPv4Unicast)
	if err != nil || len(routes) != 0 {
		t.Errorf("routes at the router: %v %v", routes, err)
	}
}
