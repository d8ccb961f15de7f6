package detect

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"
	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
)

// Config holds engine settings that are not per hostgroup.
type Config struct {
	// Tick is how often counters become rates. Zero means the policy's.
	Tick time.Duration
	// MaxHosts caps the hosts tracked at once; records for new hosts
	// past it are counted and dropped. Zero means DefaultMaxHosts.
	MaxHosts int
	// MaxSketches caps the hosts whose traffic shape is being described
	// (suspect or attacked hosts). Zero means DefaultMaxSketches.
	MaxSketches int
	// EndRatio is the share of its limit every rate must stay under for
	// EndHold before an attack ends. Zero means DefaultEndRatio.
	EndRatio float64
	// EndHold is how long the rates must stay under the lower mark.
	// Zero means DefaultEndHold.
	EndHold time.Duration
	// IdleTime is how long a host without traffic or attack is kept.
	// Zero means DefaultIdleTime.
	IdleTime time.Duration
	// UpdateEvery bounds how often AttackUpdated is sent for one attack.
	// Zero means DefaultUpdateEvery.
	UpdateEvery time.Duration
}

// Defaults for Config.
const (
	DefaultMaxHosts    = 4 << 20
	DefaultMaxSketches = 4096
	DefaultEndRatio    = 0.8
	DefaultEndHold     = 5 * time.Second
	DefaultIdleTime    = 30 * time.Second
	DefaultUpdateEvery = 5 * time.Second
	suspectRatio       = 0.5  // a sketch starts at half a limit
	calmRatio          = 0.25 // and is dropped under a quarter
	numShards          = 64
	flowSetSize        = 1 << 12 // distinct-flow fingerprints per shard per tick, at first
	maxFlowSetSize     = 1 << 13 // and at most: 4 MB in all, 393k flows per tick
	// maxSpan is the longest span a flow record is taken at: longer ones
	// are counted (OverLong) and spread over maxSpan. Decoders already
	// cap the spans they report at this.
	maxSpan = 10 * time.Minute
	// futureSlack is how far past the current tick a record may end
	// before it counts as future-dated.
	futureSlack = time.Second
	// recordSamples is the most samples one record counts as in the
	// variance of a rate (see count).
	recordSamples = 4
	// minEvidence is the fewest effective samples a rate must rest on
	// for an attack to start, whatever its size: more than one record
	// (recordSamples × 2 at most, with the EWMA's weights) can give.
	minEvidence = 10
	// minWeight is the weight under which a backdated record adds
	// nothing the rates could show: it is counted as late.
	minWeight = 1e-4
)

// Traffic classes counted per host.
type class uint8

const (
	clsTotal class = iota
	clsTCP
	clsSYN
	clsUDP
	clsICMP
	clsFrag
	numClasses
)

var classPrefix = [numClasses]string{"", "tcp_", "tcp_syn_", "udp_", "icmp_", "fragment_"}

type unit uint8

const (
	unitPPS unit = iota
	unitBPS
	unitFlows
)

var unitName = [...]string{"pps", "bps", "flows"}

// limit is one compiled threshold.
type limit struct {
	class class
	unit  unit
	value float64
	name  string
}

type dirLimits struct {
	host     []limit
	relative policies.Relative
	group    []limit
}

func (d *dirLimits) enabled() bool {
	return len(d.host) > 0 || d.relative.Factor > 0
}

// hostgroup is the compiled form of a policies.Hostgroup.
type hostgroup struct {
	name     string
	idx      int
	dir      [2]dirLimits
	tau      time.Duration
	baseline time.Duration
	// lnq is ln of the EWMA's decay over one nominal tick, −tick/tau:
	// the weight of a count backdated j ticks is e^(j·lnq). z is the
	// normal quantile of the detection confidence. Both are fixed when
	// the policy is published (ingestion reads them).
	lnq, z float64
	// burst is the fast path's factor (0: off) and burstTau its EWMA.
	burst    float64
	burstTau time.Duration
	// Written by the tick before hosts are updated: the EWMA weights of
	// this tick (alphaF: the burst EWMA's), and kvar and kvarF, which turn
	// a smoothed variance rate into the variance of the smoothed rate.
	alpha, beta, alphaF float32
	kvar, kvarF         float64
	prefixes            []*prefixEntry
	// carpet is the sketch of the hostgroup's total by direction while
	// it is suspect or attacked (nil otherwise): ingestion feeds it, the
	// tick links it from the group's state.
	carpet [2]atomic.Pointer[groupSketch]
}

type prefixEntry struct {
	group  *hostgroup
	prefix netip.Prefix
	idx    int
	gen    uint64
}

func compileLimits(l policies.Limits, cls class, prefix string) []limit {
	var out []limit
	for u, v := range [...]uint64{l.PPS, l.BPS, l.Flows} {
		if v > 0 && !(unit(u) == unitFlows && cls != clsTotal) {
			out = append(out, limit{class: cls, unit: unit(u), value: float64(v), name: prefix + classPrefix[cls] + unitName[u]})
		}
	}
	return out
}

func compileDir(t policies.Threshold) dirLimits {
	var d dirLimits
	for _, c := range []struct {
		l   policies.Limits
		cls class
	}{{t.Total, clsTotal}, {t.TCP, clsTCP}, {t.TCPSYN, clsSYN}, {t.UDP, clsUDP}, {t.ICMP, clsICMP}, {t.Fragment, clsFrag}} {
		d.host = append(d.host, compileLimits(c.l, c.cls, "")...)
	}
	d.relative = t.Relative
	d.group = compileLimits(t.Group, clsTotal, "group_")
	return d
}

// counters are one tick's counts. Packets and bytes are weighted (a
// backdated flow record counts with the weight its past traffic has in the
// EWMA), hence fractional. vpkts sums packets × (sampling rate − 1): the
// variance of a packet count sampled 1 in S.
type counters struct {
	pkts   float32
	flows  uint32
	bytes  float32
	vpkts  float32
	cpkts  [numClasses - 1]float32 // by class, clsTotal excluded
	cbytes [numClasses - 1]float32
}

func sat32(a uint32, b uint64) uint32 {
	if s := uint64(a) + b; s < math.MaxUint32 {
		return uint32(s)
	}
	return math.MaxUint32
}

func (c *counters) add(mask uint8, pkts, bytes, v float32) {
	c.pkts += pkts
	c.bytes += bytes
	c.vpkts += v
	for k := clsTCP; k < numClasses; k++ {
		if mask&(1<<k) != 0 {
			c.cpkts[k-1] += pkts
			c.cbytes[k-1] += bytes
		}
	}
}

func (c *counters) addCounters(o *counters) {
	c.pkts += o.pkts
	c.bytes += o.bytes
	c.vpkts += o.vpkts
	for k := range o.cpkts {
		c.cpkts[k] += o.cpkts[k]
		c.cbytes[k] += o.cbytes[k]
	}
	c.flows = sat32(c.flows, uint64(o.flows))
}

func (c *counters) class(k class) (pkts, bytes float64) {
	if k == clsTotal {
		return float64(c.pkts), float64(c.bytes)
	}
	return float64(c.cpkts[k-1]), float64(c.cbytes[k-1])
}

