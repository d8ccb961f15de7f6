// Ingest: records are grouped by shard, their hosts resolved in passes,
// and counted, with the distinct-flow sets and the backdating of flow
// records.

package detect

import (
	"math"

	"github.com/floodgate-ddos/floodgate/sources"
)

// Ingest counts a batch of records. It is safe for concurrent use and does
// not allocate for hosts already tracked.
func (e *Engine) Ingest(batch []sources.Record) { e.IngestDirections(batch, true, true) }

// IngestDirections counts batch like Ingest, but only toward monitored
// destinations when incoming is set and only from monitored sources when
// outgoing is set. A detector of a cluster uses it: a record monitored on
// both sides reaches it once per side, each copy keyed for one direction.
func (e *Engine) IngestDirections(batch []sources.Record, incoming, outgoing bool) {
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
			din, sin = din && incoming, sin && outgoing
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
	for _, o := range group {
		w := &items[o]
		w.slot = s.hosts[w.dir].peek(w.hash)
		w.fp = e.flowPrint(w, &chunk[w.rec])
		if fs := s.flowSet(w.fp); fs.n < len(fs.slots)*3/4 {
			w.fhome = fs.slots[w.fp&uint64(len(fs.slots)-1)]
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
		gs.add(r, remote, w.key.addr(), mask, v, now, int64(e.cfg.Tick))
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
	if x := h.x; x != nil {
		if x.win != nil {
			x.win.add(p, float64(r.Bytes), v, r.Start, r.End, now, int64(e.cfg.Tick))
		}
	} else if g := w.pe.group; g.suddenly(w.dir, &h.cur) && e.sketches.Load() < int64(e.cfg.MaxSketches) {
		// A flood this tick: the sketch starts now, so that the tick
		// can name what the traffic is at once.
		e.suspect(h, g, nil)
		h.x.sketch.fresh = false
		h.x.win.cur = slot{pkts: h.cur.pkts, bytes: h.cur.bytes, v: h.cur.vpkts}
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

// flowSet returns the distinct-flow set of fingerprint fp.
func (s *shard) flowSet(fp uint64) *flowSet {
	return &s.flows[(fp>>32)%uint64(len(s.flows))]
}

// reset empties the set for its next period, doubling it (up to
// maxFlowSetSize) when it filled up in this one and halving it (down to
// flowSetSize) when it was under an eighth full.
func (fs *flowSet) reset() {
	switch n := len(fs.slots); {
	case fs.n >= n*3/4 && n < maxFlowSetSize:
		fs.slots = make([]uint64, 2*n)
	case fs.n < n/8 && n > flowSetSize:
		fs.slots = make([]uint64, n/2)
	default:
		clear(fs.slots)
	}
	fs.n = 0
}

// addFlow adds the record's flow to its distinct-flow set and reports
// whether it is new in the set's period. A full set counts every flow as
// new, erring towards detection (looking for the flow in it would cost a
// long probe per record, exactly when records come fastest).
func (s *shard) addFlow(e *Engine, w *work, r *sources.Record) bool {
	fp := w.fp
	if fp == 0 {
		fp = e.flowPrint(w, r)
	}
	fs := s.flowSet(fp)
	if fs.n >= len(fs.slots)*3/4 {
		s.flowFull++
		return true
	}
	mask := uint64(len(fs.slots) - 1)
	for i := fp & mask; ; i = (i + 1) & mask {
		switch fs.slots[i] {
		case fp:
			return false
		case 0:
			fs.slots[i] = fp
			fs.n++
			return true
		}
	}
}
