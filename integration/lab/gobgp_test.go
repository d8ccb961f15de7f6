package lab

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestGoBGPPair peers two gobgpd instances on loopback, announces routes on
// one with the gobgp CLI and checks what the other received, then withdraws
// them.
func TestGoBGPPair(t *testing.T) {
	Require(t, "gobgpd", "gobgp")

	addrA := netip.MustParseAddr("127.0.0.2")
	addrB := netip.MustParseAddr("127.0.0.3")
	portA := FreePort(t, addrA.String())
	portB := FreePort(t, addrB.String())
	speaker := StartGoBGP(t, GoBGPConfig{
		Name:       "speaker",
		ASN:        65001,
		ListenAddr: addrA,
		ListenPort: portA,
		Neighbors:  []GoBGPNeighbor{{Address: addrB, Port: portB, ASN: 65002}},
	})
	receiver := StartGoBGP(t, GoBGPConfig{
		Name:       "receiver",
		ASN:        65002,
		ListenAddr: addrB,
		ListenPort: portB,
		Neighbors:  []GoBGPNeighbor{{Address: addrA, Port: portA, ASN: 65001, Passive: true}},
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := receiver.WaitEstablished(ctx, addrA); err != nil {
		t.Fatal(err)
	}
	if err := speaker.WaitEstablished(ctx, addrB); err != nil {
		t.Fatal(err)
	}
	t.Logf("session established after %v", time.Since(start).Round(time.Millisecond))

	tests := []struct {
		name     string
		announce string // gobgp CLI arguments after "global rib", with ADD for add or del
		want     Route
	}{
		{
			// gobgpd 3.10 treats an IPv4 NEXT_HOP on 127/8 as a withdraw,
			// so loopback labs announce IPv4 unicast with another next hop.
			name:     "rtbh",
			announce: "-a ipv4 ADD 203.0.113.10/32 nexthop 192.0.2.1 community 65535:666,no-export",
			want: Route{
				Family:      FamilyIPv4Unicast,
				Prefix:      "203.0.113.10/32",
				NextHop:     netip.MustParseAddr("192.0.2.1"),
				ASPath:      []uint32{65001},
				Communities: []string{"65535:666", "65535:65281"},
				From:        addrA,
			},
		},
		{
			// Over an IPv4 session the next hop is IPv4-mapped.
			name:     "ipv6 rtbh",
			announce: "-a ipv6 ADD 2001:db8:ffff::10/128 community 65535:666",
			want: Route{
				Family:      FamilyIPv6Unicast,
				Prefix:      "2001:db8:ffff::10/128",
				NextHop:     netip.MustParseAddr("::ffff:127.0.0.2"),
				ASPath:      []uint32{65001},
				Communities: []string{"65535:666"},
				From:        addrA,
			},
		},
		{
			name:     "flowspec discard",
			announce: "-a ipv4-flowspec ADD match destination 203.0.113.10/32 protocol udp source-port ==123 then discard",
			want: Route{
				Family:         FamilyIPv4FlowSpec,
				Prefix:         "destination:203.0.113.10/32 protocol:==udp source-port:==123",
				ASPath:         []uint32{65001},
				ExtCommunities: []string{"traffic-rate:0"},
				From:           addrA,
			},
		},
		{
			name: "flowspec rate limit",
			announce: "-a ipv4-flowspec ADD match destination 203.0.113.20/32 source 198.51.100.0/24 protocol tcp " +
				"destination-port >=80&<=443 tcp-flags S fragment is-fragment packet-length >1000 dscp 46 then rate-limit 1000",
			want: Route{
				Family: FamilyIPv4FlowSpec,
				Prefix: "destination:203.0.113.20/32 source:198.51.100.0/24 protocol:==tcp destination-port:>=80&<=443 " +
					"tcp-flags:S packet-length:>1000 dscp:==46 fragment:is-fragment",
				ASPath:         []uint32{65001},
				ExtCommunities: []string{"traffic-rate:1000"},
				From:           addrA,
			},
		},
		{
			name:     "flowspec redirect mark sample",
			announce: "-a ipv4-flowspec ADD match destination 203.0.113.30/32 port ==53 then redirect 65000:100 mark 10 action sample-terminal",
			want: Route{
				Family:         FamilyIPv4FlowSpec,
				Prefix:         "destination:203.0.113.30/32 port:==53",
				ASPath:         []uint32{65001},
				ExtCommunities: []string{"redirect:65000:100", "traffic-action:sample,terminal", "traffic-marking:10"},
				From:           addrA,
			},
		},
		{
			name:     "ipv6 flowspec",
			announce: "-a ipv6-flowspec ADD match destination 2001:db8:ffff::10/128 protocol udp source-port ==123 then discard",
			want: Route{
				Family:         FamilyIPv6FlowSpec,
				Prefix:         "destination:2001:db8:ffff::10/128 protocol:==udp source-port:==123",
				ASPath:         []uint32{65001},
				ExtCommunities: []string{"traffic-rate:0"},
				From:           addrA,
			},
		},
	}
	opts := cmp.Options{
		cmpopts.EquateComparable(netip.Addr{}),
		cmpopts.IgnoreFields(Route{}, "Received", "Best"),
		cmpopts.SortSlices(func(a, b string) bool { return a < b }),
		cmpopts.EquateEmpty(),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cli := func(verb string) {
				t.Helper()
				args := append([]string{"global", "rib"}, strings.Fields(strings.Replace(tt.announce, "ADD", verb, 1))...)
				if _, err := speaker.CLI(ctx, args...); err != nil {
					t.Fatal(err)
				}
			}

			sent := time.Now()
			cli("add")
			got, err := receiver.WaitRoute(ctx, tt.want.Family, MatchPrefix(tt.want.Prefix))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("received after %v: %s", time.Since(sent).Round(time.Millisecond), got)
			if diff := cmp.Diff(got, tt.want, opts); diff != "" {
				t.Errorf("received route mismatch (-got +want):\n%s", diff)
			}
			if got.Received.IsZero() || !got.Best {
				t.Errorf("received route: Received %v, Best %v; want a time and true", got.Received, got.Best)
			}

			// The speaker holds the same route as locally originated.
			local, err := speaker.WaitRoute(ctx, tt.want.Family, MatchPrefix(tt.want.Prefix))
			if err != nil {
				t.Fatal(err)
			}
			if local.From.IsValid() || len(local.ASPath) != 0 {
				t.Errorf("local route on speaker: From %v, ASPath %v; want none", local.From, local.ASPath)
			}

			cli("del")
			if err := receiver.WaitNoRoute(ctx, tt.want.Family, MatchPrefix(tt.want.Prefix)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestGoBGPConfig(t *testing.T) {
	lo2 := netip.MustParseAddr("127.0.0.2")
	lo3 := netip.MustParseAddr("127.0.0.3")
	bad := []struct {
		name string
		cfg  GoBGPConfig
	}{
		{"no asn", GoBGPConfig{ListenAddr: lo2}},
		{"not loopback", GoBGPConfig{ASN: 65001, ListenAddr: netip.MustParseAddr("192.0.2.1")}},
		{"neighbor not loopback", GoBGPConfig{ASN: 65001, Neighbors: []GoBGPNeighbor{{Address: netip.MustParseAddr("192.0.2.2"), ASN: 65002}}}},
		{"neighbor without asn", GoBGPConfig{ASN: 65001, Neighbors: []GoBGPNeighbor{{Address: lo3}}}},
		{"bad family", GoBGPConfig{ASN: 65001, Neighbors: []GoBGPNeighbor{{Address: lo3, ASN: 65002, Families: []Family{"l2vpn-evpn"}}}}},
		{"ipv6 without router id", GoBGPConfig{ASN: 65001, ListenAddr: netip.IPv6Loopback()}},
		{"port out of range", GoBGPConfig{ASN: 65001, ListenPort: 70000}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.cfg.withDefaults(""); err == nil {
				t.Errorf("withDefaults(%+v) accepted", tt.cfg)
			}
		})
	}

	cfg, err := GoBGPConfig{
		ASN:        65002,
		ListenAddr: lo3,
		ListenPort: 1790,
		Neighbors:  []GoBGPNeighbor{{Address: lo2, Port: 1791, ASN: 65001, Passive: true}},
	}.withDefaults("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RouterID != lo3 || cfg.Name != "gobgpd@127.0.0.3" || cfg.LogLevel != "debug" {
		t.Errorf("defaults: router id %s, name %q, log level %q", cfg.RouterID, cfg.Name, cfg.LogLevel)
	}
	toml := cfg.toml()
	for _, line := range []string{
		`as = 65002`,
		`router-id = "127.0.0.3"`,
		`port = 1790`,
		`local-address-list = ["127.0.0.3"]`,
		`neighbor-address = "127.0.0.2"`,
		`peer-as = 65001`,
		`connect-retry = 1`,
		`local-address = "127.0.0.3"`,
		`remote-port = 1791`,
		`passive-mode = true`,
		`afi-safi-name = "ipv4-unicast"`,
		`afi-safi-name = "ipv6-unicast"`,
		`afi-safi-name = "ipv4-flowspec"`,
		`afi-safi-name = "ipv6-flowspec"`,
	} {
		if !strings.Contains(toml, line) {
			t.Errorf("config lacks %q:\n%s", line, toml)
		}
	}
}

// TestGoBGPConfigNetns checks the defaults and rendering of a gobgpd run
// in a network namespace.
func TestGoBGPConfigNetns(t *testing.T) {
	ctl4 := netip.MustParseAddr("10.0.1.1")
	edge4 := netip.MustParseAddr("10.0.1.2")
	if _, err := (GoBGPConfig{ASN: 65000}).withDefaults("ns1"); err == nil {
		t.Error("accepted a namespace config without router id")
	}
	if _, err := (GoBGPConfig{ASN: 65000, RouterID: ctl4, Neighbors: []GoBGPNeighbor{{Address: edge4, ASN: 65001, LocalAddress: netip.MustParseAddr("2001:db8:1::1")}}}).withDefaults("ns1"); err == nil {
		t.Error("accepted a local address of another family")
	}
	cfg, err := GoBGPConfig{
		ASN:       65000,
		RouterID:  ctl4,
		Neighbors: []GoBGPNeighbor{{Address: edge4, ASN: 65001, LocalAddress: ctl4}},
	}.withDefaults("ns1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenPort != 179 || cfg.Name != "gobgpd@ns1" || cfg.ListenAddr.IsValid() {
		t.Errorf("defaults: port %d, name %q, listen address %v", cfg.ListenPort, cfg.Name, cfg.ListenAddr)
	}
	toml := cfg.toml()
	if strings.Contains(toml, "local-address-list") {
		t.Errorf("config restricts listen addresses:\n%s", toml)
	}
	for _, line := range []string{`port = 179`, `neighbor-address = "10.0.1.2"`, `local-address = "10.0.1.1"`, `passive-mode = false`} {
		if !strings.Contains(toml, line) {
			t.Errorf("config lacks %q:\n%s", line, toml)
		}
	}
}

// processGone reports whether pid no longer exists (it was waited for).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestGoBGPStartStopStart stops an instance twice, then starts another on the
// same port.
func TestGoBGPStartStopStart(t *testing.T) {
	Require(t, "gobgpd")
	addr := netip.MustParseAddr("127.0.0.4")
	cfg := GoBGPConfig{ASN: 65010, ListenAddr: addr, ListenPort: FreePort(t, addr.String())}

	g := StartGoBGP(t, cfg)
	pid := g.PID()
	if processGone(pid) {
		t.Fatalf("gobgpd pid %d not running after start", pid)
	}
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if !processGone(pid) {
		t.Errorf("gobgpd pid %d still exists after stop", pid)
	}
	if _, err := g.Routes(t.Context(), FamilyIPv4Unicast); err == nil {
		t.Error("Routes on a stopped instance succeeded")
	}

	g2 := StartGoBGP(t, cfg)
	if g2.BGPAddr() != g.BGPAddr() {
		t.Errorf("second instance on %s, want %s", g2.BGPAddr(), g.BGPAddr())
	}
	routes, err := g2.Routes(t.Context(), FamilyIPv4FlowSpec)
	if err != nil || len(routes) != 0 {
		t.Errorf("fresh instance: routes %v, error %v; want none", routes, err)
	}
}

// TestGoBGPCrash checks that waits end at once when gobgpd dies, and that
// Stop reports it.
func TestGoBGPCrash(t *testing.T) {
	Require(t, "gobgpd")
	addr := netip.MustParseAddr("127.0.0.5")
	g := StartGoBGP(t, GoBGPConfig{
		ASN:        65020,
		ListenAddr: addr,
		Neighbors:  []GoBGPNeighbor{{Address: netip.MustParseAddr("127.0.0.6"), ASN: 65021, Passive: true}},
	})
	if err := syscall.Kill(g.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := g.WaitEstablished(ctx, netip.MustParseAddr("127.0.0.6")); err == nil || ctx.Err() != nil {
		t.Errorf("WaitEstablished after crash: %v (context %v); want an error before the deadline", err, ctx.Err())
	}
	if _, err := g.WaitRoute(ctx, FamilyIPv4Unicast, MatchPrefix("203.0.113.10/32")); err == nil || ctx.Err() != nil {
		t.Errorf("WaitRoute after crash: %v (context %v); want an error before the deadline", err, ctx.Err())
	}
	// The waits may fail on the dead API before the process is reaped;
	// a crash is what Stop must report, so let the reaper see it first.
	select {
	case <-g.exited:
	case <-ctx.Done():
		t.Fatal("gobgpd not reaped 10 s after SIGKILL")
	}
	if err := g.Stop(); err == nil || !strings.Contains(err.Error(), "exited before stop") {
		t.Errorf("Stop after crash: %v, want an exited-before-stop error", err)
	}
}
