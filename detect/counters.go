// Counters: one tick's counts of a host or a hostgroup by traffic class,
// and the lock-free counters of hosts refused for MaxHosts.

package detect

import (
	"math"
	"sync/atomic"

	"github.com/floodgate-ddos/floodgate/sources"
)

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
