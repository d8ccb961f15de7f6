package lab

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var updateCaptures = flag.Bool("update-captures", false, "rewrite testdata/capture from the routers of TestLabRouters")

// TestLabRouters brings up FRR, BIRD, gobgpd and ExaBGP edges in network
// namespaces, announces RTBH and FlowSpec routes from a gobgpd in ctl with
// the gobgp CLI, and checks what each router received, the kernel and
// nftables data planes, withdrawal, and a restart of every router. The
// subtests share the topology and run in order.
func TestLabRouters(t *testing.T) {
	RequireRoot(t, "ip", "gobgpd", "gobgp", "bird", "birdc", "vtysh", "exabgp", "nft")
	start := time.Now()
	l := Up(t, testTopology())
	t.Logf("lab up in %v (namespaces %s-*)", time.Since(start).Round(time.Millisecond), l.id)
	ctl := l.StartCtlGoBGP(t, "ctl")

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()
	waitSessions(ctx, t, l)

	announce := func(t *testing.T, op string, as []announcement) {
		t.Helper()
		for _, a := range as {
			args := append([]string{"global", "rib", "-a", a.family, op}, a.cli...)
			if out, err := ctl.CLI(ctx, args...); err != nil {
				t.Fatalf("gobgp %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
	waitAll := func(t *testing.T, want []Route, fams ...Family) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for _, fam := range fams {
			if err := l.WaitRoutes(wctx, fam, want); err != nil {
				t.Fatal(err)
			}
		}
	}
	unicast := []Family{FamilyIPv4Unicast, FamilyIPv6Unicast}
	flowspec := []Family{FamilyIPv4FlowSpec, FamilyIPv6FlowSpec}

	t.Run("rtbh", func(t *testing.T) {
		announce(t, "add", rtbhAnnouncements)
		waitAll(t, wants(rtbhAnnouncements), unicast...)
		for _, node := range []string{"frr", "bird"} {
			for _, p := range []netip.Prefix{netip.PrefixFrom(victim4, 32), netip.PrefixFrom(victim6, 128)} {
				line, err := l.WaitKernelRoute(ctx, node, p, func(s string) bool { return strings.HasPrefix(s, "blackhole ") })
				if err != nil {
					t.Error(err)
					continue
				}
				t.Logf("%s kernel: %s", node, line)
			}
		}
		// FRR's import route-map set the discard next hop.
		r, err := WaitRoute(ctx, l.FRR(t, "frr"), FamilyIPv4Unicast, MatchPrefix("203.0.113.10/32"))
		if err != nil || r.NextHop != frrDiscardNextHop4 {
			t.Errorf("frr rtbh route %v (err %v), want next hop %s", r, err, frrDiscardNextHop4)
		}
	})

	t.Run("flowspec", func(t *testing.T) {
		announce(t, "add", flowAnnouncements)
		waitAll(t, wants(flowAnnouncements), flowspec...)
		// The reference decoder agrees with the fixtures exactly: GoBGP
		// reports every field.
		for _, fam := range flowspec {
			got, err := l.GoBGP(t, "gobgp").Routes(ctx, fam)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range got {
				if ctl4, _ := l.Addr("ctl", "gobgp"); !r.Best || r.From != ctl4 {
					t.Errorf("gobgp route %s: best %v from %s", r, r.Best, r.From)
				}
			}
		}
	})

	if *updateCaptures {
		t.Run("capture", func(t *testing.T) { captureOutputs(ctx, t, l) })
	}

	t.Run("dataplane", func(t *testing.T) {
		testDataPlane(ctx, t, l, func(op string, as []announcement) { announce(t, op, as) })
	})

	t.Run("withdraw", func(t *testing.T) {
		announce(t, "del", rtbhAnnouncements[1:]) // the IPv4 one is gone already
		announce(t, "del", flowAnnouncements)
		waitAll(t, nil, append(unicast, flowspec...)...)
		for _, node := range []string{"frr", "bird"} {
			if _, err := l.WaitKernelRoute(ctx, node, netip.PrefixFrom(victim6, 128), func(s string) bool { return s == "" }); err != nil {
				t.Error(err)
			}
		}
		// ExaBGP saw each rule announced, then withdrawn.
		updates, err := l.ExaBGP(t, "exa").Updates()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range flowAnnouncements {
			var seq []string
			for _, u := range updates {
				for _, r := range u.Announce {
					if r.Prefix == a.want.Prefix {
						seq = append(seq, "announce")
					}
				}
				for _, r := range u.Withdraw {
					if r.Prefix == a.want.Prefix {
						seq = append(seq, "withdraw")
					}
				}
			}
			if strings.Join(seq, ",") != "announce,withdraw" {
				t.Errorf("exabgp saw %s: %v, want announce then withdraw", a.want.Prefix, seq)
			}
		}
	})

	t.Run("restart", func(t *testing.T) {
		all := append(append([]announcement{}, rtbhAnnouncements...), flowAnnouncements...)
		announce(t, "add", all)
		waitAll(t, wants(all), append(unicast, flowspec...)...)
		var wg sync.WaitGroup
		errs := make([]error, len(l.Routers()))
		for i, name := range l.Routers() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = l.Restart(ctx, name)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		waitSessions(ctx, t, l)
		waitAll(t, wants(all), append(unicast, flowspec...)...)
		if _, err := l.WaitKernelRoute(ctx, "frr", netip.PrefixFrom(victim4, 32), func(s string) bool { return strings.HasPrefix(s, "blackhole ") }); err != nil {
			t.Error(err)
		}
	})
}

// waitSessions waits for every session and logs how long each took.
func waitSessions(ctx context.Context, t *testing.T, l *Lab) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ups, err := l.WaitSessions(wctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, u := range ups {
		b.WriteString("\n\t" + u.Router + " (" + string(u.Kind) + ") - " + u.Peer.String() + ": " + u.After.Round(10*time.Millisecond).String())
	}
	t.Logf("sessions established:%s", b.String())
}

// testDataPlane checks that an RTBH route FRR received blackholes the
// victim in the kernel, and that FlowSpec rules FRR received, translated
// into nftables in its namespace, drop attack packets and let the victim's
// other traffic pass.
func testDataPlane(ctx context.Context, t *testing.T, l *Lab, announce func(op string, as []announcement)) {
	src := netip.AddrPortFrom(netip.MustParseAddr("10.0.1.1"), 0)
	probe := func(srcPort, dstPort uint16, size int) int {
		t.Helper()
		p := Probe{
			From: "ctl", To: "vic",
			Src:  netip.AddrPortFrom(src.Addr(), srcPort),
			Dst:  netip.AddrPortFrom(victim4, dstPort),
			Size: size,
		}
		n, err := l.ProbeUDP(ctx, p)
		if err != nil {
			t.Fatalf("probe %+v: %v", p, err)
		}
		return n
	}

	// RTBH: the /32 is announced (rtbh subtest).
	if got := probe(40000, 7000, 64); got != 0 {
		t.Errorf("victim blackholed by RTBH: %d of 20 probes arrived", got)
	}
	announce("del", rtbhAnnouncements[:1])
	if _, err := l.WaitKernelRoute(ctx, "frr", netip.PrefixFrom(victim4, 32), func(s string) bool { return s == "" }); err != nil {
		t.Fatal(err)
	}
	if got := probe(40000, 7000, 64); got != 20 {
		t.Errorf("RTBH withdrawn: %d of 20 probes arrived", got)
	}

	// FlowSpec: the rules for the victim, as FRR received them.
	frr := l.FRR(t, "frr")
	routes, err := frr.Routes(ctx, FamilyIPv4FlowSpec)
	if err != nil {
		t.Fatal(err)
	}
	var forVictim []Route
	for _, r := range routes {
		if strings.HasPrefix(r.Prefix, "destination:203.0.113.10/32 ") {
			forVictim = append(forVictim, r)
		}
	}
	if len(forVictim) != 2 {
		t.Fatalf("frr has %d flowspec rules for the victim, want 2: %v", len(forVictim), forVictim)
	}
	if err := l.InstallFlowSpec(ctx, "frr", forVictim...); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name             string
		srcPort, dstPort uint16
		size, want       int
	}{
		{"ntp reflection (udp source port 123)", 123, 7000, 64, 0},
		{"large datagrams to udp 9999", 40001, 9999, 1200, 0},
		{"small datagrams to udp 9999", 40002, 9999, 200, 20},
		{"other udp traffic", 40003, 7001, 1200, 20},
	} {
		if got := probe(c.srcPort, c.dstPort, c.size); got != c.want {
			t.Errorf("%s: %d of 20 probes arrived, want %d", c.name, got, c.want)
		}
	}
	counters, err := l.FlowSpecCounters(ctx, "frr")
	if err != nil {
		t.Fatal(err)
	}
	var dropped uint64
	for _, c := range counters {
		dropped += c.Packets
	}
	if dropped != 40 {
		t.Errorf("nft counters %+v: %d packets dropped, want 40", counters, dropped)
	}
	if err := l.InstallFlowSpec(ctx, "frr"); err != nil {
		t.Fatal(err)
	}
}

// captureOutputs rewrites testdata/capture with the raw output of each
// router for the announced routes; the parser tests read them.
func captureOutputs(ctx context.Context, t *testing.T, l *Lab) {
	dir := filepath.Join("testdata", "capture")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	frr := l.FRR(t, "frr")
	bird := l.BIRD(t, "bird")
	for fam, cmd := range map[Family]string{
		FamilyIPv4Unicast:  "show bgp ipv4 unicast json detail",
		FamilyIPv6Unicast:  "show bgp ipv6 unicast json detail",
		FamilyIPv4FlowSpec: "show bgp ipv4 flowspec detail json",
		FamilyIPv6FlowSpec: "show bgp ipv6 flowspec detail json",
	} {
		out, err := frr.VTY(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		write("frr-"+string(fam)+".json", out)
		out, err = bird.CLI(ctx, "show", "route", "table", birdTables[fam], "all")
		if err != nil {
			t.Fatal(err)
		}
		write("bird-"+string(fam)+".txt", out)
	}
	b, err := os.ReadFile(l.ExaBGP(t, "exa").updates)
	if err != nil {
		t.Fatal(err)
	}
	write("exabgp-updates.jsonl", string(b))
}
