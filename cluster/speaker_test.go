package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/topics"
)

// TestSpeakerChecksAgain writes decisions to the mitigation topic as a
// detector would and checks what a speaker makes of them with its own
// policy: a rule outside its networks and one past its budget are
// refused (the budget's turn comes when a slot frees), an expired one is
// never announced, one that no detector withdraws goes at its expiry plus
// the grace, a tombstone withdraws, a dry run is only logged.
func TestSpeakerChecksAgain(t *testing.T) {
	b := brokers(t)
	topic := topicName(t)
	pol := nodePolicy(t, b, topic, "s1", "speaker")
	ensureTopics(t, pol)
	pol.Hostgroups[0].MaxRules = 2 // customers
	writer, err := NewLog(nodePolicy(t, b, topic, "d1", "detector"), testLogger(t, "d1"))
	if err != nil {
		t.Fatal(err)
	}
	start(t, "writer", writer)
	now := time.Now()
	put := func(kind, what string, age, left time.Duration, dry bool) string {
		t.Helper()
		req := controller.BanRequest{Kind: kind, Rule: what, Prefix: what, Duration: "1m"}
		if kind == "flowspec" {
			req.Prefix = ""
		} else {
			req.Rule = ""
		}
		a, _, err := controller.ParseBan(req, pol.BGP)
		if err != nil {
			t.Fatal(err)
		}
		m := topics.Mitigation{Key: a.Key(), Announcement: a, Hostgroup: "customers", Response: "test", Victim: a.Destination(),
			Started: now.Add(-age), Expires: now.Add(left), DryRun: dry}
		if err := writer.Put(context.Background(), &m); err != nil {
			t.Fatal(err)
		}
		return m.Key
	}
	first := put("flowspec", "dst 203.0.113.10/32 proto udp sport 123", 3*time.Minute, time.Hour, false)
	second := put("rtbh", "203.0.113.11", 2*time.Minute, time.Hour, false)
	third := put("rtbh", "203.0.113.12", time.Minute, time.Hour, false) // past max_rules 2
	put("rtbh", "198.51.100.13", time.Minute, time.Hour, false)         // carpet: its own budget
	outside := put("rtbh", "192.0.2.1", time.Minute, time.Hour, false)
	put("rtbh", "198.51.100.14", 2*time.Hour, -time.Minute, false) // expired
	short := put("rtbh", "198.51.100.15", time.Minute, 5*time.Second, false)
	dry := put("rtbh", "198.51.100.16", time.Minute, time.Hour, true)
	_ = outside
	_ = dry
	// The speaker starts on a topic that holds them all.
	l, err := NewLog(pol, testLogger(t, "s1"))
	if err != nil {
		t.Fatal(err)
	}
	start(t, "log", l)
	rib := newRecordingAnnouncer()
	set := NewSpeakerSet(pol, l, rib, rib, testLogger(t, "s1"))
	set.grace = time.Second
	start(t, "speaker set", set)
	select {
	case restarting := <-rib.opened:
		if !restarting {
			t.Error("sessions opened as a fresh start with routes in the RIB")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sessions never opened")
	}
	want := []string{first, second, "rtbh:198.51.100.13/32", short}
	slices.Sort(want)
	got := rib.keys()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("announced\n  %v\nwant\n  %v", got, want)
	}
	if st := set.Stats(); st.Refused != 2 || st.Active != 5 {
		t.Errorf("stats %+v: want 2 refused (outside, budget), 5 active (with the dry run)", st)
	}
	// The short one goes at its expiry and the grace; a tombstone frees
	// a slot for the one the budget held back.
	waitFor(t, 20*time.Second, "the short one withdrawn", func() bool { return !slices.Contains(rib.keys(), short) })
	if err := writer.Delete(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the held one announced in the freed slot", func() bool {
		k := rib.keys()
		return slices.Contains(k, third) && !slices.Contains(k, second)
	})
}
