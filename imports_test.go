package floodgate_test

// The import direction of the daemon's packages. The data flows one way:
//
//	sources → detect → flowspec → topics → kafka → bgp → controller → cluster
//
// (topics holds the formats of a cluster's Kafka topics: the records
// from collectors to detectors, the decisions from detectors to speakers;
// kafka the client and the topics' management; cluster assembles the
// roles of a cluster node from the single node's parts) and so do the imports: a package may import only packages of its own
// stage or of an earlier one. Two packages stand beside the pipeline:
// policies (the configuration, which every stage may import, and which
// itself imports only sources/... and controller/hooks, whose Config types
// the policy compiles to) and controller/hooks (which any package may
// import and which imports no floodgate package). A package given no place
// here may import no floodgate package either: it is a leaf until it is
// given a stage in classify, so it can never carry an import the wrong
// way. The commands (cmd/...) and the test harness (integration/...) sit
// on top of everything; they are not checked, and no product package may
// import them.
//
// Only non-test files are checked, every one whatever its build
// constraints (capture_linux.go and capture_other.go alike): a test may
// import what it needs.

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// gobgpModule is the BGP library: only one package may speak BGP.
const gobgpModule = "github.com/osrg/gobgp/v3"

// kind is where a package stands relative to the pipeline.
type kind int

const (
	kindOther    kind = iota // given no place: a leaf
	kindPipeline             // sources, detect, flowspec, topics, kafka, bgp, controller, cluster
	kindPolicies             // the configuration
	kindHooks                // controller/hooks
	kindHarness              // cmd/..., integration/...: imported by no product package
)

// stageNames are the pipeline's stages, in order.
var stageNames = []string{"sources", "detect", "flowspec", "topics", "kafka", "bgp", "controller", "cluster"}

// place is a package's class: its kind and, in the pipeline, its stage.
type place struct {
	kind  kind
	stage int
}

func (p place) String() string {
	switch p.kind {
	case kindPipeline:
		return fmt.Sprintf("stage %d, %s", p.stage, stageNames[p.stage])
	case kindPolicies:
		return "policies"
	case kindHooks:
		return "controller/hooks"
	case kindHarness:
		return "commands and test harness"
	}
	return "outside the pipeline"
}

// under reports whether rel is dir or a package below it.
func under(rel, dir string) bool {
	return rel == dir || strings.HasPrefix(rel, dir+"/")
}

// classify places a package given by its path relative to the module root
// ("" for the root itself). A package below a stage's directory belongs to
// that stage (sources/flow is a source), except controller/hooks.
func classify(rel string) place {
	switch {
	case under(rel, "controller/hooks"):
		return place{kind: kindHooks}
	case under(rel, "policies"):
		return place{kind: kindPolicies}
	case under(rel, "cmd"), under(rel, "integration"):
		return place{kind: kindHarness}
	}
	for i, s := range stageNames {
		if under(rel, s) {
			return place{kind: kindPipeline, stage: i}
		}
	}
	return place{kind: kindOther}
}

// importRule returns nil when the package from (relative to the module
// root) may import the package to (also relative), and otherwise the rule
// that forbids it.
func importRule(from, to string) error {
	pf, pt := classify(from), classify(to)
	if pt.kind == kindHarness {
		return fmt.Errorf("no product package imports the commands or the test harness (cmd/..., integration/...)")
	}
	switch pf.kind {
	case kindHooks:
		return fmt.Errorf("controller/hooks imports no floodgate package")
	case kindOther:
		return fmt.Errorf("%q has no place in the pipeline, so it imports no floodgate package: give it a stage in classify (imports_test.go) first", from)
	case kindHarness:
		return nil // not checked
	case kindPolicies:
		switch {
		case pt.kind == kindPipeline && pt.stage == 0:
			return nil // sources/...: their Config types
		case pt.kind == kindPipeline:
			return fmt.Errorf("policies may import sources/... and controller/hooks, never %s (%s)", stageNames[pt.stage], pt)
		}
		return nil // controller/hooks, policies/..., a leaf
	case kindPipeline:
		if pt.kind == kindPipeline && pt.stage > pf.stage {
			return fmt.Errorf("the pipeline runs %s and a package imports only its own stage or an earlier one: %s (%s) must not import %s (%s)",
				strings.Join(stageNames, " → "), from, pf, to, pt)
		}
		return nil
	}
	panic("unreachable")
}

// pkgImports is a package's imports, file by file.
type pkgImports struct {
	rel   string              // the package's directory, relative to the root ("" for the root)
	files map[string][]string // file (relative to the root) → its import paths
}

