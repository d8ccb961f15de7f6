package integration

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/integration/lab"
)

// TestBGPSessionMD5 checks the neighbour `password` against gobgpd on
// loopback: with the router's key the session comes up; with another key
// the kernel drops the segments and it never does.
func TestBGPSessionMD5(t *testing.T) {
	lab.Require(t, "gobgpd", "go")
	bin := lab.BuildFloodgate(t)
	for _, tc := range []struct {
		name, key string
		router    string
		up        bool
	}{
		{"same key", "s3cret-key", "127.0.0.20", true},
		{"other key", "not-the-key", "127.0.0.22", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			routerIP := netip.MustParseAddr(tc.router)
			speakerIP := routerIP.Next()
			router := lab.StartGoBGP(t, lab.GoBGPConfig{
				Name: "router", ASN: routerASN, ListenAddr: routerIP,
				Neighbors: []lab.GoBGPNeighbor{{
					Address: speakerIP, ASN: controllerASN, Passive: true,
					Password: "s3cret-key", Families: []lab.Family{lab.FamilyIPv4Unicast},
				}},
			})
			cfg := fmt.Sprintf(`
bgp {
  asn       = %d
  router_id = "192.0.2.254"
  neighbor "router" {
    address       = "%s"
    port          = %d
    asn           = %d
    local_address = "%s"
    password      = "%s"
    families      = ["ipv4-unicast"]
  }
}
mitigation { state_file = "%s" }
hostgroup "customers" {
  prefixes = ["203.0.113.0/24"]
  threshold "incoming" { pps = 1000 }
}
`, controllerASN, routerIP, router.BGPAddr().Port(), routerASN, speakerIP, tc.key,
				filepath.Join(t.TempDir(), "state.db"))
			fg := lab.StartFloodgate(t, bin, cfg)
			wait := 30 * time.Second
			if !tc.up {
				// Long enough for several connect attempts (GoBGP retries
				// every 5 s at the fastest).
				wait = 12 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err := router.WaitEstablished(ctx, speakerIP)
			if tc.up && err != nil {
				t.Fatalf("session with the router's key: %v", err)
			}
			if !tc.up && err == nil {
				t.Fatal("session came up with a different MD5 key")
			}
			// The daemon ran the whole time: no session is not a config error.
			if err := fg.Stop(); err != nil {
				t.Fatalf("%v\n%s", err, fg.Log())
			}
		})
	}
}
