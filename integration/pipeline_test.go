package integration

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/flow"
)

// The detection pipeline on simulated time: traffic of known shape is
// encoded in the real wire formats (sFlow v5 sampled 1:1000, NetFlow v9
// sampled 1:1000 with 1-s record spans, IPFIX unsampled, and the mirror
// port's per-packet records), decoded by the collector's decoders and
// counted by the detection engine with the shipped defaults, tick by tick
// on a simulated clock, so that hours of traffic run in seconds and every
// run is the same. It needs no root: the namespace tests play the same
// inputs in real time against real routers.

const (
	pipeSlice    = 100 * time.Millisecond // the traffic model's granularity
	pipeLimitPPS = 20_000
	pipeLimitBPS = 1_000_000_000
	pipeLimitFPS = 3_500
)

var pipeT0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// stream is traffic of one kind to one host during one slice.
type stream struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto, flags uint8
	size         uint16
	pkts         uint64
	// frag makes the packets IP fragments; a later fragment has no ports.
	frag flowgen.Fragment
	// attack marks the attack's packets, as against the victim's own
	// (for measuring the rules' coverage and collateral).
	attack bool
}

// shape makes the streams of slice k (starting at k·pipeSlice).
type shape func(rng *rand.Rand, k int) []stream

// pipeInput turns slices of traffic into records through one input's wire
// format and decoder.
type pipeInput interface {
	name() string
	// feed encodes and decodes the streams of the slice that ends at now.
	feed(now time.Time, ss []stream, out []sources.Record) []sources.Record
}

// clients spreads rate pps over n clients of prefix base (IPv4 or IPv6),
// web traffic to dst:443 of size-byte packets, as streams of one slice.
func clients(rng *rand.Rand, dst netip.Addr, n int, rate float64, size uint16) []stream {
	per := rate * pipeSlice.Seconds() / float64(n)
	out := make([]stream, 0, n)
	for i := range n {
		p := roundRandom(rng, per)
		if p == 0 {
			continue
		}
		src := netip.AddrFrom4([4]byte{192, 0, 2 + byte(i>>8), byte(i)})
		if dst.Is6() {
			src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xc1, 14: byte(i >> 8), 15: byte(i)})
		}
		out = append(out, stream{src: src, dst: dst, sport: uint16(30000 + i), dport: 443, proto: 6, flags: 0x18, size: size, pkts: p})
	}
	return out
}

// pipeNTP is an NTP reflection at rate pps from 500 reflectors.
func pipeNTP(rng *rand.Rand, dst netip.Addr, rate float64) []stream {
	const reflectors = 500
	per := rate * pipeSlice.Seconds() / reflectors
	out := make([]stream, 0, reflectors)
	for i := range reflectors {
		p := roundRandom(rng, per)
		if p == 0 {
			continue
		}
		src := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		if dst.Is6() {
			src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x18, 14: byte(i >> 8), 15: byte(i)})
		}
		out = append(out, stream{src: src, dst: dst, sport: 123, dport: uint16(40000 + i), proto: 17, size: 468, pkts: p})
	}
	return out
}

// roundRandom rounds x up with probability its fraction, so that counts
// add up to the rate on average.
func roundRandom(rng *rand.Rand, x float64) uint64 {
	p := uint64(x)
	if rng.Float64() < x-float64(p) {
		p++
	}
	return p
}

