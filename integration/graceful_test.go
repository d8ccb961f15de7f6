package integration

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/integration/lab"
)

// grRestartTime is the restart time the graceful restart tests negotiate:
// long enough for a restart of floodgate on a loaded machine, short enough
// to outlast in a test.
const grRestartTime = 20 * time.Second

// grConfig is the configuration of the floodgate in ctl node ctl for the
// graceful restart tests.
func grConfig(l *lab.Lab, dir, ctl string) string {
	return strings.Replace(ctlConfig(l, dir, ctl), `rtbh_communities = ["65000:666"]`,
		`rtbh_communities = ["65000:666"]
  graceful_restart { restart_time = "`+grRestartTime.String()+`" }`, 1)
}

// grTopology is floodgate in ctl (and, with two, a second one in ctl2)
// with the three routers that are graceful restart helpers in the lab
// (FRR, BIRD, gobgpd), and a victim behind FRR for the data-plane check.
func grTopology(speakers int) lab.Topology {
	t := lab.Topology{
		Name: "floodgate-gr",
		Nodes: []lab.Node{
			{Name: "ctl", Kind: lab.KindCtl, ASN: controllerASN, Routes: []lab.StaticRoute{
				{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Via: netip.MustParseAddr("10.0.1.2")},
			}},
			{Name: "frr", Kind: lab.KindFRR, ASN: 65001, Forwarding: true, Routes: []lab.StaticRoute{
				{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Via: netip.MustParseAddr("10.0.9.2")},
			}},
			{Name: "bird", Kind: lab.KindBIRD, ASN: 65002},
			{Name: "gobgp", Kind: lab.KindGoBGP, ASN: 65003},
			{Name: "vic", Kind: lab.KindHost,
				Loopback: []netip.Prefix{netip.PrefixFrom(labVictim4, 32), netip.PrefixFrom(labVictim6, 128)},
				Routes:   []lab.StaticRoute{{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.9.1")}},
			},
		},
		Links: []lab.Link{{A: "ctl", B: "frr"}, {A: "ctl", B: "bird"}, {A: "ctl", B: "gobgp"},
			{A: "frr", B: "vic", IPv4: netip.MustParsePrefix("10.0.9.0/30"), IPv6: netip.MustParsePrefix("2001:db8:9::/64")}},
	}
	if speakers == 2 {
		t.Name = "floodgate-pair"
		t.Nodes = append(t.Nodes, lab.Node{Name: "ctl2", Kind: lab.KindCtl, ASN: controllerASN})
		t.Links = append(t.Links, lab.Link{A: "ctl2", B: "frr"}, lab.Link{A: "ctl2", B: "bird"}, lab.Link{A: "ctl2", B: "gobgp"})
	}
	return t
}

// The routes of the graceful restart tests: a FlowSpec rule and an RTBH
// route that outlive every outage, and an RTBH route that expires during
// the first one.
var (
	grFlowSpec = "destination:203.0.113.10/32 protocol:==udp source-port:==123"
	grRTBH     = "2001:db8:ffff::10/128"
	grShort    = "203.0.113.99/32"
	grBans     = []controller.BanRequest{
		{Kind: "flowspec", Rule: "dst 203.0.113.10/32 proto udp sport 123", Duration: "10m"},
		{Kind: "rtbh", Prefix: "2001:db8:ffff::10", Duration: "10m"},
	}
	grShortBan = controller.BanRequest{Kind: "rtbh", Prefix: "203.0.113.99", Duration: "6s"}
)

// ribWatch polls every router's RIB every 100 ms (a goroutine per router)
// and records, per router and route, every poll that missed the route.
type ribWatch struct {
	start time.Time

	mu      sync.Mutex
	polls   map[string]int
	maxGap  map[string]time.Duration
	missing map[string]map[string][]time.Duration // router -> route -> poll times
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

var grWatched = []struct {
	fam    lab.Family
	prefix string
}{{lab.FamilyIPv4FlowSpec, grFlowSpec}, {lab.FamilyIPv6Unicast, grRTBH}, {lab.FamilyIPv4Unicast, grShort}}

func watchRIBs(t *testing.T, l *lab.Lab) *ribWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &ribWatch{start: time.Now(), polls: map[string]int{}, maxGap: map[string]time.Duration{},
		missing: map[string]map[string][]time.Duration{}, stop: cancel}
	for _, name := range l.Routers() {
		r := l.Router(t, name)
		w.missing[name] = map[string][]time.Duration{}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			last := time.Now()
			for ctx.Err() == nil {
				var lacks []string
				for _, q := range grWatched {
					routes, err := r.Routes(ctx, q.fam)
					if !slices.ContainsFunc(routes, func(rt lab.Route) bool { return rt.Prefix == q.prefix }) || err != nil {
						lacks = append(lacks, q.prefix)
					}
				}
				now := time.Now()
				w.mu.Lock()
				if ctx.Err() == nil {
					w.polls[name]++
					w.maxGap[name] = max(w.maxGap[name], now.Sub(last))
					for _, p := range lacks {
						w.missing[name][p] = append(w.missing[name][p], now.Sub(w.start))
					}
				}
				w.mu.Unlock()
				last = now
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		}()
	}
	return w
}

// since is the time since the watch started.
func (w *ribWatch) since() time.Duration { return time.Since(w.start) }

// done stops the watch; it reports for every router its polls and every
// route of must it missed (an error), and logs the others' gaps.
func (w *ribWatch) done(t *testing.T, must func(router, prefix string) bool) {
	t.Helper()
	w.stop()
	w.wg.Wait()
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range w.polls {
			if !yield(k) {
				return
			}
		}
	}) {
		t.Logf("%s: %d polls, longest interval %s", name, w.polls[name], w.maxGap[name].Round(time.Millisecond))
		for _, q := range grWatched {
			miss := w.missing[name][q.prefix]
			if len(miss) == 0 {
				continue
			}
			span := fmt.Sprintf("missed by %d polls from %s to %s", len(miss), miss[0].Round(10*time.Millisecond), miss[len(miss)-1].Round(10*time.Millisecond))
			if must(name, q.prefix) {
				t.Errorf("%s lost %s: %s", name, q.prefix, span)
			} else {
				t.Logf("%s: %s %s", name, q.prefix, span)
			}
		}
	}
}

