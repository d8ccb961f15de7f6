package detect

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
)

// TestBackdatingMatchesReference is a property test of flow record
// counting: for random streams of records (spans from 0 to 60 s, any
// number overlapping, arriving up to 3 s late), the host's smoothed rate
// equals, within float32 rounding, the EWMA of the traffic the records
// describe, each spread evenly over its span and weighted where it
// happened, computed here by brute force tick by tick.
func TestBackdatingMatchesReference(t *testing.T) {
	const ticks, offset = 400, 1000 // offset: ticks kept before the first
	alpha := 1 - math.Exp(-tick.Seconds()/policies.DefaultEWMA.Seconds())
	q := 1 - alpha
	T := int64(tick)
	for trial := range 12 {
		rng := rand.New(rand.NewPCG(uint64(trial), 7))
		c := newClock(newEngine(t, testPolicy(policies.DefaultEWMA, pps(1e12))))
		c.step(nil)
		base := c.now.UnixNano() // the start of tick 0, counted next
		traffic := make([]float64, offset+ticks)
		spans := []time.Duration{0, 50 * time.Millisecond, time.Second, 5 * time.Second, time.Minute}
		for k := range ticks {
			var batch []sources.Record
			for range rng.IntN(6) {
				span := int64(float64(spans[rng.IntN(len(spans))]) * (0.5 + rng.Float64()))
				end := base + int64(k)*T + rng.Int64N(T)
				if rng.IntN(3) == 0 {
					end -= rng.Int64N(int64(3 * time.Second))
				}
				pkts := 1 + rng.Uint64N(20000)
				batch = append(batch, sources.Record{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(250))}), Dst: victim,
					Proto: 17, Packets: pkts, Bytes: pkts * 500, Length: 500, Sampling: 1, Start: end - span, End: end})
				if span == 0 { // a sample: counted in the tick it arrives
					traffic[offset+k] += float64(pkts)
					continue
				}
				// Brute force: the record's packets, tick by tick.
				for m := (end-span-base)/T - 1; m <= (end-base)/T; m++ {
					lo, hi := max(end-span, base+m*T), min(end, base+(m+1)*T)
					if hi > lo && offset+m >= 0 {
						traffic[offset+m] += float64(pkts) * float64(hi-lo) / float64(span)
					}
				}
			}
			c.step(batch)
			want := 0.0
			for m := 0; m <= offset+k; m++ {
				want += alpha * traffic[m] / tick.Seconds() * math.Pow(q, float64(offset+k-m))
			}
			got, _ := c.e.Rates(Host{victim, Incoming})
			if d := math.Abs(got.PPS - want); d > 1+want*2e-3 {
				t.Fatalf("trial %d tick %d: %.1f pps, the reference says %.1f", trial, k, got.PPS, want)
			}
		}
	}
}

// steadyRecords returns a host's traffic at rate pps as one tick's flow
// records of flows of the given span, staggered so that every tick as
// many end as start (a router's active timeout), each ending in this
// tick. Sampling is applied: each record carries its sampled packets.
func steadyRecords(rng *rand.Rand, now time.Time, dst netip.Addr, rate float64, span time.Duration, perSecond, sampling int) []sources.Record {
	n := int(math.Round(float64(perSecond) * tick.Seconds()))
	out := make([]sources.Record, 0, n)
	// perSecond records a second carry the rate's packets.
	pkts := rate / float64(perSecond)
	for i := range n {
		end := now.Add(time.Duration(rng.Int64N(int64(tick))))
		sampled := poisson(rng, pkts/float64(sampling))
		if sampled == 0 {
			continue
		}
		p := uint64(sampled) * uint64(sampling)
		out = append(out, sources.Record{Src: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), Dst: dst, SrcPort: 443, DstPort: uint16(40000 + i),
			Proto: 6, TCPFlags: 0x18, Packets: p, Bytes: p * 1000, Length: 1000, Sampling: uint32(sampling),
			Start: end.Add(-span).UnixNano(), End: end.UnixNano()})
	}
	return out
}

