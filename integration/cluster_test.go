package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/integration/lab"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/topics"
)

// The cluster test's Kafka: a kfake process in ctl, on ctl's address on
// its link to ctl2, so that the speaker in ctl2 reaches it too.
const (
	clusterKafkaPort   = 9092
	clusterGoFlow2     = "goflow2-flows"
	clusterFlowTopic   = "floodgate-flows-v1"
	clusterMitigations = "floodgate-mitigations-v1"
	clusterSession     = 3 * time.Second
)

// clusterTopology is two speaker namespaces (ctl, ctl2) peering with FRR
// and gobgpd, linked to each other for Kafka.
func clusterTopology() lab.Topology {
	return lab.Topology{
		Name: "floodgate-cluster",
		Nodes: []lab.Node{
			{Name: "ctl", Kind: lab.KindCtl, ASN: controllerASN},
			{Name: "ctl2", Kind: lab.KindCtl, ASN: controllerASN},
			{Name: "frr", Kind: lab.KindFRR, ASN: 65001},
			{Name: "gobgp", Kind: lab.KindGoBGP, ASN: 65003},
		},
		Links: []lab.Link{{A: "ctl", B: "frr"}, {A: "ctl", B: "gobgp"}, {A: "ctl2", B: "frr"}, {A: "ctl2", B: "gobgp"},
			{A: "ctl", B: "ctl2"}},
	}
}

// clusterNode is one Floodgate process of the cluster.
type clusterNode struct {
	name, ctl, dir, cfg string
	fg                  *lab.Floodgate
	api                 *controller.Client
}

// clusterConfig is the configuration of node (in namespace ctl) with
// roles and sources (HCL of a sources block, or "").
func clusterConfig(l *lab.Lab, dir, ctl, node, brokers, sources string, roles ...string) string {
	neighbors, routerID := neighborBlocks(l, ctl)
	if !slices.Contains(roles, "speaker") {
		neighbors = ""
	}
	quoted := make([]string, len(roles))
	for i, r := range roles {
		quoted[i] = fmt.Sprintf("%q", r)
	}
	return fmt.Sprintf(`
log { level = "debug" }
%s
bgp {
  asn       = %d
  router_id = "%s"
  rtbh_communities = ["65000:666"]
  graceful_restart { restart_time = "30s" }
%s
}
api { socket = "%s" }
kafka {
  brokers         = ["%s"]
  node            = "%s"
  roles           = [%s]
  session_timeout = "%s"
  flow_topic { replication = 1 }
  mitigation_topic { replication = 1 }
}
hostgroup "customers" {
  prefixes = ["203.0.113.0/24", "2001:db8:ffff::/48"]
  threshold "incoming" { pps = "20kpps" }
  aggregate_after = 0
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
hostgroup "carpet" {
  prefixes = ["198.51.100.0/24"]
  threshold "incoming" {
    pps = "20kpps"
    group { pps = "50kpps" }
  }
  response "carpet" {
    flowspec { action = "discard" }
    duration = "4s"
  }
}
`, sources, controllerASN, routerID, neighbors, filepath.Join(dir, "api.sock"), brokers, node, strings.Join(quoted, ", "),
		clusterSession)
}

// ribHolds is whether a route of the router's table stands for victim:
// a FlowSpec rule whose destination covers it, or an RTBH route that does.
func ribHolds(r lab.Route, victim netip.Addr) bool {
	if covers(r, victim) {
		return true
	}
	p, err := netip.ParsePrefix(r.Prefix)
	return err == nil && p.Contains(victim)
}

// ribPresence polls every router every 100 ms and counts the polls at
// which no route for victim was in fam.
type ribPresence struct {
	mu     sync.Mutex
	polls  int
	misses map[string][]time.Duration
	start  time.Time
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

func watchVictim(t *testing.T, l *lab.Lab, fam lab.Family, victim netip.Addr) *ribPresence {
	ctx, cancel := context.WithCancel(context.Background())
	w := &ribPresence{misses: map[string][]time.Duration{}, start: time.Now(), stop: cancel}
	for _, name := range l.Routers() {
		r := l.Router(t, name)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				routes, err := r.Routes(ctx, fam)
				held := false
				for _, rt := range routes {
					held = held || ribHolds(rt, victim)
				}
				w.mu.Lock()
				if ctx.Err() == nil {
					w.polls++
					if !held || err != nil {
						w.misses[name] = append(w.misses[name], time.Since(w.start))
					}
				}
				w.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		}()
	}
	return w
}