// classMask returns the classes r belongs to, as bits by class.
func classMask(r *sources.Record) uint8 {
	var m uint8
	switch r.Proto {
	case 6:
		m |= 1 << clsTCP
		if r.TCPFlags&0x12 == 0x02 { // SYN without ACK
			m |= 1 << clsSYN
		}
	case 17:
		m |= 1 << clsUDP
	case 1, 58:
		m |= 1 << clsICMP
	}
	if r.Fragment {
		m |= 1 << clsFrag
	}
	return m
}

// fastRates are the total rates on the burst EWMA, with their variance
// rate, for the fast path.
type fastRates struct {
	pps, bps, v float32
}

func (f *fastRates) update(c *counters, secs float64, alpha float32) {
	f.pps += alpha * (float32(float64(c.pkts)/secs) - f.pps)
	f.bps += alpha * (float32(float64(c.bytes)*8/secs) - f.bps)
	f.v += alpha * (float32(float64(c.vpkts)/secs) - f.v)
	if f.pps < 0.01 {
		*f = fastRates{}
	}
}

// burstRatio is the fast path's crossing: the total packet or bit rate on
// the burst EWMA, at its lower confidence bound, against factor times its
// limit. It does not allocate.
func burstRatio(lim *dirLimits, f *fastRates, factor, kvar, z float64) crossing {
	var best crossing
	if factor <= 0 {
		return best
	}
	neff := math.Inf(1)
	if v := kvar * float64(f.v); v > 0 {
		neff = float64(f.pps) * float64(f.pps) / v
	}
	for i := range lim.host {
		l := &lim.host[i]
		if l.class != clsTotal || l.unit == unitFlows {
			continue
		}
		v := float64(f.pps)
		if l.unit == unitBPS {
			v = float64(f.bps)
		}
		limit := factor * l.value
		lo := lowerBound(v, neff, z)
		best.point = max(best.point, v/limit)
		if q := lo / limit; q > best.ratio && neff >= minEvidence {
			best = crossing{ratio: q, point: best.point, unit: l.unit, pointUnit: l.unit, name: l.name, value: v, lim: limit, lower: lo, burst: factor}
		}
	}
	return best
}

// rates are smoothed rates per class.
type rates struct {
	pps, bps [numClasses]float32
	flows    float32
	// v is the smoothed variance rate: packets × (sampling − 1) per second.
	v float32
}

func (r *rates) update(c *counters, secs float64, alpha float32) {
	r.v += alpha * (float32(float64(c.vpkts)/secs) - r.v)
	if r.v < 0.01 {
		r.v = 0
	}
	for k := clsTotal; k < numClasses; k++ {
		p, b := c.class(k)
		r.pps[k] += alpha * (float32(p/secs) - r.pps[k])
		r.bps[k] += alpha * (float32(b*8/secs) - r.bps[k])
		if r.pps[k] < 0.01 {
			r.pps[k], r.bps[k] = 0, 0 // settle instead of decaying for ever
		}
	}
	r.flows += alpha * (float32(float64(c.flows)/secs) - r.flows)
	if r.flows < 0.01 {
		r.flows = 0
	}
}

func (r *rates) value(l *limit) float64 {
	switch l.unit {
	case unitBPS:
		return float64(r.bps[l.class])
	case unitFlows:
		return float64(r.flows)
	}
	return float64(r.pps[l.class])
}

// host holds one host's counters in one direction: 192 bytes in a slab
// chunk, plus 8 to 21 in the index.
type host struct {
	// cur and x are what ingestion counts into: together they fill the
	// first 64-byte cache line of the host (hosts are 192 bytes in chunks
	// aligned to 64 bytes); the lookup reads key, on the next line.
	cur     counters
	x       *extra       // only for suspect or attacked hosts
	key     addrKey      // the table's index key
	entry   *prefixEntry // nil for a free slot
	r       rates
	fast    fastRates
	basePPS float32
	baseBPS float32
	quiet   uint16 // ticks without traffic (saturating)
	_       [26]byte
}

// hostSize keeps host a multiple of the cache line (checked by a test).
const hostSize = 192

func (h *host) atk() *attack {
	if h.x == nil {
		return nil
	}
	return h.x.attack
}

func (h *host) sk() *sketch {
	if h.x == nil {
		return nil
	}
	return h.x.sketch
}

func (h *host) setAttack(a *attack) {
	if h.x == nil {
		h.x = &extra{}
	}
	h.x.attack = a
	if a == nil && h.x.sketch == nil {
		h.x = nil
	}
}

func (h *host) setSketch(s *sketch) {
	if h.x == nil {
		h.x = &extra{}
	}
	h.x.sketch = s
	if s == nil && h.x.attack == nil {
		h.x = nil
	}
}

// extra is the state only suspect or attacked hosts have.
type extra struct {
	attack *attack
	sketch *sketch
}

type attack struct {
	sig        Signature
	belowSince time.Time
	lastUpdate time.Time
	reported   Signature // as last sent, to tell material changes
}

// Stats are the engine's counters.
type Stats struct {
	Records     uint64        // records ingested
	Monitored   uint64        // host-directions counted (a record can count twice)
	Hosts       int           // host-directions tracked now
	Refused     uint64        // counts dropped because MaxHosts was reached
	Evicted     uint64        // idle hosts evicted
	Attacks     int           // attacks active now (host and group)
	Sketches    int           // hosts whose traffic shape is tracked
	LastTick    time.Duration // how long the last tick took
	FlowSetFull uint64        // records counted as new flows because a flow set was full
	Late        uint64        // flow records so old that their backdated weight is nil
	FutureDated uint64        // flow records that ended after the current tick, moved to end now
	OverLong    uint64        // flow records spanning more than 10 minutes
}

// Engine counts traffic per monitored host and reports attacks.
type Engine struct {
	cfg    Config
	log    hclog.Logger
	events chan Event
	hseed  uint64 // keys the shard and flow hashes

	state  atomic.Pointer[tableState]
	shards [numShards]shard
	// tickStart is when the tick being counted began (Unix ns; 0 before
	// the first tick): flow records are backdated from it.
	tickStart atomic.Int64

	hosts, sketches, attacks                   atomic.Int64
	records, monitored, refused, evictions     atomic.Uint64
	late, futureDated, overLong, lastTickNanos atomic.Uint64
	nextID                                     atomic.Uint64

	// Owned by the tick.
	last   time.Time
	groups map[groupKey]*groupState
	totals [][2]counters // per prefix entry and direction, reused

	scratch [8]atomic.Pointer[ingestScratch]

	mu      sync.Mutex // guards the tick loop's lifecycle
	cancel  context.CancelFunc
	stopped chan struct{}
}

type groupKey struct {
	name string
	dir  Direction
}

type groupState struct {
	r      rates
	fast   fastRates
	attack *attack
	sk     *groupSketch
}

// tableState is the read-mostly part published atomically: the monitored
// network table and the compiled hostgroups it points into.
type tableState struct {
	gen      uint64
	table    *bart.Table[*prefixEntry]
	groups   []*hostgroup
	prefixes []*prefixEntry
	// overflow counts, per prefix entry and direction, the traffic of
	// hosts refused for MaxHosts, so that hostgroup totals still see it.
	// It is made at the first refusal: most engines never need it.
	overflow atomic.Pointer[[][2]sharedCounters]
}

