// Package detect owns attack detection: the table of monitored networks,
// per-host counters by direction and protocol, EWMA-smoothed rates, the
// threshold checks with hysteresis that start and end attacks, and the
// Signature that describes each attack. It does no I/O and knows nothing of
// BGP: records come in through Ingest, events go out on a channel.
package detect

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/floodgate-ddos/floodgate/policies"
)

// Direction is the side of a monitored host the traffic is on.
type Direction uint8

// Directions.
const (
	Incoming Direction = iota // traffic to a monitored host
	Outgoing                  // traffic from a monitored host
)

// String returns "incoming" or "outgoing".
func (d Direction) String() string {
	if d == Outgoing {
		return "outgoing"
	}
	return "incoming"
}

// EventKind tells what happened to an attack.
type EventKind uint8

// Event kinds.
const (
	AttackStarted EventKind = iota + 1
	AttackUpdated
	AttackEnded
)

// String names the kind.
func (k EventKind) String() string {
	switch k {
	case AttackStarted:
		return "attack_started"
	case AttackUpdated:
		return "attack_updated"
	case AttackEnded:
		return "attack_ended"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event reports a change in an attack's life.
type Event struct {
	Kind      EventKind
	At        time.Time
	Signature Signature
}

// Signature describes an attack: who is hit, how hard, and what the traffic
// looks like, as shares of the victim's traffic in the attack direction.
type Signature struct {
	// ID identifies the attack for its whole life.
	ID uint64
	// Victim is the attacked host, as a /32 or /128.
	Victim netip.Prefix
	// Direction is the direction of the attack traffic.
	Direction Direction
	// Hostgroup is the name of the hostgroup the victim is in.
	Hostgroup string
	// Started is when the attack was detected.
	Started time.Time
	// PPS and BPS are the smoothed rates when the event was made.
	PPS, BPS float64
	// PeakPPS and PeakBPS are the highest smoothed rates seen so far.
	PeakPPS, PeakBPS float64
	// Reason names the threshold that was crossed, such as
	// "pps 52000 > 20000".
	Reason string
	// Protocol shares of packets in the last tick, from 0 to 1.
	TCP, TCPSYN, UDP, ICMP, Fragment, Other float64
}

// Host identifies one tracked host and direction.
type Host struct {
	Addr      netip.Addr
	Direction Direction
}

// hostgroup is the compiled form of a policies.Hostgroup used on the hot
// path.
type hostgroup struct {
	name     string
	incoming policies.Threshold
	outgoing policies.Threshold
	tau      time.Duration
}

func (g *hostgroup) threshold(d Direction) policies.Threshold {
	if d == Outgoing {
		return g.outgoing
	}
	return g.incoming
}
