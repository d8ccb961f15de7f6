package lab

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/floodgate-ddos/floodgate/policies"
)

var updateContainerlab = flag.Bool("update-containerlab", false, "rewrite the generated files of examples/containerlab from exampleLabs")

// exampleDir holds the containerlab example: the files generated from
// exampleLabs, and the hand-written ones.
const exampleDir = "../../examples/containerlab"

// exampleHandWritten are the files of exampleDir that are not generated.
var exampleHandWritten = []string{"Dockerfile", "Dockerfile.dockerignore", "README.md"}

// exampleTopology is the description of examples/containerlab: Floodgate
// in ctl peering with FRR, Juniper cRPD and Arista cEOS, and a victim
// behind FRR. Addresses are given, and match those of the namespace lab
// (testTopology) for ctl, frr and vic, so that both read alike.
func exampleTopology() Topology {
	pfx := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	via := func(p, a string) StaticRoute {
		return StaticRoute{Prefix: netip.MustParsePrefix(p), Via: netip.MustParseAddr(a)}
	}
	return Topology{
		Name: "floodgate-vendors",
		Nodes: []Node{
			{Name: "ctl", Kind: KindCtl, ASN: ctlASN,
				Monitor: []netip.Prefix{victimNet, pfx("2001:db8:ffff::/48")},
				Routes:  []StaticRoute{via("203.0.113.0/24", "10.0.1.2"), via("2001:db8:ffff::/48", "2001:db8:1::2")},
			},
			{Name: "frr", Kind: KindFRR, ASN: 65001, Forwarding: true,
				Routes: []StaticRoute{via("203.0.113.0/24", "10.0.5.2"), via("2001:db8:ffff::/48", "2001:db8:5::2")},
			},
			{Name: "vic", Kind: KindHost,
				Loopback: []netip.Prefix{netip.PrefixFrom(victim4, 32), netip.PrefixFrom(victim6, 128)},
				// Not a default route: the container's goes to the
				// management network.
				Routes: []StaticRoute{via("10.0.0.0/16", "10.0.5.1"), via("2001:db8::/32", "2001:db8:5::1")},
			},
			{Name: "crpd", Kind: KindCRPD, ASN: 65005},
			{Name: "ceos", Kind: KindCEOS, ASN: 65006},
		},
		Links: []Link{
			{A: "ctl", B: "frr", IPv4: pfx("10.0.1.0/30"), IPv6: pfx("2001:db8:1::/64")},
			{A: "frr", B: "vic", IPv4: pfx("10.0.5.0/30"), IPv6: pfx("2001:db8:5::/64")},
			{A: "ctl", B: "crpd", IPv4: pfx("10.0.6.0/30"), IPv6: pfx("2001:db8:6::/64")},
			{A: "ctl", B: "ceos", IPv4: pfx("10.0.7.0/30"), IPv6: pfx("2001:db8:7::/64")},
		},
	}
}

// exampleLabs are the labs of examples/containerlab: "floodgate" with FRR
// only, which needs no vendor image, and "floodgate-vendors" with cRPD and
// cEOS as well.
func exampleLabs() []Topology {
	full := exampleTopology()
	frrOnly := full.Without(KindCRPD, KindCEOS)
	frrOnly.Name = "floodgate"
	return []Topology{frrOnly, full}
}

// exampleImages are the images of the example: the defaults, and the
// floodgate image for the victim too (it has iproute2 and ping), so that a
// user builds one image.
func exampleImages() ContainerlabImages {
	im := DefaultContainerlabImages()
	im.Host = im.Ctl
	return im
}

// exampleFiles renders every lab of the example into one set of files;
// a path two labs generate must have the same content in both.
func exampleFiles() (map[string][]byte, error) {
	all := make(map[string][]byte)
	for _, topo := range exampleLabs() {
		files, err := topo.Containerlab(exampleImages())
		if err != nil {
			return nil, fmt.Errorf("lab %s: %w", topo.Name, err)
		}
		for name, content := range files {
			if prev, ok := all[name]; ok && !bytes.Equal(prev, content) {
				return nil, fmt.Errorf("lab %s: %s differs from another lab's", topo.Name, name)
			}
			all[name] = content
		}
	}
	return all, nil
}

