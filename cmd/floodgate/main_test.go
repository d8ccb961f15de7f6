package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = realMain(args, &o, &e)
	return code, o.String(), e.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := run("version")
	if code != exitOK || !strings.HasPrefix(out, "floodgate ") || !regexp.MustCompile(`(?m)^gobgp v3\.\d+\.\d+$`).MatchString(out) {
		t.Errorf("version: code %d output %q", code, out)
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := run(); code != exitUsage || !strings.Contains(errOut, "usage:") {
		t.Errorf("no args: code %d stderr %q", code, errOut)
	}
	if code, _, errOut := run("frobnicate"); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: code %d stderr %q", code, errOut)
	}
	if code, _, _ := run("check"); code != exitUsage {
		t.Errorf("check without --config: code %d", code)
	}
}

func TestCheckQuickstart(t *testing.T) {
	code, out, errOut := run("check", "--config", "../../examples/quickstart")
	if code != exitOK || !strings.Contains(out, ": ok (1 file(s), 1 hostgroup(s), 4 prefix(es), 2 source(s), 0 neighbor(s))") {
		t.Errorf("check quickstart: code %d stdout %q stderr %q", code, out, errOut)
	}
}

// TestBadConfig checks that check and run both print every error as
// file:line:col: message and exit non-zero, and that run starts nothing.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	src := `
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
}

# a comment-only line, then an empty line

hostgroup "a" {
  prefixes = ["192.0.2.0/24", "192.0.2.300/24"]
  baseline_ = "5m"
  ewma     = "fast"
}
`
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{
		bad + `:11:3: Unsupported argument: An argument named "baseline_" is not expected here. Did you mean "baseline"?`,
	}
	for _, cmd := range []string{"check", "run"} {
		code, _, errOut := run(cmd, "--config", bad)
		if code != exitConfig {
			t.Errorf("%s: exit %d, want %d", cmd, code, exitConfig)
		}
		for _, w := range want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: stderr\n%s\nlacks\n%s", cmd, errOut, w)
			}
		}
		if strings.Contains(errOut, "starting") {
			t.Errorf("%s started with a bad config", cmd)
		}
	}

	// Semantic errors are all reported in one go once the syntax and
	// schema are right.
	src = strings.Replace(src, "  baseline_ = \"5m\"\n", "", 1)
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run("check", "--config", bad)
	for _, w := range []string{
		bad + `:10:31: Invalid prefix: "192.0.2.300/24" is not a CIDR prefix`,
		bad + `:11:14: Invalid duration: "fast" is not a duration`,
		"2 error(s) in " + bad,
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("check: stderr\n%s\nlacks\n%s", errOut, w)
		}
	}
	if code != exitConfig {
		t.Errorf("check: exit %d", code)
	}
}

func TestMissingConfig(t *testing.T) {
	code, _, errOut := run("check", "--config", filepath.Join(t.TempDir(), "nope.hcl"))
	if code != exitConfig || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: code %d stderr %q", code, errOut)
	}
}
