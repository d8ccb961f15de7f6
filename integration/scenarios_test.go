package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/flowspec"
	"github.com/floodgate-ddos/floodgate/integration/gen"
	"github.com/floodgate-ddos/floodgate/integration/lab"
)

// scenarioTopology is routerTopology plus a "tap" host whose veth feeds
// ctl's mirror port (ctl's fifth interface).
func scenarioTopology() lab.Topology {
	t := routerTopology()
	t.Name = "floodgate-scenarios"
	t.Nodes = append(t.Nodes, lab.Node{Name: "tap", Kind: lab.KindHost})
	t.Links = append(t.Links, lab.Link{A: "ctl", B: "tap"})
	return t
}

const mirrorIface = "eth5" // ctl's side of the ctl-tap link

// scenarioConfig monitors hostgroups: customers (flow inputs), a lower
// threshold for the mirror input, and /24s whose totals catch carpet
// bombing (the mirror's at a lower limit, as frames cost the generator
// more than flow records); background traffic goes to another. Every attack gets
// a FlowSpec discard rule for 2 s, held 1 s after it ends.
func scenarioConfig(l *lab.Lab, dir string) string {
	var nb strings.Builder
	for i, s := range l.Sessions() {
		fams := make([]string, len(s.Families))
		for j, f := range s.Families {
			fams[j] = fmt.Sprintf("%q", string(f))
		}
		fmt.Fprintf(&nb, "  neighbor \"%s-%d\" {\n    address = \"%s\"\n    asn = %d\n    local_address = \"%s\"\n    families = [%s]\n  }\n",
			s.Router, i, s.RouterAddr, s.RouterASN, s.CtlAddr, strings.Join(fams, ", "))
	}
	return fmt.Sprintf(`
sources {
  netflow "routers" { listen = "127.0.0.1:2055" }
  sflow "switches" { listen = "127.0.0.1:6343" }
  mirror "span" { interfaces = [%q] }
}
bgp {
  asn       = %d
  router_id = "10.0.1.1"
%s}
api { socket = "%s" }
mitigation { state_file = "%s" }
defaults {
  response "flowspec" {
    flowspec { action = "discard" }
    duration = "2s"
    hold     = "1s"
  }
}
hostgroup "customers" {
  prefixes = ["203.0.113.0/25", "2001:db8:ffff::/48"]
  threshold "incoming" { pps = "20kpps" }
}
hostgroup "mirrored" {
  prefixes = ["203.0.113.128/26", "2001:db8:eeee::/48"]
  threshold "incoming" { pps = "2kpps" }
}
hostgroup "carpet" {
  prefixes = ["198.51.100.0/24"]
  threshold "incoming" {
    pps = "20kpps"
    group { pps = "50kpps" }
  }
}
hostgroup "mirrored-carpet" {
  prefixes = ["198.51.101.0/24"]
  threshold "incoming" {
    pps = "2kpps"
    group { pps = "10kpps" }
  }
}
hostgroup "background" {
  prefixes = ["192.0.2.0/24"]
  threshold "incoming" { pps = "20kpps" }
}
`, mirrorIface, controllerASN, nb.String(), filepath.Join(dir, "api.sock"), filepath.Join(dir, "state.db"))
}

// essential are the components every rule for an attack type must have,
// by input (NetFlow here carries no fragment information).
func essential(a gen.Attack, v6, netflow bool) []string {
	udp := "proto 17"
	switch a {
	case gen.AttackNTP:
		return []string{udp, "sport 123"}
	case gen.AttackMemcached:
		return []string{udp, "sport 11211"}
	case gen.AttackSSDP:
		return []string{udp, "sport 1900"}
	case gen.AttackCLDAP:
		return []string{udp, "sport 389"}
	case gen.AttackDNS, gen.AttackFragment:
		if netflow {
			return []string{udp}
		}
		return []string{udp, "fragment"}
	case gen.AttackSYN:
		return []string{"proto 6", "tcp-flags set=0x02 unset=0x10"}
	case gen.AttackACK:
		return []string{"proto 6"}
	case gen.AttackUDPRandom, gen.AttackCarpet:
		return []string{udp}
	case gen.AttackICMP:
		if v6 {
			return []string{"proto 58"}
		}
		return []string{"proto 1"}
	}
	return nil
}

