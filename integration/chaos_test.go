package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/integration/lab"
)

// chaosPlan is one seeded campaign: attacks and the failures injected
// while they run.
type chaosPlan struct {
	seed    uint64
	attacks []chaosAttack
	events  []chaosEvent
	window  time.Duration // the campaign's length, attacks included
}

type chaosAttack struct {
	id         int
	kind       string // ntp, dns, memcached, syn, icmp
	sflow      bool   // fed through sFlow 1:100, else NetFlow v9
	victim     netip.Addr
	start, end time.Duration
}

type chaosEvent struct {
	at     time.Duration
	kill   string        // the floodgate process that gets SIGKILL
	down   time.Duration // how long it stays down
	router string        // or: router restarted
}

var chaosKinds = []string{"ntp", "dns", "memcached", "syn", "icmp"}

// newChaosPlan draws a campaign: n attacks of every kind over the window,
// through sFlow and NetFlow v9, IPv4 and IPv6, many overlapping; kills
// floodgate processes (of killable) one at a time at random moments;
// restarts routers.
func newChaosPlan(seed uint64, n, kills, routerRestarts int, window time.Duration, routers, killable []string) chaosPlan {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := chaosPlan{seed: seed, window: window}
	for i := range n {
		a := chaosAttack{id: i, kind: chaosKinds[i%len(chaosKinds)], sflow: i%2 == 1}
		if i%4 == 3 {
			a.victim = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 15: byte(20 + i)})
		} else {
			a.victim = netip.AddrFrom4([4]byte{203, 0, 113, byte(20 + i)})
		}
		length := 10*time.Second + time.Duration(r.Int64N(int64(6*time.Second)))
		a.start = time.Duration(r.Int64N(int64(window - length - 5*time.Second)))
		a.end = a.start + length
		p.attacks = append(p.attacks, a)
	}
	// Failures one at a time, spread over the window, each given 8 s.
	slots := kills + routerRestarts
	span := (window - 10*time.Second) / time.Duration(max(slots, 1))
	order := r.Perm(slots)
	for s, k := range order {
		e := chaosEvent{at: 3*time.Second + time.Duration(s)*span + time.Duration(r.Int64N(int64(max(span-8*time.Second, time.Second))))}
		if k < kills {
			e.kill = killable[r.IntN(len(killable))]
			e.down = 500*time.Millisecond + time.Duration(r.Int64N(int64(2500*time.Millisecond)))
		} else {
			e.router = routers[r.IntN(len(routers))]
		}
		p.events = append(p.events, e)
	}
	slices.SortFunc(p.events, func(a, b chaosEvent) int { return int(a.at - b.at) })
	return p
}

// flows are the attack's records for one 100-ms tick at 100 kpps (5x
// the 20 kpps limit).
func (a chaosAttack) flows(now time.Time, r *rand.Rand) []flowgen.Flow {
	const sources = 20
	var out []flowgen.Flow
	for s := range sources {
		var src netip.Addr
		if a.victim.Is4() {
			src = netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + s)})
		} else {
			src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x0b, 15: byte(1 + s)})
		}
		f := flowgen.Flow{Src: src, Dst: a.victim, Packets: 100_000 / 10 / sources, Start: now.Add(-100 * time.Millisecond), End: now}
		size := uint64(0)
		switch a.kind {
		case "ntp":
			f.Proto, f.SrcPort, f.DstPort, size = 17, 123, uint16(30000+r.IntN(30000)), 468
		case "dns":
			f.Proto, f.SrcPort, f.DstPort, size = 17, 53, uint16(30000+r.IntN(30000)), 1200
		case "memcached":
			f.Proto, f.SrcPort, f.DstPort, size = 17, 11211, uint16(30000+r.IntN(30000)), 1400
		case "syn":
			f.Proto, f.SrcPort, f.DstPort, f.TCPFlags, size = 6, uint16(1024+r.IntN(60000)), 80, 0x02, 60
			f.Src = randomSource(r, a.victim.Is4())
		case "icmp":
			f.Proto, f.DstPort, size = 1, 8<<8, 84
			if a.victim.Is6() {
				f.Proto, f.DstPort = 58, 128<<8
			}
		}
		f.Bytes = f.Packets * size
		out = append(out, f)
	}
	return out
}

func randomSource(r *rand.Rand, v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte{198, 18, byte(r.IntN(256)), byte(1 + r.IntN(254))})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x0c, 14: byte(r.IntN(256)), 15: byte(1 + r.IntN(254))})
}

