package cluster

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// speakerOn follows pol's mitigation topic with a speaker set that
// announces into a recording RIB.
func speakerOn(t *testing.T, pol *polT, name string) *recordingAnnouncer {
	t.Helper()
	l, err := NewLog(pol.Policy, testLogger(t, name))
	if err != nil {
		t.Fatal(err)
	}
	start(t, name+" log", l)
	rib := newRecordingAnnouncer()
	set := NewSpeakerSet(pol.Policy, l, rib, rib, testLogger(t, name))
	start(t, name+" set", set)
	return rib
}

// node builds and starts a cluster node.
func node(t *testing.T, pol *polT) *Node {
	t.Helper()
	n, err := NewNode(pol.Policy, testLogger(t, pol.Kafka.Node))
	if err != nil {
		t.Fatal(err)
	}
	start(t, pol.Kafka.Node, n)
	return n
}

// attack sends NTP reflection to victim through pub every 100 ms until
// stop is closed: 20 records of 1000 packets, 200 kpps.
func attack(pub *Publisher, victim netip.Addr, stop <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			pub.Ingest(ntp(victim, 20))
		}
	}
}

// TestClusterMitigates runs a collector-detector node and a speaker on
// one mitigation topic: an NTP reflection published by the collector is
// detected, the decision goes to the topic, the speaker announces the
// FlowSpec rule, and withdraws it once the attack is over and the
// response's duration has passed; every node's API shows the cluster's
// set.
func TestClusterMitigates(t *testing.T) {
	b := brokers(t)
	topic := topicName(t)
	cd := &polT{nodePolicy(t, b, topic, "cd1", "collector", "detector")}
	ensureTopics(t, cd.Policy)
	rib := speakerOn(t, &polT{nodePolicy(t, b, topic, "s1", "speaker")}, "s1")
	n := node(t, cd)
	select {
	case restarting := <-rib.opened:
		if restarting {
			t.Error("a speaker of an empty topic opened its sessions as restarting")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the speaker did not open its sessions")
	}
	waitFor(t, 20*time.Second, "detector owns every partition", func() bool { return len(n.Reader.Stats().Partitions) == 6 })
	victim := netip.MustParseAddr("203.0.113.10")
	stop := make(chan struct{})
	go attack(n.Publisher, victim, stop)
	began := time.Now()
	waitFor(t, 10*time.Second, "rule at the speaker", func() bool { return len(rib.keys()) == 1 })
	t.Logf("attack to rule at the speaker: %s; rule %v", time.Since(began).Round(time.Millisecond), rib.keys())
	if k := rib.keys()[0]; !containsAll(k, "dst 203.0.113.10/32", "proto 17", "sport 123") {
		t.Errorf("rule %q is not the reflection's", k)
	}
	active, err := nodeBackend{n}.Active(context.Background())
	if err != nil || len(active) != 1 || active[0].Hostgroup != "customers" {
		t.Errorf("node's active set %+v, %v", active, err)
	}
	// Extended while the attack goes on: the topic's expiry moves past
	// the first one (the response's duration is 3 s).
	first := active[0].Expires
	waitFor(t, 20*time.Second, "the mitigation extended on the topic", func() bool {
		m, ok := n.Log.Get(active[0].Key)
		return ok && m.Expires.After(first)
	})
	if len(rib.keys()) != 1 {
		t.Fatalf("rule gone while the attack goes on: %v", rib.keys())
	}
	close(stop)
	ended := time.Now()
	waitFor(t, 20*time.Second, "rule withdrawn", func() bool { return len(rib.keys()) == 0 })
	t.Logf("attack end to withdrawal: %s", time.Since(ended).Round(time.Millisecond))
	waitFor(t, 5*time.Second, "empty active set", func() bool { return len(n.Log.Active()) == 0 })
}

func containsAll(s string, parts ...string) bool {
	return !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(s, p) })
}
