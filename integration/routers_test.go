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
	"github.com/floodgate-ddos/floodgate/integration/netns"
)

var (
	labVictim4 = netip.MustParseAddr("203.0.113.10")
	labVictim6 = netip.MustParseAddr("2001:db8:ffff::10")
)

// routerTopology is floodgate in ctl with FRR, BIRD, gobgpd and ExaBGP
// edges, and a victim host behind FRR.
func routerTopology() lab.Topology {
	return lab.Topology{
		Name: "floodgate-mitigation",
		Nodes: []lab.Node{
			{Name: "ctl", Kind: lab.KindCtl, ASN: controllerASN, Routes: []lab.StaticRoute{
				{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Via: netip.MustParseAddr("10.0.1.2")},
			}},
			{Name: "frr", Kind: lab.KindFRR, ASN: 65001, Forwarding: true, Routes: []lab.StaticRoute{
				{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Via: netip.MustParseAddr("10.0.5.2")},
			}},
			{Name: "bird", Kind: lab.KindBIRD, ASN: 65002},
			{Name: "gobgp", Kind: lab.KindGoBGP, ASN: 65003},
			{Name: "exa", Kind: lab.KindExaBGP, ASN: 65004},
			{Name: "vic", Kind: lab.KindHost,
				Loopback: []netip.Prefix{netip.PrefixFrom(labVictim4, 32), netip.PrefixFrom(labVictim6, 128)},
				Routes:   []lab.StaticRoute{{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.5.1")}},
			},
		},
		Links: []lab.Link{{A: "ctl", B: "frr"}, {A: "ctl", B: "bird"}, {A: "ctl", B: "gobgp"}, {A: "ctl", B: "exa"}, {A: "frr", B: "vic"}},
	}
}

// routerConfig is floodgate's configuration in the lab: a neighbour per
// session of ctl, a NetFlow listener on ctl's loopback, the API on a unix
// socket the test can reach.
func routerConfig(l *lab.Lab, dir string) string { return ctlConfig(l, dir, "ctl") }

// ctlConfig is routerConfig for the floodgate in ctl node ctl: its
// sessions only, and its first IPv4 link address as router id.
func ctlConfig(l *lab.Lab, dir, ctl string) string {
	neighbors, routerID := neighborBlocks(l, ctl)
	return fmt.Sprintf(`
log { level = "debug" }
sources {
  netflow "lab" { listen = "127.0.0.1:2055" }
}
bgp {
  asn       = %d
  router_id = "%s"
  rtbh_communities = ["65000:666"]
%s
}
api { socket = "%s" }
mitigation { state_file = "%s" }
hostgroup "customers" {
  prefixes = ["203.0.113.0/24", "2001:db8:ffff::/48"]
  threshold "incoming" { pps = "20kpps" }
  response "reflection" {
    when = attack.protocol == "udp" && attack.top_src_port.share > 0.8
    flowspec { action = "discard" }
    duration = "4s"
  }
  response "blackhole" {
    rtbh {}
    duration = "1m"
  }
}
`, controllerASN, routerID, neighbors, filepath.Join(dir, "api.sock"), filepath.Join(dir, "state.db"))
}

// neighborBlocks are the bgp block's neighbours of the floodgate in ctl
// node ctl, one per session of the lab, and its router id (its first IPv4
// session address).
func neighborBlocks(l *lab.Lab, ctl string) (string, netip.Addr) {
	var nb strings.Builder
	var routerID netip.Addr
	for i, s := range l.Sessions() {
		if s.Ctl != ctl {
			continue
		}
		if !routerID.IsValid() && s.CtlAddr.Is4() {
			routerID = s.CtlAddr
		}
		fams := make([]string, len(s.Families))
		for j, f := range s.Families {
			fams[j] = fmt.Sprintf("%q", string(f))
		}
		fmt.Fprintf(&nb, `
  neighbor "%s-%d" {
    address       = "%s"
    asn           = %d
    local_address = "%s"
    families      = [%s]
  }`, s.Router, i, s.RouterAddr, s.RouterASN, s.CtlAddr, strings.Join(fams, ", "))
	}
	return nb.String(), routerID
}

// inNetns runs fn in network namespace ns (a lab's).
func inNetns(ns string, fn func() error) error { return netns.Do(ns, fn) }

// udpIn returns a UDP socket made in network namespace ns, so that the
// test can send to that namespace's own loopback.
func udpIn(t *testing.T, ns string, to netip.AddrPort) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	err := inNetns(ns, func() error {
		var err error
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// everyRouter waits until every edge router reports a route matching
// match in fam (want true) or none does (want false).
func everyRouter(ctx context.Context, t *testing.T, l *lab.Lab, fam lab.Family, want bool, match func(lab.Route) bool) {
	t.Helper()
	for _, name := range l.Routers() {
		r := l.Router(t, name)
		var err error
		if want {
			_, err = lab.WaitRoute(ctx, r, fam, match)
		} else {
			err = lab.WaitNoRoute(ctx, r, fam, match)
		}
		if err != nil {
			t.Fatalf("%s %s: %v", name, fam, err)
		}
	}
}

func rtbhRoute(p string) func(lab.Route) bool {
	return func(r lab.Route) bool {
		return r.Prefix == p && r.HasCommunity("65535:666") && r.HasCommunity("65000:666")
	}
}

// TestMitigationWithRouters runs floodgate against FRR, BIRD, gobgpd and
// ExaBGP: RTBH v4 and v6 from manual bans, a FlowSpec rule from detected
// NetFlow traffic and its withdrawal at expiry, the kernel blackhole on
// FRR, a router restart, and a SIGKILL and restart of floodgate.
func TestMitigationWithRouters(t *testing.T) {
	lab.RequireRoot(t, "ip", "gobgpd", "bird", "birdc", "vtysh", "exabgp", "go")
	bin := lab.BuildFloodgate(t)
	l := lab.Up(t, routerTopology())
	dir := t.TempDir()
	cfg := routerConfig(l, dir)
	fg := lab.StartFloodgateIn(t, bin, l.Netns("ctl"), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ups, err := l.WaitSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups {
		t.Logf("session with %s (%s) up after %s", u.Router, u.Kind, u.After.Round(time.Millisecond))
	}
	api := controller.NewClient(filepath.Join(dir, "api.sock"), "")
	wait := func(d time.Duration) (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, d) }

	t.Run("data plane", func(t *testing.T) {
		c, cancel := wait(40 * time.Second)
		defer cancel()
		ctlAddr, _ := l.Addr("ctl", "frr")
		probe := func(sport uint16) int {
			n, err := l.ProbeUDP(c, lab.Probe{From: "ctl", To: "vic", Src: netip.AddrPortFrom(ctlAddr, sport), Dst: netip.AddrPortFrom(labVictim4, 9999)})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := probe(123); n != 20 {
			t.Fatalf("before any rule: %d of 20 datagrams arrived", n)
		}
		// The FlowSpec rule FRR received, enforced by nftables in its
		// namespace: the "attack" (UDP from port 123) is dropped, the
		// victim's other traffic passes.
		if _, err := api.Ban(c, controller.BanRequest{Kind: "flowspec", Rule: "dst 203.0.113.10/32 proto udp sport 123", Duration: "1m"}); err != nil {
			t.Fatal(err)
		}
		route, err := lab.WaitRoute(c, l.Router(t, "frr"), lab.FamilyIPv4FlowSpec,
			lab.MatchPrefix("destination:203.0.113.10/32 protocol:==udp source-port:==123"))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.InstallFlowSpec(c, "frr", route); err != nil {
			t.Fatal(err)
		}
		if n := probe(123); n != 0 {
			t.Errorf("with the rule: %d of 20 datagrams from port 123 arrived", n)
		}
		if n := probe(5000); n != 20 {
			t.Errorf("with the rule: %d of 20 other datagrams arrived", n)
		}
		counters, err := l.FlowSpecCounters(c, "frr")
		if err != nil || len(counters) == 0 || counters[0].Packets < 20 {
			t.Errorf("nft counters %+v, %v", counters, err)
		}
		if _, err := api.Unban(c, "", "203.0.113.10/32"); err != nil {
			t.Fatal(err)
		}
		if err := l.InstallFlowSpec(c, "frr"); err != nil {
			t.Fatal(err)
		}
		// The RTBH route FRR received blackholes the victim in its kernel.
		if _, err := api.Ban(c, controller.BanRequest{Kind: "rtbh", Prefix: labVictim4.String(), Duration: "1m"}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.WaitKernelRoute(c, "frr", netip.PrefixFrom(labVictim4, 32), func(s string) bool { return strings.HasPrefix(s, "blackhole") }); err != nil {
			t.Fatal(err)
		}
		if n := probe(5000); n != 0 {
			t.Errorf("blackholed: %d of 20 datagrams arrived", n)
		}
		if _, err := api.Unban(c, "", labVictim4.String()); err != nil {
			t.Fatal(err)
		}
		if _, err := l.WaitKernelRoute(c, "frr", netip.PrefixFrom(labVictim4, 32), func(s string) bool { return !strings.HasPrefix(s, "blackhole") }); err != nil {
			t.Fatal(err)
		}
		if n := probe(5000); n != 20 {
			t.Errorf("after the unban: %d of 20 datagrams arrived", n)
		}
	})

	t.Run("rtbh v4 and v6", func(t *testing.T) {
		for _, v := range []string{labVictim4.String(), labVictim6.String()} {
			if _, err := api.Ban(ctx, controller.BanRequest{Kind: "rtbh", Prefix: v, Duration: "30s", Reason: "lab"}); err != nil {
				t.Fatal(err)
			}
		}
		c, cancel := wait(20 * time.Second)
		defer cancel()
		ms, err := api.Mitigations(c)
		if err != nil || len(ms.Mitigations) != 2 || len(ms.Mitigations[0].Peers) != 4 {
			t.Errorf("mitigations with their peers: %+v, %v", ms, err)
		}
		everyRouter(c, t, l, lab.FamilyIPv4Unicast, true, rtbhRoute("203.0.113.10/32"))
		everyRouter(c, t, l, lab.FamilyIPv6Unicast, true, rtbhRoute("2001:db8:ffff::10/128"))
		line, err := l.WaitKernelRoute(c, "frr", netip.PrefixFrom(labVictim4, 32), func(s string) bool { return strings.HasPrefix(s, "blackhole") })
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("frr kernel: %s", line)
	})

	t.Run("flowspec rules of every attack type reach every router exactly", func(t *testing.T) {
		v := "203.0.113.12"
		tests := []struct {
			rule, action, rate, redirect string
			dscp                         int
			fam                          lab.Family
			prefix, ext                  string
		}{
			{rule: "dst " + v + "/32 proto udp sport 123", action: "discard", fam: lab.FamilyIPv4FlowSpec,
				prefix: "destination:" + v + "/32 protocol:==udp source-port:==123", ext: "traffic-rate:0"},
			{rule: "dst " + v + "/32 proto udp sport 53,123", action: "discard", fam: lab.FamilyIPv4FlowSpec,
				prefix: "destination:" + v + "/32 protocol:==udp source-port:==53|==123", ext: "traffic-rate:0"},
			{rule: "dst " + v + "/32 proto tcp dport 80 tcp-flags syn,!ack", action: "rate-limit", rate: "8kbps", fam: lab.FamilyIPv4FlowSpec,
				prefix: "destination:" + v + "/32 protocol:==tcp destination-port:==80 tcp-flags:=S&!A", ext: "traffic-rate:1000"},
			{rule: "dst " + v + "/32 proto udp fragment is", action: "redirect", redirect: "65000:100", fam: lab.FamilyIPv4FlowSpec,
				prefix: "destination:" + v + "/32 protocol:==udp fragment:is-fragment", ext: "redirect:65000:100"},
			{rule: "dst " + v + "/32 proto udp length 1025-1500", action: "mark", dscp: 8, fam: lab.FamilyIPv4FlowSpec,
				prefix: "destination:" + v + "/32 protocol:==udp packet-length:>=1025&<=1500", ext: "traffic-marking:8"},
			{rule: "dst " + v + "/32 proto tcp length 0-64", action: "discard", fam: lab.FamilyIPv4FlowSpec,
				prefix: "destination:" + v + "/32 protocol:==tcp packet-length:>=0&<=64", ext: "traffic-rate:0"},
			{rule: "dst " + v + "/32 proto icmp", action: "discard", fam: lab.FamilyIPv4FlowSpec,
				prefix: "destination:" + v + "/32 protocol:==icmp", ext: "traffic-rate:0"},
			{rule: "dst 203.0.113.0/24 proto udp sport 389", action: "discard", fam: lab.FamilyIPv4FlowSpec,
				prefix: "destination:203.0.113.0/24 protocol:==udp source-port:==389", ext: "traffic-rate:0"},
			{rule: "dst 2001:db8:ffff::12/128 proto udp sport 11211", action: "discard", fam: lab.FamilyIPv6FlowSpec,
				prefix: "destination:2001:db8:ffff::12/128 protocol:==udp source-port:==11211", ext: "traffic-rate:0"},
		}
		var keys []string
		for _, tc := range tests {
			m, err := api.Ban(ctx, controller.BanRequest{Kind: "flowspec", Rule: tc.rule, Action: tc.action, Rate: tc.rate,
				Redirect: tc.redirect, DSCP: tc.dscp, Duration: "5m"})
			if err != nil {
				t.Fatalf("ban %s: %v", tc.rule, err)
			}
			keys = append(keys, m.Key)
		}
		c, cancel := wait(30 * time.Second)
		defer cancel()
		for _, tc := range tests {
			everyRouter(c, t, l, tc.fam, true, func(r lab.Route) bool { return r.Prefix == tc.prefix && r.HasExtCommunity(tc.ext) })
		}
		for _, k := range keys {
			if _, err := api.Unban(ctx, k, ""); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range tests {
			everyRouter(c, t, l, tc.fam, false, func(r lab.Route) bool { return r.Prefix == tc.prefix })
		}
	})

	t.Run("router restart gets every route again", func(t *testing.T) {
		l.RestartRouter(t, "bird")
		c, cancel := wait(30 * time.Second)
		defer cancel()
		r := l.Router(t, "bird")
		for _, p := range []string{"203.0.113.10/32", "2001:db8:ffff::10/128"} {
			fam := lab.FamilyIPv4Unicast
			if strings.Contains(p, ":") {
				fam = lab.FamilyIPv6Unicast
			}
			if _, err := lab.WaitRoute(c, r, fam, rtbhRoute(p)); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("flowspec from detected traffic, withdrawn at expiry", func(t *testing.T) {
		conn := udpIn(t, l.Netns("ctl"), netip.MustParseAddrPort("127.0.0.1:2055"))
		enc := flowgen.NetFlowV9{SourceID: 9}
		victim := netip.MustParseAddr("203.0.113.11")
		match := func(r lab.Route) bool {
			return r.Prefix == "destination:203.0.113.11/32 protocol:==udp source-port:==123 packet-length:>=257&<=65535" && r.HasExtCommunity("traffic-rate:0")
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		first := time.Now()
		seen := map[string]time.Duration{}
		for len(seen) < len(l.Routers()) && time.Since(first) < 30*time.Second {
			now := <-tick.C
			conn.Write(enc.AppendTemplates(nil, now))
			var flows []flowgen.Flow
			for i := range 20 { // 100 kpps of NTP reflection from 20 reflectors
				flows = append(flows, flowgen.Flow{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Dst: victim, SrcPort: 123, DstPort: uint16(30000 + 7*i),
					Proto: 17, Packets: 500, Bytes: 500 * 468, Start: now.Add(-100 * time.Millisecond), End: now})
			}
			b, err := enc.AppendData(nil, now, flows)
			if err != nil {
				t.Fatal(err)
			}
			conn.Write(b)
			for _, name := range l.Routers() {
				if _, ok := seen[name]; ok {
					continue
				}
				routes, err := l.Router(t, name).Routes(ctx, lab.FamilyIPv4FlowSpec)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range routes {
					if match(r) {
						seen[name] = time.Since(first)
					}
				}
			}
		}
		if len(seen) != len(l.Routers()) {
			t.Fatalf("flowspec rule seen by %v only", seen)
		}
		for name, d := range seen {
			t.Logf("first datagram to rule at %s: %s", name, d.Round(time.Millisecond))
		}
		stopped := time.Now()
		c, cancel := wait(60 * time.Second)
		defer cancel()
		everyRouter(c, t, l, lab.FamilyIPv4FlowSpec, false, match)
		t.Logf("traffic stopped to rule gone everywhere: %s", time.Since(stopped).Round(time.Millisecond))
	})

	t.Run("sigkill and restart keep the routes and the expiry", func(t *testing.T) {
		ms, err := api.Mitigations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var expires time.Time
		for _, m := range ms.Mitigations {
			if m.Key == "rtbh:203.0.113.10/32" {
				expires = m.Expires
			}
		}
		if expires.IsZero() {
			t.Fatalf("no RTBH mitigation for the victim: %+v", ms)
		}
		if err := fg.Kill(); err != nil {
			t.Fatal(err)
		}
		fg = lab.StartFloodgateIn(t, bin, l.Netns("ctl"), cfg)
		c, cancel := wait(30 * time.Second)
		defer cancel()
		if _, err := l.WaitSessions(c); err != nil {
			t.Fatal(err)
		}
		everyRouter(c, t, l, lab.FamilyIPv4Unicast, true, rtbhRoute("203.0.113.10/32"))
		everyRouter(c, t, l, lab.FamilyIPv6Unicast, true, rtbhRoute("2001:db8:ffff::10/128"))
		ms, err = api.Mitigations(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms.Mitigations {
			if m.Key == "rtbh:203.0.113.10/32" && !m.Expires.Equal(expires) {
				t.Errorf("expiry moved by the restart: %s, was %s", m.Expires, expires)
			}
		}
		// Withdrawn at the original expiry, everywhere.
		c2, cancel2 := context.WithDeadline(ctx, expires.Add(20*time.Second))
		defer cancel2()
		everyRouter(c2, t, l, lab.FamilyIPv4Unicast, false, rtbhRoute("203.0.113.10/32"))
		if late := time.Since(expires); late < 0 {
			t.Errorf("withdrawn %s before its expiry", -late)
		} else {
			t.Logf("withdrawn %s after the original expiry", late.Round(time.Millisecond))
		}
	})
}
