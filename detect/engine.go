package detect

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
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
	// Tick is how often counters become rates.
	Tick time.Duration
	// MaxHosts caps the hosts tracked at once; records for new hosts
	// past it are counted and dropped. Zero means DefaultMaxHosts.
	MaxHosts int
	// EndRatio is the share of the threshold a rate must stay under for
	// EndHold before an attack ends. Zero means DefaultEndRatio.
	EndRatio float64
	// EndHold is how long the rate must stay under the lower mark.
	// Zero means DefaultEndHold.
	EndHold time.Duration
	// IdleTicks is how many quiet ticks a host without an attack is
	// kept. Zero means DefaultIdleTicks.
	IdleTicks int
}

// Defaults for Config.
const (
	DefaultMaxHosts  = 1 << 20
	DefaultEndRatio  = 0.8
	DefaultEndHold   = 5 * time.Second
	DefaultIdleTicks = 30
	numShards        = 64
)

// Stats are the engine's counters.
type Stats struct {
	Records   uint64 // records ingested
	Monitored uint64 // records that matched a monitored network
	Hosts     int    // hosts tracked now
	Refused   uint64 // records dropped because MaxHosts was reached
	Evicted   uint64 // idle hosts evicted
	Attacks   int    // attacks active now
}

// Engine counts traffic per monitored host and reports attacks.
type Engine struct {
	cfg    Config
	log    hclog.Logger
	events chan Event
	seed   maphash.Seed

	state  atomic.Pointer[tableState]
	shards [numShards]shard

	hosts                                  atomic.Int64
	records, monitored, refused, evictions atomic.Uint64
	attacks                                atomic.Int64
	nextID                                 atomic.Uint64

	last time.Time // previous tick; owned by whoever calls tick (one goroutine)

	mu      sync.Mutex // guards the tick loop's lifecycle
	cancel  context.CancelFunc
	stopped chan struct{}
}

// tableState is the read-mostly part published atomically: the monitored
// network table and the compiled hostgroups it points into.
type tableState struct {
	table  *bart.Table[*hostgroup]
	groups []*hostgroup
}

type shard struct {
	mu    sync.Mutex
	hosts map[Host]*host
	_     [40]byte // keep shards on separate cache lines
}

// host holds one host's counters in one direction.
type host struct {
	group *hostgroup
	// Counters of the current tick.
	pkts, bytes                       uint64
	tcp, syn, udp, icmp, frag, others uint64
	// Shares of the last complete tick, for signatures.
	lastPkts                            uint64
	lastTCP, lastSYN, lastUDP, lastICMP uint64
	lastFrag, lastOther                 uint64
	pps, bps                            float64 // smoothed
	quiet                               int     // consecutive ticks without traffic
	attack                              *attack
}

type attack struct {
	sig        Signature
	belowSince time.Time // zero while above the lower mark
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
	if cfg.EndRatio <= 0 || cfg.EndRatio >= 1 {
		cfg.EndRatio = DefaultEndRatio
	}
	if cfg.EndHold <= 0 {
		cfg.EndHold = DefaultEndHold
	}
	if cfg.IdleTicks <= 0 {
		cfg.IdleTicks = DefaultIdleTicks
	}
	e := &Engine{
		cfg:    cfg,
		log:    logger.Named("detect"),
		events: make(chan Event, 1024),
		seed:   maphash.MakeSeed(),
	}
	for i := range e.shards {
		e.shards[i].hosts = make(map[Host]*host)
	}
	e.SetPolicy(pol)
	return e, nil
}

var _ sources.Sink = (*Engine)(nil)