// covers reports whether a FlowSpec route's destination holds victim.
func covers(r lab.Route, victim netip.Addr) bool {
	for _, f := range strings.Fields(r.Prefix) {
		if d, ok := strings.CutPrefix(f, "destination:"); ok {
			d, _, _ = strings.Cut(d, "/off")
			p, err := netip.ParsePrefix(d)
			return err == nil && p.Contains(victim)
		}
	}
	return false
}

// chaosConfig is a speaker's configuration for the campaign: NetFlow and
// sFlow listeners, and one FlowSpec response of 5 s for every attack
// (extended while it lasts); no aggregation, so that each attack keeps
// rules of its own.
func chaosConfig(l *lab.Lab, dir, ctl string) string {
	cfg := grConfig(l, dir, ctl)
	cfg = strings.Replace(cfg, `netflow "lab" { listen = "127.0.0.1:2055" }`,
		`netflow "lab" { listen = "127.0.0.1:2055" }
  sflow "lab-sflow" { listen = "127.0.0.1:6343" }`, 1)
	i := strings.Index(cfg, `hostgroup "customers"`)
	return cfg[:i] + chaosHostgroup
}

// chaosHostgroup is the campaign's hostgroup: one FlowSpec response of 5 s
// for every attack (extended while it lasts) and no aggregation, so that
// each attack keeps rules of its own.
const chaosHostgroup = `hostgroup "customers" {
  prefixes        = ["203.0.113.0/24", "2001:db8:ffff::/48"]
  aggregate_after = 0
  threshold "incoming" { pps = "20kpps" }
  response "all" {
    flowspec { action = "discard" }
    duration = "5s"
  }
}
`

// chaosWatch polls every router's FlowSpec routes every 200 ms and keeps,
// per router and attack, when the attack was first and last covered and
// every poll inside the attack that found it uncovered.
type chaosWatch struct {
	mu      sync.Mutex
	start   time.Time
	first   map[string]map[int]time.Duration
	last    map[string]map[int]time.Duration
	gaps    map[string]map[int][]time.Duration
	polls   map[string]int
	restart map[string][][2]time.Duration // router restart windows
}

// chaosProc is one floodgate process of a campaign, and the sockets
// that feed its flow listeners (a collector's, or a single node's).
type chaosProc struct {
	name, ctl, dir, cfg string
	fg                  *lab.Floodgate
	nf, sf              *net.UDPConn
	nfEnc               flowgen.NetFlowV9
	sfEnc               flowgen.SFlowV5
}

// chaosTarget is what a campaign runs against: its processes, those the
// driver may kill, and which processes receive an attack's flows.
type chaosTarget struct {
	procs    map[string]*chaosProc
	killable []string
	feeds    func(a chaosAttack) []*chaosProc
}

// TestChaos runs a seeded campaign of attacks through sFlow and NetFlow v9
// into two floodgates (ctl and ctl2, redundant speakers) peering with FRR,
// BIRD and gobgpd, while a driver kills floodgate processes with SIGKILL
// at random moments and restarts routers. It asserts that every attack
// was mitigated at every router, that no attack went unmitigated after
// its first mitigation through our restarts (a router's own restart may
// open a gap on that router), that every rule left every router within
// 35 s of its attack's end and none is left, and that the daemons'
// stores agree with the routers at the end. make test runs a short
// campaign (10 attacks, 3 kills, 1 router restart in 40 s); make chaos a
// long one (FLOODGATE_CHAOS=full). FLOODGATE_CHAOS_SEED replays a seed.
func TestChaos(t *testing.T) {
	runChaos(t, false)
}

// TestChaosCluster is the campaign against a cluster on a kfake process:
// two collectors (each attack fed to one of them), two detectors and two
// speakers, any of the six killed at random moments; at the end the
// mitigation topic, as every node's API shows it, is empty like the
// routers' tables.
func TestChaosCluster(t *testing.T) {
	runChaos(t, true)
}