// poissonDraw draws a Poisson variate of mean m (normal above 50).
func poissonDraw(rng *rand.Rand, m float64) uint64 {
	if m <= 0 {
		return 0
	}
	if m > 50 {
		return uint64(max(0, math.Round(m+math.Sqrt(m)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-m), uint64(0), 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func toFlow(s *stream) flowgen.Flow {
	return flowgen.Flow{Src: s.src, Dst: s.dst, SrcPort: s.sport, DstPort: s.dport, Proto: s.proto, TCPFlags: s.flags, Fragment: s.frag}
}

// decodeAll decodes datagrams, failing the test on any error.
func decodeAll(t testing.TB, d *flow.Decoder, exporter netip.Addr, now time.Time, dgs [][]byte, out []sources.Record) []sources.Record {
	t.Helper()
	for _, b := range dgs {
		var err error
		if out, err = d.Decode(exporter, now, b, out); err != nil {
			t.Fatalf("decode: %v", err)
		}
	}
	return out
}

// sflowInput samples 1 packet in rate and sends each sample as an sFlow
// flow sample with the packet's header.
type sflowInput struct {
	t    testing.TB
	rng  *rand.Rand
	rate uint32
	enc  flowgen.SFlowV5
	dec  *flow.Decoder
}

func newSFlowInput(t testing.TB, seed uint64, rate uint32) *sflowInput {
	return &sflowInput{t: t, rng: rand.New(rand.NewPCG(seed, 11)), rate: rate,
		enc: flowgen.SFlowV5{Agent: netip.MustParseAddr("192.0.2.251"), SamplingRate: rate},
		dec: flow.NewDecoder(flow.DecoderConfig{Protocol: flow.ProtoSFlow})}
}

func (in *sflowInput) name() string { return fmt.Sprintf("sflow 1:%d", in.rate) }

func (in *sflowInput) feed(now time.Time, ss []stream, out []sources.Record) []sources.Record {
	return decodeAll(in.t, in.dec, in.enc.Agent, now, in.datagrams(now, ss), out)
}

// datagrams samples the streams of a slice into sFlow datagrams.
func (in *sflowInput) datagrams(now time.Time, ss []stream) [][]byte {
	var samples []flowgen.Flow
	for i := range ss {
		s := &ss[i]
		f := toFlow(s)
		f.Bytes = uint64(s.size) + 18 // Ethernet header and FCS
		for range poissonDraw(in.rng, float64(s.pkts)/float64(in.rate)) {
			samples = append(samples, f)
		}
	}
	var dgs [][]byte
	for len(samples) > 0 {
		n := min(8, len(samples))
		b, err := in.enc.AppendData(nil, now, samples[:n])
		if err != nil {
			in.t.Fatal(err)
		}
		dgs = append(dgs, b)
		samples = samples[n:]
	}
	return dgs
}

// flowKey identifies a flow in an exporter's cache.
type flowKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
	frag         flowgen.Fragment
}

type cached struct {
	f       flowgen.Flow
	size    uint16
	flushAt time.Time
}

// netflowInput is a router's flow cache: packets sampled 1 in rate, each
// flow's record exported every span (at a phase of its own, as flows start
// at their own times), as NetFlow v9 or IPFIX.
type netflowInput struct {
	t     testing.TB
	rng   *rand.Rand
	rate  uint32
	span  time.Duration
	ipfix bool
	v9    flowgen.NetFlowV9
	fix   flowgen.IPFIX
	dec   *flow.Decoder
	cache map[flowKey]*cached
	ready bool
}

func newNetFlowInput(t testing.TB, seed uint64, rate uint32, span time.Duration, ipfix bool) *netflowInput {
	return &netflowInput{t: t, rng: rand.New(rand.NewPCG(seed, 13)), rate: rate, span: span, ipfix: ipfix,
		v9: flowgen.NetFlowV9{SourceID: 1, Boot: pipeT0.Add(-time.Hour)}, fix: flowgen.IPFIX{ObservationDomain: 1},
		dec: flow.NewDecoder(flow.DecoderConfig{Protocol: flow.ProtoNetFlow}), cache: map[flowKey]*cached{}}
}

func (in *netflowInput) name() string {
	f := "netflow v9"
	if in.ipfix {
		f = "ipfix"
	}
	return fmt.Sprintf("%s 1:%d %s records", f, in.rate, in.span)
}

var netflowExporter = netip.MustParseAddr("192.0.2.252")

func (in *netflowInput) encode(now time.Time, flows []flowgen.Flow) [][]byte {
	var dgs [][]byte
	if !in.ready {
		in.ready = true
		if in.ipfix {
			dgs = append(dgs, in.fix.AppendTemplates(nil, now), in.fix.AppendSamplingOptions(nil, now, in.rate))
		} else {
			dgs = append(dgs, in.v9.AppendTemplates(nil, now), in.v9.AppendSamplingOptions(nil, now, in.rate))
		}
	}
	for len(flows) > 0 {
		n := min(20, len(flows))
		var b []byte
		var err error
		if in.ipfix {
			b, err = in.fix.AppendData(nil, now, flows[:n])
		} else {
			b, err = in.v9.AppendData(nil, now, flows[:n])
		}
		if err != nil {
			in.t.Fatal(err)
		}
		dgs = append(dgs, b)
		flows = flows[n:]
	}
	return dgs
}

func (in *netflowInput) feed(now time.Time, ss []stream, out []sources.Record) []sources.Record {
	return decodeAll(in.t, in.dec, netflowExporter, now, in.datagrams(now, ss), out)
}

// datagrams puts the streams of a slice in the flow cache and exports the
// records due, as datagrams.
func (in *netflowInput) datagrams(now time.Time, ss []stream) [][]byte {
	from := now.Add(-pipeSlice)
	for i := range ss {
		s := &ss[i]
		p := s.pkts
		if in.rate > 1 {
			p = poissonDraw(in.rng, float64(s.pkts)/float64(in.rate))
		}
		if p == 0 {
			continue
		}
		k := flowKey{s.src, s.dst, s.sport, s.dport, s.proto, s.frag}
		c := in.cache[k]
		if c == nil {
			// The flow's records end on its own phase of the span.
			phase := time.Duration(in.rng.Int64N(int64(in.span)))
			flushAt := pipeT0.Add(from.Sub(pipeT0).Truncate(in.span) + phase)
			for !flushAt.After(from) {
				flushAt = flushAt.Add(in.span)
			}
			c = &cached{f: toFlow(s), size: s.size, flushAt: flushAt}
			c.f.Start = from
			in.cache[k] = c
		}
		c.f.Packets += p
		c.f.Bytes += p * uint64(s.size)
	}
	var flows []flowgen.Flow
	for k, c := range in.cache {
		if c.flushAt.After(now) {
			continue
		}
		c.f.End = c.flushAt
		flows = append(flows, c.f)
		delete(in.cache, k)
	}
	sort.Slice(flows, func(i, j int) bool { return flows[i].Src.Less(flows[j].Src) })
	return in.encode(now, flows)
}

// mirrorInput is the mirror port: every packet counted, no span.
type mirrorInput struct{}

func (mirrorInput) name() string { return "mirror" }

func (mirrorInput) feed(now time.Time, ss []stream, out []sources.Record) []sources.Record {
	for i := range ss {
		s := &ss[i]
		r := sources.Record{Src: s.src, Dst: s.dst, SrcPort: s.sport, DstPort: s.dport, Proto: s.proto, TCPFlags: s.flags,
			Fragment: s.frag != flowgen.NotFragment, Packets: s.pkts, Bytes: s.pkts * uint64(s.size), Length: s.size, Sampling: 1,
			Start: now.UnixNano(), End: now.UnixNano()}
		if s.frag == flowgen.LaterFragment {
			r.SrcPort, r.DstPort = 0, 0 // the header parser's view
		}
		out = append(out, r)
	}
	return out
}

// pipeInputs are the inputs of the detection issue's targets.
func pipeInputs(t testing.TB, seed uint64) []pipeInput {
	return []pipeInput{
		newSFlowInput(t, seed, 1000),
		newNetFlowInput(t, seed, 1000, time.Second, false),
		newNetFlowInput(t, seed, 1, pipeSlice, true),
		mirrorInput{},
	}
}

// pipePolicy monitors 203.0.113.0/24 and 2001:db8:ffff::/48 with the
// issue's per-host limits and the shipped detection defaults, but for the
// confidence window when FLOODGATE_PIPE_WINDOW names another (the README's
// figures for choosing the window).
func pipePolicy(t testing.TB) *policies.Policy {
	window := policies.DefaultWindow
	if v := os.Getenv("FLOODGATE_PIPE_WINDOW"); v != "" {
		var err error
		if window, err = time.ParseDuration(v); err != nil {
			t.Fatalf("FLOODGATE_PIPE_WINDOW: %v", err)
		}
	}
	th := policies.Threshold{Total: policies.Limits{PPS: pipeLimitPPS, BPS: pipeLimitBPS, Flows: pipeLimitFPS}}
	return &policies.Policy{
		Detection: policies.Detection{Tick: policies.DefaultTick, Confidence: policies.DefaultConfidence,
			BurstFactor: policies.DefaultBurstFactor, BurstEWMA: policies.DefaultBurstEWMA, Window: window},
		Hostgroups: []*policies.Hostgroup{{
			Name:     "customers",
			Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:ffff::/48")},
			Incoming: th, EWMA: policies.DefaultEWMA, Baseline: policies.DefaultBaseline,
		}},
	}
}

// pipeRun plays shape through in for d and returns the attacks started,
// by victim, with the simulated time they were declared.
func pipeRun(t testing.TB, in pipeInput, seed uint64, d time.Duration, sh shape) map[netip.Addr]time.Duration {
	t.Helper()
	e, err := detect.New(detect.Config{}, pipePolicy(t), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 17))
	started := map[netip.Addr]time.Duration{}
	var batch []sources.Record
	for k := range int(d / pipeSlice) {
		now := pipeT0.Add(time.Duration(k+1) * pipeSlice)
		batch = in.feed(now, sh(rng, k), batch[:0])
		if len(batch) > 0 {
			e.Ingest(batch)
		}
		if (k+1)%int(policies.DefaultTick/pipeSlice) == 0 {
			e.Tick(now)
			for _, ev := range attacksStarted(e) {
				if _, ok := started[ev.Signature.Victim.Addr()]; !ok {
					started[ev.Signature.Victim.Addr()] = now.Sub(pipeT0)
				}
			}
		}
	}
	return started
}

// attacksStarted drains e's events and returns the AttackStarted ones.
func attacksStarted(e *detect.Engine) []detect.Event {
	var out []detect.Event
	for {
		select {
		case ev := <-e.Events():
			if ev.Kind == detect.AttackStarted {
				out = append(out, ev)
			}
		default:
			return out
		}
	}
}

var (
	pipeV4 = [...]netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("203.0.113.3")}
	pipeV6 = [...]netip.Addr{netip.MustParseAddr("2001:db8:ffff::1"), netip.MustParseAddr("2001:db8:ffff::2"), netip.MustParseAddr("2001:db8:ffff::3")}
)

// benign are the detection issue's legitimate traffic shapes, each on one
// host: a flash crowd at 0.8× the pps limit (2,000 clients), a large
// download at 0.8× (one flow of 1500-byte packets), and a 1-s burst at 2×
// on top of the host's usual 0.15×, every 20 s.
func benign(hosts [3]netip.Addr) shape {
	return func(rng *rand.Rand, k int) []stream {
		ss := clients(rng, hosts[0], 2000, 0.8*pipeLimitPPS, 400)
		dl := clients(rng, hosts[1], 1, 0.8*pipeLimitPPS, 1500)
		ss = append(ss, dl...)
		rate := 0.15 * pipeLimitPPS
		if k%200 >= 100 && k%200 < 110 { // 1 s of every 20 s
			rate += 2 * pipeLimitPPS
		}
		return append(ss, clients(rng, hosts[2], 300, rate, 600)...)
	}
}

// TestPipelineBenignNoBan: the benign shapes never start an attack, on any
// input, IPv4 and IPv6. make test plays 2 simulated minutes of each; make
// soak (FLOODGATE_SOAK=10m) the 10 minutes.
func TestPipelineBenignNoBan(t *testing.T) {
	d := 2 * time.Minute
	if testing.Short() || raceEnabled {
		d = 30 * time.Second
	}
	if v := os.Getenv("FLOODGATE_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("FLOODGATE_SOAK: %v", err)
		}
	}
	for _, v6 := range []bool{false, true} {
		hosts := pipeV4
		if v6 {
			hosts = pipeV6
		}
		for i, in := range pipeInputs(t, 1) {
			name := in.name()
			if v6 {
				name += " ipv6"
			}
			t.Run(name, func(t *testing.T) {
				if started := pipeRun(t, in, uint64(i+1), d, benign(hosts)); len(started) > 0 {
					t.Errorf("benign traffic banned: %v", started)
				}
			})
		}
	}
}