// modulePath reads the module path from go.mod in dir.
func modulePath(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module"); ok {
			mod := strings.TrimSpace(rest)
			if uq, err := strconv.Unquote(mod); err == nil {
				mod = uq
			}
			if mod != "" {
				return mod
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatal("go.mod: no module line")
	return ""
}

// skipDir reports the directories the walk does not enter: those the go
// tool ignores, the build output, and the commands and test harness, which
// sit on top of the pipeline.
func skipDir(name string) bool {
	switch name {
	case ".git", "testdata", "bin", "integration", "cmd", "vendor":
		return true
	}
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// scanPackages parses the imports of every non-test .go file below root.
func scanPackages(t *testing.T, root string) []pkgImports {
	t.Helper()
	byDir := map[string]*pkgImports{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") ||
			strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		relFile, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		relFile = filepath.ToSlash(relFile)
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := path.Dir(relFile)
		if dir == "." {
			dir = ""
		}
		pi := byDir[dir]
		if pi == nil {
			pi = &pkgImports{rel: dir, files: map[string][]string{}}
			byDir[dir] = pi
		}
		var paths []string
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: import %s: %v", relFile, imp.Path.Value, err)
			}
			paths = append(paths, ip)
		}
		pi.files[relFile] = paths
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]pkgImports, 0, len(byDir))
	for _, pi := range byDir {
		out = append(out, *pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out
}

// sortedFiles returns a package's files in order.
func (pi pkgImports) sortedFiles() []string {
	files := make([]string, 0, len(pi.files))
	for f := range pi.files {
		files = append(files, f)
	}
	sort.Strings(files)
	return files
}

func pkgName(rel string) string {
	if rel == "" {
		return "(module root)"
	}
	return rel
}

// TestImportDirection fails on every import of a floodgate package that
// goes against the pipeline.
func TestImportDirection(t *testing.T) {
	mod := modulePath(t, ".")
	pkgs := scanPackages(t, ".")
	if len(pkgs) == 0 {
		t.Fatal("no package found: is the test running at the module root?")
	}
	for _, stage := range []string{"sources", "detect", "flowspec", "controller", "policies", "controller/hooks"} {
		if !slices.ContainsFunc(pkgs, func(pi pkgImports) bool { return pi.rel == stage }) {
			t.Errorf("package %s not found: the walk is broken, or the table in imports_test.go is out of date", stage)
		}
	}
	checked := 0
	for _, pi := range pkgs {
		for _, file := range pi.sortedFiles() {
			for _, ip := range pi.files[file] {
				var to string
				switch {
				case ip == mod:
					to = ""
				case strings.HasPrefix(ip, mod+"/"):
					to = strings.TrimPrefix(ip, mod+"/")
				default:
					continue
				}
				checked++
				if err := importRule(pi.rel, to); err != nil {
					t.Errorf("%s imports %s: %v", file, ip, err)
				}
			}
		}
	}
	t.Logf("%d packages, %d floodgate imports checked", len(pkgs), checked)
}

// TestOneGoBGPImporter fails when more than one package imports gobgp. Two
// do today, flowspec (which builds the NLRI) and controller (which runs the
// speaker); the speaker is moving to the package bgp, and until it has,
// exactly that pair is tolerated.
func TestOneGoBGPImporter(t *testing.T) {
	pkgs := scanPackages(t, ".")
	importers := map[string][]string{} // package → its files that import gobgp
	for _, pi := range pkgs {
		for _, file := range pi.sortedFiles() {
			for _, ip := range pi.files[file] {
				if ip == gobgpModule || strings.HasPrefix(ip, gobgpModule+"/") {
					importers[pi.rel] = append(importers[pi.rel], file+" ("+ip+")")
				}
			}
		}
	}
	names := make([]string, 0, len(importers))
	for p := range importers {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		t.Logf("%s imports gobgp: %s", pkgName(p), strings.Join(importers[p], ", "))
	}
	if len(names) <= 1 {
		return
	}
	if slices.Equal(names, []string{"controller", "flowspec"}) {
		t.Skip("until the speaker moves to bgp/")
	}
	for _, p := range names {
		for _, imp := range importers[p] {
			file, ip, _ := strings.Cut(imp, " ")
			t.Errorf("%s imports %s: only one package may import %s/... (bgp, the speaker's package), and %d do: %s",
				file, strings.Trim(ip, "()"), gobgpModule, len(names), strings.Join(names, ", "))
		}
	}
}

// TestImportRule tests the rule itself, whatever the tree holds.
func TestImportRule(t *testing.T) {
	tests := []struct {
		from, to string
		ok       bool
	}{
		// Along the pipeline, and within a stage.
		{"detect", "sources", true},
		{"flowspec", "detect", true},
		{"bgp", "flowspec", true},
		{"controller", "bgp", true},
		{"controller", "sources/flow", true},
		{"sources/flow", "sources/header", true},
		{"sources/mirror", "sources", true},
		{"controller/api", "controller", true},
		// Against it.
		{"sources", "detect", false},
		{"sources/flow", "controller", false},
		{"detect", "flowspec", false},
		{"detect", "bgp", false},
		{"detect", "controller", false},
		{"flowspec", "bgp", false},
		{"flowspec", "controller", false},
		{"bgp", "controller", false},
		{"bgp", "controller/store", false},
		{"cluster", "controller", true},
		{"controller", "cluster", false},
		// Beside it: everybody may import policies and controller/hooks.
		{"sources/flow", "policies", true},
		{"detect", "policies", true},
		{"flowspec", "controller/hooks", true},
		{"sources/mirror", "controller/hooks", true},
		// policies imports sources/... and controller/hooks only.
		{"policies", "sources/flow", true},
		{"policies", "sources", true},
		{"policies", "controller/hooks", true},
		{"policies", "detect", false},
		{"policies", "flowspec", false},
		{"policies", "bgp", false},
		{"policies", "controller", false},
		// controller/hooks imports no floodgate package.
		{"controller/hooks", "sources", false},
		{"controller/hooks", "policies", false},
		{"controller/hooks", "controller", false},
		// A package given no place is a leaf: imported by any, importing none.
		{"controller", "supervisor", true},
		{"detect", "internal/clock", true},
		{"supervisor", "sources", false},
		{"supervisor", "controller/hooks", false},
		// Nothing imports the commands or the harness.
		{"controller", "cmd/floodgate", false},
		{"sources/flow", "integration/flowgen", false},
	}
	for _, tt := range tests {
		err := importRule(tt.from, tt.to)
		if (err == nil) != tt.ok {
			t.Errorf("importRule(%q, %q) = %v, want allowed=%v", tt.from, tt.to, err, tt.ok)
		}
	}
}