// sharedCounters are counters that ingest goroutines add to without a
// lock. They are only used for refused hosts, off the hot path.
type sharedCounters struct {
	pkts, bytes, flows, vpkts atomic.Uint64
	cpkts, cbytes             [numClasses - 1]atomic.Uint64
}

func (c *sharedCounters) add(mask uint8, pkts, bytes, v uint64, newFlow bool) {
	c.pkts.Add(pkts)
	c.bytes.Add(bytes)
	c.vpkts.Add(v)
	if newFlow {
		c.flows.Add(1)
	}
	for k := clsTCP; k < numClasses; k++ {
		if mask&(1<<k) != 0 {
			c.cpkts[k-1].Add(pkts)
			c.cbytes[k-1].Add(bytes)
		}
	}
}

// drainTo adds the counts to c and zeroes them.
func (c *sharedCounters) drainTo(o *counters) {
	f := func(v *atomic.Uint64) float32 { return float32(v.Swap(0)) }
	o.pkts += f(&c.pkts)
	o.bytes += f(&c.bytes)
	o.vpkts += f(&c.vpkts)
	o.flows = sat32(o.flows, c.flows.Swap(0))
	for k := range c.cpkts {
		o.cpkts[k] += f(&c.cpkts[k])
		o.cbytes[k] += f(&c.cbytes[k])
	}
}

// overflowFor returns the overflow counters of pe, making them if needed.
func (st *tableState) overflowFor(pe *prefixEntry, dir Direction) *sharedCounters {
	o := st.overflow.Load()
	if o == nil {
		made := make([][2]sharedCounters, len(st.prefixes))
		if !st.overflow.CompareAndSwap(nil, &made) {
			o = st.overflow.Load()
		} else {
			o = &made
		}
	}
	return &(*o)[pe.idx][dir]
}

// addrKey is an address as two words: the index key of a host table.
type addrKey [2]uint64

