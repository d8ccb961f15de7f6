package lab

import (
	"testing"

	"github.com/floodgate-ddos/floodgate/integration/prereq"
)

// EnvIntegration names the environment variable that makes integration
// prerequisites mandatory (see package prereq).
const EnvIntegration = prereq.EnvIntegration

// Enforced reports whether integration prerequisites are mandatory.
func Enforced() bool { return prereq.Enforced() }

// Require gates an integration test on binaries (prereq.Require).
func Require(t testing.TB, binaries ...string) {
	t.Helper()
	prereq.Require(t, binaries...)
}

// RequireRoot is Require plus root (prereq.RequireRoot).
func RequireRoot(t testing.TB, binaries ...string) {
	t.Helper()
	prereq.RequireRoot(t, binaries...)
}

// FreePort returns a TCP port that was free on host a moment ago
// (prereq.FreePort).
func FreePort(t testing.TB, host string) int {
	t.Helper()
	return prereq.FreePort(t, host)
}
