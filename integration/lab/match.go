package lab

import (
	"fmt"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/floodgate-ddos/floodgate/flowspec"
)

// RouteMatches reports whether the FlowSpec route rt, as a router holds
// it, matches p: every component must match (RFC 8955 and 8956); a port,
// ICMP or TCP flags component never matches a packet without that header
// (another protocol, or a later fragment). It lets tests measure what the
// rules the routers received drop of an attack and of a victim's own
// traffic.
func RouteMatches(rt Route, p *flowspec.Packet) (bool, error) {
	m, err := RouteMatcher(rt)
	if err != nil {
		return false, err
	}
	return m(p)
}

// RouteMatcher parses rt once and returns RouteMatches for it.
func RouteMatcher(rt Route) (func(*flowspec.Packet) (bool, error), error) {
	r, err := parseFlowText(rt.Prefix)
	if err != nil {
		return nil, err
	}
	return func(p *flowspec.Packet) (bool, error) {
		for _, c := range r {
			ok, err := c.matches(p)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	}, nil
}

func (c flowComponent) matches(p *flowspec.Packet) (bool, error) {
	transport := (p.Proto == 6 || p.Proto == 17) && p.Fragment&flowspec.FragIsFragment == 0
	icmp := (p.Proto == 1 || p.Proto == 58) && p.Fragment&flowspec.FragIsFragment == 0
	switch c.typ {
	case bgp.FLOW_SPEC_TYPE_DST_PREFIX:
		return c.prefix.Contains(p.Dst), nil
	case bgp.FLOW_SPEC_TYPE_SRC_PREFIX:
		return c.prefix.Contains(p.Src), nil
	case bgp.FLOW_SPEC_TYPE_IP_PROTO:
		return c.numeric(uint64(p.Proto)), nil
	case bgp.FLOW_SPEC_TYPE_PORT:
		return transport && (c.numeric(uint64(p.SrcPort)) || c.numeric(uint64(p.DstPort))), nil
	case bgp.FLOW_SPEC_TYPE_DST_PORT:
		return transport && c.numeric(uint64(p.DstPort)), nil
	case bgp.FLOW_SPEC_TYPE_SRC_PORT:
		return transport && c.numeric(uint64(p.SrcPort)), nil
	case bgp.FLOW_SPEC_TYPE_ICMP_TYPE:
		return icmp && c.numeric(uint64(p.ICMPType)), nil
	case bgp.FLOW_SPEC_TYPE_ICMP_CODE:
		return icmp && c.numeric(uint64(p.ICMPCode)), nil
	case bgp.FLOW_SPEC_TYPE_TCP_FLAG:
		return p.Proto == 6 && p.Fragment&flowspec.FragIsFragment == 0 && c.bitmask(uint64(p.TCPFlags)), nil
	case bgp.FLOW_SPEC_TYPE_PKT_LEN:
		return c.numeric(uint64(p.Length)), nil
	case bgp.FLOW_SPEC_TYPE_DSCP:
		return c.numeric(uint64(p.DSCP)), nil
	case bgp.FLOW_SPEC_TYPE_FRAGMENT:
		return c.bitmask(uint64(p.Fragment)), nil
	}
	return false, fmt.Errorf("match: component %s is not supported", c)
}

// numeric evaluates a numeric operator list: runs of items joined by the
// AND bit are ANDed, the runs ORed (RFC 8955 4.2.1.1).
func (c flowComponent) numeric(v uint64) bool {
	return c.eval(func(it flowItem) bool {
		switch it.op & 0x07 {
		case 0:
			return false
		case fsOpLessThan | fsOpGreater | fsOpEqual:
			return true
		}
		return (it.op&fsOpLessThan != 0 && v < it.value) || (it.op&fsOpGreater != 0 && v > it.value) || (it.op&fsOpEqual != 0 && v == it.value)
	})
}

// bitmask evaluates a bitmask operator list (RFC 8955 4.2.1.2): with the
// match bit, all of the value's bits must be set, else any of them; the
// not bit negates.
func (c flowComponent) bitmask(v uint64) bool {
	return c.eval(func(it flowItem) bool {
		var ok bool
		if it.op&fsOpMatch != 0 {
			ok = v&it.value == it.value
		} else {
			ok = v&it.value != 0
		}
		if it.op&fsOpNot != 0 {
			ok = !ok
		}
		return ok
	})
}

func (c flowComponent) eval(item func(flowItem) bool) bool {
	result, run := false, false
	for i, it := range c.items {
		if i == 0 || !it.and {
			result = result || (i > 0 && run)
			run = item(it)
			continue
		}
		run = run && item(it)
	}
	return result || (len(c.items) > 0 && run)
}