// TestPipeline60sRecords: an exporter with 60-s active timeouts reports a
// host's steady traffic at 0.8× its limit a minute at a time; never an
// attack.
func TestPipeline60sRecords(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		hosts := pipeV4
		if v6 {
			hosts = pipeV6
		}
		for _, rate := range []uint32{1, 1000} {
			in := newNetFlowInput(t, 3, rate, time.Minute, false)
			started := pipeRun(t, in, 5, 5*time.Minute, func(rng *rand.Rand, k int) []stream {
				return clients(rng, hosts[0], 500, 0.8*pipeLimitPPS, 800)
			})
			if len(started) > 0 {
				t.Errorf("%s ipv6=%v: 60-s records banned %v", in.name(), v6, started)
			}
		}
	}
}

// TestPipelineDetectionTimes: an NTP reflection at 1.5×, 3× and 5× on top
// of the host's usual 0.15× is detected on every input; the time from its
// first packet to the attack's start (simulated, no BGP) is logged per
// input and factor over 5 runs (10 in make soak), and bounded: 1.5× within 15 s, 3× within 3 s and 5× within
// 2 s on every input, 1.5× within 10 s.
func TestPipelineDetectionTimes(t *testing.T) {
	runs := 5
	if testing.Short() || raceEnabled {
		runs = 2
	}
	if os.Getenv("FLOODGATE_SOAK") != "" {
		runs = 10
	}
	bounds := map[float64]time.Duration{1.5: 15 * time.Second, 3: 3 * time.Second, 5: 2 * time.Second}
	var report []string
	for _, v6 := range []bool{false, true} {
		hosts := pipeV4
		if v6 {
			hosts = pipeV6
		}
		for i := range pipeInputs(t, 0) {
			for _, factor := range []float64{1.5, 3, 5} {
				var times []time.Duration
				var name string
				for run := range runs {
					in := pipeInputs(t, uint64(100*run+i))[i]
					name = in.name()
					// The attack starts at a random point of a tick.
					start := 30*time.Second + time.Duration(run%2)*pipeSlice
					started := pipeRun(t, in, uint64(run), start+15*time.Second, func(rng *rand.Rand, k int) []stream {
						ss := clients(rng, hosts[0], 300, 0.15*pipeLimitPPS, 600)
						if time.Duration(k)*pipeSlice >= start {
							ss = append(ss, pipeNTP(rng, hosts[0], factor*pipeLimitPPS)...)
						}
						return ss
					})
					at, ok := started[hosts[0]]
					if !ok {
						t.Errorf("%s ipv6=%v: %.1f× never detected", name, v6, factor)
						continue
					}
					if at < start {
						t.Errorf("%s ipv6=%v: %.1f× declared %s before the attack", name, v6, factor, start-at)
						continue
					}
					times = append(times, at-start)
				}
				if len(times) == 0 {
					continue
				}
				sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
				med := times[len(times)/2]
				report = append(report, fmt.Sprintf("%-32s ipv6=%-5v %.1f×: median %5s, max %5s", name, v6, factor, med, times[len(times)-1]))
				if med > bounds[factor] {
					t.Errorf("%s ipv6=%v: %.1f× median %s, want within %s", name, v6, factor, med, bounds[factor])
				}
			}
		}
	}
	t.Logf("time from the first attack packet to the attack's start, %d runs each:\n%s", runs, strings.Join(report, "\n"))
}

