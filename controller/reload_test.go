package controller

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
)

const reloadBase = `
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
}
hostgroup "customers" {
  prefixes = ["203.0.113.0/24"]
  threshold "incoming" { pps = %PPS% }
}
`

func writeConfig(t *testing.T, path, pps string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Replace(reloadBase, "%PPS%", pps, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReload swaps in a good policy, then rejects a bad one while detection
// keeps its counters and the running policy.
func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floodgate.hcl")
	writeConfig(t, path, "100000")
	pol, err := policies.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDaemon(pol, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	victim := netip.MustParseAddr("203.0.113.10")
	now := time.Now()
	feed := func(n int) []detect.Event {
		var evs []detect.Event
		for range n {
			d.Engine.Ingest([]sources.Record{{Src: netip.MustParseAddr("192.0.2.1"), Dst: victim, Proto: 17, Packets: 2500, Bytes: 2500 * 100}})
			now = now.Add(policies.DefaultTick)
			d.Engine.Tick(now)
			for {
				select {
				case ev := <-d.Engine.Events():
					evs = append(evs, ev)
					continue
				default:
				}
				break
			}
		}
		return evs
	}
	if evs := feed(40); len(evs) != 0 { // 10 kpps under a 100 kpps threshold
		t.Fatalf("events before reload: %d", len(evs))
	}
	before, _ := d.Engine.Rates(detect.Host{Addr: victim, Direction: detect.Incoming})

	// A bad file is rejected whole; the running policy stays.
	if err := os.WriteFile(path, []byte("hostgroup \"customers\" { prefixes = [\"203.0.113.0/33\"] }"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(path); err == nil {
		t.Fatal("bad configuration accepted")
	}
	if d.Policy() != pol {
		t.Fatal("running policy replaced by a failed reload")
	}
	if evs := feed(8); len(evs) != 0 {
		t.Fatalf("events after a failed reload: %d", len(evs))
	}

	// A good one lowers the threshold: the same traffic is now an attack,
	// judged on the rates counted before the reload.
	writeConfig(t, path, "5000")
	if err := d.Reload(path); err != nil {
		t.Fatal(err)
	}
	after, _ := d.Engine.Rates(detect.Host{Addr: victim, Direction: detect.Incoming})
	if after.PPS < before.PPS*0.9 {
		t.Errorf("rates lost in the reload: before %.0f after %.0f", before.PPS, after.PPS)
	}
	evs := feed(3)
	if len(evs) != 1 || evs[0].Kind != detect.AttackStarted {
		t.Fatalf("events after reload: %v", evs)
	}
}

func TestWatcherDebounces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "a.hcl")
		writeConfig(t, path, "1")
		var reloads atomic.Int32
		w := NewWatcher(dir, 100*time.Millisecond, 300*time.Millisecond, func() error { reloads.Add(1); return nil }, hclog.NewNullLogger())
		if err := w.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer w.Stop(context.Background())
		time.Sleep(time.Second)
		if n := reloads.Load(); n != 0 {
			t.Fatalf("%d reloads without a change", n)
		}
		for i := range 3 { // an editor saving several times
			writeConfig(t, path, []string{"2", "3", "4"}[i])
			time.Sleep(150 * time.Millisecond)
		}
		if err := os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("# new customer\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if n := reloads.Load(); n != 1 {
			t.Errorf("%d reloads for one burst of changes, want 1", n)
		}
	})
}