// firstMissing is when the watch first saw router without prefix; zero if
// never.
func (w *ribWatch) firstMissing(router, prefix string) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m := w.missing[router][prefix]; len(m) > 0 {
		return m[0]
	}
	return 0
}

// dataPlane re-installs FRR's current FlowSpec routes into its nftables
// shim every 500 ms (FRR's data plane following its RIB) and probes the
// victim with the attack's packets from ctl; it records every probe that
// got through.
func dataPlane(t *testing.T, l *lab.Lab) (stop func() (probes int, leaks []string)) {
	ctx, cancel := context.WithCancel(context.Background())
	ctlAddr, _ := l.Addr("ctl", "frr")
	frr := l.Router(t, "frr")
	start := time.Now()
	var leaks []string
	probes := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			routes, err := frr.Routes(ctx, lab.FamilyIPv4FlowSpec)
			if err == nil {
				err = l.InstallFlowSpec(ctx, "frr", routes...)
			}
			var n int
			if err == nil {
				n, err = l.ProbeUDP(ctx, lab.Probe{From: "ctl", To: "vic", Count: 5, Wait: 200 * time.Millisecond,
					Src: netip.AddrPortFrom(ctlAddr, 123), Dst: netip.AddrPortFrom(labVictim4, 9999)})
			}
			if ctx.Err() != nil {
				return
			}
			probes++
			if err != nil || n > 0 {
				leaks = append(leaks, fmt.Sprintf("at %s: %d of 5 arrived (%v)", time.Since(start).Round(10*time.Millisecond), n, err))
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return func() (int, []string) {
		cancel()
		<-done
		return probes, leaks
	}
}

// frrGR is FRR's view of the graceful restart of its IPv4 session with
// the floodgate in ctl: what it read in our OPEN.
func frrGR(ctx context.Context, t *testing.T, l *lab.Lab) string {
	t.Helper()
	var ctl netip.Addr
	for _, s := range l.Sessions() {
		if s.Ctl == "ctl" && s.Router == "frr" && s.CtlAddr.Is4() {
			ctl = s.CtlAddr
		}
	}
	out, err := l.FRR(t, "frr").VTY(ctx, "show bgp ipv4 neighbors "+ctl.String()+" graceful-restart json")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(out), " ")
}