// startLine keeps the attack start time the generator prints.
type startLine struct {
	mu sync.Mutex
	at time.Time
}

func (w *startLine) Write(b []byte) (int, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if _, t, err := gen.ParseStartLine(line); err == nil {
			w.mu.Lock()
			w.at = t
			w.mu.Unlock()
		}
	}
	return len(b), nil
}

func (w *startLine) get() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at
}

type scenarioRun struct {
	name    string
	start   startLine
	s       gen.Scenario
	emitter gen.Emitter
	// gen, when set, plays the scenario in a floodgate-gen process with
	// these arguments instead of through emitter.
	gen     []string
	netflow bool
	err     error
	rules   []string      // the FlowSpec rule set floodgate announced (texts)
	latency time.Duration // attack start to the whole set in every router's RIB
	// coverage and collateral are what the routes each router received
	// for the victim match of the attack's packets and of the victim's
	// own (the lowest coverage and the highest collateral of the routers).
	coverage, collateral float64
	// routes are the victim's routes at each router when the whole set
	// was there.
	routes map[string][]lab.Route
}

func (r *scenarioRun) victimPrefix() string {
	if r.s.Attack == gen.AttackCarpet {
		p, _ := r.s.Victim.Prefix(24)
		return p.String()
	}
	return netip.PrefixFrom(r.s.Victim, r.s.Victim.BitLen()).String()
}