func keyOf(a netip.Addr) addrKey {
	if a.Is4() {
		b := a.As4()
		return addrKey{0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return addrKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (k addrKey) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k[0])
	binary.BigEndian.PutUint64(b[8:], k[1])
	return netip.AddrFrom16(b).Unmap()
}

// chunkSize is the number of hosts per slab chunk.
const chunkSize = 64

// hostTable holds the hosts of one shard and direction in fixed-size
// chunks, so that the tick walks memory in order and a host costs no
// allocation of its own, with an open-addressing index (linear probing,
// backward-shift deletion, load at most 3/4) from address to host. An
// index slot is 8 bytes: 32 bits of the key's hash as a tag and the host
// index. A lookup reads the slot, then the host only where the tag
// matches, and compares the whole key there; the key and the counters
// are on neighbouring cache lines of the host, fetched together. The
// index costs about 16 bytes per host where a Go map takes about 58.
type hostTable struct {
	seed   uint64
	slots  []uint64 // tag<<32 | host index + 1; 0 is empty
	count  int
	chunks [][]host
	next   uint32   // host indexes below next have been handed out
	free   []uint32 // released host indexes, reused first
}

func (t *hostTable) at(i uint32) *host { return &t.chunks[i/chunkSize][i%chunkSize] }

// home is the first index position for a key of hash h. The low bits of
// h pick the shard and are the same for every key of a table; the high
// 32 bits are the tag.
func (t *hostTable) home(h uint64) int { return int(h/numShards) & (len(t.slots) - 1) }

// peek returns the index slot at the home of hash h, or 0.
func (t *hostTable) peek(h uint64) uint64 {
	if len(t.slots) == 0 {
		return 0
	}
	return t.slots[t.home(h)]
}

func slotOf(h uint64, hi uint32) uint64 { return h&^(1<<32-1) | uint64(hi+1) }

// find returns the index position of k and whether it is there.
func (t *hostTable) find(k addrKey) (int, bool) { return t.findHashed(k, keyHash(k, t.seed)) }

// findHashed is find for a key whose hash h the caller has.
func (t *hostTable) findHashed(k addrKey, h uint64) (int, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := len(t.slots) - 1
	tag := h >> 32
	for i := t.home(h); ; i = (i + 1) & mask {
		sl := t.slots[i]
		if sl == 0 {
			return i, false
		}
		if sl>>32 == tag && t.at(uint32(sl)-1).key == k {
			return i, true
		}
	}
}

func (t *hostTable) get(k addrKey) *host { return t.getHashed(k, keyHash(k, t.seed)) }

func (t *hostTable) getHashed(k addrKey, h uint64) *host {
	i, ok := t.findHashed(k, h)
	if !ok {
		return nil
	}
	return t.at(uint32(t.slots[i]) - 1)
}

// emptyFor returns the first empty index position for a key of hash h.
func (t *hostTable) emptyFor(h uint64) int {
	mask := len(t.slots) - 1
	i := t.home(h)
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	return i
}

func (t *hostTable) grow() {
	old := t.slots
	t.slots = make([]uint64, max(64, 2*len(old)))
	for _, sl := range old {
		if sl != 0 {
			h := keyHash(t.at(uint32(sl)-1).key, t.seed)
			t.slots[t.emptyFor(h)] = sl
		}
	}
}

func (t *hostTable) insert(k addrKey, pe *prefixEntry) *host {
	return t.insertHashed(k, keyHash(k, t.seed), pe)
}

// insertHashed adds a host for k, which is not in the table, whose hash
// h the caller has.
func (t *hostTable) insertHashed(k addrKey, h uint64, pe *prefixEntry) *host {
	if (t.count+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	var hi uint32
	if n := len(t.free); n > 0 {
		hi, t.free = t.free[n-1], t.free[:n-1]
	} else {
		hi = t.next
		t.next++
		if int(hi/chunkSize) == len(t.chunks) {
			t.chunks = append(t.chunks, make([]host, chunkSize))
		}
	}
	t.slots[t.emptyFor(h)] = slotOf(h, hi)
	t.count++
	hp := t.at(hi)
	*hp = host{entry: pe, key: k}
	return hp
}

func (t *hostTable) remove(hi uint32) {
	h := t.at(hi)
	i, ok := t.find(h.key)
	*h = host{}
	t.free = append(t.free, hi)
	if !ok {
		return
	}
	t.count--
	mask := len(t.slots) - 1
	// Backward-shift: move later entries of the probe run into the gap.
	for j := (i + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		home := t.home(keyHash(t.at(uint32(t.slots[j])-1).key, t.seed))
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = 0
}

type shard struct {
	mu       sync.Mutex
	hosts    [2]hostTable // by direction
	flows    []uint64     // open-addressing set of flow fingerprints, cleared every tick
	nflows   int
	flowFull uint64 // records counted as new flows because the set was full
	_        [64]byte
}

// New returns an engine for the hostgroups of pol. It starts nothing. Events
// are delivered on the channel returned by Events.
func New(cfg Config, pol *policies.Policy, logger hclog.Logger) (*Engine, error) {
	if cfg.Tick <= 0 {
		cfg.Tick = pol.Detection.Tick
	}
	if cfg.Tick <= 0 {
		return nil, errors.New("detect: tick must be positive")
	}
	if cfg.MaxHosts <= 0 {
		cfg.MaxHosts = DefaultMaxHosts
	}
	if cfg.MaxSketches <= 0 {
		cfg.MaxSketches = DefaultMaxSketches
	}
	if cfg.EndRatio <= 0 || cfg.EndRatio >= 1 {
		cfg.EndRatio = DefaultEndRatio
	}
	if cfg.EndHold <= 0 {
		cfg.EndHold = DefaultEndHold
	}
	if cfg.IdleTime <= 0 {
		cfg.IdleTime = DefaultIdleTime
	}
	if cfg.UpdateEvery <= 0 {
		cfg.UpdateEvery = DefaultUpdateEvery
	}
	e := &Engine{
		cfg:    cfg,
		log:    logger.Named("detect"),
		events: make(chan Event, 1024),
		hseed:  rand.Uint64(),
		groups: map[groupKey]*groupState{},
	}
	for i := range e.shards {
		for d := range e.shards[i].hosts {
			e.shards[i].hosts[d].seed = e.hseed
		}
		e.shards[i].flows = make([]uint64, flowSetSize)
	}
	e.SetPolicy(pol)
	return e, nil
}

var _ sources.Sink = (*Engine)(nil)

// SetPolicy publishes the monitored networks and thresholds of pol. Hosts
// already tracked keep their counters, rates and baselines; at the next
// tick they move to their new hostgroup, or are dropped if no longer
// monitored and not under attack.
func (e *Engine) SetPolicy(pol *policies.Policy) {
	var gen uint64 = 1
	if old := e.state.Load(); old != nil {
		gen = old.gen + 1
	}
	st := &tableState{gen: gen, table: new(bart.Table[*prefixEntry])}
	for i, hg := range pol.Hostgroups {
		g := &hostgroup{name: hg.Name, idx: i, tau: hg.EWMA, baseline: hg.Baseline,
			lnq: -e.cfg.Tick.Seconds() / hg.EWMA.Seconds(), z: confidenceZ(pol.Detection.Confidence),
			burst: pol.Detection.BurstFactor, burstTau: max(pol.Detection.BurstEWMA, e.cfg.Tick)}
		g.dir[Incoming] = compileDir(hg.Incoming)
		g.dir[Outgoing] = compileDir(hg.Outgoing)
		st.groups = append(st.groups, g)
		for _, p := range hg.Prefixes {
			pe := &prefixEntry{group: g, prefix: p, idx: len(st.prefixes), gen: gen}
			st.prefixes = append(st.prefixes, pe)
			g.prefixes = append(g.prefixes, pe)
			st.table.Insert(p, pe)
		}
	}
	e.state.Store(st)
}

// Events returns the channel on which attack events are delivered. The
// engine blocks its tick, never ingestion, when nobody reads it.
func (e *Engine) Events() <-chan Event { return e.events }

// Ingest counts a batch of records. It is safe for concurrent use and does
// not allocate for hosts already tracked.
func (e *Engine) Ingest(batch []sources.Record) {
	st := e.state.Load()
	now := e.tickStart.Load()
	// Records are counted in chunks grouped by shard, so that each shard
	// lock is taken once per chunk rather than once per record, and the
	// memory accesses of one shard's records can overlap.
	sc := e.getScratch()
	defer e.putScratch(sc)
	items, order := &sc.items, &sc.order
	var monitored uint64
	for start := 0; start < len(batch); start += ingestChunk {
		chunk := batch[start:min(start+ingestChunk, len(batch))]
		n := 0
		var bounds [numShards + 1]uint16
		for i := range chunk {
			r := &chunk[i]
			dpe, din := st.table.Lookup(r.Dst)
			spe, sin := st.table.Lookup(r.Src)
			if din {
				items[n] = e.prepare(i, Incoming, keyOf(r.Dst), dpe)
				bounds[items[n].shard+1]++
				n++
			}
			if sin {
				items[n] = e.prepare(i, Outgoing, keyOf(r.Src), spe)
				bounds[items[n].shard+1]++
				n++
			}
		}
		if n == 0 {
			continue
		}
		monitored += uint64(n)
		for i := 1; i <= numShards; i++ {
			bounds[i] += bounds[i-1]
		}
		pos := bounds
		for i := range n {
			sh := items[i].shard
			order[pos[sh]] = uint16(i)
			pos[sh]++
		}
		for sh := range numShards {
			lo, hi := bounds[sh], bounds[sh+1]
			if lo == hi {
				continue
			}
			e.countGroup(&e.shards[sh], items, order[lo:hi], chunk, now, st)
		}
	}
	e.records.Add(uint64(len(batch)))
	e.monitored.Add(monitored)
}

// countGroup counts the records of one shard in a chunk: items[o] for
// each o in group, whose records are in chunk. It resolves the hosts in
// passes, each over the whole group with little work per record, so that
// the cache misses of different records overlap: first the index slot at
// each key's home (and the flow's slot in the distinct-flow set), then the
// host it points to (most keys are at home), then a full lookup or an
// insert for the rest; then it counts.
func (e *Engine) countGroup(s *shard, items *[2 * ingestChunk]work, group []uint16, chunk []sources.Record, now int64, st *tableState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	room := s.nflows < len(s.flows)*3/4
	fmask := uint64(len(s.flows) - 1)
	for _, o := range group {
		w := &items[o]
		w.slot = s.hosts[w.dir].peek(w.hash)
		w.fp = 0
		if room {
			w.fp = e.flowPrint(w, &chunk[w.rec])
			w.fhome = s.flows[w.fp&fmask]
		}
	}
	for _, o := range group {
		w := &items[o]
		w.h = nil
		if w.slot>>32 == w.hash>>32 {
			if h := s.hosts[w.dir].at(uint32(w.slot) - 1); h.key == w.key {
				w.h = h
			}
		}
	}
	for _, o := range group {
		w := &items[o]
		if w.h != nil {
			continue
		}
		tab := &s.hosts[w.dir]
		w.h = tab.getHashed(w.key, w.hash)
		if w.h == nil && e.hosts.Load() < int64(e.cfg.MaxHosts) {
			w.h = tab.insertHashed(w.key, w.hash, w.pe)
			e.hosts.Add(1)
		}
	}
	for _, o := range group {
		w := &items[o]
		e.count(s, w, &chunk[w.rec], now, st)
	}
}

// ingestChunk is how many records Ingest groups by shard at a time.
const ingestChunk = 1024

// ingestScratch is Ingest's working memory, reused from call to call: on
// the stack it would be cleared on every call, a cost that small batches
// (one datagram's records) would pay in full. The engine keeps a few for
// concurrent callers (a sync.Pool would give them up at every GC).
type ingestScratch struct {
	items [2 * ingestChunk]work
	order [2 * ingestChunk]uint16
}

// work is one record to count for one host-direction.
type work struct {
	key   addrKey
	hash  uint64 // keyHash(key): its low bits pick the shard
	slot  uint64 // the index slot at the key's home, read ahead
	fp    uint64 // flowPrint, when computed ahead (else 0)
	fhome uint64 // the distinct-flow set's slot at fp's home, read ahead
	h     *host  // nil until resolved, or when refused
	pe    *prefixEntry
	rec   int32
	dir   Direction
	shard uint8
}

// mix is a keyed 64-bit mixer (the multiply-fold of wyhash).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^0xa0761d6478bd642f, b^0xe7037ed1a0b428db)
	return hi ^ lo
}

// keyHash is the keyed hash of a host key: its low bits pick the shard,
// the bits above them the home slot in the shard's table.
func keyHash(k addrKey, seed uint64) uint64 { return mix(k[0]^seed, k[1]) }

// flowPrint is the fingerprint of a record's flow (addresses, ports,
// protocol, side) for the distinct-flow sets; never 0.
func (e *Engine) flowPrint(w *work, r *sources.Record) uint64 {
	src, dst := w.key, keyOf(r.Dst)
	if w.dir == Incoming {
		src, dst = keyOf(r.Src), w.key
	}
	h := mix(src[0]^e.hseed, src[1])
	h = mix(h^dst[0], dst[1])
	return mix(h, uint64(r.SrcPort)<<32|uint64(r.DstPort)<<16|uint64(r.Proto)<<8|uint64(w.dir)) | 1
}

func (e *Engine) getScratch() *ingestScratch {
	for i := range e.scratch {
		if sc := e.scratch[i].Swap(nil); sc != nil {
			return sc
		}
	}
	return new(ingestScratch)
}

func (e *Engine) putScratch(sc *ingestScratch) {
	for i := range e.scratch {
		if e.scratch[i].CompareAndSwap(nil, sc) {
			return
		}
	}
}

func (e *Engine) prepare(i int, dir Direction, key addrKey, pe *prefixEntry) work {
	h := keyHash(key, e.hseed)
	return work{key: key, hash: h, pe: pe, rec: int32(i), dir: dir, shard: uint8(h % numShards)}
}

// count adds one record to a host of s, whose lock the caller holds. now
// is the start of the tick being counted (Unix nanoseconds; 0 before the
// first tick).
func (e *Engine) count(s *shard, w *work, r *sources.Record, now int64, st *tableState) {
	remote := r.Src
	if w.dir == Outgoing {
		remote = r.Dst
	}
	mask := classMask(r)
	newFlow := s.addFlow(e, w, r)
	h := w.h
	// The variance of a count sampled 1 in S is Packets·(S−1) (binomial
	// sampling; nothing for unsampled traffic, counted exactly). A record
	// also weighs at least as if it were recordSamples samples of its own
	// size, Packets²/recordSamples: so no single record, however large,
	// makes an attack alone (a corrupted count that passes the decoders'
	// plausibility bounds still needs others to corroborate it).
	p := float64(r.Packets)
	v := max(p*float64(max(r.Sampling, 1)-1), p*p/recordSamples)
	if gs := w.pe.group.carpet[w.dir].Load(); gs != nil {
		gs.add(r, remote, w.key.addr(), mask)
	}
	if h == nil {
		// Still counted in the hostgroup's total; the tick adds the
		// tracked hosts' counts to it.
		e.refused.Add(1)
		st.overflowFor(w.pe, w.dir).add(mask, r.Packets, r.Bytes, uint64(min(v, math.MaxUint64/2)), newFlow)
		return
	}
	wt := 1.0
	if r.End > r.Start && now != 0 {
		wt = e.backdate(w.pe.group.lnq, r.Start, r.End, now)
		if wt < minWeight {
			e.late.Add(1)
			return
		}
	}
	h.cur.add(mask, float32(p*wt), float32(float64(r.Bytes)*wt), float32(v*wt))
	if newFlow {
		h.cur.flows++
	}
	if sk := h.sk(); sk != nil {
		wt := float64(r.Packets)
		if sk.byFlows {
			wt = 0
			if newFlow {
				wt = 1
			}
		}
		sk.add(r, remote, wt, mask)
	}
}

// backdate returns the weight of a flow record that spans [start, end]
// (Unix nanoseconds) in the tick that began at now: the mean, over its
// span, of the weight its traffic would have had in the EWMA had it been
// counted as it happened. Traffic in the current tick weighs 1; traffic j
// ticks back weighs q^j, q = e^lnq, as the tick's update would have
// decayed it. So a record adds what its packets would have added, spread
// evenly over its span: never more than its own rate, however many
// records of one host overlap. A record that ends in the future is moved
// to end now (FutureDated); one longer than maxSpan keeps its rate but is
// taken over its last maxSpan (OverLong).
func (e *Engine) backdate(lnq float64, start, end, now int64) float64 {
	tickNs := float64(e.cfg.Tick)
	span := end - start
	if span > int64(maxSpan) {
		e.overLong.Add(1)
	}
	if limit := now + int64(e.cfg.Tick) + int64(futureSlack); end > limit {
		e.futureDated.Add(1)
		end = now + int64(e.cfg.Tick)
		start = end - span
	}
	if start >= now {
		return 1
	}
	// In ticks before now: the record covers (ub, ua].
	ua := float64(now-start) / tickNs
	ub := max(0, float64(now-end)/tickNs)
	cur := max(0, float64(end-now)/tickNs) // the part in this tick
	return (pastWeight(ua, lnq) - pastWeight(ub, lnq) + cur) / (ua - ub + cur)
}

// pastWeight is the integral over (0, u] ticks back of the weight a count
// has there: q^j in the j-th tick back (q = e^lnq, j = ⌈v⌉). With n = ⌊u⌋
// and f = u − n: q(1−q^n)/(1−q) + f·q^(n+1).
func pastWeight(u, lnq float64) float64 {
	if u <= 0 {
		return 0
	}
	n := math.Floor(u)
	q := math.Exp(lnq)
	qn := math.Exp(n * lnq)
	return q*(1-qn)/(1-q) + (u-n)*qn*q
}

// resizeFlows empties the distinct-flow set for the next tick, doubling it
// (up to maxFlowSetSize) when it filled up in this one and halving it
// (down to flowSetSize) when it was under an eighth full.
func (s *shard) resizeFlows() {
	switch n := len(s.flows); {
	case s.nflows >= n*3/4 && n < maxFlowSetSize:
		s.flows = make([]uint64, 2*n)
	case s.nflows < n/8 && n > flowSetSize:
		s.flows = make([]uint64, n/2)
	default:
		clear(s.flows)
	}
	s.nflows = 0
}

// addFlow adds the record's flow to the distinct-flow set and reports
// whether it is new this tick. A full set counts every flow as new, erring
// towards detection.
func (s *shard) addFlow(e *Engine, w *work, r *sources.Record) bool {
	if s.nflows >= len(s.flows)*3/4 {
		s.flowFull++
		return true
	}
	fp := w.fp
	if fp == 0 {
		fp = e.flowPrint(w, r)
	}
	mask := uint64(len(s.flows) - 1)
	for i := fp & mask; ; i = (i + 1) & mask {
		switch s.flows[i] {
		case fp:
			return false
		case 0:
			s.flows[i] = fp
			s.nflows++
			return true
		}
	}
}

// Start runs the tick loop until ctx is done or Stop is called.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel != nil {
		return errors.New("detect: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	e.stopped = make(chan struct{})
	go func() {
		defer close(e.stopped)
		t := time.NewTicker(e.cfg.Tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				e.tick(ctx, now)
			}
		}
	}()
	return nil
}

// Stop ends the tick loop and waits for it.
func (e *Engine) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	<-e.stopped
	e.cancel = nil
	return nil
}

