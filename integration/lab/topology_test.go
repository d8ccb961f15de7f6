package lab

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestTopologyValidate(t *testing.T) {
	ctl := Node{Name: "ctl", Kind: KindCtl, ASN: 65000}
	frr := Node{Name: "frr", Kind: KindFRR, ASN: 65001}
	bad := []struct {
		name string
		topo Topology
	}{
		{"bad name", Topology{Nodes: []Node{{Name: "Edge-1", Kind: KindHost}}}},
		{"long name", Topology{Nodes: []Node{{Name: "abcdefghijk", Kind: KindHost}}}},
		{"duplicate name", Topology{Nodes: []Node{{Name: "a", Kind: KindHost}, {Name: "a", Kind: KindHost}}}},
		{"unknown kind", Topology{Nodes: []Node{{Name: "a", Kind: "junos"}}}},
		{"router without asn", Topology{Nodes: []Node{ctl, {Name: "frr", Kind: KindFRR}}, Links: []Link{{A: "ctl", B: "frr"}}}},
		{"router without link", Topology{Nodes: []Node{ctl, frr}}},
		{"link to nowhere", Topology{Nodes: []Node{ctl, frr}, Links: []Link{{A: "ctl", B: "frr"}, {A: "ctl", B: "bird"}}}},
		{"routers linked", Topology{Nodes: []Node{frr, {Name: "bird", Kind: KindBIRD, ASN: 65002}}, Links: []Link{{A: "frr", B: "bird"}}}},
		{"two links", Topology{Nodes: []Node{ctl, frr}, Links: []Link{{A: "ctl", B: "frr"}, {A: "frr", B: "ctl"}}}},
		{"not a /30", Topology{Nodes: []Node{ctl, frr}, Links: []Link{{A: "ctl", B: "frr", IPv4: netip.MustParsePrefix("10.9.0.0/29")}}}},
		{"not a /64", Topology{Nodes: []Node{ctl, frr}, Links: []Link{{A: "ctl", B: "frr", IPv6: netip.MustParsePrefix("2001:db8::/48")}}}},
		{"prefix reused", Topology{
			Nodes: []Node{ctl, frr, {Name: "vic", Kind: KindHost}},
			Links: []Link{{A: "ctl", B: "frr"}, {A: "frr", B: "vic", IPv4: netip.MustParsePrefix("10.0.1.0/30")}},
		}},
		{"ipv6 router id", Topology{Nodes: []Node{{Name: "a", Kind: KindHost, RouterID: netip.MustParseAddr("2001:db8::1")}}}},
		{"static route families", Topology{Nodes: []Node{{Name: "a", Kind: KindHost, Routes: []StaticRoute{
			{Prefix: netip.MustParsePrefix("2001:db8::/32"), Via: netip.MustParseAddr("10.0.0.1")},
		}}}}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.topo.Validate(); err == nil {
				t.Errorf("Validate accepted %+v", tt.topo)
			}
		})
	}
	if err := testTopology().Validate(); err != nil {
		t.Errorf("test topology: %v", err)
	}
}

func TestTopologySessions(t *testing.T) {
	topo := testTopology()
	links, err := topo.resolve()
	if err != nil {
		t.Fatal(err)
	}
	last := links[len(links)-1]
	if last.AIf != "eth2" || last.BIf != "eth1" || last.A4.String() != "10.0.5.1/30" || last.B6.String() != "2001:db8:5::2/64" {
		t.Errorf("frr-vic link: %+v", last)
	}
	sessions, err := topo.Sessions()
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 8 {
		t.Fatalf("%d sessions, want 8 (v4 and v6 for each of 4 routers): %+v", len(sessions), sessions)
	}
	want := []Session{
		{Ctl: "ctl", Router: "bird", CtlAddr: netip.MustParseAddr("10.0.2.1"), RouterAddr: netip.MustParseAddr("10.0.2.2"),
			CtlASN: 65000, RouterASN: 65002, Families: []Family{FamilyIPv4Unicast, FamilyIPv4FlowSpec, FamilyIPv6FlowSpec}},
		{Ctl: "ctl", Router: "bird", CtlAddr: netip.MustParseAddr("2001:db8:2::1"), RouterAddr: netip.MustParseAddr("2001:db8:2::2"),
			CtlASN: 65000, RouterASN: 65002, Families: []Family{FamilyIPv6Unicast}},
	}
	if diff := cmp.Diff(nodeSessions(sessions, "bird"), want, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("bird sessions (-got +want):\n%s", diff)
	}
	if got := topo.routerID(topo.Nodes[1], links); got != netip.MustParseAddr("10.0.1.2") {
		t.Errorf("frr router id %s", got)
	}
	// Reversed link ends give the same sessions.
	rev := testTopology()
	rev.Links[1] = Link{A: "bird", B: "ctl"}
	rs, err := rev.Sessions()
	if err != nil {
		t.Fatal(err)
	}
	if got := nodeSessions(rs, "bird"); got[0].CtlAddr != netip.MustParseAddr("10.0.2.2") || got[0].RouterAddr != netip.MustParseAddr("10.0.2.1") {
		t.Errorf("reversed link: %+v", got[0])
	}
}

// TestContainerlab generates the containerlab files of the test topology
// and has each daemon check its configuration.
func TestContainerlab(t *testing.T) {
	dir := t.TempDir()
	topo := testTopology()
	if err := topo.WriteContainerlab(dir, DefaultContainerlabImages()); err != nil {
		t.Fatal(err)
	}
	clab, err := os.ReadFile(filepath.Join(dir, "floodgate-lab.clab.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"name: floodgate-lab\n",
		`- endpoints: ["ctl:eth1", "frr:eth1"]`,
		`- endpoints: ["frr:eth2", "vic:eth1"]`,
		`- "ip addr add 10.0.5.1/30 dev eth2"`,
		`- "ip -4 route add blackhole 192.0.2.1/32"`,
		`- "ip addr add 203.0.113.10/32 dev lo"`,
		"- frr/frr.conf:/etc/frr/frr.conf",
		`cmd: "bird -f -c /etc/bird/bird.conf -s /run/bird.ctl"`,
	} {
		if !strings.Contains(string(clab), want) {
			t.Errorf("clab file lacks %q:\n%s", want, clab)
		}
	}

	Require(t, "bird", "gobgpd", "vtysh", "exabgp")
	checks := []struct {
		file string
		argv []string
	}{
		{"bird/bird.conf", []string{"bird", "-p", "-c"}},
		{"gobgp/gobgpd.toml", []string{"gobgpd", "-d", "-f"}},
		{"frr/frr.conf", []string{"vtysh", "--config_dir", dir, "-C", "-f"}},
		{"exa/exabgp.conf", []string{"env", "exabgp.daemon.user=root", "exabgp.api.cli=false", "exabgp", "--test"}},
	}
	for _, c := range checks {
		argv := append(c.argv, filepath.Join(dir, c.file))
		cmd := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			content, _ := os.ReadFile(filepath.Join(dir, c.file))
			t.Errorf("%s rejects %s: %v\n%s\n--- %s ---\n%s", argv[0], c.file, err, out, c.file, content)
		}
	}
}