// playBatch plays scenarios at once against one daemon, then checks that
// each got its rule at every router, with its essential components, and
// that every rule is withdrawn once the attacks are over.
func playBatch(t *testing.T, l *lab.Lab, api *controller.Client, runs []*scenarioRun) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.gen != nil {
				r.err = runGen(ctx, r.gen, &r.start)
				return
			}
			_, r.err = gen.Run(ctx, r.s, &r.start, r.emitter)
		}()
	}
	// Watch for each scenario's rule while the traffic plays.
	pending := map[*scenarioRun]bool{}
	for _, r := range runs {
		pending[r] = true
	}
	// Until the traffic ends, and the 2 s a rule outlives it: a round of
	// polls (the API, then every router's RIB for each pending run) takes
	// seconds on a loaded machine.
	deadline := time.Now().Add(runs[0].s.Duration + 2*time.Second)
	for len(pending) > 0 && time.Now().Before(deadline) {
		ms, err := api.Mitigations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for r := range pending {
			var set []string
			for _, m := range ms.Mitigations {
				if m.Announcement.Rule != nil && strings.HasPrefix(m.Announcement.Rule.String(), "dst "+r.victimPrefix()+" ") {
					set = append(set, m.Announcement.Rule.String())
				}
			}
			if len(set) == 0 {
				continue
			}
			r.rules = set
			if routes := atEveryRouter(ctx, t, l, r); routes != nil {
				r.latency = time.Since(r.start.get())
				r.routes = routes
				delete(pending, r)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	for _, r := range runs {
		if r.routes != nil {
			r.coverage, r.collateral = measureRoutes(t, r)
		}
	}
	for _, r := range runs {
		if r.err != nil {
			t.Errorf("%s: generator: %v", r.name, r.err)
		}
		all := strings.Join(r.rules, " ; ")
		switch {
		case len(r.rules) == 0:
			t.Errorf("%s: no FlowSpec rule for %s", r.name, r.victimPrefix())
		case pending[r]:
			t.Errorf("%s: rules %q not all at every router while the attack lasted", r.name, all)
		default:
			// AttackStart was set once the first attack packet left;
			// the latency was taken when every router had the set.
			t.Logf("%-28s %-55s at every router %s after the first attack packet; coverage %.1f%%, collateral %.1f%%",
				r.name, all, r.latency.Round(time.Millisecond), 100*r.coverage, 100*r.collateral)
			note := collateralNote(r.s.Attack)
			if r.coverage < 0.95 || (r.collateral > 0.01 && note == "") {
				t.Errorf("%s: the routers' rules %q match %.1f%% of the attack and %.1f%% of the victim's own traffic, want ≥ 95%% and ≤ 1%%",
					r.name, all, 100*r.coverage, 100*r.collateral)
			}
		}
		for _, c := range essential(r.s.Attack, r.s.IPv6(), r.netflow) {
			if !strings.Contains(all, c) {
				t.Errorf("%s: rules %q lack %q", r.name, all, c)
			}
		}
	}
	// The attacks are over: every rule goes, at every router.
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	for _, r := range runs {
		if len(r.rules) == 0 {
			continue
		}
		want := flowspecPrefix(r.victimPrefix())
		fam := lab.FamilyIPv4FlowSpec
		if r.s.IPv6() {
			fam = lab.FamilyIPv6FlowSpec
		}
		everyRouter(wctx, t, l, fam, false, func(rt lab.Route) bool { return hasDestination(rt, want) })
	}
}

// atEveryRouter returns the FlowSpec routes of the run's victim at each
// router once every router has as many of them with the discard action as
// its rule set has, else nil.
func atEveryRouter(ctx context.Context, t *testing.T, l *lab.Lab, r *scenarioRun) map[string][]lab.Route {
	fam := lab.FamilyIPv4FlowSpec
	if r.s.IPv6() {
		fam = lab.FamilyIPv6FlowSpec
	}
	want := flowspecPrefix(r.victimPrefix())
	out := map[string][]lab.Route{}
	for _, name := range l.Routers() {
		routes, err := l.Router(t, name).Routes(ctx, fam)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var found []lab.Route
		for _, rt := range routes {
			if hasDestination(rt, want) && rt.HasExtCommunity("traffic-rate:0") {
				found = append(found, rt)
			}
		}
		if len(found) < len(r.rules) {
			return nil
		}
		out[name] = found
	}
	return out
}

func scenario(a gen.Attack, victim netip.Addr, pps uint64, seed uint64) gen.Scenario {
	return gen.Scenario{
		Victim: victim, Attack: a, AttackPPS: pps, Start: time.Second, Duration: 7 * time.Second,
		BackgroundHosts: netip.MustParsePrefix("192.0.2.0/24"), BackgroundCount: 50, BackgroundPPS: 2000, Seed: seed,
		VictimPPS: pps / 30, // 0.15× the limit beside an attack at 5×
	}
}

// collateralNote says why no FlowSpec rule set spares more than 1 % of the
// victim's own traffic for an attack type, when none can.
func collateralNote(a gen.Attack) string {
	switch a {
	case gen.AttackSYN:
		return "the victim's own connection attempts are SYNs without ACK to its service port, as the attack's are"
	case gen.AttackACK:
		return "an ACK flood to the victim's service port looks like its clients' ACKs: no FlowSpec component tells them apart " +
			"(a rate-limit response is the answer)"
	}
	return ""
}

// measureRoutes evaluates the FlowSpec routes each router held for the
// run's victim against the scenario's packets from the attack's start to
// its end (the generator's model gives the packets it sent): coverage is
// the share of the attack's packets some route matches, collateral the
// share of the victim's own; the lowest coverage and the highest
// collateral of the routers are kept.
func measureRoutes(t *testing.T, r *scenarioRun) (coverage, collateral float64) {
	t.Helper()
	m, err := gen.NewModel(r.s)
	if err != nil {
		t.Fatal(err)
	}
	coverage = 1
	var iv gen.Interval
	for name, routes := range r.routes {
		var match []func(*flowspec.Packet) (bool, error)
		for _, rt := range routes {
			f, err := lab.RouteMatcher(rt)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			match = append(match, f)
		}
		var hit, total [2]float64 // by attack (1) or the victim's own (0)
		for k := range m.Intervals() {
			m.Fill(k, &iv)
			if iv.To <= r.s.Start {
				continue
			}
			for i := range iv.Flows {
				f := &iv.Flows[i]
				if !f.Attack && f.Dst != m.Targets()[0] {
					continue // background to other hosts
				}
				p := packetOfFlow(f)
				a := 0
				if f.Attack {
					a = 1
				}
				total[a] += float64(f.Packets)
				for _, mf := range match {
					ok, err := mf(&p)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if ok {
						hit[a] += float64(f.Packets)
						break
					}
				}
			}
		}
		coverage = min(coverage, hit[1]/max(total[1], 1))
		collateral = max(collateral, hit[0]/max(total[0], 1))
	}
	return coverage, collateral
}

// packetOfFlow is a generator flow's packets as a rule sees them.
func packetOfFlow(f *gen.Flow) flowspec.Packet {
	p := flowspec.Packet{Src: f.Src, Dst: f.Dst, Proto: f.Proto, SrcPort: f.SrcPort, DstPort: f.DstPort,
		TCPFlags: f.TCPFlags, Length: f.Size, Fragment: flowspec.FragDontFragment}
	switch {
	case f.FragOffset != 0:
		p.Fragment, p.SrcPort, p.DstPort = flowspec.FragIsFragment, 0, 0
	case f.MoreFragments:
		p.Fragment = flowspec.FragFirst
	}
	if f.Proto == 1 || f.Proto == 58 {
		p.ICMPType, p.ICMPCode, p.DstPort = uint8(f.DstPort>>8), uint8(f.DstPort), 0
	}
	return p
}

// TestScenarios plays every attack type through sFlow, NetFlow v9, IPFIX
// and the mirror port, IPv4 and IPv6 (six types), against floodgate and
// four routers, and checks the rule set each router received (its
// coverage of the attack and its collateral on the victim's own traffic)
// and its withdrawal.
func TestScenarios(t *testing.T) {
	lab.RequireRoot(t, "ip", "gobgpd", "bird", "birdc", "vtysh", "exabgp", "go")
	bin := lab.BuildFloodgate(t)
	l := lab.Up(t, scenarioTopology())
	dir := t.TempDir()
	lab.StartFloodgateIn(t, bin, l.Netns("ctl"), scenarioConfig(l, dir))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := l.WaitSessions(ctx); err != nil {
		t.Fatal(err)
	}
	api := controller.NewClient(filepath.Join(dir, "api.sock"), "")
	sflowTo := netip.MustParseAddrPort("127.0.0.1:6343")
	netflowTo := netip.MustParseAddrPort("127.0.0.1:2055")
	v4 := func(n int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(n)}) }
	v6 := func(n int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 15: byte(n)})
	}
	inNetns := func(e gen.Emitter) gen.Emitter { return nsEmitter{e, l.Netns("ctl")} }

	t.Run("sflow", func(t *testing.T) {
		var runs []*scenarioRun
		for i, a := range gen.Attacks() {
			victim := v4(20 + i)
			if a == gen.AttackCarpet {
				victim = netip.MustParseAddr("198.51.100.1")
			}
			runs = append(runs, &scenarioRun{name: "sflow " + string(a), s: scenario(a, victim, 100_000, uint64(i+1)),
				emitter: inNetns(&gen.SFlowEmitter{To: sflowTo, SamplingRate: 100, SubAgentID: uint32(i)})})
		}
		for i, a := range []gen.Attack{gen.AttackNTP, gen.AttackDNS, gen.AttackSYN, gen.AttackICMP, gen.AttackFragment, gen.AttackUDPRandom} {
			runs = append(runs, &scenarioRun{name: "sflow ipv6 " + string(a), s: scenario(a, v6(0x20+i), 100_000, uint64(100+i)),
				emitter: inNetns(&gen.SFlowEmitter{To: sflowTo, SamplingRate: 100, SubAgentID: uint32(100 + i)})})
		}
		playBatch(t, l, api, runs)
	})

	for _, nf := range []struct {
		name    string
		version int
		base    int
	}{{"netflow v9", 9, 50}, {"ipfix", 10, 80}} {
		t.Run(nf.name, func(t *testing.T) {
			var runs []*scenarioRun
			for i, a := range gen.Attacks() {
				victim := v4(nf.base + i)
				if a == gen.AttackCarpet {
					victim = netip.MustParseAddr("198.51.100.1")
				}
				runs = append(runs, &scenarioRun{name: fmt.Sprintf("%s %s", nf.name, a), s: scenario(a, victim, 100_000, uint64(200+nf.base+i)), netflow: true,
					emitter: inNetns(&gen.NetFlowEmitter{Version: nf.version, To: netflowTo, SamplingRate: 100, SourceID: uint32(nf.base + i)})})
			}
			for i, a := range []gen.Attack{gen.AttackNTP, gen.AttackDNS, gen.AttackSYN, gen.AttackICMP, gen.AttackFragment, gen.AttackUDPRandom} {
				runs = append(runs, &scenarioRun{name: fmt.Sprintf("%s ipv6 %s", nf.name, a), s: scenario(a, v6(nf.base+i), 100_000, uint64(300+nf.base+i)),
					netflow: true, emitter: inNetns(&gen.NetFlowEmitter{Version: nf.version, To: netflowTo, SamplingRate: 100, SourceID: uint32(nf.base + 20 + i)})})
			}
			playBatch(t, l, api, runs)
		})
	}

	t.Run("mirror", func(t *testing.T) {
		// Every packet is a frame here: the generators run as their own
		// processes, built without -race, which keep 200 kpps where the
		// race-instrumented test binary fell far behind (and the carpet's
		// /24 never reached its group limit).
		genBin := lab.BuildGen(t)
		var runs []*scenarioRun
		for i, a := range gen.Attacks() {
			s := scenario(a, netip.AddrFrom4([4]byte{203, 0, 113, byte(130 + i)}), 10_000, uint64(300+i))
			if a == gen.AttackCarpet { // 3× the /24's group limit, 120 pps per host
				s.Victim, s.AttackPPS = netip.MustParseAddr("198.51.101.1"), 30_000
			}
			s.BackgroundPPS = 500
			runs = append(runs, &scenarioRun{name: "mirror " + string(a), s: s, gen: append([]string{genBin,
				"--format", "raw", "--interface", "eth1", "--netns", l.Netns("tap"), "--max-packets", "2000000"}, genFlags(s)...)})
		}
		playBatch(t, l, api, runs)
	})

	t.Run("mirror ipv6", func(t *testing.T) {
		// A batch of its own: every generator process sends frames, and
		// a round of polls for many runs takes seconds.
		genBin := lab.BuildGen(t)
		var runs []*scenarioRun
		for i, a := range []gen.Attack{gen.AttackNTP, gen.AttackDNS, gen.AttackSYN, gen.AttackICMP, gen.AttackFragment, gen.AttackUDPRandom} {
			s := scenario(a, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xee, 0xee, 15: byte(0x30 + i)}), 10_000, uint64(400+i))
			s.BackgroundPPS = 500
			runs = append(runs, &scenarioRun{name: "mirror ipv6 " + string(a), s: s, gen: append([]string{genBin,
				"--format", "raw", "--interface", "eth1", "--netns", l.Netns("tap"), "--max-packets", "2000000"}, genFlags(s)...)})
		}
		playBatch(t, l, api, runs)
	})
}

