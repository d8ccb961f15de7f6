// Package prereq gates integration tests on their prerequisites (binaries,
// root, -short, FLOODGATE_INTEGRATION). It imports nothing of Floodgate,
// so that the tests of any package can use it.
package prereq

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// EnvIntegration names the environment variable that makes integration
// prerequisites mandatory. `make test` and CI set it to "1".
const EnvIntegration = "FLOODGATE_INTEGRATION"

// Enforced reports whether integration prerequisites are mandatory, that is
// whether EnvIntegration is set to "1". When it is, a missing prerequisite
// fails the test instead of skipping it.
func Enforced() bool {
	return os.Getenv(EnvIntegration) == "1"
}

// Require gates an integration test. It skips the test under -short, then
// checks that every named binary is found in PATH. A missing binary skips the
// test, or fails it when Enforced.
func Require(t testing.TB, binaries ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	for _, b := range binaries {
		if _, err := exec.LookPath(b); err != nil {
			missing(t, "binary %q not found: %v", b, err)
		}
	}
}

// RequireRoot is Require plus a check that the test runs as root (needed to
// create network namespaces or bind privileged ports).
func RequireRoot(t testing.TB, binaries ...string) {
	t.Helper()
	Require(t, binaries...)
	if os.Geteuid() != 0 {
		missing(t, "test needs root (euid %d)", os.Geteuid())
	}
}

// missing skips the test, or fails it when prerequisites are enforced.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Enforced() {
		t.Fatalf("integration prerequisite missing ("+EnvIntegration+"=1): "+format, args...)
	}
	t.Skipf("integration prerequisite missing: "+format, args...)
}

// FreePort returns a TCP port that was free on host (an address such as
// "127.0.0.2") a moment ago: it listens on port 0 and closes the listener.
// Another process may take the port before the caller binds it; the kernel
// hands out ephemeral ports in turn, so this is rare. It fails the test if
// host cannot be bound.
func FreePort(t testing.TB, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("find a free port on %s: %v", host, err)
	}
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if cerr := ln.Close(); cerr != nil {
		t.Fatalf("find a free port on %s: close listener: %v", host, cerr)
	}
	if err != nil {
		t.Fatalf("find a free port on %s: %v", host, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatalf("find a free port on %s: parse port %q: %v", host, port, err)
	}
	return int(p)
}