// poisson draws a Poisson variate of mean m.
func poisson(rng *rand.Rand, m float64) int {
	if m > 50 {
		return max(0, int(math.Round(m+math.Sqrt(m)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-m), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// TestOverlappingRecordsDoNotInflate is finding 1 of the detection issue:
// a host at 2,000 pps exported as 200 records a second, each spanning 1 s,
// read 2.0k at first and grew past its 20 kpps limit within 12 s. Now its
// rate stays at what the records describe: never above 2,000 pps.
func TestOverlappingRecordsDoNotInflate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	c := newClock(newEngine(t, testPolicy(policies.DefaultEWMA, pps(20000))))
	c.step(nil)
	var peak, last float64
	for range 60 * perSecond {
		c.step(steadyRecords(rng, c.now, victim, 2000, time.Second, 200, 1))
		r, _ := c.e.Rates(Host{victim, Incoming})
		peak, last = max(peak, r.PPS), r.PPS
	}
	if len(c.evs) != 0 || peak > 2000*1.02 {
		t.Errorf("events %v, peak %.0f pps; want none and at most 2,000", kinds(c.evs), peak)
	}
	// The rate a steady host of 1-s records reads: at any moment the
	// records describe the last second only in part (traffic a seconds
	// old is reported by the fraction a of them), so the EWMA of what is
	// known is 1 − ∫₀¹ (1−a)·e^(−a/τ)/τ da of the rate: 79 % at τ = 2 s.
	// Pinned so that the README says true.
	tau := policies.DefaultEWMA.Seconds()
	k := 1 / tau
	known := 1 - k*((1-math.Exp(-k))/k-(1-math.Exp(-k)*(1+k))/(k*k))
	if math.Abs(last/2000-known) > 0.03 {
		t.Errorf("steady 1-s records read %.0f pps, want %.0f %% of 2,000", last, known*100)
	}
	t.Logf("steady 1-s records read %.1f %% of the rate (the EWMA of what is reported: %.1f %%)", last/20, known*100)
}

// shippedPolicy is testPolicy with a pps limit and the shipped detection
// defaults (sustained and burst paths, confidence).
func shippedPolicy(limit uint64) *policies.Policy {
	p := testPolicy(policies.DefaultEWMA, pps(limit))
	p.Detection = policies.Detection{Tick: tick, Confidence: policies.DefaultConfidence,
		BurstFactor: policies.DefaultBurstFactor, BurstEWMA: policies.DefaultBurstEWMA}
	return p
}

// sampledHost plays a host at factor× its pps limit through sFlow-like
// samples (one packet in sampling) for d and returns when the attack was
// declared (0 if never).
func sampledHost(t *testing.T, rng *rand.Rand, c *clock, dst netip.Addr, limit, factor float64, sampling int, d time.Duration) time.Duration {
	t.Helper()
	start := len(c.evs)
	for n := 1; n <= int(d/tick); n++ {
		samples := poisson(rng, limit*factor*tick.Seconds()/float64(sampling))
		batch := make([]sources.Record, samples)
		for i := range batch {
			batch[i] = sources.Record{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(250))}), Dst: dst, SrcPort: 443, DstPort: 40000,
				Proto: 6, TCPFlags: 0x18, Packets: uint64(sampling), Bytes: uint64(sampling) * 1000, Length: 1000, Sampling: uint32(sampling)}
		}
		c.step(batch)
		for _, ev := range c.evs[start:] {
			if ev.Kind == AttackStarted && ev.Signature.Victim.Addr() == dst {
				if factor < 1 {
					t.Logf("%.1f× host banned after %s: %s", factor, time.Duration(n)*tick, ev.Signature.Reason)
				}
				return time.Duration(n) * tick
			}
		}
	}
	return 0
}

