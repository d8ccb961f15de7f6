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

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/integration/lab"
)

const (
	controllerASN = 65000
	routerASN     = 65001
	thresholdPPS  = 20000
	banTime       = 3 * time.Second
)

var (
	controllerAddr = netip.MustParseAddr("127.0.0.1")
	routerAddr     = netip.MustParseAddr("127.0.0.2")
	victim         = netip.MustParseAddr("203.0.113.10")
)

// rtbhLab is a floodgate daemon peering with a gobgpd "router", both on
// loopback, and a NetFlow v9 exporter pointed at the daemon.
type rtbhLab struct {
	router  *lab.GoBGP
	fg      *lab.Floodgate
	flowTo  netip.AddrPort
	started time.Time
}

func startRTBHLab(t *testing.T) *rtbhLab {
	t.Helper()
	lab.Require(t, "gobgpd", "go")
	bin := lab.BuildFloodgate(t)
	router := lab.StartGoBGP(t, lab.GoBGPConfig{
		Name:       "router",
		ASN:        routerASN,
		ListenAddr: routerAddr,
		Neighbors: []lab.GoBGPNeighbor{{
			Address:  controllerAddr,
			ASN:      controllerASN,
			Passive:  true,
			Families: []lab.Family{lab.FamilyIPv4Unicast, lab.FamilyIPv6Unicast},
		}},
	})
	nfPort := lab.FreeUDPPort(t, "127.0.0.1")
	cfg := fmt.Sprintf(`
log { level = "debug" }
sources {
  netflow "test" { listen = "127.0.0.1:%d" }
}
bgp {
  asn       = %d
  router_id = "192.0.2.254"
  # gobgpd 3.10 ignores IPv4 routes whose next hop is in 127/8.
  rtbh_next_hop_ipv4 = "192.0.2.1"
  rtbh_communities   = ["65000:666"]
  neighbor "router" {
    address       = "%s"
    port          = %d
    asn           = %d
    local_address = "%s"
    families      = ["ipv4-unicast", "ipv6-unicast"]
  }
}
mitigation { state_file = "%s" }
hostgroup "customers" {
  prefixes = ["203.0.113.0/24", "198.51.100.0/24", "2001:db8::/32"]
  threshold "incoming" { pps = %d }
  response "blackhole" {
    rtbh {}
    duration = "%s"
  }
}
`, nfPort, controllerASN, routerAddr, router.BGPAddr().Port(), routerASN, controllerAddr,
		filepath.Join(t.TempDir(), "state.db"), thresholdPPS, banTime)
	fg := lab.StartFloodgate(t, bin, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := router.WaitEstablished(ctx, controllerAddr); err != nil {
		t.Fatalf("session with floodgate: %v", err)
	}
	t.Logf("BGP session established %s after start", time.Since(start).Round(time.Millisecond))
	return &rtbhLab{router: router, fg: fg, flowTo: netip.AddrPortFrom(controllerAddr, uint16(nfPort)), started: start}
}

// exporter sends NetFlow v9 like a router: templates first and then every
// second, data every 100 ms, each record covering those 100 ms.
type exporter struct {
	t    *testing.T
	conn *net.UDPConn
	enc  flowgen.NetFlowV9
	buf  []byte
	last time.Time
}

func newExporter(t *testing.T, to netip.AddrPort) *exporter {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &exporter{t: t, conn: conn, enc: flowgen.NetFlowV9{SourceID: 1, Boot: time.Now().Add(-time.Hour)}}
}

func (e *exporter) write(b []byte) {
	if _, err := e.conn.Write(b); err != nil {
		e.t.Fatalf("send netflow: %v", err)
	}
}

// send exports flows, split into datagrams of at most 20 records.
func (e *exporter) send(now time.Time, flows []flowgen.Flow) {
	if now.Sub(e.last) >= time.Second {
		e.write(e.enc.AppendTemplates(e.buf[:0], now))
		e.last = now
	}
	for len(flows) > 0 {
		n := min(len(flows), 20)
		var err error
		e.buf, err = e.enc.AppendData(e.buf[:0], now, flows[:n])
		if err != nil {
			e.t.Fatal(err)
		}
		e.write(e.buf)
		flows = flows[n:]
	}
}

const interval = 100 * time.Millisecond

// background is normal traffic to 40 hosts at 500 pps each.
func background(now time.Time) []flowgen.Flow {
	var out []flowgen.Flow
	for i := range 40 {
		out = append(out, flowgen.Flow{
			Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Dst: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}),
			SrcPort: 443, DstPort: uint16(40000 + i), Proto: 6, TCPFlags: 0x18,
			Packets: 50, Bytes: 50 * 1200, Start: now.Add(-interval), End: now,
		})
	}
	return out
}