// Tick turns the counters gathered since the previous tick into rates,
// checks thresholds and delivers events. The tick loop calls it; tests call
// it directly with their own clock.
func (e *Engine) Tick(now time.Time) { e.tick(context.Background(), now) }

func (e *Engine) tick(ctx context.Context, now time.Time) {
	began := time.Now()
	dt := e.cfg.Tick
	if !e.last.IsZero() && now.After(e.last) {
		dt = now.Sub(e.last)
	}
	e.last = now
	secs := dt.Seconds()
	st := e.state.Load()
	for _, g := range st.groups {
		g.alpha = float32(1 - math.Exp(-secs/g.tau.Seconds()))
		// Var(EWMA) = Σ α²(1−α)^2j·Var(count)/secs² = α/((2−α)·secs) ×
		// the smoothed variance rate.
		g.kvar = float64(g.alpha) / ((2 - float64(g.alpha)) * secs)
		g.alphaF = float32(1 - math.Exp(-secs/g.burstTau.Seconds()))
		g.kvarF = float64(g.alphaF) / ((2 - float64(g.alphaF)) * secs)
		g.beta = float32(1 - math.Exp(-secs/g.baseline.Seconds()))
	}
	e.tickStart.Store(now.UnixNano())
	idle := uint16(min(e.cfg.IdleTime/e.cfg.Tick, math.MaxUint16-1))
	if cap(e.totals) < len(st.prefixes) {
		e.totals = make([][2]counters, len(st.prefixes))
	}
	totals := e.totals[:len(st.prefixes)]
	clear(totals)
	var events []Event
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.Lock()
		s.resizeFlows()
		for d := range s.hosts {
			tab := &s.hosts[d]
			for i := uint32(0); i < tab.next; i++ {
				h := tab.at(i)
				if h.entry == nil {
					continue
				}
				k := Host{h.key.addr(), Direction(d)}
				if h.entry.gen != st.gen && !e.rehome(h, k, st) && h.atk() == nil {
					e.drop(tab, i, h)
					continue
				}
				if h.entry.gen == st.gen && h.cur != (counters{}) {
					totals[h.entry.idx][d].addCounters(&h.cur)
				}
				if ev, ok := e.update(k, h, now, secs); ok {
					events = append(events, ev)
				}
				if h.quiet > idle && h.atk() == nil {
					e.drop(tab, i, h)
				}
			}
		}
		s.mu.Unlock()
	}
	if o := st.overflow.Load(); o != nil {
		for j := range *o {
			(*o)[j][0].drainTo(&totals[j][0])
			(*o)[j][1].drainTo(&totals[j][1])
		}
	}
	events = append(events, e.tickGroups(st, totals, now, secs)...)
	e.lastTickNanos.Store(uint64(time.Since(began)))
	for _, ev := range events {
		select {
		case e.events <- ev:
		case <-ctx.Done():
			return
		}
	}
}