// TestPipelineMalformedFloodAnnouncesNothing is finding 3 of the detection
// issue at the scale of a fuzz run: valid NetFlow v9 and IPFIX datagrams
// of traffic under the limits to monitored hosts (unsampled: 200
// datagrams a second for a simulated minute; 1:1000: 10 a second for ten
// minutes, as a few sampled records a second are all a host under its
// limit makes), each with one to three random bits of its records
// flipped. Whatever still parses is decoded; no attack may start.
func TestPipelineMalformedFloodAnnouncesNothing(t *testing.T) {
	for _, c := range []struct {
		ipfix    bool
		rate     uint32
		perSlice int // datagrams of 20 records
		slices   int
	}{{false, 1, 20, 600}, {false, 1000, 1, 6000}, {true, 1, 20, 600}, {true, 1000, 1, 6000}} {
		ipfix := c.ipfix
		in := newNetFlowInput(t, 7, c.rate, time.Second, ipfix)
		e, err := detect.New(detect.Config{}, pipePolicy(t), hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(8, 9))
		// The templates and sampling options arrive intact.
		var batch []sources.Record
		_ = decodeAll(t, in.dec, netflowExporter, pipeT0, in.encode(pipeT0, nil), nil)
		var decoded, refused, started int
		for k := range c.slices {
			now := pipeT0.Add(time.Duration(k+1) * pipeSlice)
			batch = batch[:0]
			for range c.perSlice {
				var flows []flowgen.Flow
				for i := range 20 {
					// Unsampled: six hosts, 2 packets a record, 667
					// pps a host. 1:1000: twenty hosts, 1 sampled
					// packet a record, 10 kpps a host.
					h := i % 6
					pkts := uint64(2)
					if c.rate > 1 {
						h, pkts = i, 1
					}
					dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + h)})
					src := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
					if h%2 == 1 {
						dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 15: byte(10 + h)})
						src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x51, 15: byte(i)})
					}
					flows = append(flows, flowgen.Flow{Src: src, Dst: dst, SrcPort: 123, DstPort: uint16(40000 + i), Proto: 17,
						Packets: pkts, Bytes: pkts * 468, Start: now.Add(-time.Second), End: now})
				}
				dgs := in.encode(now, flows)
				b := dgs[len(dgs)-1]
				// Flip bits of the records, past the message and set
				// headers: records that still parse. (A flip in a set
				// ID can turn data into a template or a sampling
				// option, whose damage lasts; see the README.)
				hdr := 24
				if ipfix {
					hdr = 20
				}
				for range 1 + rng.IntN(3) {
					bit := 8*hdr + rng.IntN(8*(len(b)-hdr))
					b[bit/8] ^= 1 << (bit % 8)
				}
				var err error
				n := len(batch)
				if batch, err = in.dec.Decode(netflowExporter, now, b, batch); err != nil {
					refused++
				}
				decoded += len(batch) - n
			}
			e.Ingest(batch)
			if (k+1)%2 == 0 {
				e.Tick(now)
				for _, ev := range attacksStarted(e) {
					started++
					t.Errorf("ipfix=%v 1:%d: attack started on malformed records: %s %s", ipfix, c.rate, ev.Signature.Victim, ev.Signature.Reason)
				}
			}
		}
		t.Logf("ipfix=%v 1:%d: %d flipped datagrams: %d records decoded, %d datagrams refused (%d implausible records dropped), %d attacks",
			ipfix, c.rate, c.perSlice*c.slices, decoded, refused, in.dec.Stats().Implausible, started)
	}
}
