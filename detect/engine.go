// The engine's assembly: its settings, state and counters, New, policy
// publication and the tick loop's lifecycle.

package detect

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
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
	flowSetSize        = 1 << 10 // fingerprints per distinct-flow set, at first
	maxFlowSetSize     = 1 << 13 // and at most (6144 flows)
	// flowPeriod is the period over which a flow counts once: the flows
	// rate is distinct flows per second, whatever the tick.
	flowPeriod = time.Second
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
	ticks  uint64 // ticks so far: which distinct-flow set the next one empties
	groups map[groupKey]*groupState
	totals [][2]counters // per prefix entry and direction, reused

	scratch [8]atomic.Pointer[ingestScratch]

	mu      sync.Mutex // guards the tick loop's lifecycle
	cancel  context.CancelFunc
	stopped chan struct{}
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

type shard struct {
	mu    sync.Mutex
	hosts [2]hostTable // by direction
	// flows are the distinct-flow sets, one per tick of flowPeriod: a
	// flow belongs to the set its fingerprint picks, and set k is
	// emptied on every tick whose number is k modulo len(flows). So a
	// flow counts once per flowPeriod however long it lasts and however
	// often it is reported, and the counts of a host's many flows are
	// spread evenly over the ticks.
	flows    []flowSet
	flowFull uint64 // records counted as new flows because their set was full
	_        [64]byte
}

// flowSet is an open-addressing set of flow fingerprints.
type flowSet struct {
	slots []uint64
	n     int
}

// New returns an engine for the hostgroups of pol. It starts nothing. Events
// are delivered on the channel returned by Events. A setting of cfg that is
// zero or negative takes its default.
func New(cfg Config, pol *policies.Policy, logger hclog.Logger) (*Engine, error) {
	if cfg.Tick <= 0 {
		cfg.Tick = pol.Detection.Tick
	}
	if cfg.Tick <= 0 {
		return nil, errors.New("detect: tick must be positive")
	}
	cfg.MaxHosts = cmp.Or(max(cfg.MaxHosts, 0), DefaultMaxHosts)
	cfg.MaxSketches = cmp.Or(max(cfg.MaxSketches, 0), DefaultMaxSketches)
	if cfg.EndRatio <= 0 || cfg.EndRatio >= 1 {
		cfg.EndRatio = DefaultEndRatio
	}
	cfg.EndHold = cmp.Or(max(cfg.EndHold, 0), DefaultEndHold)
	cfg.IdleTime = cmp.Or(max(cfg.IdleTime, 0), DefaultIdleTime)
	cfg.UpdateEvery = cmp.Or(max(cfg.UpdateEvery, 0), DefaultUpdateEvery)
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
		e.shards[i].flows = make([]flowSet, max(1, int((flowPeriod+cfg.Tick/2)/cfg.Tick)))
		for k := range e.shards[i].flows {
			e.shards[i].flows[k].slots = make([]uint64, flowSetSize)
		}
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
			burst: pol.Detection.BurstFactor, burstTau: max(pol.Detection.BurstEWMA, e.cfg.Tick),
			window: max(cmp.Or(pol.Detection.Window, policies.DefaultWindow), 2*e.cfg.Tick)}
		g.dir[Incoming] = compileDir(hg.Incoming)
		g.dir[Outgoing] = compileDir(hg.Outgoing)
		for d := range g.dir {
			g.trigger[d].pkts, g.trigger[d].bytes = float32(math.Inf(1)), float32(math.Inf(1))
			for _, l := range g.dir[d].host {
				if l.class != clsTotal {
					continue
				}
				per := float32(suspectRatio * l.value * e.cfg.Tick.Seconds())
				switch l.unit {
				case unitPPS:
					g.trigger[d].pkts = min(g.trigger[d].pkts, per)
				case unitBPS:
					g.trigger[d].bytes = min(g.trigger[d].bytes, per/8)
				}
			}
		}
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

// Start runs the tick loop until Stop is called (or ctx is done).
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

// Stop ends the tick loop and waits for it, or for ctx. Ingest goes on
// working after Stop: the daemon stops its sources first, so every record
// they read has been counted when Stop is called.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	select {
	case <-e.stopped:
	case <-ctx.Done():
		return fmt.Errorf("detect: stop: %w", ctx.Err())
	}
	e.cancel = nil
	e.log.Info("tick stopped", "records", e.records.Load())
	return nil
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