// TestSampledEstimateNeedsConfidence is finding 2: at 1:1000 a host at 0.8×
// its limit was banned after seconds on sampling noise. With the default
// confidence, 20 host-hours at 0.8× give no ban; with the estimate alone
// (confidence 0.5) the same traffic is banned.
func TestSampledEstimateNeedsConfidence(t *testing.T) {
	const limit, sampling = 20000, 1000
	hours := 20
	if testing.Short() {
		hours = 2
	}
	if v, err := strconv.ParseUint(os.Getenv("FLOODGATE_HOST_HOURS"), 10, 16); err == nil && v > 0 {
		hours = int(v) // a longer run for the README's figure
	}
	run := func(confidence float64, hosts int, d time.Duration) int {
		pol := shippedPolicy(limit)
		pol.Detection.Confidence = confidence
		rng := rand.New(rand.NewPCG(5, 6))
		bans := 0
		for h := range hosts {
			c := newClock(newEngine(t, pol))
			if sampledHost(t, rng, c, netip.AddrFrom4([4]byte{203, 0, 113, byte(h)}), limit, 0.8, sampling, d) > 0 {
				bans++
			}
		}
		return bans
	}
	if bans := run(0.5, 5, 10*time.Minute); bans == 0 {
		t.Errorf("without confidence, no ban in 5 host×10 min at 0.8×: the test no longer shows the noise")
	}
	if bans := run(0, hours, time.Hour); bans != 0 {
		t.Errorf("%d of %d host-hours at 0.8× banned", bans, hours)
	}
}

// TestSampledDetectionTimes: attacks through 1:1000 samples are still
// caught, and how fast is logged (the README's table).
func TestSampledDetectionTimes(t *testing.T) {
	const limit = 20000
	for _, sampling := range []int{1, 100, 1000} {
		for _, tc := range []struct {
			factor float64
			within time.Duration
		}{{1.5, 8 * time.Second}, {3, 2 * time.Second}, {5, time.Second}} {
			rng := rand.New(rand.NewPCG(uint64(sampling), uint64(tc.factor*10)))
			var times []time.Duration
			for i := range 20 {
				c := newClock(newEngine(t, shippedPolicy(limit)))
				d := sampledHost(t, rng, c, netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), limit, tc.factor, sampling, 20*time.Second)
				if d == 0 {
					t.Fatalf("1:%d, %.1f× never detected", sampling, tc.factor)
				}
				times = append(times, d)
			}
			med := median(times)
			t.Logf("1:%-4d %.1f× detected after median %s (max %s) of traffic, at ticks of %s", sampling, tc.factor, med, maxOf(times), tick)
			if med > tc.within {
				t.Errorf("1:%d, %.1f×: median %s, want within %s", sampling, tc.factor, med, tc.within)
			}
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// TestSynchronizedFlushIsNoBurst: an exporter that flushes every flow's
// 1-s record at once, once a second (unsampled, so the estimate is exact),
// reports a host (or a hostgroup) at 0.8× its limit as a second of
// traffic arriving in one tick. Placed in the ticks their spans cover, the records never look like
// a burst; counted in the tick they arrive, they read 4× the limit there.
// And the same records arriving late and bunched (two seconds' worth in
// one tick) read no more.
func TestSynchronizedFlushIsNoBurst(t *testing.T) {
	const limit = 20000
	// A host at 0.8× its limit, and a hostgroup at 0.8× its group limit
	// (that host and fifty at 1,280 pps each).
	pol := shippedPolicy(limit)
	pol.Hostgroups[0].Incoming.Group = policies.Limits{PPS: 100_000}
	c := newClock(newEngine(t, pol))
	perTick := int(time.Second / tick)
	c.step(nil) // records are placed in time from the first tick on
	records := func(end time.Time) []sources.Record {
		out := make([]sources.Record, 150)
		for i := range out {
			victim, pkts := netip.MustParseAddr("203.0.113.9"), uint64(0.8*limit/100) // each flow's second
			if i >= 100 {
				victim, pkts = netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 1280
			}
			out[i] = sources.Record{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Dst: victim, SrcPort: uint16(40000 + i), DstPort: 443,
				Proto: 6, TCPFlags: 0x18, Packets: pkts, Bytes: pkts * 600, Length: 600, Sampling: 1,
				Start: end.Add(-time.Second).UnixNano(), End: end.UnixNano()}
		}
		return out
	}
	for n := range 60 * perTick {
		var batch []sources.Record
		switch {
		case n < 30*perTick && n%perTick == 0:
			batch = records(c.now)
		case n >= 30*perTick && (n-30*perTick)%(2*perTick) == perTick: // two seconds, at once
			batch = append(records(c.now.Add(-time.Second)), records(c.now)...)
		}
		if evs := c.step(batch); len(evs) > 0 {
			t.Fatalf("%s: %s %s", time.Duration(n)*tick, evs[0].Kind, evs[0].Signature.Reason)
		}
	}
}
