package gen

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Addresses of the test scenarios (documentation space, which random
// sources never use).
var (
	victim4 = netip.MustParseAddr("203.0.113.10")
	victim6 = netip.MustParseAddr("2001:db8:1::10")
	hosts4  = netip.MustParsePrefix("198.51.100.0/24")
	hosts6  = netip.MustParsePrefix("2001:db8:2::/64")
)

// testScenario returns a scenario of attack on the victim of the family:
// pps from start, 2,000 pps of background over 200 hosts, for duration.
func testScenario(a Attack, v6 bool, pps uint64, start, duration time.Duration) Scenario {
	s := Scenario{
		Victim: victim4, Attack: a, AttackPPS: pps, Start: start, Duration: duration,
		BackgroundHosts: hosts4, BackgroundCount: 200, BackgroundPPS: 2000, Seed: 42,
	}
	if v6 {
		s.Victim, s.BackgroundHosts = victim6, hosts6
	}
	return s
}

// families names the address families of table tests.
var families = []struct {
	name string
	v6   bool
}{{"v4", false}, {"v6", true}}

// fillAll returns the flows of every interval of m.
func fillAll(m *Model) []Flow {
	var all []Flow
	var iv Interval
	for k := range m.Intervals() {
		m.Fill(k, &iv)
		all = append(all, iv.Flows...)
	}
	return all
}

// flowShape is what tests check of a flow: everything but addresses,
// random ports and counts.
type flowShape struct {
	Proto, TCPFlags  uint8
	SrcPort, DstPort uint16 // 0xffff: random (not checked)
	Fragment, First  bool
	Size             uint16
}

const anyPort = 0xffff

// shapeOf returns the shape of f, random ports masked as expected by want.
func shapeOf(f *Flow, want []flowShape) flowShape {
	s := flowShape{Proto: f.Proto, TCPFlags: f.TCPFlags, SrcPort: f.SrcPort, DstPort: f.DstPort,
		Fragment: f.Fragment(), First: f.Fragment() && f.FragOffset == 0, Size: f.Size}
	for _, w := range want {
		if w.Size != s.Size || w.Fragment != s.Fragment || w.First != s.First {
			continue
		}
		if w.SrcPort == anyPort && s.SrcPort != 0 {
			s.SrcPort = anyPort
		}
		if w.DstPort == anyPort && s.DstPort != 0 {
			s.DstPort = anyPort
		}
	}
	return s
}

// attackShapes returns the shapes of the flows of each attack, per family.
func attackShapes(a Attack, v6 bool) []flowShape {
	p := func(v4, v6val uint16) uint16 { return pick(v6, v4, v6val) }
	switch a {
	case AttackNTP, AttackCarpet:
		return []flowShape{{Proto: 17, SrcPort: 123, DstPort: anyPort, Size: 468}}
	case AttackDNS:
		return []flowShape{
			{Proto: 17, SrcPort: 53, DstPort: anyPort, Fragment: true, First: true, Size: p(1500, 1280)},
			{Proto: 17, Fragment: true, Size: p(1500, 1280)},
			{Proto: 17, Fragment: true, Size: p(260, 784)},
		}
	case AttackMemcached:
		return []flowShape{{Proto: 17, SrcPort: 11211, DstPort: anyPort, Size: 1400}}
	case AttackSSDP:
		return []flowShape{{Proto: 17, SrcPort: 1900, DstPort: anyPort, Size: 300}}
	case AttackCLDAP:
		return []flowShape{{Proto: 17, SrcPort: 389, DstPort: anyPort, Size: 1400}}
	case AttackSYN:
		return []flowShape{
			{Proto: 6, TCPFlags: tcpSYN, SrcPort: anyPort, DstPort: 80, Size: p(60, 80)},
			{Proto: 6, TCPFlags: tcpSYN, SrcPort: anyPort, DstPort: 443, Size: p(60, 80)},
		}
	case AttackACK:
		return []flowShape{
			{Proto: 6, TCPFlags: tcpACK, SrcPort: anyPort, DstPort: 80, Size: p(40, 60)},
			{Proto: 6, TCPFlags: tcpACK, SrcPort: anyPort, DstPort: 443, Size: p(40, 60)},
		}
	case AttackUDPRandom:
		return []flowShape{{Proto: 17, SrcPort: anyPort, DstPort: anyPort, Size: p(540, 560)}}
	case AttackICMP:
		if v6 {
			return []flowShape{{Proto: 58, DstPort: 128 << 8, Size: 104}}
		}
		return []flowShape{{Proto: 1, DstPort: 8 << 8, Size: 84}}
	case AttackFragment:
		return []flowShape{{Proto: 17, Fragment: true, Size: 1480}}
	}
	return nil
}

// backgroundShapes are the shapes of background flows.
func backgroundShapes() []flowShape {
	return []flowShape{
		{Proto: 6, TCPFlags: tcpACK | tcpPSH, SrcPort: 443, DstPort: anyPort, Size: 1500},
		{Proto: 17, SrcPort: 53, DstPort: anyPort, Size: 140},
	}
}

// TestModelAttacks checks, for every attack and family, the shapes of the
// attack's flows, that the victim gets exactly AttackPPS from Start, that
// the background gets exactly BackgroundPPS, and the spread of sources.
func TestModelAttacks(t *testing.T) {
	for _, a := range Attacks() {
		for _, fam := range families {
			t.Run(string(a)+"/"+fam.name, func(t *testing.T) {
				s := testScenario(a, fam.v6, 30_000, 550*time.Millisecond, 2*time.Second)
				m, err := NewModel(s)
				if err != nil {
					t.Fatal(err)
				}
				targets := map[netip.Addr]uint64{}
				for _, d := range m.Targets() {
					targets[d] = 0
				}
				want := attackShapes(a, fam.v6)
				shapes := map[flowShape]uint64{}
				bgSet := map[flowShape]bool{}
				for _, w := range backgroundShapes() {
					bgSet[w] = true
				}
				var attack, background uint64
				sources := map[netip.Addr]bool{}
				for _, f := range fillAll(m) {
					if f.Src.Is6() != fam.v6 || f.Dst.Is6() != fam.v6 {
						t.Fatalf("flow %+v: wrong family", f)
					}
					if f.Packets == 0 {
						t.Fatalf("flow %+v without packets", f)
					}
					if !f.Attack {
						background += f.Packets
						if sh := shapeOf(&f, backgroundShapes()); !bgSet[sh] {
							t.Errorf("background flow shape %+v not in %+v", sh, backgroundShapes())
						}
						continue
					}
					if _, ok := targets[f.Dst]; !ok {
						t.Fatalf("attack flow to %v, not a target", f.Dst)
					}
					targets[f.Dst] += f.Packets
					attack += f.Packets
					sources[f.Src] = true
					shapes[shapeOf(&f, want)] += f.Packets
				}
				checkShapes(t, shapes, want)
				if want := uint64(30_000 * 1.4); attack != want { // from 600 ms
					t.Errorf("attack packets = %d, want %d", attack, want)
				}
				if background != 2000*2 {
					t.Errorf("background packets = %d, want %d", background, 2000*2)
				}
				if a == AttackCarpet {
					n := uint64(len(targets))
					if (fam.v6 && n != DefaultCarpetHosts) || (!fam.v6 && n != 256) {
						t.Errorf("carpet over %d hosts", n)
					}
					for d, p := range targets {
						if lo, hi := attack/n, attack/n+1; p < lo || p > hi {
							t.Errorf("carpet host %v got %d packets, want %d to %d", d, p, lo, hi)
						}
					}
				}
				if len(sources) < 1000 {
					t.Errorf("%d distinct attack sources, want at least 1000", len(sources))
				}
			})
		}
	}
}

// TestModelBackgroundSpread checks that every background host gets its
// equal share, to a packet, and only background hosts get background.
func TestModelBackgroundSpread(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			s := testScenario(AttackNone, fam.v6, 0, 0, 3*time.Second)
			s.BackgroundCount, s.BackgroundPPS = 1000, 17_000
			if !fam.v6 {
				s.BackgroundHosts = netip.MustParsePrefix("198.18.0.0/16")
			}
			m, err := NewModel(s)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(m.BackgroundAddrs()); got != 1000 {
				t.Fatalf("%d background hosts, want 1000", got)
			}
			per := map[netip.Addr]uint64{}
			for _, h := range m.BackgroundAddrs() {
				if !s.BackgroundHosts.Contains(h) {
					t.Fatalf("host %v outside %v", h, s.BackgroundHosts)
				}
				per[h] = 0
			}
			var dns uint64
			for _, f := range fillAll(m) {
				if _, ok := per[f.Dst]; !ok || f.Attack {
					t.Fatalf("flow %+v to a host not in the background", f)
				}
				per[f.Dst] += f.Packets
				if f.SrcPort == 53 {
					dns += f.Packets
				}
			}
			for h, p := range per {
				if p < 50 || p > 52 { // 17,000 × 3 / 1000 = 51
					t.Errorf("host %v got %d packets, want 51 ± 1", h, p)
				}
			}
			if total := uint64(17_000 * 3); dns < total/8-1000 || dns > total/8+1000 {
				t.Errorf("%d DNS answers of %d packets, want about an eighth", dns, total)
			}
		})
	}
}

