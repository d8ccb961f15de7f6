package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floodgate-ddos/floodgate/integration/lab"
)

// TestMakeInstall installs into a temporary root and checks the layout, the
// configuration it installs and, where systemd-analyze exists, the unit.
func TestMakeInstall(t *testing.T) {
	lab.Require(t, "make", "go")
	dest := t.TempDir()
	out, err := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "PREFIX=/usr/local").CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/local/bin/floodgate", "etc/systemd/system/floodgate.service", "etc/floodgate/floodgate.hcl", "var/lib/floodgate"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	bin := filepath.Join(dest, "usr/local/bin/floodgate")
	if out, err := exec.Command(bin, "check", "--config", filepath.Join(dest, "etc/floodgate")).CombinedOutput(); err != nil {
		t.Errorf("installed configuration does not validate: %v\n%s", err, out)
	}
	// A second install keeps an edited configuration.
	cfg := filepath.Join(dest, "etc/floodgate/floodgate.hcl")
	if err := os.WriteFile(cfg, []byte("# edited\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest).CombinedOutput(); err != nil || !strings.Contains(string(out), "keeping the existing") {
		t.Errorf("second install: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "# edited\n" {
		t.Error("make install overwrote an existing configuration")
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		unit, _ := os.ReadFile(filepath.Join(dest, "etc/systemd/system/floodgate.service"))
		test := filepath.Join(t.TempDir(), "floodgate.service")
		os.WriteFile(test, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/floodgate", bin)), 0o644)
		if out, err := exec.Command("systemd-analyze", "verify", test).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
}
