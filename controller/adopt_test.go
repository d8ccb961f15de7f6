package controller

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/flowspec"
)

// TestAdoptAndRelease is a detector of a cluster taking over mitigations
// another one decided: one still running is kept without being announced
// again (the topic is the announcement), extended when detection here
// sees its attack, and withdrawn at its time once the attack is over; one
// already expired is withdrawn from the store at once; a key already
// active is left alone; Release forgets without withdrawing.
func TestAdoptAndRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pol := testPolicy(t, false)
		h := newHarness(t, pol)
		defer h.stop()
		now := time.Now()
		victim := netip.MustParsePrefix("203.0.113.10/32")
		rtbh := func(p string) flowspec.Announcement {
			a, _, err := ParseBan(BanRequest{Kind: "rtbh", Prefix: p, Duration: "1m"}, pol.BGP)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		ntp := rtbh("203.0.113.10")
		running := Mitigation{Key: ntp.Key(), Announcement: ntp, Hostgroup: "customers", Response: "blackhole", Victim: victim,
			Started: now.Add(-30 * time.Second), Expires: now.Add(30 * time.Second), Duration: time.Minute, Extend: true,
			AttackID: 77, Merged: []uint64{78}}
		old := rtbh("203.0.113.11")
		expired := Mitigation{Key: old.Key(), Announcement: old, Hostgroup: "customers", Response: "blackhole",
			Victim: old.Prefix, Started: now.Add(-2 * time.Minute), Expires: now.Add(-time.Second), Duration: time.Minute}
		if err := h.store.Put(&expired); err != nil {
			t.Fatal(err)
		}
		n, err := h.m.Adopt(context.Background(), []Mitigation{running, expired, running})
		if err != nil || n != 1 {
			t.Fatalf("adopted %d, %v; want 1", n, err)
		}
		h.wantCalls() // nothing sent: the routes are the topic's
		stored, _ := h.store.Load()
		if len(stored) != 0 {
			t.Errorf("the expired mitigation is still stored: %+v", stored)
		}
		act, _ := h.m.Active(context.Background())
		if len(act) != 1 || act[0].AttackID != 0 || act[0].Merged != nil || act[0].AttackEnded.IsZero() {
			t.Fatalf("active %+v: want the running one, its attack ids forgotten and its attack taken as over", act)
		}
		// Detection here sees the attack: the adopted mitigation is
		// extended past its first expiry.
		s := sig(1, "203.0.113.10")
		h.send(detect.AttackStarted, s)
		time.Sleep(40 * time.Second)
		synctest.Wait()
		if act, _ := h.m.Active(context.Background()); len(act) != 1 || !act[0].Expires.After(now.Add(30*time.Second)) {
			t.Fatalf("not extended while its attack goes on: %+v", act)
		}
		h.send(detect.AttackEnded, s)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		h.wantCalls("withdraw rtbh:203.0.113.10/32")

		// Release forgets without a withdrawal.
		if n, _ := h.m.Adopt(context.Background(), []Mitigation{{Key: ntp.Key(), Announcement: ntp, Hostgroup: "customers",
			Victim: victim, Started: time.Now(), Expires: time.Now().Add(time.Minute)}}); n != 1 {
			t.Fatalf("second adoption: %d", n)
		}
		if n, err := h.m.Release(context.Background(), func(m *Mitigation) bool { return m.Victim == victim }); n != 1 || err != nil {
			t.Fatalf("released %d, %v", n, err)
		}
		h.wantCalls("withdraw rtbh:203.0.113.10/32")
		if act, _ := h.m.Active(context.Background()); len(act) != 0 {
			t.Errorf("active after release: %+v", act)
		}
	})
}
