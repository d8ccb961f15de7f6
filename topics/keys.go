package topics

import (
	"net/netip"

	"github.com/floodgate-ddos/floodgate/sources"
)

// Classifier tells where a monitored address belongs.
type Classifier interface {
	// Classify returns the hostgroup that monitors a and whether that
	// hostgroup has group limits; ok is false for an address no
	// hostgroup monitors.
	Classify(a netip.Addr) (hostgroup string, grouped, ok bool)
}

// Key is a partition key of the flow topic: the unit whose records must
// all reach one detector.
type Key struct {
	// Side is the direction the key was chosen for; the detector counts
	// the records only in that direction.
	Side Side
	// Hostgroup names a hostgroup with group limits (its total is one
	// count); empty for a host key.
	Hostgroup string
	// Host is the monitored address of a host key.
	Host netip.Addr
}

// Append appends the key's bytes, "g:<hostgroup>" or "h:<address>", to b.
func (k Key) Append(b []byte) []byte {
	if k.Hostgroup != "" {
		return append(append(b, "g:"...), k.Hostgroup...)
	}
	return k.Host.AppendTo(append(b, "h:"...))
}

// Keys returns the partition keys r is published under: one per
// direction in which it is monitored. The rule keeps every count whole:
// a record toward (from) a monitored address is keyed by its hostgroup
// when that hostgroup has group limits, so the group total is counted in
// one place, and otherwise by the address itself, the destination for
// incoming traffic and the source for outgoing. A record monitored on
// both sides gets two keys, each for its side, unless both sides fall
// under one key, which then counts both (SideBoth). A record of no
// monitored address gets none and is not published.
func Keys(r *sources.Record, c Classifier) (keys [2]Key, n int) {
	if hg, grouped, ok := c.Classify(r.Dst); ok {
		keys[n] = Key{Side: SideIncoming, Host: r.Dst}
		if grouped {
			keys[n] = Key{Side: SideIncoming, Hostgroup: hg}
		}
		n++
	}
	if hg, grouped, ok := c.Classify(r.Src); ok {
		k := Key{Side: SideOutgoing, Host: r.Src}
		if grouped {
			k = Key{Side: SideOutgoing, Hostgroup: hg}
		}
		if n == 1 && k.Hostgroup == keys[0].Hostgroup && k.Host == keys[0].Host {
			keys[0].Side = SideBoth
			return keys, 1
		}
		keys[n] = k
		n++
	}
	return keys, n
}