// wireAfterRestart checks, on what the restarted floodgate in ctl sent,
// that every session it opened did so as a restarting speaker (Restart
// State bit, Forwarding State bit for each of its families) and sent the
// routes it holds before End-of-RIB of their family; it logs each session.
func wireAfterRestart(t *testing.T, msgs []lab.WireMessage, since time.Time) {
	t.Helper()
	byConn := map[string][]lab.WireMessage{}
	var conns []string
	for _, m := range msgs {
		if m.At.Before(since) || m.Text == "KEEPALIVE" {
			continue
		}
		if _, ok := byConn[m.Conn]; !ok {
			conns = append(conns, m.Conn)
		}
		byConn[m.Conn] = append(byConn[m.Conn], m)
	}
	sessions := 0
	for _, c := range conns {
		ms := byConn[c]
		if !strings.HasPrefix(ms[0].Text, "OPEN") {
			continue
		}
		var texts []string
		for _, m := range ms {
			texts = append(texts, m.Text)
		}
		t.Logf("wire %s: %s", c, strings.Join(texts, " | "))
		fams, route := []string{"ipv6-unicast"}, "ipv6-unicast +1"
		if ms[0].To.Is4() {
			fams, route = []string{"ipv4-unicast", "ipv4-flowspec", "ipv6-flowspec"}, "ipv4-flowspec +1"
		}
		open := ms[0].Text
		if !strings.Contains(open, " R") {
			t.Errorf("%s: the restarted speaker's OPEN has no Restart State bit: %s", c, open)
		}
		for _, f := range fams {
			if !strings.Contains(open, f) {
				t.Errorf("%s: the restarted speaker's OPEN has no Forwarding State bit for %s: %s", c, f, open)
			}
		}
		eor := slices.IndexFunc(texts, func(s string) bool { return s == "EOR "+strings.Fields(route)[0] })
		if eor < 0 {
			continue // closed before End-of-RIB (added again as restarting)
		}
		sessions++
		if upd := slices.IndexFunc(texts, func(s string) bool { return strings.Contains(s, route) }); upd < 0 || upd > eor {
			t.Errorf("%s: End-of-RIB before the routes (%s)", c, strings.Join(texts, " | "))
		}
	}
	if sessions == 0 {
		t.Error("no session of the restarted speaker reached End-of-RIB in the capture")
	}
}

