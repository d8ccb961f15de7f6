package cluster

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// TestDetectorHandover stops the detector that decided a mitigation while
// the attack goes on: the other detector of the group takes its flow
// partitions, adopts the mitigation from the topic, extends it past its
// first expiry while the attack lasts and withdraws it after; the rule
// never leaves the speaker. (A detector killed without leaving the group
// is the integration test's: here the group learns of it at once.)
func TestDetectorHandover(t *testing.T) {
	b := brokers(t)
	topic := topicName(t)
	c := &polT{nodePolicy(t, b, topic, "c1", "collector")}
	ensureTopics(t, c.Policy)
	rib := speakerOn(t, &polT{nodePolicy(t, b, topic, "s1", "speaker")}, "s1")
	col := node(t, c)
	var ds [2]*Node
	for i, name := range []string{"d1", "d2"} {
		n, err := NewNode(nodePolicy(t, b, topic, name, "detector"), testLogger(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ds[i] = n
	}
	stopped := [2]bool{}
	t.Cleanup(func() {
		for i, n := range ds {
			if !stopped[i] {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_ = n.Stop(ctx)
				cancel()
			}
		}
	})
	waitFor(t, 30*time.Second, "two detectors share the partitions", func() bool {
		a, b := len(ds[0].Reader.Stats().Partitions), len(ds[1].Reader.Stats().Partitions)
		return a+b == 6 && a > 0 && b > 0
	})
	victim := netip.MustParseAddr("203.0.113.20")
	stop := make(chan struct{})
	go attack(col.Publisher, victim, stop)
	waitFor(t, 10*time.Second, "rule at the speaker", func() bool { return len(rib.keys()) == 1 })
	key := rib.keys()[0]
	owner := -1
	for i, n := range ds {
		act, _ := n.Mitigator.Active(context.Background())
		for _, m := range act {
			if m.Key == key {
				owner = i
			}
		}
	}
	if owner < 0 {
		t.Fatal("no detector holds the mitigation")
	}
	other := ds[1-owner]
	var gone atomic.Int64
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if len(rib.keys()) == 0 {
					gone.Add(1)
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if err := ds[owner].Stop(ctx); err != nil {
		t.Error(err)
	}
	cancel()
	stopped[owner] = true
	handed := time.Now()
	waitFor(t, 20*time.Second, "the other detector adopts the mitigation", func() bool {
		act, _ := other.Mitigator.Active(context.Background())
		return len(act) == 1 && act[0].Key == key
	})
	t.Logf("adopted %s after the owner left", time.Since(handed).Round(time.Millisecond))
	// Past the first expiry: the new owner extends the mitigation on the
	// topic while the attack goes on.
	first, _ := other.Log.Get(key)
	waitFor(t, 20*time.Second, "the adopted mitigation extended by its new owner", func() bool {
		m, ok := other.Log.Get(key)
		return other.Mitigator.Stats().Extended > 0 && ok && m.Expires.After(first.Expires) && m.Origin == other.Policy().Kafka.Node
	})
	close(stop)
	<-watching
	if n := gone.Load(); n > 0 {
		t.Errorf("the rule was missing from the speaker at %d polls while the attack went on", n)
	}
	ended := time.Now()
	waitFor(t, 25*time.Second, "rule withdrawn after the attack", func() bool { return len(rib.keys()) == 0 })
	t.Logf("attack end to withdrawal: %s", time.Since(ended).Round(time.Millisecond))
	if st := other.Mitigator.Stats(); st.Extended == 0 {
		t.Errorf("the adopting detector never extended the mitigation: %+v", st)
	}
}
