// The tick: counters become EWMA rates, which are checked against the
// limits at a confidence bound; attacks on hosts and on hostgroup totals
// start, are updated and end here.

package detect

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/floodgate-ddos/floodgate/policies"
)

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
		s.flows[e.ticks%uint64(len(s.flows))].reset()
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
	e.ticks++
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

type attack struct {
	sig        Signature
	belowSince time.Time
	lastUpdate time.Time
	reported   Signature // as last sent, to tell material changes
}

// update advances one host by one tick and reports an event if the host's
// attack state changed.
func (e *Engine) update(k Host, h *host, now time.Time, secs float64) (Event, bool) {
	g := h.entry.group
	h.r.update(&h.cur, secs, g.alpha)
	h.fast.update(&h.cur, secs, g.alphaF)
	if w := h.win(); w != nil {
		w.push(secs)
	}
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
	fast := burstRatio(lim, &h.fast, g.burst, g.kvarF, g.z)
	if w := h.win(); w != nil {
		// A suspect host's burst path is its window, where flow records
		// are placed in the ticks they cover: the fast EWMA takes them
		// with the sustained EWMA's backdating, so records that arrive
		// late and bunched (a second's worth in one tick) would read as
		// a burst there. Its estimate still counts for the point ratio.
		br := windowRatio(lim, &h.r, w, g.burst, g.z)
		br.point = fast.point
		cr = withBurst(withBurst(cr, br), windowRatio(lim, &h.r, w, 1, g.z))
	} else {
		cr = withBurst(cr, fast)
	}
	if h.atk() == nil {
		switch {
		case cr.point > suspectRatio && h.sk() == nil && e.sketches.Load() < int64(e.cfg.MaxSketches):
			e.suspect(h, g, newSketch(cr.pointUnit == unitFlows))
		case cr.ratio > 1 && h.sk() != nil && h.sk().byFlows != (cr.unit == unitFlows):
			// The limit crossed is not the one the sketch was made
			// for: describe the traffic that crossed it, from the
			// next tick.
			h.x.sketch = newSketch(cr.unit == unitFlows)
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
	window          float64 // the seconds of counts it was judged on, when a window
}

func (c *crossing) reason() string {
	sure := ""
	if c.lower < c.value*0.995 {
		sure = fmt.Sprintf(" (at least %.0f at the detection confidence)", c.lower)
	}
	if c.factor > 0 {
		return fmt.Sprintf("%s %.0f > %.0f%s (%.1f× baseline %.0f, floor %.0f)", c.name, c.value, c.lim, sure, c.factor, c.base, c.floor)
	}
	over := "on the fast EWMA"
	if c.window > 0 {
		over = fmt.Sprintf("over the last %.1f s", c.window)
	}
	if c.burst > 0 {
		return fmt.Sprintf("%s %.0f > %.0f%s (burst: %.1f× the limit %s)", c.name, c.value, c.lim, sure, c.burst, over)
	}
	if c.window > 0 {
		return fmt.Sprintf("%s %.0f > %.0f%s (%s)", c.name, c.value, c.lim, sure, over)
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

// evidence is how many records (samples) the signature's vectors rest on.
func evidence(s *Signature) float64 {
	n := 0.0
	for _, v := range s.Vectors {
		n += v.Records
	}
	return n
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
			// As for a host: a suspect group's burst path is its window.
			fast := burstRatio(gl, &gs.fast, g.burst, g.kvarF, g.z)
			br, wr := fast, crossing{}
			if gs.sk != nil {
				gs.sk.mu.Lock()
				if w := gs.sk.win; w != nil {
					w.push(secs)
					br, wr = windowRatio(gl, &gs.r, w, g.burst, g.z), windowRatio(gl, &gs.r, w, 1, g.z)
					br.point = fast.point
				}
				gs.sk.mu.Unlock()
			}
			cr := withBurst(withBurst(hostRatio(gl, &gs.r, 0, 0, g.kvar, g.z), br), wr)
			if ev, ok := e.groupTransition(gs, g, dir, top, cr, now); ok {
				events = append(events, ev)
			}
			switch {
			case gs.sk == nil && cr.point > suspectRatio:
				gs.sk = newGroupSketch()
				gs.sk.win = e.newWindow(g, &gs.r, &gs.fast)
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
