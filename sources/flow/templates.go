package flow

import (
	"errors"
	"maps"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// templateCache is the NetFlow v9 and IPFIX template store of one exporter
// address: templates keyed by version, observation domain (v9: source ID)
// and template ID, at most max of them over all domains, each dropped ttl
// after it was last announced (RFC 7011 section 8.4: over UDP, a template
// not refreshed within its lifetime is discarded).
//
// All the caches of one decoder share a budget of template fields, so that
// exporters (whose addresses may be spoofed) cannot make the decoder hold
// more than that however many of them there are; a template that does not
// fit is refused, and its datagram counted as malformed.
//
// It implements netflow.NetFlowTemplateSystem for goflow2's decoder. It is
// owned by one Decoder, which is owned by one goroutine, so it has no lock;
// the decoder sets now before each datagram, so that the clock is an input
// and not read here.
type templateCache struct {
	now     time.Time
	ttl     time.Duration
	max     int
	entries map[uint64]templateEntry
	// dropped counts templates removed because they expired or because the
	// cache was full; it points into the owning decoder's counters.
	dropped *uint64
	budget  *templateBudget
	fields  int // fields held by this cache, charged to budget
}

// templateBudget is the number of template fields a decoder may hold.
type templateBudget struct {
	used, max int
}

// errTemplateBudget refuses a template when the decoder holds as many
// template fields as it may.
var errTemplateBudget = errors.New("template field budget exhausted")

type templateEntry struct {
	template any
	added    time.Time
	fields   int
}

// templateFields returns what a template costs against the budget: its
// fields plus one for the record itself.
func templateFields(t any) int {
	switch t := t.(type) {
	case netflow.TemplateRecord:
		return 1 + len(t.Fields)
	case netflow.NFv9OptionsTemplateRecord:
		return 1 + len(t.Scopes) + len(t.Options)
	case netflow.IPFIXOptionsTemplateRecord:
		return 1 + len(t.Scopes) + len(t.Options)
	}
	return 1
}

var _ netflow.NetFlowTemplateSystem = (*templateCache)(nil)

func newTemplateCache(max int, ttl time.Duration, dropped *uint64, budget *templateBudget) *templateCache {
	return &templateCache{max: max, ttl: ttl, entries: make(map[uint64]templateEntry), dropped: dropped, budget: budget}
}

// remove deletes the entry at k and gives its fields back to the budget.
func (c *templateCache) remove(k uint64, e templateEntry) {
	delete(c.entries, k)
	c.fields -= e.fields
	c.budget.used -= e.fields
}

// release gives every field of the cache back to the budget; the decoder
// calls it when it drops the exporter.
func (c *templateCache) release() {
	c.budget.used -= c.fields
	c.fields = 0
	clear(c.entries)
}

func templateKey(version uint16, domain uint32, id uint16) uint64 {
	return uint64(version)<<48 | uint64(domain)<<16 | uint64(id)
}

func (c *templateCache) expired(e templateEntry) bool {
	return c.ttl > 0 && c.now.Sub(e.added) > c.ttl
}

// AddTemplate stores or refreshes a template. When the cache is full, an
// expired template makes room, else the one announced longest ago.
func (c *templateCache) AddTemplate(version uint16, domain uint32, id uint16, template any) error {
	k := templateKey(version, domain, id)
	old, ok := c.entries[k]
	if !ok && len(c.entries) >= c.max {
		c.evict()
	}
	n := templateFields(template)
	if c.budget.used-old.fields+n > c.budget.max {
		return errTemplateBudget
	}
	if ok {
		c.remove(k, old)
	}
	c.entries[k] = templateEntry{template: template, added: c.now, fields: n}
	c.fields += n
	c.budget.used += n
	return nil
}

// evict removes every expired template or, if none has expired, the oldest.
// It runs only when a new template arrives in a full cache, and the cache
// is small (hundreds), so a scan is cheap enough.
func (c *templateCache) evict() {
	var oldest uint64
	var oldestAdded time.Time
	for k, e := range c.entries {
		if c.expired(e) {
			c.remove(k, e)
			*c.dropped++
			continue
		}
		if oldestAdded.IsZero() || e.added.Before(oldestAdded) {
			oldest, oldestAdded = k, e.added
		}
	}
	if len(c.entries) >= c.max {
		c.remove(oldest, c.entries[oldest])
		*c.dropped++
	}
}

// GetTemplate returns a live template, or netflow.ErrorTemplateNotFound
// for an unknown or expired one.
func (c *templateCache) GetTemplate(version uint16, domain uint32, id uint16) (any, error) {
	k := templateKey(version, domain, id)
	e, ok := c.entries[k]
	if !ok {
		return nil, netflow.ErrorTemplateNotFound
	}
	if c.expired(e) {
		c.remove(k, e)
		*c.dropped++
		return nil, netflow.ErrorTemplateNotFound
	}
	return e.template, nil
}

// RemoveTemplate removes a template (goflow2 does not call it today; an
// IPFIX template withdrawal would).
func (c *templateCache) RemoveTemplate(version uint16, domain uint32, id uint16) (any, error) {
	k := templateKey(version, domain, id)
	e, ok := c.entries[k]
	if !ok {
		return nil, netflow.ErrorTemplateNotFound
	}
	c.remove(k, e)
	return e.template, nil
}

// GetTemplates returns a copy of the live templates.
func (c *templateCache) GetTemplates() netflow.FlowBaseTemplateSet {
	out := make(netflow.FlowBaseTemplateSet, len(c.entries))
	for k, e := range maps.All(c.entries) {
		if !c.expired(e) {
			out[k] = e.template
		}
	}
	return out
}

// len returns the number of templates held, expired ones included until
// they are looked up or evicted.
func (c *templateCache) len() int { return len(c.entries) }