func (e *Engine) drop(t *hostTable, i uint32, h *host) {
	if h.sk() != nil {
		e.sketches.Add(-1)
	}
	t.remove(i)
	e.hosts.Add(-1)
	e.evictions.Add(1)
}

// rehome moves a host to its prefix entry in a new policy.
func (e *Engine) rehome(h *host, k Host, st *tableState) bool {
	pe, ok := st.table.Lookup(k.Addr)
	if ok {
		h.entry = pe
	}
	return ok
}

// update advances one host by one tick and reports an event if the host's
// attack state changed.
func (e *Engine) update(k Host, h *host, now time.Time, secs float64) (Event, bool) {
	g := h.entry.group
	h.r.update(&h.cur, secs, g.alpha)
	h.fast.update(&h.cur, secs, g.alphaF)
	total := h.cur.pkts
	if total == 0 {
		h.quiet = min(h.quiet+1, math.MaxUint16)
	} else {
		h.quiet = 0
	}
	if h.atk() == nil {
		h.basePPS += g.beta * (float32(float64(h.cur.pkts)/secs) - h.basePPS)
		h.baseBPS += g.beta * (float32(float64(h.cur.bytes)*8/secs) - h.baseBPS)
	}
	h.cur = counters{}
	if h.sk() != nil {
		f := sketchDecay
		if h.atk() != nil {
			f = sketchDecayAttack
		}
		h.sk().decay(f)
	}

	lim := &g.dir[k.Direction]
	if !lim.enabled() {
		return Event{}, false
	}
	cr := hostRatio(lim, &h.r, h.basePPS, h.baseBPS, g.kvar, g.z)
	cr = withBurst(cr, burstRatio(lim, &h.fast, g.burst, g.kvarF, g.z))
	if h.atk() == nil {
		switch {
		case cr.point > suspectRatio && h.sk() == nil && e.sketches.Load() < int64(e.cfg.MaxSketches):
			h.setSketch(newSketch(cr.pointUnit == unitFlows))
			e.sketches.Add(1)
		case cr.ratio > 1 && h.sk() != nil && h.sk().byFlows != (cr.unit == unitFlows):
			// The limit crossed is not the one the sketch was made
			// for: describe the traffic that crossed it, from the
			// next tick.
			h.setSketch(newSketch(cr.unit == unitFlows))
		case cr.point < calmRatio && h.sk() != nil:
			h.setSketch(nil)
			e.sketches.Add(-1)
		}
		if cr.ratio <= 1 {
			return Event{}, false
		}
		if h.sk() != nil && h.sk().fresh {
			// The sketch started this tick: give it one tick of
			// traffic so that the signature says what the attack is.
			return Event{}, false
		}
		reason := cr.reason()
		a := &attack{sig: Signature{
			ID:        e.nextID.Add(1),
			Victim:    netip.PrefixFrom(k.Addr, k.Addr.BitLen()),
			Direction: k.Direction,
			Hostgroup: g.name,
			Started:   now,
			Metric:    cr.name,
			Reason:    reason,
		}, lastUpdate: now}
		h.setAttack(a)
		e.attacks.Add(1)
		fillRates(&a.sig, &h.r)
		a.sig.Ratio = cr.point
		if h.sk() != nil {
			h.sk().fill(&a.sig)
		}
		a.reported = a.sig
		e.log.Info("attack started", "id", a.sig.ID, "victim", k.Addr.String(), "direction", k.Direction.String(),
			"hostgroup", g.name, "reason", reason, "protocol", a.sig.Dominant())
		return Event{Kind: AttackStarted, At: now, Signature: a.sig}, true
	}
	a := h.atk()
	fillRates(&a.sig, &h.r)
	a.sig.Ratio = cr.point
	if h.sk() != nil {
		h.sk().fill(&a.sig)
	}
	if cr.point >= e.cfg.EndRatio {
		a.belowSince = time.Time{}
		if now.Sub(a.lastUpdate) >= e.cfg.UpdateEvery && material(&a.reported, &a.sig) {
			a.lastUpdate, a.reported = now, a.sig
			return Event{Kind: AttackUpdated, At: now, Signature: a.sig}, true
		}
		return Event{}, false
	}
	if a.belowSince.IsZero() {
		a.belowSince = now
	}
	if now.Sub(a.belowSince) < e.cfg.EndHold {
		return Event{}, false
	}
	h.setAttack(nil)
	e.attacks.Add(-1)
	if h.sk() != nil {
		h.setSketch(nil)
		e.sketches.Add(-1)
	}
	e.log.Info("attack ended", "id", a.sig.ID, "victim", k.Addr.String(), "direction", k.Direction.String(),
		"hostgroup", g.name, "peak_pps", int64(a.sig.PeakPPS), "duration", now.Sub(a.sig.Started).Round(time.Second).String())
	return Event{Kind: AttackEnded, At: now, Signature: a.sig}, true
}

