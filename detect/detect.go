// Package detect owns attack detection: the table of monitored networks,
// per-host and per-hostgroup counters by direction and protocol,
// EWMA-smoothed rates and slow baselines, the threshold checks with
// hysteresis that start and end attacks, and the Signature that describes
// each attack. It does no I/O and knows nothing of BGP: records come in
// through Ingest, events go out on a channel.
//
// The files by concept: detect.go the package's public types (Event,
// Signature, Host); engine.go the Engine's assembly (Config, New,
// SetPolicy, Start, Stop, Stats); limits.go the threshold compiler
// (hostgroups and limits from a policy); counters.go a tick's counters by
// traffic class; hosttable.go the per-shard host table and the host
// record; ingest.go Ingest, the distinct-flow sets and the backdating of
// flow records; tick.go the tick, the rates and confidence bounds, and
// the life of host and hostgroup attacks; top.go the read-only views
// (Rates, Top); sketch.go the sketches that describe an attack's traffic.
package detect

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/floodgate-ddos/floodgate/sources"
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
// Shares are of packets, from 0 to 1, over the last second or so.
type Signature struct {
	// ID identifies the attack for its whole life.
	ID uint64
	// Victim is the attacked host as a /32 or /128, or for an attack on a
	// hostgroup's total the monitored prefix that received the most.
	Victim netip.Prefix
	// Group is true for an attack seen on a hostgroup's total rather
	// than on one host (carpet bombing).
	Group bool
	// Direction is the direction of the attack traffic.
	Direction Direction
	// Hostgroup is the name of the hostgroup the victim is in.
	Hostgroup string
	// Started is when the attack was detected.
	Started time.Time
	// PPS, BPS and Flows are the smoothed rates when the event was made;
	// Flows counts distinct flows per second.
	PPS, BPS, Flows float64
	// PeakPPS and PeakBPS are the highest smoothed rates seen so far.
	PeakPPS, PeakBPS float64
	// Metric names the limit that was crossed ("pps", "udp_bps",
	// "tcp_syn_pps", "flows", "relative_pps", "group_bps", ...) and
	// Reason says it with the figures.
	Metric, Reason string
	// Shares of packets by class. Other is what is not TCP, UDP or ICMP.
	TCP, TCPSYN, UDP, ICMP, Fragment, Other float64
	// Protocols are the top IP protocol numbers with their shares.
	Protocols []Share
	// SrcPorts and DstPorts are the top transport ports (TCP and UDP)
	// with their shares of all packets.
	SrcPorts, DstPorts []Share
	// TCPFlags are the top TCP flag combinations with their shares of
	// TCP packets.
	TCPFlags []Share
	// Lengths is the packet length histogram: Lengths[i] is the share of
	// packets whose length is at most LengthBounds[i] (and above the
	// previous bound); the last bucket holds the rest.
	Lengths [len(LengthBounds) + 1]float64
	// AvgLength is the average packet length in bytes.
	AvgLength float64
	// SrcPrefixes are the top source networks (/24 for IPv4, /64 for
	// IPv6) with their shares.
	SrcPrefixes []PrefixShare
	// Vectors split the traffic by what a FlowSpec rule can tell apart,
	// heaviest first: one per protocol, with TCP SYN without ACK and
	// non-first fragments apart.
	Vectors []Vector
	// Ratio is the crossed limit's rate over the limit (point estimate)
	// when the event was made; for a hostgroup total, of its group limit.
	Ratio float64
	// Samples are a few records of the attack traffic.
	Samples []sources.Record
}

// VectorKind tells the kinds of vector of one protocol apart.
type VectorKind uint8

// Vector kinds.
const (
	VectorPlain    VectorKind = iota // the protocol's other packets
	VectorSYN                        // TCP with SYN and without ACK
	VectorFragment                   // non-first fragments (no transport header)
)

// String names the kind.
func (k VectorKind) String() string {
	switch k {
	case VectorSYN:
		return "syn"
	case VectorFragment:
		return "fragment"
	}
	return "plain"
}

// Vector is one kind of packet in an attack's traffic.
type Vector struct {
	Proto uint8
	Kind  VectorKind
	// Share is the vector's share of all packets.
	Share float64
	// Records is how many records (samples) the vector's figures rest
	// on, decayed as its shares are.
	Records float64
	// SrcPorts and DstPorts are the top ports within the vector (TCP and
	// UDP, not fragments), as shares of the vector's packets; for ICMP and
	// ICMPv6, DstPorts are the top ICMP types.
	SrcPorts, DstPorts []Share
	// Lengths is the vector's packet length histogram (as Signature's),
	// as shares of its packets.
	Lengths [len(LengthBounds) + 1]float64
	// SrcPortLengths and DstPortLengths are the length histograms of the
	// packets of each port of SrcPorts and DstPorts, as shares of the
	// vector's packets.
	SrcPortLengths, DstPortLengths [][len(LengthBounds) + 1]float64
}

// LengthBounds are the upper bounds of the packet length histogram.
var LengthBounds = [...]int{64, 128, 256, 512, 1024, 1500}

// Share is a value (a port, a protocol number, a flags byte) and the share
// of packets that carry it.
type Share struct {
	Value int
	Share float64
}

// PrefixShare is a source network and its share of packets.
type PrefixShare struct {
	Prefix netip.Prefix
	Share  float64
}

// Dominant returns the name of the protocol class with the largest share:
// "tcp", "udp", "icmp" or "other".
func (s *Signature) Dominant() string {
	best, name := s.Other, "other"
	for _, c := range []struct {
		v float64
		n string
	}{{s.TCP, "tcp"}, {s.UDP, "udp"}, {s.ICMP, "icmp"}} {
		if c.v > best {
			best, name = c.v, c.n
		}
	}
	return name
}

// Top returns the first share of list, or a zero Share.
func Top(list []Share) Share {
	if len(list) == 0 {
		return Share{}
	}
	return list[0]
}

// Host identifies one tracked host and direction.
type Host struct {
	Addr      netip.Addr
	Direction Direction
}

// MarshalText writes "incoming" or "outgoing".
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads "incoming" or "outgoing".
func (d *Direction) UnmarshalText(b []byte) error {
	switch string(b) {
	case "incoming":
		*d = Incoming
	case "outgoing":
		*d = Outgoing
	default:
		return fmt.Errorf("direction %q is not incoming or outgoing", b)
	}
	return nil
}
