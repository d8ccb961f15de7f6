package controller

import (
	"testing"

	"go.uber.org/goleak"
)

// GoBGP's serve loop lives as long as the process (see Speaker): once per
// speaker the tests start, it is the one goroutine left behind on purpose.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/osrg/gobgp/v3/pkg/server.(*BgpServer).Serve"))
}
