package topics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/floodgate-ddos/floodgate/flowspec"
)

// MitigationTopicV1 is the default name of the mitigation topic: a
// compacted topic keyed by the announcement's key (flowspec.Announcement.Key)
// whose latest value is the mitigation as its detector decided it, and a
// tombstone (a record with no value) once it is withdrawn. Every speaker
// reads it whole and announces exactly the set it holds.
const MitigationTopicV1 = "floodgate-mitigations-v1"

// A mitigation message is MitigationMagic, the version byte and a JSON
// object (Mitigation). A new version that an old speaker cannot read gets
// a new topic.
const (
	MitigationMagic   = "FGM"
	MitigationVersion = 1

	// maxMitigation bounds a message: a mitigation is a rule and a few
	// fields.
	maxMitigation = 64 << 10
)

// Mitigation is one decision on the mitigation topic.
type Mitigation struct {
	// Key is the announcement's key, the message's key too.
	Key string `json:"key"`
	// Announcement is what to announce; every speaker checks it again
	// against its own policy before it does.
	Announcement flowspec.Announcement `json:"announcement"`
	// Hostgroup and Response name the policy that decided ("manual" for
	// a ban from an API).
	Hostgroup string `json:"hostgroup"`
	Response  string `json:"response"`
	// Victim is the attacked host or prefix.
	Victim netip.Prefix `json:"victim"`
	// Reason explains it, for operators.
	Reason string `json:"reason,omitempty"`
	// Started is when it was first announced; Expires when every speaker
	// withdraws it unless a newer message extends it.
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
	// Origin names the node that decided.
	Origin string `json:"origin"`

	// The rest is the deciding detector's state, so that another
	// detector can adopt the mitigation (extend it while the attack
	// lasts, escalate it, withdraw it at its time); speakers need none
	// of it.

	// AttackPPS is the attack's smoothed rate when it was decided.
	AttackPPS float64 `json:"attack_pps,omitempty"`
	// Duration, Extend and Hold are the response's settings.
	Duration time.Duration `json:"duration,omitempty"`
	Extend   bool          `json:"extend,omitempty"`
	Hold     time.Duration `json:"hold,omitempty"`
	// EscalateAt, when set, is when an escalation is due if the attack
	// is still on; Escalated records that it was made, Escalation that
	// this mitigation is one.
	EscalateAt time.Time `json:"escalate_at,omitzero"`
	Escalated  bool      `json:"escalated,omitempty"`
	Escalation bool      `json:"escalation,omitempty"`
	// AttackEnded is when the attack ended, zero while it goes on.
	AttackEnded time.Time `json:"attack_ended,omitzero"`
	// Rule and Rules place the rule in its attack's rule set.
	Rule  int `json:"rule,omitempty"`
	Rules int `json:"rules,omitempty"`
	// DryRun marks a decision that speakers only log.
	DryRun bool `json:"dry_run,omitempty"`
	// Manual marks a ban from an API.
	Manual bool `json:"manual,omitempty"`
}

// ErrMitigation reports a mitigation message that does not decode or
// does not hold together.
var ErrMitigation = errors.New("bad mitigation message")

// AppendMitigation appends m's message to dst.
func AppendMitigation(dst []byte, m *Mitigation) ([]byte, error) {
	if err := m.check(); err != nil {
		return dst, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return dst, fmt.Errorf("mitigation %s: %w", m.Key, err)
	}
	dst = append(dst, MitigationMagic...)
	dst = append(dst, MitigationVersion)
	return append(dst, b...), nil
}

// DecodeMitigation reads a mitigation message. key is the Kafka record's
// key, which must be the mitigation's own.
func DecodeMitigation(key, msg []byte) (Mitigation, error) {
	var m Mitigation
	switch {
	case len(msg) > maxMitigation:
		return m, fmt.Errorf("%d bytes: %w", len(msg), ErrMitigation)
	case len(msg) < len(MitigationMagic)+1 || string(msg[:3]) != MitigationMagic:
		return m, fmt.Errorf("no mitigation magic: %w", ErrMitigation)
	case msg[3] != MitigationVersion:
		return m, fmt.Errorf("version %d: %w", msg[3], ErrMitigation)
	}
	dec := json.NewDecoder(bytes.NewReader(msg[4:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Mitigation{}, fmt.Errorf("%v: %w", err, ErrMitigation)
	}
	if dec.More() {
		return Mitigation{}, fmt.Errorf("data after the object: %w", ErrMitigation)
	}
	if string(key) != m.Key {
		return Mitigation{}, fmt.Errorf("record key %q is not the mitigation's %q: %w", key, m.Key, ErrMitigation)
	}
	if err := m.check(); err != nil {
		return Mitigation{}, err
	}
	return m, nil
}

// check is what holds of every mitigation on the topic; the safety checks
// against a policy are the speaker's.
func (m *Mitigation) check() error {
	a := &m.Announcement
	switch a.Kind {
	case flowspec.RTBH:
		if !a.Prefix.IsValid() || a.Prefix.Masked() != a.Prefix {
			return fmt.Errorf("rtbh prefix %s: %w", a.Prefix, ErrMitigation)
		}
	case flowspec.FlowSpec:
		if a.Rule == nil {
			return fmt.Errorf("flowspec without a rule: %w", ErrMitigation)
		}
		if err := a.Rule.Validate(); err != nil {
			return fmt.Errorf("%v: %w", err, ErrMitigation)
		}
		if err := a.Action.Validate(); err != nil {
			return fmt.Errorf("%v: %w", err, ErrMitigation)
		}
	default:
		return fmt.Errorf("kind %d: %w", a.Kind, ErrMitigation)
	}
	switch {
	case m.Key != a.Key():
		return fmt.Errorf("key %q is not the announcement's %q: %w", m.Key, a.Key(), ErrMitigation)
	case m.Expires.IsZero() || m.Expires.Before(m.Started):
		return fmt.Errorf("expires %s, started %s: %w", m.Expires, m.Started, ErrMitigation)
	}
	return nil
}