// TestModelSmallPrefix checks that a prefix smaller than the host count
// gives all its addresses.
func TestModelSmallPrefix(t *testing.T) {
	s := testScenario(AttackNone, false, 0, 0, time.Second)
	s.BackgroundHosts, s.BackgroundCount = netip.MustParsePrefix("198.51.100.0/29"), 100
	m, err := NewModel(s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range m.BackgroundAddrs() {
		got = append(got, a.String())
	}
	want := []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4",
		"198.51.100.5", "198.51.100.6", "198.51.100.7", "198.51.100.0"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("hosts (-got +want):\n%s", diff)
	}
}

// TestModelDeterministic checks that an interval depends on the seed and
// its index only.
func TestModelDeterministic(t *testing.T) {
	s := testScenario(AttackSYN, false, 50_000, 0, time.Second)
	m1, _ := NewModel(s)
	m2, _ := NewModel(s)
	var a, b Interval
	m1.Fill(3, &a)
	first := append([]Flow(nil), a.Flows...)
	m1.Fill(7, &a)
	m1.Fill(3, &a)
	m2.Fill(3, &b)
	if diff := cmp.Diff(a.Flows, first, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("refill differs (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(b.Flows, first, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("other model differs (-got +want):\n%s", diff)
	}
	s.Seed++
	m3, _ := NewModel(s)
	m3.Fill(3, &b)
	if b.Flows[0].Src == first[0].Src {
		t.Errorf("another seed gave the same source %v", first[0].Src)
	}
}

// TestModelInterleaves checks that attack and background are mixed.
func TestModelInterleaves(t *testing.T) {
	m, _ := NewModel(testScenario(AttackNTP, false, 20_000, 0, time.Second))
	var iv Interval
	m.Fill(0, &iv)
	if !iv.Flows[0].Attack {
		t.Error("interval does not start with attack")
	}
	half := iv.Flows[:len(iv.Flows)/2]
	var bg int
	for _, f := range half {
		if !f.Attack {
			bg++
		}
	}
	if bg == 0 {
		t.Error("no background in the first half of the interval")
	}
}

// TestModelFillAllocs checks that Fill allocates nothing once warm.
func TestModelFillAllocs(t *testing.T) {
	for _, a := range []Attack{AttackNTP, AttackSYN, AttackDNS, AttackCarpet} {
		m, _ := NewModel(testScenario(a, false, 100_000, 0, time.Second))
		var iv Interval
		m.Fill(0, &iv)
		m.Fill(1, &iv)
		k := 0
		if n := testing.AllocsPerRun(20, func() { m.Fill(k%10, &iv); k++ }); n != 0 {
			t.Errorf("%s: Fill allocates %.1f times", a, n)
		}
	}
}

// TestScenarioInvalid checks that each out-of-range field is refused with
// an error naming it.
func TestScenarioInvalid(t *testing.T) {
	ok := testScenario(AttackNTP, false, 1000, 0, time.Second)
	if _, err := NewModel(ok); err != nil {
		t.Fatalf("valid scenario refused: %v", err)
	}
	if _, err := NewModel(Scenario{Duration: time.Second}); err != nil {
		t.Fatalf("empty scenario (nothing sent) refused: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*Scenario)
		field string
	}{
		{"zero duration", func(s *Scenario) { s.Duration = 0 }, "duration"},
		{"too long", func(s *Scenario) { s.Duration = 2 * time.Hour }, "duration"},
		{"small interval", func(s *Scenario) { s.Interval = time.Millisecond }, "interval"},
		{"unknown attack", func(s *Scenario) { s.Attack = "smurf" }, "attack"},
		{"no victim", func(s *Scenario) { s.Victim = netip.Addr{} }, "victim"},
		{"mapped victim", func(s *Scenario) { s.Victim = netip.MustParseAddr("::ffff:203.0.113.1") }, "victim"},
		{"zero pps", func(s *Scenario) { s.AttackPPS = 0 }, "attack_pps"},
		{"huge pps", func(s *Scenario) { s.AttackPPS = MaxPPS + 1 }, "attack_pps"},
		{"late start", func(s *Scenario) { s.Start = s.Duration }, "start"},
		{"sources", func(s *Scenario) { s.Sources = MaxSources + 1 }, "sources"},
		{"carpet of syn", func(s *Scenario) { s.Carpet = AttackSYN }, "carpet"},
		{"carpet hosts", func(s *Scenario) { s.CarpetHosts = -1 }, "carpet_hosts"},
		{"host bits", func(s *Scenario) { s.BackgroundHosts = netip.MustParsePrefix("198.51.100.1/24") }, "background_hosts"},
		{"no hosts", func(s *Scenario) { s.BackgroundCount = 0 }, "background_count"},
		{"huge background", func(s *Scenario) { s.BackgroundPPS = MaxPPS + 1 }, "background_pps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.edit(&s)
			_, err := NewModel(s)
			if !errors.Is(err, ErrInvalidScenario) {
				t.Fatalf("error %v, want ErrInvalidScenario", err)
			}
			if want := "scenario " + tt.field + ":"; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
}

// TestParseAttack checks names round trip and unknown ones fail.
func TestParseAttack(t *testing.T) {
	for _, a := range Attacks() {
		if got, err := ParseAttack(string(a)); err != nil || got != a {
			t.Errorf("ParseAttack(%q) = %q, %v", a, got, err)
		}
	}
	if got, err := ParseAttack("none"); err != nil || got != AttackNone {
		t.Errorf("ParseAttack(none) = %q, %v", got, err)
	}
	if _, err := ParseAttack("NTP"); err == nil {
		t.Error("ParseAttack(NTP) accepted")
	}
}

// TestDueExact checks the splitting identity the model relies on.
func TestDueExact(t *testing.T) {
	for _, rate := range []uint64{1, 7, 999, 30_000, MaxPPS} {
		for _, div := range []uint64{1, 3, 256, 1000} {
			for _, d := range []time.Duration{time.Millisecond, 333 * time.Millisecond, time.Hour} {
				var sum uint64
				for h := range div {
					sum += due(rate, d, h*1e9, div)
				}
				if want := due(rate, d, 0, 1); sum != want {
					t.Errorf("rate %d div %d t %v: sum %d, want %d", rate, div, d, sum, want)
				}
			}
		}
	}
}