// exampleOnDisk reads the files of exampleDir, hand-written ones aside.
func exampleOnDisk() (map[string][]byte, error) {
	out := make(map[string][]byte)
	err := filepath.WalkDir(exampleDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(exampleDir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if slices.Contains(exampleHandWritten, rel) {
			return nil
		}
		b, err := os.ReadFile(path)
		out[rel] = b
		return err
	})
	return out, err
}

// writeExample replaces the generated files of exampleDir with files.
func writeExample(files map[string][]byte) error {
	old, err := exampleOnDisk()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for name := range old {
		if _, keep := files[name]; !keep {
			if err := os.Remove(filepath.Join(exampleDir, name)); err != nil {
				return err
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(exampleDir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// clabFile is what the generated .clab.yml files may hold; decoding
// refuses any other key.
type clabFile struct {
	Name     string `yaml:"name"`
	Topology struct {
		Nodes map[string]struct {
			Kind          string            `yaml:"kind"`
			Image         string            `yaml:"image"`
			StartupConfig string            `yaml:"startup-config"`
			Binds         []string          `yaml:"binds"`
			Env           map[string]string `yaml:"env"`
			Cmd           string            `yaml:"cmd"`
			Exec          []string          `yaml:"exec"`
		} `yaml:"nodes"`
		Links []struct {
			Endpoints []string `yaml:"endpoints"`
		} `yaml:"links"`
	} `yaml:"topology"`
}

// clabImageRE is an image behind containerlab's expansion of an
// environment variable with a default.
var clabImageRE = regexp.MustCompile(`^\$\{[A-Z][A-Z0-9_]*:=[^${}\s]+\}$`)

// TestContainerlabExample checks examples/containerlab: its generated
// files are what exampleLabs generates now (run with -update-containerlab
// to rewrite them), the .clab.yml files are YAML with the expected nodes,
// kinds, images and links, every file they name exists, floodgate's
// configurations load and peer with every router, and FRR's passes vtysh.
// Containerlab itself and the vendor images are not here: the cRPD and
// cEOS configurations are only checked for their structure and the
// statements that make them accept RTBH and FlowSpec.
func TestContainerlabExample(t *testing.T) {
	files, err := exampleFiles()
	if err != nil {
		t.Fatal(err)
	}
	if *updateContainerlab {
		if err := writeExample(files); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("up to date", func(t *testing.T) {
		disk, err := exampleOnDisk()
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range slices.Sorted(maps.Keys(files)) {
			got, ok := disk[name]
			switch {
			case !ok:
				t.Errorf("%s/%s is missing; run go test ./integration/lab -run TestContainerlabExample -update-containerlab", exampleDir, name)
			case !bytes.Equal(got, files[name]):
				t.Errorf("%s/%s is not what the generator writes now (-committed +generated):\n%s\nrun go test ./integration/lab -run TestContainerlabExample -update-containerlab",
					exampleDir, name, cmp.Diff(string(got), string(files[name])))
			}
		}
		for name := range disk {
			if _, ok := files[name]; !ok {
				t.Errorf("%s/%s is neither generated nor hand-written (%v)", exampleDir, name, exampleHandWritten)
			}
		}
		for _, name := range exampleHandWritten {
			if _, err := os.Stat(filepath.Join(exampleDir, name)); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("clab files", func(t *testing.T) {
		type node struct{ kind, image string }
		fg := "${FLOODGATE_IMAGE:=floodgate:dev}"
		base := map[string]node{
			"ctl": {"linux", fg},
			"frr": {"linux", "${FRR_IMAGE:=quay.io/frrouting/frr:8.4.4}"},
			"vic": {"linux", fg},
		}
		baseLinks := [][]string{{"ctl:eth1", "frr:eth1"}, {"frr:eth2", "vic:eth1"}}
		vendors := maps.Clone(base)
		vendors["crpd"] = node{"juniper_crpd", "${CRPD_IMAGE:=crpd:23.2R1.13}"}
		vendors["ceos"] = node{"arista_ceos", "${CEOS_IMAGE:=ceos:4.32.0F}"}
		want := map[string]struct {
			nodes map[string]node
			links [][]string
		}{
			"floodgate":         {base, baseLinks},
			"floodgate-vendors": {vendors, append(slices.Clone(baseLinks), []string{"ctl:eth2", "crpd:eth1"}, []string{"ctl:eth3", "ceos:eth1"})},
		}
		for lab, w := range want {
			name := lab + ".clab.yml"
			content, ok := files[name]
			if !ok {
				t.Errorf("no %s generated", name)
				continue
			}
			// Containerlab runs the file through text/template first.
			if bytes.Contains(content, []byte("{{")) {
				t.Errorf("%s holds a template action", name)
			}
			var f clabFile
			dec := yaml.NewDecoder(bytes.NewReader(content))
			dec.KnownFields(true)
			if err := dec.Decode(&f); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if f.Name != lab {
				t.Errorf("%s: name %q", name, f.Name)
			}
			got := make(map[string]node)
			for n, spec := range f.Topology.Nodes {
				got[n] = node{spec.Kind, spec.Image}
				if !clabImageRE.MatchString(spec.Image) {
					t.Errorf("%s: node %s image %q is not ${VARIABLE:=default}", name, n, spec.Image)
				}
				// Every file the node names is generated.
				var refs []string
				for _, b := range spec.Binds {
					src, dst, ok := strings.Cut(b, ":")
					if !ok || !strings.HasPrefix(dst, "/") {
						t.Errorf("%s: node %s: bind %q is not SOURCE:/PATH", name, n, b)
					}
					refs = append(refs, src)
				}
				if spec.StartupConfig != "" {
					refs = append(refs, spec.StartupConfig)
				}
				for _, r := range refs {
					if _, ok := files[r]; !ok || !strings.HasPrefix(r, n+"/") {
						t.Errorf("%s: node %s names %s, which is not one of its generated files", name, n, r)
					}
				}
				if spec.Kind == "linux" && spec.Cmd == "" && n != "frr" {
					t.Errorf("%s: linux node %s has no cmd", name, n)
				}
				if spec.Kind != "arista_ceos" && !slices.ContainsFunc(spec.Exec, func(e string) bool { return strings.HasPrefix(e, "ip addr add 10.0.") }) {
					t.Errorf("%s: node %s: no address in exec %q", name, n, spec.Exec)
				}
			}
			if diff := cmp.Diff(w.nodes, got, cmp.AllowUnexported(node{})); diff != "" {
				t.Errorf("%s nodes (-want +got):\n%s", name, diff)
			}
			var links [][]string
			for _, l := range f.Topology.Links {
				links = append(links, l.Endpoints)
			}
			if diff := cmp.Diff(w.links, links); diff != "" {
				t.Errorf("%s links (-want +got):\n%s", name, diff)
			}
			ctl := f.Topology.Nodes["ctl"]
			if ctl.Cmd != "floodgate run --config /etc/floodgate/floodgate.hcl" || !slices.Contains(ctl.Binds, "ctl/"+lab+".hcl:/etc/floodgate/floodgate.hcl") {
				t.Errorf("%s: ctl cmd %q binds %q", name, ctl.Cmd, ctl.Binds)
			}
		}
	})

	t.Run("floodgate config", func(t *testing.T) {
		dir := t.TempDir()
		for _, topo := range exampleLabs() {
			sessions, err := topo.Sessions()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, topo.Name+".hcl")
			if err := os.WriteFile(path, files["ctl/"+topo.Name+".hcl"], 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := policies.Load(path)
			if err != nil {
				t.Errorf("lab %s: %v", topo.Name, err)
				continue
			}
			type peer struct {
				Addr, Local netip.Addr
				ASN         uint32
				Families    []string
			}
			var want, got []peer
			for _, s := range sessions {
				var fams []string
				for _, f := range s.Families {
					fams = append(fams, string(f))
				}
				want = append(want, peer{s.RouterAddr, s.CtlAddr, s.RouterASN, fams})
			}
			for _, n := range p.BGP.Neighbors {
				got = append(got, peer{n.Address, n.LocalAddress, n.ASN, n.Families})
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("lab %s neighbours (-sessions +config):\n%s", topo.Name, diff)
			}
			if p.BGP.ASN != ctlASN || p.API.Socket != clabFloodgateSocket || p.Mitigation.StateFile != clabFloodgateState {
				t.Errorf("lab %s: asn %d, socket %q, state file %q", topo.Name, p.BGP.ASN, p.API.Socket, p.Mitigation.StateFile)
			}
			if len(p.Hostgroups) != 1 {
				t.Fatalf("lab %s: %d hostgroups, want 1", topo.Name, len(p.Hostgroups))
			}
			h := p.Hostgroups[0]
			if !slices.Contains(h.Prefixes, victimNet) || len(h.Responses) != 2 || h.Responses[0].FlowSpec == nil || h.Responses[1].RTBH == nil {
				t.Errorf("lab %s: hostgroup %+v, want %s monitored, a FlowSpec response then an RTBH one", topo.Name, h, victimNet)
			}
		}
	})

	t.Run("frr config", func(t *testing.T) {
		Require(t, "vtysh")
		dir := t.TempDir()
		path := filepath.Join(dir, "frr.conf")
		if err := os.WriteFile(path, files["frr/frr.conf"], 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), "vtysh", "--config_dir", dir, "-C", "-f", path)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("vtysh rejects frr/frr.conf: %v\n%s\n%s", err, out, files["frr/frr.conf"])
		}
	})

	t.Run("crpd config", func(t *testing.T) {
		conf := string(files["crpd/juniper.conf"])
		if err := checkJunosSyntax(conf); err != nil {
			t.Errorf("crpd/juniper.conf: %v\n%s", err, conf)
		}
		for _, want := range []string{
			"autonomous-system 65005;",
			"term-order standard;",
			"community BLACKHOLE members 65535:666;",
			"from community BLACKHOLE;",
			"next-hop discard;",
			"import FLOODGATE-IN;",
			"neighbor 10.0.6.1 {\n                peer-as 65000;\n                family inet {\n                    unicast;\n                    flow {\n                        no-validate FLOWSPEC-NO-VALIDATE;",
			"family inet6 {\n                    flow {\n                        no-validate FLOWSPEC-NO-VALIDATE;",
			"neighbor 2001:db8:6::1 {\n                peer-as 65000;\n                family inet6 {\n                    unicast;\n                }",
		} {
			if !strings.Contains(conf, want) {
				t.Errorf("crpd/juniper.conf lacks %q:\n%s", want, conf)
			}
		}
		// Containerlab renders startup configurations as Go templates.
		if strings.Contains(conf, "{{") {
			t.Error("crpd/juniper.conf holds a template action")
		}
	})

	t.Run("ceos config", func(t *testing.T) {
		conf := string(files["ceos/startup-config"])
		for _, want := range []string{
			"service routing protocols model multi-agent\n",
			"\nip routing\n",
			"\nipv6 unicast-routing\n",
			"interface Ethernet1\n   no switchport\n   ip address 10.0.7.2/30\n   ipv6 enable\n   ipv6 address 2001:db8:7::2/64\n",
			"   flow-spec ipv4 ipv6\n",
			"ip route 192.0.2.1/32 Null0\n",
			"ipv6 route 100::/64 Null0\n",
			"ip community-list BLACKHOLE permit 65535:666\n",
			"route-map RTBH-IN permit 10\n   match community BLACKHOLE\n   set ip next-hop 192.0.2.1\n",
			"route-map RTBH6-IN permit 10\n   match community BLACKHOLE\n   set ipv6 next-hop 100::1\n",
			"router bgp 65006\n   router-id 10.0.7.2\n   no bgp default ipv4-unicast\n   neighbor 10.0.7.1 remote-as 65000\n   neighbor 2001:db8:7::1 remote-as 65000\n",
			"   address-family ipv4\n      neighbor 10.0.7.1 activate\n      neighbor 10.0.7.1 route-map RTBH-IN in\n",
			"   address-family ipv6\n      neighbor 2001:db8:7::1 activate\n      neighbor 2001:db8:7::1 route-map RTBH6-IN in\n",
			"   address-family flow-spec ipv4\n",
			"   address-family flow-spec ipv6\n",
		} {
			if !strings.Contains(conf, want) {
				t.Errorf("ceos/startup-config lacks %q:\n%s", want, conf)
			}
		}
		for _, af := range []string{"ipv4", "ipv6"} {
			_, rest, _ := strings.Cut(conf, "address-family flow-spec "+af+"\n")
			block, _, _ := strings.Cut(rest, "   !\n")
			if !strings.Contains(block, "      neighbor 10.0.7.1 activate\n") || strings.Contains(block, "2001:db8:7::1") {
				t.Errorf("flow-spec %s activates %q", af, block)
			}
		}
		if strings.Contains(conf, "{{") {
			t.Error("ceos/startup-config holds a template action")
		}
	})
}

// checkJunosSyntax checks the shape of a curly-brace Junos configuration:
// braces balance, statements end with ";", and comments are closed.
func checkJunosSyntax(conf string) error {
	depth := 0
	inComment := false
	for i, line := range strings.Split(conf, "\n") {
		l := strings.TrimSpace(line)
		if inComment {
			if strings.Contains(l, "*/") {
				inComment = false
			}
			continue
		}
		if strings.HasPrefix(l, "/*") {
			inComment = !strings.Contains(l, "*/")
			continue
		}
		if before, _, ok := strings.Cut(l, "## "); ok {
			l = strings.TrimSpace(before)
		}
		switch {
		case l == "", strings.HasPrefix(l, "#"):
		case l == "}":
			depth--
			if depth < 0 {
				return fmt.Errorf("line %d: unbalanced }", i+1)
			}
		case strings.HasSuffix(l, " {"):
			depth++
		case strings.HasSuffix(l, ";"):
		default:
			return fmt.Errorf("line %d: %q is neither a statement nor a block", i+1, line)
		}
	}
	if inComment || depth != 0 {
		return fmt.Errorf("unclosed comment (%v) or %d unclosed blocks", inComment, depth)
	}
	return nil
}

// TestUpRefusesContainerOnly checks that Up fails, with a message saying
// why, on a topology holding a container-only node, and that Without
// drops them and keeps the other links' addresses.
func TestUpRefusesContainerOnly(t *testing.T) {
	topo := exampleTopology()
	if err := topo.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	_, err := topo.resolve()
	for _, want := range []string{`node "crpd" is of kind crpd`, `node "ceos" is of kind ceos`, "runs only under containerlab", "Topology.Without"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("resolve: %v, want an error containing %q", err, want)
		}
	}
	fatal := runCapturingFatal(t, func(tb testing.TB) { Up(tb, topo) })
	if fatal != "" && !strings.Contains(fatal, "runs only under containerlab") {
		t.Errorf("Up: %s", fatal)
	}

	base := exampleLabs()[0]
	if _, err := base.resolve(); err != nil {
		t.Fatalf("without vendors: %v", err)
	}
	if len(base.Nodes) != 3 || len(base.Links) != 2 {
		t.Errorf("without vendors: %+v", base)
	}
	// Links with default addresses keep them after Without.
	d := Topology{
		Nodes: []Node{{Name: "ctl", Kind: KindCtl, ASN: 1}, {Name: "crpd", Kind: KindCRPD, ASN: 2}, {Name: "frr", Kind: KindFRR, ASN: 3}},
		Links: []Link{{A: "ctl", B: "crpd"}, {A: "ctl", B: "frr"}},
	}
	w := d.Without(KindCRPD)
	if len(w.Links) != 1 || w.Links[0].IPv4 != netip.MustParsePrefix("10.0.2.0/30") || w.Links[0].IPv6 != netip.MustParsePrefix("2001:db8:2::/64") {
		t.Errorf("Without: links %+v, want ctl-frr on 10.0.2.0/30 and 2001:db8:2::/64", w.Links)
	}
}

// fatalTB is a testing.TB whose Fatal and Skip end the calling goroutine
// and record the message, for checking that a helper fails.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...); f.stop() }
func (f *fatalTB) Fatal(args ...any)                 { f.msg = fmt.Sprint(args...); f.stop() }
func (f *fatalTB) FailNow()                          { f.msg = "FailNow"; f.stop() }
func (f *fatalTB) Skipf(format string, args ...any) {
	f.msg = "skip: " + fmt.Sprintf(format, args...)
	f.stop()
}
func (f *fatalTB) Skip(args ...any) { f.msg = "skip: " + fmt.Sprint(args...); f.stop() }
func (f *fatalTB) SkipNow()         { f.msg = "skip"; f.stop() }
func (f *fatalTB) stop()            { runtime.Goexit() }

// runCapturingFatal runs fn with a fatalTB in a goroutine of its own and
// returns the message fn failed with ("" for a skip, since Up skips
// without root or ip before it looks at the topology). It fails t if fn
// returned without failing.
func runCapturingFatal(t *testing.T, fn func(testing.TB)) string {
	t.Helper()
	f := &fatalTB{TB: t}
	done := make(chan bool)
	go func() {
		returned := false
		defer func() { done <- returned }()
		fn(f)
		returned = true
	}()
	if <-done {
		t.Fatal("returned without failing")
	}
	if strings.HasPrefix(f.msg, "skip") {
		t.Logf("Up skipped before looking at the topology: %s", f.msg)
		return ""
	}
	return f.msg
}

// TestContainerlabExampleInNamespaces runs the FRR-only lab of the example
// in network namespaces (Up) with floodgate on its generated configuration
// (only the socket and state paths changed), and checks that the sessions
// come up and that a manual RTBH ban and a FlowSpec ban, made with the CLI
// as the README shows, reach FRR: what the containerlab file would do on a
// Docker host, less containerlab itself.
func TestContainerlabExampleInNamespaces(t *testing.T) {
	RequireRoot(t, "ip", "vtysh", "go")
	files, err := exampleFiles()
	if err != nil {
		t.Fatal(err)
	}
	topo := exampleLabs()[0]
	bin := BuildFloodgate(t)
	l := Up(t, topo)
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	cfg := string(files["ctl/"+topo.Name+".hcl"])
	for old, repl := range map[string]string{clabFloodgateSocket: sock, clabFloodgateState: filepath.Join(dir, "state.db")} {
		if !strings.Contains(cfg, strconv.Quote(old)) {
			t.Fatalf("generated configuration lacks %q:\n%s", old, cfg)
		}
		cfg = strings.ReplaceAll(cfg, strconv.Quote(old), strconv.Quote(repl))
	}
	StartFloodgateIn(t, bin, l.Netns("ctl"), cfg)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ups, err := l.WaitSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups {
		t.Logf("session with %s %s up after %s", u.Router, u.Peer, u.After.Round(time.Millisecond))
	}
	cli := func(args ...string) {
		t.Helper()
		out, err := exec.CommandContext(ctx, bin, append(args, "--socket", sock)...).CombinedOutput()
		if err != nil {
			t.Fatalf("floodgate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("floodgate %s: %s", strings.Join(args, " "), bytes.TrimSpace(out))
	}
	cli("ban", victim4.String(), "--duration", "1m", "--reason", "lab")
	cli("ban", "--flowspec", "dst 203.0.113.20/32 proto udp sport 123", "--duration", "1m")
	line, err := l.WaitKernelRoute(ctx, "frr", netip.PrefixFrom(victim4, 32), func(s string) bool { return strings.HasPrefix(s, "blackhole") })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("frr kernel: %s", line)
	r, err := WaitRoute(ctx, l.FRR(t, "frr"), FamilyIPv4FlowSpec, MatchPrefix("destination:203.0.113.20/32 protocol:==udp source-port:==123"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.HasExtCommunity("traffic-rate:0") {
		t.Errorf("frr flowspec route %v, want traffic-rate:0", r)
	}
}