// banAll makes the graceful restart tests' bans through the API in dir.
func banAll(ctx context.Context, t *testing.T, dir string, bans ...controller.BanRequest) {
	t.Helper()
	api := controller.NewClient(filepath.Join(dir, "api.sock"), "")
	for _, b := range bans {
		if _, err := api.Ban(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGracefulRestart kills, stops and restarts floodgate while FRR, BIRD
// and gobgpd hold a FlowSpec rule and an RTBH route of it, polling their
// RIBs every 100 ms: graceful restart keeps the routes at the routers
// through every outage shorter than the restart time, except FlowSpec on
// FRR, whose helper keeps only unicast, multicast and VPN routes (its
// FOREACH_AFI_SAFI_NSF stops at SAFI_MPLS_VPN); TestRedundantSpeakers
// covers that.
func TestGracefulRestart(t *testing.T) {
	lab.RequireRoot(t, "ip", "gobgpd", "bird", "birdc", "vtysh", "go")
	bin := lab.BuildFloodgate(t)
	l := lab.Up(t, grTopology(1))
	dir := t.TempDir()
	cfg := grConfig(l, dir, "ctl")
	fg := lab.StartFloodgateIn(t, bin, l.Netns("ctl"), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := l.WaitSessions(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("FRR's view of a cold start: %s", frrGR(ctx, t, l))
	banAll(ctx, t, dir, append(grBans, grShortBan)...)
	banned := time.Now()
	c, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	defer cancelWait()
	for _, q := range grWatched {
		everyRouter(c, t, l, q.fam, true, lab.MatchPrefix(q.prefix))
	}
	// Restarts are started with the test's own t: a subtest's cleanup
	// would stop them when it ends.
	tt := t
	must := func(router, prefix string) bool {
		return prefix != grShort && !(router == "frr" && prefix == grFlowSpec)
	}

	t.Run("sigkill", func(t *testing.T) {
		w := watchRIBs(t, l)
		stopCapture, err := l.CaptureBGP("ctl")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		killed := w.since()
		if err := fg.Kill(); err != nil {
			t.Fatal(err)
		}
		// Down until the short route has expired.
		time.Sleep(time.Until(banned.Add(8 * time.Second)))
		restarted := w.since()
		restartedAt := time.Now()
		fg = lab.StartFloodgateIn(tt, bin, l.Netns("ctl"), cfg)
		c, cancel := context.WithTimeout(ctx, grRestartTime)
		defer cancel()
		if _, err := l.WaitSessions(c); err != nil {
			t.Fatal(err)
		}
		// The short route expired while floodgate was down: it is not
		// announced again, and the routers drop it at End-of-RIB, before
		// the restart time runs out.
		everyRouter(c, t, l, lab.FamilyIPv4Unicast, false, lab.MatchPrefix(grShort))
		everyRouter(c, t, l, lab.FamilyIPv4FlowSpec, true, lab.MatchPrefix(grFlowSpec))
		time.Sleep(time.Second)
		w.done(t, must)
		msgs, err := stopCapture()
		if err != nil {
			t.Error(err)
		}
		wireAfterRestart(t, msgs, restartedAt)
		for _, name := range l.Routers() {
			at := w.firstMissing(name, grShort)
			t.Logf("%s dropped the expired route %s after the kill, %s after the restart", name, (at - killed).Round(time.Millisecond), (at - restarted).Round(time.Millisecond))
			if at < restarted || at > killed+grRestartTime {
				t.Errorf("%s dropped the expired route at %s: not between the restart (%s) and the end of the restart time (%s)", name, at, restarted, killed+grRestartTime)
			}
		}
		t.Logf("FRR's view after the restart: %s", frrGR(ctx, t, l))
		// Once End-of-RIB is in, nothing the routers hold is stale: the
		// routes that stayed were announced again.
		for _, name := range l.Routers() {
			for _, fam := range []lab.Family{lab.FamilyIPv4FlowSpec, lab.FamilyIPv6Unicast} {
				routes, err := l.Router(t, name).Routes(ctx, fam)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range routes {
					if r.Stale {
						t.Errorf("%s still holds a stale route after End-of-RIB: %s", name, r)
					}
				}
			}
		}
	})

	t.Run("sigterm", func(t *testing.T) {
		// A clean stop leaves the sessions to close with the process,
		// without a NOTIFICATION: helpers keep the routes.
		w := watchRIBs(t, l)
		stopCapture, err := l.CaptureBGP("ctl")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := fg.Stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		msgs, err := stopCapture()
		if err != nil {
			t.Error(err)
		}
		for _, m := range msgs {
			if strings.HasPrefix(m.Text, "NOTIFICATION") || strings.HasPrefix(m.Text, "UPDATE") {
				t.Errorf("the stopping speaker sent %s on %s", m.Text, m.Conn)
			}
		}
		t.Logf("the stopping speaker sent %d messages, none a NOTIFICATION or UPDATE", len(msgs))
		fg = lab.StartFloodgateIn(tt, bin, l.Netns("ctl"), cfg)
		c, cancel := context.WithTimeout(ctx, grRestartTime)
		defer cancel()
		if _, err := l.WaitSessions(c); err != nil {
			t.Fatal(err)
		}
		everyRouter(c, t, l, lab.FamilyIPv4FlowSpec, true, lab.MatchPrefix(grFlowSpec))
		time.Sleep(time.Second)
		w.done(t, must)
	})

	t.Run("outage past the restart time", func(t *testing.T) {
		// Down for longer than the restart time: the routers drop the
		// routes, as RFC 4724 says, and get them back at the restart.
		if err := fg.Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		c, cancel := context.WithTimeout(ctx, grRestartTime+30*time.Second)
		defer cancel()
		everyRouter(c, t, l, lab.FamilyIPv6Unicast, false, lab.MatchPrefix(grRTBH))
		if gone := time.Since(killed); gone < grRestartTime-time.Second {
			t.Errorf("routes gone %s after the kill, before the restart time %s", gone, grRestartTime)
		} else {
			t.Logf("routes gone everywhere %s after the kill (restart time %s)", gone.Round(time.Millisecond), grRestartTime)
		}
		fg = lab.StartFloodgateIn(tt, bin, l.Netns("ctl"), cfg)
		everyRouter(c, t, l, lab.FamilyIPv4FlowSpec, true, lab.MatchPrefix(grFlowSpec))
		everyRouter(c, t, l, lab.FamilyIPv6Unicast, true, lab.MatchPrefix(grRTBH))
	})
}

// TestRedundantSpeakers runs two floodgates, in ctl and ctl2, with the
// same bans, both peering with FRR, BIRD and gobgpd, and kills one, then
// the other: a router that peers with both keeps every route while either
// is down, FlowSpec on FRR included, and FRR's data plane (nftables
// following its RIB) keeps dropping the attack throughout.
func TestRedundantSpeakers(t *testing.T) {
	lab.RequireRoot(t, "ip", "gobgpd", "bird", "birdc", "vtysh", "nft", "go")
	bin := lab.BuildFloodgate(t)
	l := lab.Up(t, grTopology(2))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type speaker struct {
		ctl, dir, cfg string
		fg            *lab.Floodgate
	}
	var sp []*speaker
	for _, ctl := range []string{"ctl", "ctl2"} {
		s := &speaker{ctl: ctl, dir: t.TempDir()}
		s.cfg = grConfig(l, s.dir, ctl)
		s.fg = lab.StartFloodgateIn(t, bin, l.Netns(ctl), s.cfg)
		sp = append(sp, s)
	}
	if _, err := l.WaitSessions(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range sp {
		banAll(ctx, t, s.dir, grBans...)
	}
	c, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	defer cancelWait()
	for _, q := range grWatched[:2] {
		everyRouter(c, t, l, q.fam, true, lab.MatchPrefix(q.prefix))
	}
	tt := t // restarts outlive the subtests
	for _, down := range sp {
		t.Run("kill "+down.ctl, func(t *testing.T) {
			w := watchRIBs(t, l)
			stopDP := dataPlane(t, l)
			time.Sleep(time.Second)
			if err := down.fg.Kill(); err != nil {
				t.Fatal(err)
			}
			// Longer than the restart time: the dead speaker's routes
			// go; the other's stay.
			time.Sleep(grRestartTime + 5*time.Second)
			down.fg = lab.StartFloodgateIn(tt, bin, l.Netns(down.ctl), down.cfg)
			c, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if _, err := l.WaitSessions(c); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			probes, leaks := stopDP()
			w.done(t, func(_, prefix string) bool { return prefix != grShort })
			t.Logf("FRR data plane: %d probes of the attack, %d got through", probes, len(leaks))
			if len(leaks) > 0 || probes < 10 {
				t.Errorf("the attack got through FRR (%d probes):\n  %s", probes, strings.Join(leaks, "\n  "))
			}
		})
	}
}