// crossing is the limit that a host (or hostgroup) is surest to be over:
// the one whose lower confidence bound is highest against its value.
type crossing struct {
	// ratio is the lower confidence bound of the rate over the limit: an
	// attack starts when it passes 1.
	ratio float64
	// point is the highest rate/limit ratio of the estimates alone,
	// whatever the confidence: it decides when a sketch starts and when
	// an attack ends.
	point float64
	// unit is the unit of the limit named; pointUnit that of the limit
	// with the highest point ratio.
	unit, pointUnit unit
	name            string
	value, lim      float64
	lower           float64 // the rate's lower confidence bound
	base, floor     float64 // relative limits only
	factor          float64
	burst           float64 // the fast path's factor, when it is that path
}

func (c *crossing) reason() string {
	sure := ""
	if c.lower < c.value*0.995 {
		sure = fmt.Sprintf(" (at least %.0f at the detection confidence)", c.lower)
	}
	if c.factor > 0 {
		return fmt.Sprintf("%s %.0f > %.0f%s (%.1f× baseline %.0f, floor %.0f)", c.name, c.value, c.lim, sure, c.factor, c.base, c.floor)
	}
	if c.burst > 0 {
		return fmt.Sprintf("%s %.0f > %.0f%s (burst: %.1f× the limit on the fast EWMA)", c.name, c.value, c.lim, sure, c.burst)
	}
	return fmt.Sprintf("%s %.0f > %.0f%s", c.name, c.value, c.lim, sure)
}

// withBurst joins the sustained and the fast path's crossings: the surer
// one names the crossing; the point ratio (which starts sketches and ends
// attacks) is the higher of the two.
func withBurst(cr, br crossing) crossing {
	point := max(cr.point, br.point)
	if br.ratio > cr.ratio {
		cr = br
	}
	cr.point = point
	return cr
}

// confidenceZ is the one-sided normal quantile of a confidence level.
func confidenceZ(c float64) float64 {
	if c <= 0 {
		c = policies.DefaultConfidence
	}
	return math.Sqrt2 * math.Erfinv(2*c-1)
}

// lowerBound is a lower confidence bound for a rate estimated from neff
// effective Poisson samples: the Wilson–Hilferty form of the Poisson
// bound, rate·(1 − 1/(9n) − z/(3√n))³, which holds for small counts too.
// An estimate without sampling noise (neff infinite) is its own bound.
func lowerBound(rate, neff, z float64) float64 {
	if rate <= 0 || neff <= 0 {
		return 0
	}
	if math.IsInf(neff, 1) || z <= 0 {
		return rate
	}
	f := 1 - 1/(9*neff) - z/(3*math.Sqrt(neff))
	if f <= 0 {
		return 0
	}
	return rate * f * f * f
}

// hostRatio returns the limit a host is surest to be over, with the lower
// confidence bound of its rate. kvar·r.v is the variance of the smoothed
// packet rate; a class's share of it follows its share of packets, a
// byte rate has the effective samples of its packet rate, and distinct
// flows of sampled traffic are a Poisson count. It does not allocate.
func hostRatio(lim *dirLimits, r *rates, basePPS, baseBPS float32, kvar, z float64) crossing {
	var best crossing
	varTotal := kvar * float64(r.v)
	total := float64(r.pps[clsTotal])
	neffOf := func(k class) float64 {
		if varTotal <= 0 {
			return math.Inf(1)
		}
		return float64(r.pps[k]) * total / varTotal
	}
	pointUnit := unitPPS
	consider := func(v, limit, neff float64, c crossing) {
		lo := lowerBound(v, neff, z)
		if v/limit > best.point {
			best.point, pointUnit = v/limit, c.unit
		}
		if q := lo / limit; q > best.ratio || best.name == "" {
			c.ratio, c.value, c.lim, c.lower, c.point = q, v, limit, lo, best.point
			best = c
		}
	}
	thin := neffOf(clsTotal) < minEvidence
	for i := range lim.host {
		l := &lim.host[i]
		neff := neffOf(l.class)
		if l.unit == unitFlows {
			// Sampled flows come and go with the samples: a Poisson
			// count. Unsampled, the count is exact.
			neff = math.Inf(1)
			if varTotal > 0 {
				neff = float64(r.flows) / kvar
			}
		}
		consider(r.value(l), l.value, neff, crossing{name: l.name, unit: l.unit})
	}
	if rel := lim.relative; rel.Factor > 0 {
		check := func(v, base float64, floor uint64, name string) {
			if floor == 0 {
				return
			}
			limit := max(rel.Factor*base, float64(floor))
			consider(v, limit, neffOf(clsTotal), crossing{name: name, base: base, floor: float64(floor), factor: rel.Factor})
		}
		check(float64(r.pps[clsTotal]), float64(basePPS), rel.FloorPPS, "relative_pps")
		check(float64(r.bps[clsTotal]), float64(baseBPS), rel.FloorBPS, "relative_bps")
	}
	best.pointUnit = pointUnit
	if thin {
		best.ratio = 0 // too few samples or records to start anything
	}
	return best
}

func fillRates(s *Signature, r *rates) {
	s.PPS, s.BPS, s.Flows = float64(r.pps[clsTotal]), float64(r.bps[clsTotal]), float64(r.flows)
	s.PeakPPS, s.PeakBPS = max(s.PeakPPS, s.PPS), max(s.PeakBPS, s.BPS)
	if t := r.pps[clsTotal]; t > 0 {
		share := func(k class) float64 { return min(1, float64(r.pps[k]/t)) }
		s.TCP, s.TCPSYN, s.UDP, s.ICMP, s.Fragment = share(clsTCP), share(clsSYN), share(clsUDP), share(clsICMP), share(clsFrag)
		s.Other = max(0, 1-s.TCP-s.UDP-s.ICMP)
	}
}

// material reports whether an attack changed enough since it was last
// reported to be worth an AttackUpdated: another dominant protocol or top
// port, a rate that doubled or halved, or twice the evidence behind its
// vectors (so that the rule set is decided again on it, a few times at
// most in an attack's life).
func material(old, cur *Signature) bool {
	if evidence(cur) >= 2*evidence(old) && evidence(cur) > 0 {
		return true
	}
	portChanged := func(a, b []Share) bool {
		ta, tb := Top(a), Top(b)
		return ta.Value != tb.Value && max(ta.Share, tb.Share) >= 0.5
	}
	if old.Dominant() != cur.Dominant() || portChanged(old.SrcPorts, cur.SrcPorts) || portChanged(old.DstPorts, cur.DstPorts) {
		return true
	}
	return cur.PPS > 2*old.PPS || cur.PPS < old.PPS/2 || cur.BPS > 2*old.BPS || cur.BPS < old.BPS/2
}

