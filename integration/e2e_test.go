package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/integration/gen"
	"github.com/floodgate-ddos/floodgate/integration/lab"
)

// TestE2ELatency measures the time from an attack's first datagram or
// packet to the FlowSpec rule in a router's RIB (gobgpd, read over its API
// every 5 ms), with the shipped detection defaults, for the detection
// issue's inputs (sFlow 1:1000, NetFlow v9 1:1000, IPFIX unsampled, the
// mirror port) and the earlier rows' (sFlow and NetFlow v9 at 1:100), an
// NTP reflection at 5× and at 1.5× the threshold on top of the victim's
// own traffic at 0.15×, IPv4 and IPv6, over repeated runs, and prints
// median, minimum and maximum; then the NetFlow input again through a
// cluster of separate collector, detector and speaker processes on a
// kfake process (the cluster's row). The generator's NetFlow records span
// its 100-ms intervals, sent during the interval they describe; the row
// "1-s records" exports 1-s records as a router sweeping its cache every
// second does, each second's records at the next sweep, and the attack
// starts just after a sweep (the worst phase: its first traffic is
// reported a second later), so its time counts from the attack's first
// traffic, a second before its first record. It runs only with
// FLOODGATE_BENCH_E2E=1 (make bench-e2e); FLOODGATE_BENCH_E2E_ROWS, a
// regular expression, picks the rows to measure.
func TestE2ELatency(t *testing.T) {
	if os.Getenv("FLOODGATE_BENCH_E2E") != "1" {
		t.Skip("set FLOODGATE_BENCH_E2E=1 (make bench-e2e)")
	}
	lab.RequireRoot(t, "ip", "gobgpd", "go")
	runs := 7
	bin := lab.BuildFloodgate(t)
	topo := lab.Topology{
		Name: "floodgate-e2e",
		Nodes: []lab.Node{
			{Name: "ctl", Kind: lab.KindCtl, ASN: controllerASN},
			{Name: "gobgp", Kind: lab.KindGoBGP, ASN: 65003},
			{Name: "tap", Kind: lab.KindHost},
		},
		Links: []lab.Link{{A: "ctl", B: "gobgp"}, {A: "ctl", B: "tap"}},
	}
	l := lab.Up(t, topo)
	dir := t.TempDir()
	var nb strings.Builder
	for i, s := range l.Sessions() {
		fams := make([]string, len(s.Families))
		for j, f := range s.Families {
			fams[j] = fmt.Sprintf("%q", string(f))
		}
		fmt.Fprintf(&nb, "  neighbor \"edge-%d\" {\n    address = \"%s\"\n    asn = %d\n    local_address = \"%s\"\n    families = [%s]\n  }\n",
			i, s.RouterAddr, s.RouterASN, s.CtlAddr, strings.Join(fams, ", "))
	}
	cfg := fmt.Sprintf(`
sources {
  netflow "routers" { listen = "127.0.0.1:2055" }
  sflow "switches" { listen = "127.0.0.1:6343" }
  mirror "span" { interfaces = ["eth2"] }
}
bgp {
  asn       = %d
  router_id = "10.0.1.1"
%s}
api { socket = "%s" }
mitigation { state_file = "%s" }
hostgroup "customers" {
  prefixes = ["203.0.113.0/24", "2001:db8:ffff::/48"]
  threshold "incoming" { pps = "20kpps" }
  aggregate_after = 0 # one rule per victim, whatever the number of runs
  response "flowspec" {
    flowspec { action = "discard" }
    duration = "30s"
  }
}
`, controllerASN, nb.String(), filepath.Join(dir, "api.sock"), filepath.Join(dir, "state.db"))
	single := lab.StartFloodgateIn(t, bin, l.Netns("ctl"), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	if _, err := l.WaitSessions(ctx); err != nil {
		t.Fatal(err)
	}
	router := l.Router(t, "gobgp")
	nsUDP := func(e gen.Emitter) gen.Emitter { return nsEmitter{e, l.Netns("ctl")} }
	sflowTo, netflowTo := netip.MustParseAddrPort("127.0.0.1:6343"), netip.MustParseAddrPort("127.0.0.1:2055")
	type input struct {
		name string
		emit func() gen.Emitter
		// interval is the generator's interval (0: its default); with a
		// delayed export the attack's traffic starts an interval before
		// its first datagram.
		interval time.Duration
		delayed  bool
	}
	inputs := []input{
		{name: "sflow 1:1000", emit: func() gen.Emitter { return nsUDP(&gen.SFlowEmitter{To: sflowTo, SamplingRate: 1000}) }},
		{name: "netflow v9 1:1000", emit: func() gen.Emitter {
			return nsUDP(&gen.NetFlowEmitter{Version: 9, To: netflowTo, SamplingRate: 1000})
		}},
		{name: "netflow v9 1:1000 1-s records", emit: func() gen.Emitter {
			return nsUDP(&gen.NetFlowEmitter{Version: 9, To: netflowTo, SamplingRate: 1000, Delayed: true})
		}, interval: time.Second, delayed: true},
		{name: "ipfix 1:1", emit: func() gen.Emitter { return nsUDP(&gen.NetFlowEmitter{Version: 10, To: netflowTo, SamplingRate: 1}) }},
		{name: "mirror", emit: func() gen.Emitter {
			return &gen.RawEmitter{Interface: "eth1", Netns: l.Netns("tap"), MaxPackets: 2_000_000}
		}},
		{name: "sflow 1:100", emit: func() gen.Emitter { return nsUDP(&gen.SFlowEmitter{To: sflowTo, SamplingRate: 100}) }},
		{name: "netflow v9 1:100", emit: func() gen.Emitter {
			return nsUDP(&gen.NetFlowEmitter{Version: 9, To: netflowTo, SamplingRate: 100})
		}},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-40s %5s %10s %10s %10s\n", "input", "runs", "median", "min", "max")
	host := 10
	rows, err := regexp.Compile(os.Getenv("FLOODGATE_BENCH_E2E_ROWS"))
	if err != nil {
		t.Fatalf("FLOODGATE_BENCH_E2E_ROWS: %v", err)
	}
	measure := func(in input, v6 bool, factor float64) {
		n, d := runs, 3*time.Second
		if factor < 2 {
			n, d = 5, 8*time.Second
		}
		if in.interval > 0 {
			d += 3 * in.interval // the records come later and the last interval's never
		}
		fam, bg := lab.FamilyIPv4FlowSpec, netip.MustParsePrefix("203.0.113.128/25")
		if v6 {
			fam, bg = lab.FamilyIPv6FlowSpec, netip.MustParsePrefix("2001:db8:ffff:1::/120")
		}
		row := fmt.Sprintf("%s %s %.1f×", in.name, map[bool]string{false: "ipv4", true: "ipv6"}[v6], factor)
		if !rows.MatchString(row) {
			return
		}
		var ds []time.Duration
		for r := range n {
			host++
			// A random pause of up to a second before each run, so that
			// the attack starts at any phase of the daemon's ticks: runs
			// back to back last whole ticks and would all start at one.
			time.Sleep(rand.N(time.Second))
			victim := netip.AddrFrom4([4]byte{203, 0, 113, byte(host)})
			if v6 {
				victim = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 15: byte(host)})
			}
			s := gen.Scenario{Victim: victim, Attack: gen.AttackNTP, AttackPPS: uint64(factor * 20_000), VictimPPS: 3_000,
				Start: 300 * time.Millisecond, Duration: d, Interval: in.interval,
				BackgroundHosts: bg, BackgroundCount: 50, BackgroundPPS: 5000, Seed: uint64(host)}
			var start startLine
			done := make(chan error, 1)
			go func() {
				_, err := gen.Run(ctx, s, &start, in.emit())
				done <- err
			}()
			want := flowspecPrefix(netip.PrefixFrom(victim, victim.BitLen()).String())
			var seen time.Time
			for seen.IsZero() {
				routes, err := router.Routes(ctx, fam)
				if err != nil {
					t.Fatal(err)
				}
				for _, rt := range routes {
					if hasDestination(rt, want) {
						seen = time.Now()
					}
				}
				if ctx.Err() != nil {
					t.Fatalf("%s run %d: no rule", row, r)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := <-done; err != nil {
				t.Fatalf("%s: generator: %v", row, err)
			}
			began := start.get()
			if in.delayed {
				began = began.Add(-in.interval)
			}
			d := seen.Sub(began)
			ds = append(ds, d)
			t.Logf("%s run %d: %s", row, r+1, d.Round(time.Millisecond))
		}
		med, maximum := latencies(ds)
		minimum := ds[0]
		for _, d := range ds {
			minimum = min(minimum, d)
		}
		fmt.Fprintf(&table, "%-40s %5d %10s %10s %10s\n", row, len(ds), med.Round(time.Millisecond), minimum.Round(time.Millisecond), maximum.Round(time.Millisecond))
	}
	for _, factor := range []float64{5, 1.5} {
		for _, v6 := range []bool{false, true} {
			for _, in := range inputs {
				measure(in, v6, factor)
			}
		}
	}

	// The same NetFlow input through a cluster of three processes on a
	// kfake process in the same namespace: collector -> flow topic ->
	// detector -> mitigation topic -> speaker -> gobgpd. The single node
	// stops first, so that the speaker takes its sessions.
	if err := single.Stop(); err != nil {
		t.Fatal(err)
	}
	kafkaAddr, _ := l.Addr("ctl", "tap")
	brokers := netip.AddrPortFrom(kafkaAddr, clusterKafkaPort).String()
	kf := l.StartProc(t, "kfake", "ctl", lab.BuildKfake(t), "-listen", brokers)
	if err := kf.WaitLog(ctx, "kfake listening"); err != nil {
		t.Fatal(err)
	}
	var nodes []*lab.Floodgate
	for _, n := range []struct{ name, sources, role string }{
		{"s", "", "speaker"}, {"d", "", "detector"},
		{"c", "sources {\n  netflow \"routers\" { listen = \"127.0.0.1:2055\" }\n}", "collector"},
	} {
		nodes = append(nodes, lab.StartFloodgateIn(t, bin, l.Netns("ctl"), clusterConfig(l, t.TempDir(), "ctl", n.name, brokers, n.sources, n.role)))
	}
	if _, err := l.WaitSessions(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].WaitLog(ctx, "flow partitions assigned"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cl := inputs[len(inputs)-1]
	cl.name = "cluster: " + cl.name
	measure(cl, false, 5)
	t.Log(table.String())
	fmt.Print(table.String())
}
