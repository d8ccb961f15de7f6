package cluster

import (
	"context"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/topics"
)

// toTopic is m as the mitigation topic carries it.
func toTopic(m *controller.Mitigation) topics.Mitigation {
	return topics.Mitigation{
		Key: m.Key, Announcement: m.Announcement, Hostgroup: m.Hostgroup, Response: m.Response, Victim: m.Victim,
		Reason: m.Reason, Started: m.Started, Expires: m.Expires, AttackPPS: m.AttackPPS, Duration: m.Duration,
		Extend: m.Extend, Hold: m.Hold, EscalateAt: m.EscalateAt, Escalated: m.Escalated, Escalation: m.Escalation,
		AttackEnded: m.AttackEnded, Rule: m.Rule, Rules: m.Rules, DryRun: m.DryRun, Manual: m.Manual,
	}
}

// fromTopic is the mitigation loop's view of t.
func fromTopic(t *topics.Mitigation) controller.Mitigation {
	return controller.Mitigation{
		Key: t.Key, Announcement: t.Announcement, Hostgroup: t.Hostgroup, Response: t.Response, Victim: t.Victim,
		Reason: t.Reason, Started: t.Started, Expires: t.Expires, AttackPPS: t.AttackPPS, Duration: t.Duration,
		Extend: t.Extend, Hold: t.Hold, EscalateAt: t.EscalateAt, Escalated: t.Escalated, Escalation: t.Escalation,
		AttackEnded: t.AttackEnded, Rule: t.Rule, Rules: t.Rules, DryRun: t.DryRun, Manual: t.Manual,
	}
}

// logStore is a detector's mitigation store: the mitigation topic. Put
// and Delete are the detector's decisions (announce and extend, withdraw);
// Load is empty, as a detector starts with no partition and adopts what
// it comes to own.
type logStore struct{ log *Log }

var _ controller.MitigationStore = logStore{}

func (s logStore) Put(m *controller.Mitigation) error {
	t := toTopic(m)
	return s.log.Put(context.Background(), &t)
}

func (s logStore) Delete(key string) error { return s.log.Delete(context.Background(), key) }

func (logStore) Load() ([]*controller.Mitigation, error) { return nil, nil }
