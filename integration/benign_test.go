package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
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

// TestBenignEveryInput plays the detection issue's legitimate traffic
// shapes (benign: a flash crowd at 0.8× the pps limit, a large download at
// 0.8×, a 1-s burst at 2× on top of 0.15× every 20 s), IPv4 and IPv6, in
// real time through the wire formats of every flow input (sFlow 1:1000,
// NetFlow v9 1:1000 with 1-s records, IPFIX unsampled), each to hosts of
// its own, into a floodgate process peering with gobgpd, with the shipped
// detection defaults and limits of 20 kpps, 1 Gbit/s and 3,500 flows/s.
// Nothing may be detected or announced, and the traffic must be seen at
// about its rates. 30 s in make test; FLOODGATE_SOAK sets the time (make
// soak: 10 minutes). The mirror input is played by the simulated-time
// pipeline tests (its records are the packets themselves).
func TestBenignEveryInput(t *testing.T) {
	lab.Require(t, "gobgpd", "go")
	d := 30 * time.Second
	if v := os.Getenv("FLOODGATE_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("FLOODGATE_SOAK: %v", err)
		}
	}
	bin := lab.BuildFloodgate(t)
	router := lab.StartGoBGP(t, lab.GoBGPConfig{
		Name: "router", ASN: routerASN, ListenAddr: netip.MustParseAddr("127.0.0.6"),
		Neighbors: []lab.GoBGPNeighbor{{Address: controllerAddr, ASN: controllerASN, Passive: true,
			Families: []lab.Family{lab.FamilyIPv4Unicast, lab.FamilyIPv6Unicast, lab.FamilyIPv4FlowSpec, lab.FamilyIPv6FlowSpec}}},
	})
	dir := t.TempDir()
	inputs := []struct {
		proto string
		to    netip.AddrPort
		in    interface {
			pipeInput
			datagrams(now time.Time, ss []stream) [][]byte
		}
	}{
		{"sflow", netip.AddrPortFrom(controllerAddr, uint16(lab.FreeUDPPort(t, "127.0.0.1"))), newSFlowInput(t, 1, 1000)},
		{"netflow", netip.AddrPortFrom(controllerAddr, uint16(lab.FreeUDPPort(t, "127.0.0.1"))), newNetFlowInput(t, 2, 1000, time.Second, false)},
		{"netflow", netip.AddrPortFrom(controllerAddr, uint16(lab.FreeUDPPort(t, "127.0.0.1"))), newNetFlowInput(t, 3, 1, pipeSlice, true)},
	}
	var srcs strings.Builder
	for i, in := range inputs {
		fmt.Fprintf(&srcs, "  %s \"in%d\" { listen = \"%s\" }\n", in.proto, i, in.to)
	}
	cfg := fmt.Sprintf(`
sources {
%s}
bgp {
  asn       = %d
  router_id = "192.0.2.254"
  neighbor "router" {
    address       = "%s"
    port          = %d
    asn           = %d
    local_address = "127.0.0.1"
    families      = ["ipv4-unicast", "ipv6-unicast", "ipv4-flowspec", "ipv6-flowspec"]
  }
}
api { socket = "%s" }
mitigation { state_file = "%s" }
hostgroup "customers" {
  prefixes = ["203.0.113.0/24", "2001:db8:ffff::/48"]
  threshold "incoming" {
    pps   = "%dpps"
    bps   = "%dbps"
    flows = "%dfps"
  }
  response "filter" {
    flowspec { action = "discard" }
    duration = "1m"
  }
}
`, srcs.String(), controllerASN, router.BGPAddr().Addr(), router.BGPAddr().Port(), routerASN,
		filepath.Join(dir, "api.sock"), filepath.Join(dir, "state.db"), pipeLimitPPS, pipeLimitBPS, pipeLimitFPS)
	fg := lab.StartFloodgate(t, bin, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	if err := router.WaitEstablished(ctx, controllerAddr); err != nil {
		t.Fatal(err)
	}
	conns := make([]*net.UDPConn, len(inputs))
	for i, in := range inputs {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(in.to))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	// Input i's hosts: 203.0.113.(10i+1…3) and 2001:db8:ffff::(10i+1…3).
	hosts := func(i int, v6 bool) [3]netip.Addr {
		var h [3]netip.Addr
		for j := range h {
			b := byte(10*i + j + 1)
			h[j] = netip.AddrFrom4([4]byte{203, 0, 113, b})
			if v6 {
				h[j] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 15: b})
			}
		}
		return h
	}
	api := controller.NewClient(filepath.Join(dir, "api.sock"), "")
	rng := rand.New(rand.NewPCG(7, 8))
	seen := map[netip.Addr]float64{} // the flash crowds' highest rates
	tick := time.NewTicker(pipeSlice)
	defer tick.Stop()
	for k := range int(d / pipeSlice) {
		now := <-tick.C
		for i, in := range inputs {
			ss := append(benign(hosts(i, false))(rng, k), benign(hosts(i, true))(rng, k)...)
			for _, b := range in.in.datagrams(now, ss) {
				if _, err := conns[i].Write(b); err != nil {
					t.Fatalf("%s: %v", in.in.name(), err)
				}
			}
		}
		if k%50 == 49 { // every 5 s
			hs, err := api.Hosts(ctx, "pps", "incoming", 50)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hs.Hosts {
				seen[h.Addr] = max(seen[h.Addr], h.PPS)
			}
		}
	}
	time.Sleep(time.Second) // the last ticks of detection
	for i, in := range inputs {
		for _, v6 := range []bool{false, true} {
			crowd := hosts(i, v6)[0]
			t.Logf("%s: flash crowd %s seen at %.0f pps at most (%.0f sent)", in.in.name(), crowd, seen[crowd], 0.8*pipeLimitPPS)
			if r := seen[crowd]; r < 0.5*0.8*pipeLimitPPS || r > 1.5*0.8*pipeLimitPPS {
				t.Errorf("%s: flash crowd %s seen at %.0f pps at most, want about %.0f", in.in.name(), crowd, r, 0.8*pipeLimitPPS)
			}
		}
	}
	if atk, err := api.Attacks(ctx); err != nil || len(atk.Active)+len(atk.Recent) > 0 {
		t.Errorf("attacks after benign traffic: %+v %v", atk, err)
	}
	for _, bad := range []string{"attack started", "announced"} {
		if strings.Contains(fg.Log(), bad) {
			t.Errorf("benign traffic: log has %q", bad)
		}
	}
	for _, fam := range []lab.Family{lab.FamilyIPv4Unicast, lab.FamilyIPv6Unicast, lab.FamilyIPv4FlowSpec, lab.FamilyIPv6FlowSpec} {
		if routes, err := router.Routes(ctx, fam); err != nil || len(routes) != 0 {
			t.Errorf("%s routes at the router: %v %v", fam, routes, err)
		}
	}
	// The control: the same daemon, fed an NTP reflection at 5× through
	// each input, has the router drop it, so the quiet above was not
	// detection asleep.
	victim := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(200 + i)}) }
	pending := map[string]string{}
	for i, in := range inputs {
		pending[flowspecPrefix(victim(i).String()+"/32")] = in.in.name()
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(pending) > 0 && time.Now().Before(deadline) {
		now := <-tick.C
		for i, in := range inputs {
			for _, b := range in.in.datagrams(now, pipeNTP(rng, victim(i), 5*pipeLimitPPS)) {
				if _, err := conns[i].Write(b); err != nil {
					t.Fatalf("%s: %v", in.in.name(), err)
				}
			}
		}
		routes, err := router.Routes(ctx, lab.FamilyIPv4FlowSpec)
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range routes {
			for want := range pending {
				if hasDestination(rt, want) {
					delete(pending, want)
				}
			}
		}
	}
	for _, name := range pending {
		t.Errorf("%s: an NTP reflection at 5× reached no rule at the router in 30 s", name)
	}
}
