// The threshold compiler: a policy's hostgroups and limits, compiled into
// the limits the tick checks rates against.

package detect

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/floodgate-ddos/floodgate/policies"
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
	// window is the confidence window's length; trigger[d] the packets
	// and bytes of one tick (suspectRatio of the smallest total limits)
	// at which ingestion makes a host suspect at once, without waiting
	// for the tick, when they rest on minEvidence samples.
	window  time.Duration
	trigger [2]struct{ pkts, bytes float32 }
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