// SetPolicy publishes the monitored networks and thresholds of pol. Hosts
// already tracked keep their counters and move to their new hostgroup at
// the next tick.
func (e *Engine) SetPolicy(pol *policies.Policy) {
	st := &tableState{table: new(bart.Table[*hostgroup])}
	for _, hg := range pol.Hostgroups {
		g := &hostgroup{name: hg.Name, incoming: hg.Incoming, outgoing: hg.Outgoing, tau: hg.EWMA}
		st.groups = append(st.groups, g)
		for _, p := range hg.Prefixes {
			st.table.Insert(p, g)
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
	var monitored uint64
	for i := range batch {
		r := &batch[i]
		if g, ok := st.table.Lookup(r.Dst); ok {
			e.count(Host{r.Dst, Incoming}, g, r)
			monitored++
		}
		if g, ok := st.table.Lookup(r.Src); ok {
			e.count(Host{r.Src, Outgoing}, g, r)
			monitored++
		}
	}
	e.records.Add(uint64(len(batch)))
	e.monitored.Add(monitored)
}

func (e *Engine) count(k Host, g *hostgroup, r *sources.Record) {
	s := &e.shards[maphash.Comparable(e.seed, k)%numShards]
	s.mu.Lock()
	h := s.hosts[k]
	if h == nil {
		if e.hosts.Load() >= int64(e.cfg.MaxHosts) {
			s.mu.Unlock()
			e.refused.Add(1)
			return
		}
		h = &host{}
		s.hosts[k] = h
		e.hosts.Add(1)
	}
	h.group = g
	h.pkts += r.Packets
	h.bytes += r.Bytes
	if r.Fragment {
		h.frag += r.Packets
	}
	switch r.Proto {
	case 6:
		h.tcp += r.Packets
		if r.TCPFlags&0x12 == 0x02 { // SYN without ACK
			h.syn += r.Packets
		}
	case 17:
		h.udp += r.Packets
	case 1, 58:
		h.icmp += r.Packets
	default:
		h.others += r.Packets
	}
	s.mu.Unlock()
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
	dt := e.cfg.Tick
	if !e.last.IsZero() && now.After(e.last) {
		dt = now.Sub(e.last)
	}
	e.last = now
	secs := dt.Seconds()
	var events []Event
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.Lock()
		for k, h := range s.hosts {
			if ev, ok := e.update(k, h, now, dt, secs); ok {
				events = append(events, ev)
			}
			if h.quiet > e.cfg.IdleTicks && h.attack == nil {
				delete(s.hosts, k)
				e.hosts.Add(-1)
				e.evictions.Add(1)
			}
		}
		s.mu.Unlock()
	}
	for _, ev := range events {
		select {
		case e.events <- ev:
		case <-ctx.Done():
			return
		}
	}
}

// update advances one host by one tick and reports an event if the host's
// attack state changed.
func (e *Engine) update(k Host, h *host, now time.Time, dt time.Duration, secs float64) (Event, bool) {
	g := h.group
	alpha := 1 - math.Exp(-dt.Seconds()/g.tau.Seconds())
	h.pps += alpha * (float64(h.pkts)/secs - h.pps)
	h.bps += alpha * (float64(h.bytes)*8/secs - h.bps)
	if h.pkts == 0 {
		h.quiet++
	} else {
		h.quiet = 0
		h.lastPkts, h.lastTCP, h.lastSYN, h.lastUDP = h.pkts, h.tcp, h.syn, h.udp
		h.lastICMP, h.lastFrag, h.lastOther = h.icmp, h.frag, h.others
	}
	h.pkts, h.bytes, h.tcp, h.syn, h.udp, h.icmp, h.frag, h.others = 0, 0, 0, 0, 0, 0, 0, 0
	if h.pps < 0.5 && h.bps < 4 {
		h.pps, h.bps = 0, 0 // settle rather than decay for ever
	}

	th := g.threshold(k.Direction)
	if h.attack == nil {
		reason := crossed(th, h.pps, h.bps, 1)
		if reason == "" {
			return Event{}, false
		}
		h.attack = &attack{sig: Signature{
			ID:        e.nextID.Add(1),
			Victim:    netip.PrefixFrom(k.Addr, k.Addr.BitLen()),
			Direction: k.Direction,
			Hostgroup: g.name,
			Started:   now,
			Reason:    reason,
		}}
		e.attacks.Add(1)
		e.fill(h)
		e.log.Info("attack started", "victim", k.Addr.String(), "direction", k.Direction.String(),
			"hostgroup", g.name, "reason", reason)
		return Event{Kind: AttackStarted, At: now, Signature: h.attack.sig}, true
	}
	e.fill(h)
	if crossed(th, h.pps, h.bps, e.cfg.EndRatio) != "" {
		h.attack.belowSince = time.Time{}
		return Event{}, false
	}
	if h.attack.belowSince.IsZero() {
		h.attack.belowSince = now
	}
	if now.Sub(h.attack.belowSince) < e.cfg.EndHold {
		return Event{}, false
	}
	sig := h.attack.sig
	h.attack = nil
	e.attacks.Add(-1)
	e.log.Info("attack ended", "victim", k.Addr.String(), "direction", k.Direction.String(),
		"hostgroup", g.name, "peak_pps", int64(sig.PeakPPS))
	return Event{Kind: AttackEnded, At: now, Signature: sig}, true
}

// fill refreshes the attack signature's rates and shares.
func (e *Engine) fill(h *host) {
	s := &h.attack.sig
	s.PPS, s.BPS = h.pps, h.bps
	s.PeakPPS, s.PeakBPS = max(s.PeakPPS, h.pps), max(s.PeakBPS, h.bps)
	if n := float64(h.lastPkts); n > 0 {
		s.TCP, s.TCPSYN, s.UDP = float64(h.lastTCP)/n, float64(h.lastSYN)/n, float64(h.lastUDP)/n
		s.ICMP, s.Fragment, s.Other = float64(h.lastICMP)/n, float64(h.lastFrag)/n, float64(h.lastOther)/n
	}
}

// crossed reports which limit of th, scaled by ratio, the rates exceed, or
// "" if none.
func crossed(th policies.Threshold, pps, bps, ratio float64) string {
	if th.PPS > 0 && pps > float64(th.PPS)*ratio {
		return fmt.Sprintf("pps %.0f > %d", pps, th.PPS)
	}
	if th.BPS > 0 && bps > float64(th.BPS)*ratio {
		return fmt.Sprintf("bps %.0f > %d", bps, th.BPS)
	}
	return ""
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Records:   e.records.Load(),
		Monitored: e.monitored.Load(),
		Hosts:     int(e.hosts.Load()),
		Refused:   e.refused.Load(),
		Evicted:   e.evictions.Load(),
		Attacks:   int(e.attacks.Load()),
	}
}

// Rates returns the smoothed rates of a tracked host.
func (e *Engine) Rates(k Host) (pps, bps float64, ok bool) {
	s := &e.shards[maphash.Comparable(e.seed, k)%numShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[k]
	if h == nil {
		return 0, 0, false
	}
	return h.pps, h.bps, true
}