// tickGroups evaluates hostgroup totals against group limits.
func (e *Engine) tickGroups(st *tableState, totals [][2]counters, now time.Time, secs float64) []Event {
	var events []Event
	for _, g := range st.groups {
		for _, dir := range []Direction{Incoming, Outgoing} {
			lim := &g.dir[dir]
			if len(lim.group) == 0 {
				continue
			}
			var sum counters
			var top *prefixEntry
			var topPkts float32
			for _, pe := range g.prefixes {
				c := &totals[pe.idx][dir]
				sum.addCounters(c)
				if c.pkts > topPkts || top == nil {
					top, topPkts = pe, c.pkts
				}
			}
			key := groupKey{g.name, dir}
			gs := e.groups[key]
			if gs == nil {
				gs = &groupState{}
				e.groups[key] = gs
			}
			gs.r.update(&sum, secs, g.alpha)
			gs.fast.update(&sum, secs, g.alphaF)
			gl := &dirLimits{host: lim.group}
			cr := withBurst(hostRatio(gl, &gs.r, 0, 0, g.kvar, g.z), burstRatio(gl, &gs.fast, g.burst, g.kvarF, g.z))
			if ev, ok := e.groupTransition(gs, g, dir, top, cr, now); ok {
				events = append(events, ev)
			}
			switch {
			case gs.sk == nil && cr.point > suspectRatio:
				gs.sk = newGroupSketch()
			case gs.sk != nil && gs.attack == nil && cr.point < calmRatio:
				gs.sk = nil
			case gs.sk != nil:
				gs.sk.decay(gs.attack != nil)
			}
			g.carpet[dir].Store(gs.sk)
		}
	}
	return events
}

func (e *Engine) groupTransition(gs *groupState, g *hostgroup, dir Direction, top *prefixEntry, cr crossing, now time.Time) (Event, bool) {
	if gs.attack == nil {
		if cr.ratio <= 1 || top == nil {
			return Event{}, false
		}
		metric, reason := cr.name, cr.reason()
		gs.attack = &attack{sig: Signature{
			ID: e.nextID.Add(1), Victim: top.prefix, Group: true, Direction: dir, Hostgroup: g.name,
			Started: now, Metric: metric, Reason: reason,
		}, lastUpdate: now}
		e.attacks.Add(1)
		fillRates(&gs.attack.sig, &gs.r)
		gs.attack.sig.Ratio = cr.point
		if gs.sk != nil {
			gs.sk.fill(&gs.attack.sig, top.prefix)
		}
		gs.attack.reported = gs.attack.sig
		e.log.Info("attack on hostgroup total started", "id", gs.attack.sig.ID, "hostgroup", g.name,
			"prefix", top.prefix.String(), "direction", dir.String(), "reason", reason)
		return Event{Kind: AttackStarted, At: now, Signature: gs.attack.sig}, true
	}
	a := gs.attack
	fillRates(&a.sig, &gs.r)
	a.sig.Ratio = cr.point
	if gs.sk != nil {
		gs.sk.fill(&a.sig, top.prefix)
	}
	if cr.point >= e.cfg.EndRatio {
		a.belowSince = time.Time{}
		if now.Sub(a.lastUpdate) >= e.cfg.UpdateEvery && material(&a.reported, &a.sig) {
			a.lastUpdate, a.reported = now, a.sig
			return Event{Kind: AttackUpdated, At: now, Signature: a.sig}, true
		}
		return Event{}, false
	}
	if a.belowSince.IsZero() {
		a.belowSince = now
	}
	if now.Sub(a.belowSince) < e.cfg.EndHold {
		return Event{}, false
	}
	gs.attack = nil
	e.attacks.Add(-1)
	e.log.Info("attack on hostgroup total ended", "id", a.sig.ID, "hostgroup", g.name, "direction", dir.String())
	return Event{Kind: AttackEnded, At: now, Signature: a.sig}, true
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Records:     e.records.Load(),
		Monitored:   e.monitored.Load(),
		Hosts:       int(e.hosts.Load()),
		Refused:     e.refused.Load(),
		Evicted:     e.evictions.Load(),
		Attacks:     int(e.attacks.Load()),
		Sketches:    int(e.sketches.Load()),
		LastTick:    time.Duration(e.lastTickNanos.Load()),
		FlowSetFull: e.flowSetFull(),
		Late:        e.late.Load(),
		FutureDated: e.futureDated.Load(),
		OverLong:    e.overLong.Load(),
	}
}

func (e *Engine) flowSetFull() uint64 {
	var n uint64
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.Lock()
		n += s.flowFull
		s.mu.Unlock()
	}
	return n
}

// HostRates are a host's smoothed rates.
type HostRates struct {
	Host
	Hostgroup       string
	PPS, BPS, Flows float64
	BasePPS         float64
	Attack          bool
}

// Rates returns the smoothed rates of a tracked host.
func (e *Engine) Rates(k Host) (HostRates, bool) {
	k.Addr = k.Addr.Unmap()
	key := keyOf(k.Addr)
	s := &e.shards[keyHash(key, e.hseed)%numShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[k.Direction].get(key)
	if h == nil {
		return HostRates{}, false
	}
	return hostRates(k, h), true
}

func hostRates(k Host, h *host) HostRates {
	return HostRates{Host: k, Hostgroup: h.entry.group.name, PPS: float64(h.r.pps[clsTotal]), BPS: float64(h.r.bps[clsTotal]),
		Flows: float64(h.r.flows), BasePPS: float64(h.basePPS), Attack: h.atk() != nil}
}

// Top returns the n busiest hosts in a direction by "pps", "bps" or
// "flows", busiest first. It walks every host: call it at human rates (a
// live view, an API request), not per record.
func (e *Engine) Top(n int, by string, dir Direction) []HostRates {
	if n <= 0 {
		return nil
	}
	val := func(r *HostRates) float64 {
		switch by {
		case "bps":
			return r.BPS
		case "flows":
			return r.Flows
		}
		return r.PPS
	}
	top := make([]HostRates, 0, n+1)
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.Lock()
		tab := &s.hosts[dir]
		for j := uint32(0); j < tab.next; j++ {
			h := tab.at(j)
			if h.entry == nil {
				continue
			}
			r := hostRates(Host{h.key.addr(), dir}, h)
			if len(top) == n && val(&r) <= val(&top[n-1]) {
				continue
			}
			k := sort.Search(len(top), func(i int) bool { return val(&top[i]) < val(&r) })
			top = append(top, HostRates{})
			copy(top[k+1:], top[k:])
			top[k] = r
			if len(top) > n {
				top = top[:n]
			}
		}
		s.mu.Unlock()
	}
	return top
}

// evidence is how many records (samples) the signature's vectors rest on.
func evidence(s *Signature) float64 {
	n := 0.0
	for _, v := range s.Vectors {
		n += v.Records
	}
	return n
}
