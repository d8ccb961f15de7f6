// The confidence window: a suspect host's (or hostgroup's) counts over its
// last ticks, each record in the ticks it covers, so that confidence is
// judged on a window that an attack fills, where the EWMA still mixes in
// the traffic from before it.

package detect

import (
	"math"
	"time"
)

// slot is one tick's counts in a window: packets, bytes, the variance of
// the packet count, and the tick's length in seconds.
type slot struct {
	pkts, bytes, v, secs float32
}

// window is the ring of a suspect host's last ticks. cur is the tick
// being counted; slots[pos-1] is the newest tick, slots[pos] the oldest.
// Flow records are placed in the ticks their spans cover (see add).
type window struct {
	cur   slot
	slots []slot
	pos   int
}

// newWindow makes the window of a host that has just become suspect. The
// ticks before it are seeded from the host's EWMAs: the older ones from
// the sustained rates, the newest nfast from the fast ones, with the
// variance rates they rest on. The EWMAs lag a rising rate, so the seed
// errs towards too little, never towards an attack.
func newWindow(length time.Duration, tick time.Duration, r *rates, f *fastRates, nfast int) *window {
	n := max(2, int(math.Ceil(float64(length)/float64(tick))))
	w := &window{slots: make([]slot, n)}
	secs := tick.Seconds()
	for i := range w.slots {
		s := slot{pkts: r.pps[clsTotal], bytes: r.bps[clsTotal] / 8, v: r.v, secs: float32(secs)}
		if i >= n-nfast {
			s = slot{pkts: f.pps, bytes: f.bps / 8, v: f.v, secs: float32(secs)}
		}
		s.pkts *= float32(secs)
		s.bytes *= float32(secs)
		s.v *= float32(secs)
		w.slots[i] = s
	}
	return w
}

// add counts a record that spans [start, end] (Unix nanoseconds; a sample
// or a packet has no span) in the tick that began at now (0 before the
// first tick), of tick nanoseconds: each part of its span goes to the tick
// it happened in, the part before the window is left out. So a window
// holds the traffic that happened in it, as reported so far, however the
// exporter times its datagrams (one that flushes every flow's 1-s record
// at once does not put a second of traffic in one tick). A record's
// variance goes with each part in proportion, which overstates it for a
// window that holds several parts: erring towards no attack.
func (w *window) add(pkts, bytes, v float64, start, end, now, tick int64) {
	if end <= start || now == 0 || tick <= 0 {
		w.cur.add(pkts, bytes, v, 1)
		return
	}
	span := float64(end - start)
	if end > now {
		w.cur.add(pkts, bytes, v, float64(end-max(start, now))/span)
		end = now
	}
	n := len(w.slots)
	for j := 1; j <= n && start < end; j++ {
		lo := now - int64(j)*tick
		if a := max(start, lo); a < end {
			w.slots[(w.pos-j+n)%n].add(pkts, bytes, v, float64(end-a)/span)
			end = a
		}
	}
}

func (s *slot) add(pkts, bytes, v, f float64) {
	s.pkts += float32(pkts * f)
	s.bytes += float32(bytes * f)
	s.v += float32(v * f)
}

// push closes the tick that lasted secs.
func (w *window) push(secs float64) {
	w.cur.secs = float32(secs)
	w.slots[w.pos] = w.cur
	w.pos = (w.pos + 1) % len(w.slots)
	w.cur = slot{}
}

// windowRatio is the crossing of a host's window: the lower confidence
// bound of its total packet or bit rate against factor times each total
// limit. With factor 1 (the sustained path) it is judged over the whole
// window, and only for a limit that the EWMA r is over too: the window
// gives confidence, the EWMA says what the rate is, so that a burst
// shorter than the window is judged as the EWMA judges it. With a larger
// factor (the fast path) it is judged over each of the window's last j
// ticks, the surest first, with nothing to gate it: a flood that many
// times the limit is an attack however short. It does not allocate.
func windowRatio(lim *dirLimits, r *rates, w *window, factor, z float64) crossing {
	var best crossing
	if w == nil || factor <= 0 {
		return best
	}
	var n, b, v, t float64
	n0 := len(w.slots)
	for j := 1; j <= n0; j++ {
		s := &w.slots[(w.pos-j+n0)%n0]
		n, b, v, t = n+float64(s.pkts), b+float64(s.bytes), v+float64(s.v), t+float64(s.secs)
		if factor == 1 && j < n0 {
			continue
		}
		if n <= 0 || t <= 0 {
			continue
		}
		neff := math.Inf(1)
		if v > 0 {
			neff = n * n / v
		}
		if neff < minEvidence {
			continue
		}
		for i := range lim.host {
			l := &lim.host[i]
			if l.class != clsTotal || l.unit == unitFlows {
				continue
			}
			rate := n / t
			if l.unit == unitBPS {
				rate = b * 8 / t
			}
			if factor == 1 && r.value(l) <= l.value {
				continue
			}
			limit := factor * l.value
			lo := lowerBound(rate, neff, z)
			if q := lo / limit; q > best.ratio {
				best = crossing{ratio: q, unit: l.unit, pointUnit: l.unit, name: l.name, value: rate, lim: limit, lower: lo, window: t}
				if factor != 1 {
					best.burst = factor
				}
			}
		}
	}
	return best
}

// suddenly reports whether a host without a sketch has counted, this
// tick, a tick's worth of suspectRatio times one of its total limits,
// resting on at least minEvidence samples.
func (g *hostgroup) suddenly(d Direction, c *counters) bool {
	t := &g.trigger[d]
	return (c.pkts >= t.pkts || c.bytes >= t.bytes) && c.pkts*c.pkts >= minEvidence*c.vpkts
}

// suspect gives h a sketch (a new one when sk is nil) and a confidence
// window.
func (e *Engine) suspect(h *host, g *hostgroup, sk *sketch) {
	if sk == nil {
		sk = newSketch(false)
	}
	h.setSketch(sk)
	e.sketches.Add(1)
	h.x.win = e.newWindow(g, &h.r, &h.fast)
}

// newWindow makes the confidence window of a host or group of g, seeded
// from its rates r and f.
func (e *Engine) newWindow(g *hostgroup, r *rates, f *fastRates) *window {
	return newWindow(g.window, e.cfg.Tick, r, f, int(math.Round(float64(g.burstTau)/float64(e.cfg.Tick))))
}
