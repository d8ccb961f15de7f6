package cluster

import (
	"net/netip"

	"github.com/gaissmai/bart"

	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/topics"
)

// classifier is the policy's hostgroups as topics.Classifier: the most
// specific monitored prefix decides, as in detection.
type classifier struct {
	tbl bart.Table[classEntry]
}

type classEntry struct {
	hostgroup string
	grouped   bool
}

var _ topics.Classifier = (*classifier)(nil)

func newClassifier(pol *policies.Policy) *classifier {
	c := &classifier{}
	for _, hg := range pol.Hostgroups {
		e := classEntry{hostgroup: hg.Name, grouped: hg.Incoming.Group.Set() || hg.Outgoing.Group.Set()}
		for _, p := range hg.Prefixes {
			c.tbl.Insert(p, e)
		}
	}
	return c
}

// Classify implements topics.Classifier.
func (c *classifier) Classify(a netip.Addr) (string, bool, bool) {
	e, ok := c.tbl.Lookup(a)
	return e.hostgroup, e.grouped, ok
}

// ownerKey is the flow-topic key whose partition owns a mitigation: the
// detector that counts the victim's records decides it, and the detector
// that owns that partition after a rebalance adopts it. A victim in a
// hostgroup with group limits is owned with the group; any other with its
// address (the first of a prefix).
func (c *classifier) ownerKey(dst []byte, victim netip.Prefix) []byte {
	hg, grouped, ok := c.Classify(victim.Addr())
	k := topics.Key{Host: victim.Addr()}
	if ok && grouped {
		k = topics.Key{Hostgroup: hg}
	}
	return k.Append(dst)
}