// done stops the watch and fails the test for every miss.
func (w *ribPresence) done(t *testing.T, what string) {
	t.Helper()
	w.stop()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for r, m := range w.misses {
		t.Errorf("%s: the rule was missing from %s at %d of the polls (first at %s)", what, r, len(m), m[0].Round(time.Millisecond))
	}
	t.Logf("%s: %d polls of the routers over %s, %d missed", what, w.polls, time.Since(w.start).Round(time.Millisecond), len(w.misses))
}

// waitVictim waits until every router holds (want) or lacks (!want) a
// route for victim in fam, and returns how long that took.
func waitVictim(ctx context.Context, t *testing.T, l *lab.Lab, fam lab.Family, victim netip.Addr, want bool) time.Duration {
	t.Helper()
	began := time.Now()
	for _, name := range l.Routers() {
		match := func(r lab.Route) bool { return ribHolds(r, victim) }
		var err error
		if want {
			_, err = lab.WaitRoute(ctx, l.Router(t, name), fam, match)
		} else {
			err = lab.WaitNoRoute(ctx, l.Router(t, name), fam, match)
		}
		if err != nil {
			t.Fatalf("%s, %v at %s: %v", victim, want, name, err)
		}
	}
	return time.Since(began)
}

// flood sends NetFlow v9 records of flows(now) every 100 ms to conn until
// ctx ends.
func flood(ctx context.Context, t *testing.T, conn *net.UDPConn, sourceID uint32, flows func(now time.Time) []flowgen.Flow) {
	nf := flowgen.NetFlowV9{SourceID: sourceID}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-tick.C:
		}
		if i%10 == 0 {
			if _, err := conn.Write(nf.AppendTemplates(nil, now)); err != nil {
				t.Errorf("send: %v", err)
				return
			}
		}
		fl := flows(now)
		for len(fl) > 0 {
			k := min(len(fl), 20)
			b, err := nf.AppendData(nil, now, fl[:k])
			if err != nil {
				t.Errorf("encode: %v", err)
				return
			}
			if _, err := conn.Write(b); err != nil {
				t.Errorf("send: %v", err)
				return
			}
			fl = fl[k:]
		}
	}
}

// ntpFlows is an NTP reflection of 100 kpps (5x the limit) to victim.
func ntpFlows(victim netip.Addr) func(time.Time) []flowgen.Flow {
	return func(now time.Time) []flowgen.Flow {
		var out []flowgen.Flow
		for s := range 20 {
			out = append(out, flowgen.Flow{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + s)}), Dst: victim, Proto: 17,
				SrcPort: 123, DstPort: uint16(30000 + s), Packets: 500, Bytes: 500 * 468,
				Start: now.Add(-100 * time.Millisecond), End: now})
		}
		return out
	}
}

// carpetFlows is a UDP flood of 150 kpps (3x the group limit) spread over
// the 50 first hosts of 198.51.100.0/24, 3 kpps each (under the host
// limit).
func carpetFlows(now time.Time) []flowgen.Flow {
	var out []flowgen.Flow
	for h := range 50 {
		out = append(out, flowgen.Flow{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + h%50)}),
			Dst: netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + h)}), Proto: 17, SrcPort: uint16(40000 + h), DstPort: 53,
			Packets: 300, Bytes: 300 * 512, Start: now.Add(-100 * time.Millisecond), End: now})
	}
	return out
}