// genFlags are floodgate-gen's flags for s.
func genFlags(s gen.Scenario) []string {
	return []string{
		"--attack", string(s.Attack), "--victim", s.Victim.String(), "--attack-pps", fmt.Sprint(s.AttackPPS),
		"--start", s.Start.String(), "--duration", s.Duration.String(), "--seed", fmt.Sprint(s.Seed),
		"--background-hosts", s.BackgroundHosts.String(), "--background-count", fmt.Sprint(s.BackgroundCount),
		"--background-pps", fmt.Sprint(s.BackgroundPPS), "--victim-pps", fmt.Sprint(s.VictimPPS),
	}
}

// runGen runs a floodgate-gen command line to its end, its output (with
// the attack's start line) to out.
func runGen(ctx context.Context, args []string, out io.Writer) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return nil
}

// nsEmitter opens its emitter's socket in a namespace (ctl's), so that the
// generator sends to the daemon's own loopback there.
type nsEmitter struct {
	gen.Emitter
	netns string
}

func (e nsEmitter) Open(s gen.Scenario) error {
	return inNetns(e.netns, func() error { return e.Emitter.Open(s) })
}

// latencies sorts and summarises durations.
func latencies(ds []time.Duration) (median, maximum time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[len(s)-1]
}

// flowspecPrefix is how the lab writes a rule's destination component.
func flowspecPrefix(p string) string { return "destination:" + p }

// hasDestination reports whether a FlowSpec route's destination is exactly
// dst (a flowspecPrefix).
func hasDestination(r lab.Route, dst string) bool {
	return r.Prefix == dst || strings.HasPrefix(r.Prefix, dst+" ")
}