func runChaos(t *testing.T, clustered bool) {
	lab.RequireRoot(t, "ip", "gobgpd", "bird", "birdc", "vtysh", "go")
	n, kills, restarts, window := 10, 3, 1, 40*time.Second
	if os.Getenv("FLOODGATE_CHAOS") == "full" {
		n, kills, restarts, window = 30, 10, 3, 180*time.Second
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLOODGATE_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FLOODGATE_CHAOS_SEED: %v", err)
		}
		seed = v
	}
	bin := lab.BuildFloodgate(t)
	topo := grTopology(2)
	if clustered {
		topo.Name = "floodgate-chaos-cluster"
		topo.Links = append(topo.Links, lab.Link{A: "ctl", B: "ctl2"})
	}
	l := lab.Up(t, topo)
	ctx, cancel := context.WithTimeout(context.Background(), window+5*time.Minute)
	defer cancel()
	start := time.Now()
	var tg chaosTarget
	if clustered {
		tg = chaosCluster(ctx, t, l, bin)
	} else {
		tg = chaosSingle(t, l, bin)
	}
	plan := newChaosPlan(seed, n, kills, restarts, window, l.Routers(), tg.killable)
	t.Logf("seed %d (FLOODGATE_CHAOS_SEED=%d replays it): %d attacks, %d events in %s", seed, seed, len(plan.attacks), len(plan.events), window)
	for _, a := range plan.attacks {
		in := "netflow-v9"
		if a.sflow {
			in = "sflow-1:100"
		}
		var to []string
		for _, p := range tg.feeds(a) {
			to = append(to, p.name)
		}
		t.Logf("attack %2d %-9s %-11s %-22s %5.1fs-%5.1fs to %s", a.id, a.kind, in, a.victim, a.start.Seconds(), a.end.Seconds(), strings.Join(to, ","))
	}
	for _, e := range plan.events {
		if e.kill != "" {
			t.Logf("event %5.1fs: SIGKILL floodgate %s, down %.1fs", e.at.Seconds(), e.kill, e.down.Seconds())
		} else {
			t.Logf("event %5.1fs: restart router %s", e.at.Seconds(), e.router)
		}
	}
	if _, err := l.WaitSessions(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("floodgate processes up and sessions established in %s", time.Since(start).Round(time.Millisecond))

	w := &chaosWatch{start: time.Now(), first: map[string]map[int]time.Duration{}, last: map[string]map[int]time.Duration{},
		gaps: map[string]map[int][]time.Duration{}, polls: map[string]int{}, restart: map[string][][2]time.Duration{}}
	wctx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, name := range l.Routers() {
		w.first[name], w.last[name], w.gaps[name] = map[int]time.Duration{}, map[int]time.Duration{}, map[int][]time.Duration{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for wctx.Err() == nil {
				r := l.Router(t, name) // a new one after a restart
				v4, err4 := r.Routes(wctx, lab.FamilyIPv4FlowSpec)
				v6, err6 := r.Routes(wctx, lab.FamilyIPv6FlowSpec)
				now := time.Since(w.start)
				routes := append(v4, v6...)
				w.mu.Lock()
				w.polls[name]++
				for _, a := range plan.attacks {
					covered := err4 == nil && err6 == nil && slices.ContainsFunc(routes, func(r lab.Route) bool { return covers(r, a.victim) })
					_, seen := w.first[name][a.id]
					switch {
					case covered && !seen:
						w.first[name][a.id] = now
						w.last[name][a.id] = now
					case covered:
						w.last[name][a.id] = now
					case seen && now < a.end:
						w.gaps[name][a.id] = append(w.gaps[name][a.id], now)
					}
				}
				w.mu.Unlock()
				select {
				case <-wctx.Done():
				case <-tick.C:
				}
			}
		}()
	}

	// The traffic: every 100 ms, each active attack's records, to both
	// speakers, through its input.
	traffic := make(chan struct{})
	go func() {
		defer close(traffic)
		r := rand.New(rand.NewPCG(seed, 1))
		for _, p := range tg.procs {
			p.nfEnc = flowgen.NetFlowV9{SourceID: 7}
			p.sfEnc = flowgen.SFlowV5{Agent: netip.MustParseAddr("192.0.2.200"), SamplingRate: 100, Boot: w.start, IfIndex: 3}
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			var now time.Time
			select {
			case <-ctx.Done():
				return
			case now = <-tick.C:
			}
			at := now.Sub(w.start)
			if at > window {
				return
			}
			nfFlows, sfFlows := map[*chaosProc][]flowgen.Flow{}, map[*chaosProc][]flowgen.Flow{}
			for _, a := range plan.attacks {
				if at < a.start || at >= a.end {
					continue
				}
				flows := a.flows(now, r)
				for _, p := range tg.feeds(a) {
					if !a.sflow {
						nfFlows[p] = append(nfFlows[p], flows...)
						continue
					}
					// One sample per 100 packets of each flow.
					for _, f := range flows {
						for range f.Packets / 100 {
							g := f
							g.Bytes = 0 // the shortest frame that holds the headers
							if a.kind != "syn" {
								g.Bytes = 14 + f.Bytes/f.Packets // the frame: Ethernet and IP
							}
							sfFlows[p] = append(sfFlows[p], g)
						}
					}
				}
			}
			for _, p := range tg.procs {
				if p.nf == nil {
					continue
				}
				var dgrams [][]byte
				if i%10 == 0 {
					dgrams = append(dgrams, p.nfEnc.AppendTemplates(nil, now))
				}
				for fl := nfFlows[p]; len(fl) > 0; {
					k := min(len(fl), 20)
					b, err := p.nfEnc.AppendData(nil, now, fl[:k])
					if err != nil {
						t.Errorf("encode netflow: %v", err)
					}
					dgrams = append(dgrams, b)
					fl = fl[k:]
				}
				for _, b := range dgrams {
					p.nf.Write(b)
				}
				per := p.sfEnc.MaxRecordsPerDatagram(1400)
				for fl := sfFlows[p]; len(fl) > 0; {
					k := min(len(fl), per)
					b, err := p.sfEnc.AppendData(nil, now, fl[:k])
					if err != nil {
						t.Errorf("encode sflow: %v", err)
					}
					p.sf.Write(b)
					fl = fl[k:]
				}
			}
		}
	}()

	// The failures, one at a time.
	for _, e := range plan.events {
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Until(w.start.Add(e.at))):
		}
		if e.kill != "" {
			s := tg.procs[e.kill]
			if err := s.fg.Kill(); err != nil {
				t.Fatalf("kill %s: %v", e.kill, err)
			}
			time.Sleep(e.down)
			s.fg = lab.StartFloodgateIn(t, bin, l.Netns(s.ctl), s.cfg)
			c, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := l.WaitSessions(c)
			cancel()
			if err != nil {
				t.Fatalf("after restarting %s: %v", e.kill, err)
			}
			continue
		}
		from := time.Since(w.start)
		l.RestartRouter(t, e.router)
		c, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, err := l.WaitSessions(c)
		cancel()
		if err != nil {
			t.Fatalf("after restarting %s: %v", e.router, err)
		}
		// The router's own gap ends when it holds again every attack
		// that is on and that it had before.
		for {
			now := time.Since(w.start)
			routes, err := l.Router(t, e.router).Routes(ctx, lab.FamilyIPv4FlowSpec)
			v6, err6 := l.Router(t, e.router).Routes(ctx, lab.FamilyIPv6FlowSpec)
			routes = append(routes, v6...)
			all := err == nil && err6 == nil
			w.mu.Lock()
			for _, a := range plan.attacks {
				if first, ok := w.first[e.router][a.id]; all && ok && first < from && now < a.end {
					all = slices.ContainsFunc(routes, func(r lab.Route) bool { return covers(r, a.victim) })
				}
			}
			w.mu.Unlock()
			if all || now-from > 60*time.Second {
				w.mu.Lock()
				w.restart[e.router] = append(w.restart[e.router], [2]time.Duration{from, now})
				w.mu.Unlock()
				t.Logf("router %s restarted at %.1fs, holds every rule again at %.1fs", e.router, from.Seconds(), now.Seconds())
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	<-traffic
	// Every rule withdrawn: the last attack's end plus its duration, the
	// time to see the end, and room for a loaded machine.
	lastEnd := time.Duration(0)
	for _, a := range plan.attacks {
		lastEnd = max(lastEnd, a.end)
	}
	c, cancelWait := context.WithTimeout(ctx, time.Until(w.start.Add(lastEnd+30*time.Second)))
	defer cancelWait()
	for _, fam := range []lab.Family{lab.FamilyIPv4FlowSpec, lab.FamilyIPv6FlowSpec} {
		everyRouter(c, t, l, fam, false, func(lab.Route) bool { return true })
	}
	stopWatch()
	wg.Wait()

	// The report and the checks.
	inRestart := func(router string, at time.Duration) bool {
		for _, win := range w.restart[router] {
			if at >= win[0] && at <= win[1] {
				return true
			}
		}
		return false
	}
	var longest time.Duration
	for _, a := range plan.attacks {
		var cells []string
		for _, name := range l.Routers() {
			first, ok := w.first[name][a.id]
			if !ok {
				t.Errorf("attack %d (%s on %s) never mitigated at %s", a.id, a.kind, a.victim, name)
				cells = append(cells, name+": never")
				continue
			}
			var ours []time.Duration
			for _, g := range w.gaps[name][a.id] {
				if !inRestart(name, g) {
					ours = append(ours, g)
				}
			}
			if len(ours) > 0 {
				gap := ours[len(ours)-1] - ours[0] + 200*time.Millisecond
				longest = max(longest, gap)
				t.Errorf("attack %d unmitigated at %s in %d polls from %.1fs to %.1fs", a.id, name, len(ours), ours[0].Seconds(), ours[len(ours)-1].Seconds())
			}
			gone := w.last[name][a.id] - a.end
			if gone > 35*time.Second {
				t.Errorf("attack %d: rule still at %s %.1fs after the attack ended", a.id, name, gone.Seconds())
			}
			cells = append(cells, fmt.Sprintf("%s: +%.1fs, gone +%.1fs", name, (first-a.start).Seconds(), gone.Seconds()))
		}
		t.Logf("attack %2d %-9s %s", a.id, a.kind, strings.Join(cells, "; "))
	}
	for _, name := range l.Routers() {
		t.Logf("%s: %d polls", name, w.polls[name])
	}
	t.Logf("longest time an attack went unmitigated after its first mitigation, outside router restarts: %s", longest)
	for name, s := range tg.procs {
		ms, err := controller.NewClient(filepath.Join(s.dir, "api.sock"), "").Mitigations(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(ms.Mitigations) != 0 {
			t.Errorf("%s still shows %d mitigations after every rule left the routers", name, len(ms.Mitigations))
		}
	}
}

// chaosSingle is two single nodes, redundant speakers fed the same flows.
func chaosSingle(t *testing.T, l *lab.Lab, bin string) chaosTarget {
	tg := chaosTarget{procs: map[string]*chaosProc{}, killable: []string{"ctl", "ctl2"}}
	for _, ctl := range tg.killable {
		s := &chaosProc{name: ctl, ctl: ctl, dir: t.TempDir()}
		s.cfg = chaosConfig(l, s.dir, ctl)
		s.fg = lab.StartFloodgateIn(t, bin, l.Netns(ctl), s.cfg)
		s.nf = udpIn(t, l.Netns(ctl), netip.MustParseAddrPort("127.0.0.1:2055"))
		s.sf = udpIn(t, l.Netns(ctl), netip.MustParseAddrPort("127.0.0.1:6343"))
		tg.procs[ctl] = s
	}
	both := []*chaosProc{tg.procs["ctl"], tg.procs["ctl2"]}
	tg.feeds = func(chaosAttack) []*chaosProc { return both }
	return tg
}

// chaosCluster is a cluster on a kfake process in ctl: a speaker, a
// detector and a collector in each of ctl and ctl2; each attack is fed to
// one collector.
func chaosCluster(ctx context.Context, t *testing.T, l *lab.Lab, bin string) chaosTarget {
	kafkaAddr, _ := l.Addr("ctl", "ctl2")
	brokers := netip.AddrPortFrom(kafkaAddr, clusterKafkaPort).String()
	kf := l.StartProc(t, "kfake", "ctl", lab.BuildKfake(t), "-listen", brokers, "-min-session-timeout", "1s")
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := kf.WaitLog(c, "kfake listening"); err != nil {
		t.Fatal(err)
	}
	tg := chaosTarget{procs: map[string]*chaosProc{}}
	const listeners = `sources {
  netflow "lab" { listen = "127.0.0.1:2055" }
  sflow "lab-sflow" { listen = "127.0.0.1:6343" }
}`
	for _, p := range []struct{ name, ctl, role string }{
		{"s1", "ctl", "speaker"}, {"s2", "ctl2", "speaker"},
		{"d1", "ctl", "detector"}, {"d2", "ctl2", "detector"},
		{"c1", "ctl", "collector"}, {"c2", "ctl2", "collector"},
	} {
		s := &chaosProc{name: p.name, ctl: p.ctl, dir: t.TempDir()}
		sources := ""
		if p.role == "collector" {
			sources = listeners
		}
		cfg := clusterConfig(l, s.dir, p.ctl, p.name, brokers, sources, p.role)
		i := strings.Index(cfg, `hostgroup "customers"`)
		s.cfg = cfg[:i] + chaosHostgroup
		s.fg = lab.StartFloodgateIn(t, bin, l.Netns(p.ctl), s.cfg)
		if p.role == "collector" {
			s.nf = udpIn(t, l.Netns(p.ctl), netip.MustParseAddrPort("127.0.0.1:2055"))
			s.sf = udpIn(t, l.Netns(p.ctl), netip.MustParseAddrPort("127.0.0.1:6343"))
		}
		tg.procs[p.name] = s
		tg.killable = append(tg.killable, p.name)
	}
	for _, d := range []string{"d1", "d2"} {
		c, cancel := context.WithTimeout(ctx, 60*time.Second)
		if err := tg.procs[d].fg.WaitLog(c, "flow partitions assigned"); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	time.Sleep(clusterSession) // the group settles on both members
	tg.feeds = func(a chaosAttack) []*chaosProc { return []*chaosProc{tg.procs[fmt.Sprint("c", 1+a.id%2)]} }
	return tg
}