// ntpFlood is pps packets/s of NTP reflection towards dst from 50
// reflectors, for one interval.
func ntpFlood(now time.Time, dst netip.Addr, pps uint64) []flowgen.Flow {
	const reflectors = 50
	per := pps * uint64(interval) / uint64(time.Second) / reflectors
	var out []flowgen.Flow
	for i := range reflectors {
		out = append(out, flowgen.Flow{
			Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)}), Dst: dst,
			SrcPort: 123, DstPort: uint16(10000 + i), Proto: 17,
			Packets: per, Bytes: per * 468, Start: now.Add(-interval), End: now,
		})
	}
	return out
}

func isVictim(r lab.Route) bool { return r.Prefix == victim.String()+"/32" }

// TestRTBHAnnouncedAndWithdrawn: an NTP reflection flood at 5× the
// threshold, mixed with normal traffic, makes floodgate blackhole the victim
// at the router with BLACKHOLE and NO_EXPORT, and withdraw the route once
// the ban time has passed and the attack is over.
func TestRTBHAnnouncedAndWithdrawn(t *testing.T) {
	l := startRTBHLab(t)
	exp := newExporter(t, l.flowTo)

	// Normal traffic and some garbage first: nothing is announced, the
	// garbage is counted and logged.
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for range 10 {
		exp.send(<-tick.C, background(time.Now()))
	}
	exp.write([]byte("not a netflow datagram"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.fg.WaitLog(ctx, "bad datagram"); err != nil {
		t.Fatal(err)
	}

	// The attack, until the route is at the router (bounded by ctx).
	attackStart := time.Now()
	var announced time.Time
	var route lab.Route
	for announced.IsZero() {
		select {
		case now := <-tick.C:
			exp.send(now, append(background(now), ntpFlood(now, victim, 5*thresholdPPS)...))
		case <-ctx.Done():
			t.Fatalf("no route at the router %s after the attack started", time.Since(attackStart))
		}
		routes, err := l.router.Routes(ctx, lab.FamilyIPv4Unicast)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if isVictim(r) {
				route, announced = r, time.Now()
			} else {
				t.Fatalf("unexpected route %s", r)
			}
		}
	}
	t.Logf("attack start to route at the router: %s", announced.Sub(attackStart).Round(time.Millisecond))
	for _, c := range []string{"65535:666", "65535:65281", "65000:666"} {
		if !route.HasCommunity(c) {
			t.Errorf("route %s lacks community %s", route, c)
		}
	}
	if route.NextHop != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("next hop %s, want 192.0.2.1", route.NextHop)
	}

	// The attack stops; normal traffic goes on. The route stays for at
	// least the ban time, then goes.
	var withdrawn time.Time
	for withdrawn.IsZero() {
		select {
		case now := <-tick.C:
			exp.send(now, background(now))
		case <-ctx.Done():
			t.Fatalf("route still at the router %s after the attack stopped", time.Since(announced))
		}
		routes, err := l.router.Routes(ctx, lab.FamilyIPv4Unicast)
		if err != nil {
			t.Fatal(err)
		}
		if len(routes) == 0 {
			withdrawn = time.Now()
		}
	}
	if held := withdrawn.Sub(announced); held < banTime {
		t.Errorf("route withdrawn after %s, before the ban time %s", held, banTime)
	}
	t.Logf("route held %s (ban time %s, extended while the attack lasted)", withdrawn.Sub(announced).Round(time.Millisecond), banTime)
	if err := l.fg.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if took := l.fg.StopTook(); took > 5*time.Second {
		t.Errorf("floodgate took %s to stop after SIGTERM", took)
	}
	for _, want := range []string{"attack started", "announced", "withdrawn", "stopped"} {
		if !strings.Contains(l.fg.Log(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// TestBelowThresholdAnnouncesNothing: a flood at 0.9× the threshold for
// longer than detection needs announces nothing.
func TestBelowThresholdAnnouncesNothing(t *testing.T) {
	l := startRTBHLab(t)
	exp := newExporter(t, l.flowTo)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 60 { // 6 s: six ticks, where 5× is seen in one
		now := <-tick.C
		exp.send(now, append(background(now), ntpFlood(now, victim, thresholdPPS*9/10)...))
		routes, err := l.router.Routes(ctx, lab.FamilyIPv4Unicast)
		if err != nil {
			t.Fatal(err)
		}
		if len(routes) != 0 {
			t.Fatalf("routes at the router below threshold: %v", routes)
		}
	}
	if strings.Contains(l.fg.Log(), "attack started") {
		t.Error("an attack was detected below the threshold")
	}
	if !strings.Contains(l.fg.Log(), "neighbor state") {
		t.Error("no neighbour state in the log")
	}
}