// TestCluster runs Floodgate as a cluster of separate processes on a
// Kafka (a kfake process) in the lab: two collectors (one a NetFlow v9
// listener, one reading the topic that goflow2 writes from the NetFlow it
// receives), three detectors and two speakers, each speaker peering with
// FRR and gobgpd. An NTP reflection and a carpet bombing are mitigated at
// both routers; the detector that owns the reflection is killed (SIGKILL)
// mid-attack and the rule never leaves the routers, is extended by the
// detector that adopts it and withdrawn once the attack is over; a
// speaker is killed and the routers keep the carpet's rule; a manual ban
// on a collector reaches both routers; kcat reads both topics and writes
// a ban of its own that the cluster announces and withdraws at its time.
func TestCluster(t *testing.T) {
	lab.RequireRoot(t, "ip", "gobgpd", "vtysh", "kcat", "go")
	bin := lab.BuildFloodgate(t)
	kfakeBin := lab.BuildKfake(t)
	goflow2Bin := lab.BuildGoFlow2(t)
	l := lab.Up(t, clusterTopology())
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	kafkaAddr, _ := l.Addr("ctl", "ctl2")
	brokers := netip.AddrPortFrom(kafkaAddr, clusterKafkaPort).String()
	kf := l.StartProc(t, "kfake", "ctl", kfakeBin, "-listen", brokers, "-min-session-timeout", "1s", "-topic", clusterGoFlow2+":4")
	c, cancelWait := context.WithTimeout(ctx, 20*time.Second)
	if err := kf.WaitLog(c, "kfake listening"); err != nil {
		t.Fatal(err)
	}
	cancelWait()
	l.StartProc(t, "goflow2", "ctl", goflow2Bin, "-listen", "netflow://127.0.0.1:2056", "-transport", "kafka",
		"-transport.kafka.brokers", brokers, "-transport.kafka.topic", clusterGoFlow2, "-transport.kafka.flushfreq", "50ms",
		"-format", "bin")

	start := func(name, ctl, sources string, roles ...string) *clusterNode {
		n := &clusterNode{name: name, ctl: ctl, dir: t.TempDir()}
		n.cfg = clusterConfig(l, n.dir, ctl, name, brokers, sources, roles...)
		n.fg = lab.StartFloodgateIn(t, bin, l.Netns(ctl), n.cfg)
		n.api = controller.NewClient(filepath.Join(n.dir, "api.sock"), "")
		return n
	}
	s1 := start("s1", "ctl", "", "speaker")
	s2 := start("s2", "ctl2", "", "speaker")
	var ds []*clusterNode
	for _, name := range []string{"d1", "d2", "d3"} {
		ds = append(ds, start(name, "ctl", "", "detector"))
	}
	c1 := start("c1", "ctl", `sources {
  netflow "lab" { listen = "127.0.0.1:2055" }
}`, "collector")
	c2 := start("c2", "ctl", `sources {
  kafka "goflow2" { topic = "`+clusterGoFlow2+`" }
}`, "collector")
	if _, err := l.WaitSessions(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		c, cancel := context.WithTimeout(ctx, 60*time.Second)
		if err := d.fg.WaitLog(c, "flow partitions assigned"); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	time.Sleep(clusterSession) // the group settles on three members
	nf := udpIn(t, l.Netns("ctl"), netip.MustParseAddrPort("127.0.0.1:2055"))
	gf := udpIn(t, l.Netns("ctl"), netip.MustParseAddrPort("127.0.0.1:2056"))

	var killed *clusterNode // the detector the first subtest kills
	t.Run("ntp reflection, its detector killed", func(t *testing.T) {
		victim := netip.MustParseAddr("203.0.113.10")
		actx, stopAttack := context.WithCancel(ctx)
		defer stopAttack()
		sent := make(chan struct{})
		go func() { defer close(sent); flood(actx, t, nf, 7, ntpFlows(victim)) }()
		began := time.Now()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		waitVictim(c, t, l, lab.FamilyIPv4FlowSpec, victim, true)
		t.Logf("attack to rule at both routers: %s", time.Since(began).Round(time.Millisecond))
		var owner *clusterNode
		for _, d := range ds {
			a, err := d.api.Attacks(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range a.Active {
				if x.Signature.Victim.Contains(victim) {
					owner = d
				}
			}
		}
		if owner == nil {
			t.Fatal("no detector reports the attack")
		}
		w := watchVictim(t, l, lab.FamilyIPv4FlowSpec, victim)
		if err := owner.fg.Kill(); err != nil {
			t.Fatal(err)
		}
		killed = owner
		t.Logf("killed %s (SIGKILL), the reflection's detector", owner.name)
		// The group notices after the session timeout, another detector
		// adopts the rule; the attack goes on past the rule's first
		// expiry (4 s).
		time.Sleep(clusterSession + 10*time.Second)
		stopAttack()
		<-sent
		ended := time.Now()
		w.done(t, "reflection through the detector's death")
		c2, cancel2 := context.WithTimeout(ctx, 40*time.Second)
		defer cancel2()
		waitVictim(c2, t, l, lab.FamilyIPv4FlowSpec, victim, false)
		t.Logf("attack end to withdrawal at both routers: %s", time.Since(ended).Round(time.Millisecond))
		adopted := false
		for _, d := range ds {
			if d != owner && strings.Contains(d.fg.Log(), "mitigations adopted with their flow partitions") {
				adopted = true
			}
		}
		if !adopted {
			t.Error("no detector logged the adoption")
		}
	})

	t.Run("carpet through goflow2, a speaker killed", func(t *testing.T) {
		victim := netip.MustParseAddr("198.51.100.20")
		actx, stopAttack := context.WithCancel(ctx)
		defer stopAttack()
		sent := make(chan struct{})
		go func() { defer close(sent); flood(actx, t, gf, 9, carpetFlows) }()
		began := time.Now()
		c, cancel := context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
		waitVictim(c, t, l, lab.FamilyIPv4FlowSpec, victim, true)
		t.Logf("carpet to rule at both routers: %s", time.Since(began).Round(time.Millisecond))
		w := watchVictim(t, l, lab.FamilyIPv4FlowSpec, victim)
		if err := s1.fg.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		s1.fg = lab.StartFloodgateIn(t, bin, l.Netns("ctl"), s1.cfg)
		if _, err := l.WaitSessions(c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		stopAttack()
		<-sent
		w.done(t, "carpet through a speaker's death and restart")
		c2, cancel2 := context.WithTimeout(ctx, 40*time.Second)
		defer cancel2()
		waitVictim(c2, t, l, lab.FamilyIPv4FlowSpec, victim, false)
	})

	t.Run("manual ban on a collector", func(t *testing.T) {
		victim := netip.MustParseAddr("203.0.113.77")
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if _, err := c1.api.Ban(c, controller.BanRequest{Kind: "rtbh", Prefix: victim.String(), Duration: "10m", Reason: "lab"}); err != nil {
			t.Fatal(err)
		}
		waitVictim(c, t, l, lab.FamilyIPv4Unicast, victim, true)
		for _, d := range ds {
			if d == killed {
				continue
			}
			ms, err := d.api.Mitigations(c)
			if err != nil || len(ms.Mitigations) == 0 {
				t.Errorf("%s's view of the cluster's mitigations: %+v, %v", d.name, ms, err)
			}
		}
		if _, err := s2.api.Unban(c, "", victim.String()+"/32"); err != nil {
			t.Fatal(err)
		}
		waitVictim(c, t, l, lab.FamilyIPv4Unicast, victim, false)
	})

	t.Run("kcat", func(t *testing.T) {
		c, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		out, err := l.Exec("ctl", "kcat", "-b", brokers, "-C", "-t", clusterFlowTopic, "-o", "beginning", "-e", "-q",
			"-c", "10", "-f", "%k\n").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "h:203.0.113.10") {
			t.Errorf("kcat on the flow topic: %v\n%s", err, out)
		}
		out, err = l.Exec("ctl", "kcat", "-b", brokers, "-C", "-t", clusterMitigations, "-o", "beginning", "-e", "-q",
			"-f", "%k %h\n").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "flowspec:dst 203.0.113.10/32") || !strings.Contains(string(out), "floodgate-origin=") {
			t.Errorf("kcat on the mitigation topic: %v\n%s", err, out)
		}
		// A ban written by kcat: a mitigation message of 15 s.
		victim := netip.MustParseAddr("203.0.113.78")
		pol, err := policies.Parse([]string{"c1.hcl"}, map[string][]byte{"c1.hcl": []byte(c1.cfg)})
		if err != nil {
			t.Fatal(err)
		}
		a, d, err := controller.ParseBan(controller.BanRequest{Kind: "rtbh", Prefix: victim.String(), Duration: "15s"}, pol.BGP)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		m := topics.Mitigation{Key: a.Key(), Announcement: a, Hostgroup: "customers", Response: "manual", Victim: a.Destination(),
			Reason: "kcat", Started: now, Expires: now.Add(d), Duration: d, AttackEnded: now, Manual: true, Origin: "kcat"}
		msg, err := topics.AppendMitigation(nil, &m)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "ban")
		if err := os.WriteFile(file, msg, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := l.Exec("ctl", "kcat", "-b", brokers, "-P", "-t", clusterMitigations, "-k", m.Key,
			"-H", "floodgate-origin=kcat", file).CombinedOutput(); err != nil {
			t.Fatalf("kcat -P: %v\n%s", err, out)
		}
		waitVictim(c, t, l, lab.FamilyIPv4Unicast, victim, true)
		waitVictim(c, t, l, lab.FamilyIPv4Unicast, victim, false)
		if late := time.Since(now.Add(d)); late > 10*time.Second {
			t.Errorf("kcat's ban withdrawn %s after its expiry", late.Round(time.Millisecond))
		} else {
			t.Logf("kcat's ban withdrawn %s after its expiry", late.Round(time.Millisecond))
		}
	})
	if st, err := c2.api.Status(ctx); err != nil || len(st.Components) == 0 {
		t.Errorf("the goflow2 collector's status: %+v, %v", st, err)
	}
}
