package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	bgp "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/floodgate-ddos/floodgate/flowspec"
)

// Path converts an announcement into a GoBGP API path.
func Path(a *flowspec.Announcement) (*api.Path, error) {
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_INCOMPLETE)}
	var nlri bgp.AddrPrefixInterface
	switch a.Kind {
	case flowspec.RTBH:
		comms := make([]uint32, len(a.Communities))
		for i, c := range a.Communities {
			comms[i] = uint32(c)
		}
		bits := uint8(a.Prefix.Bits())
		if a.Prefix.Addr().Is4() {
			nh := "0.0.0.0"
			if a.NextHop.IsValid() {
				nh = a.NextHop.String()
			}
			nlri = bgp.NewIPAddrPrefix(bits, a.Prefix.Addr().String())
			attrs = append(attrs, bgp.NewPathAttributeNextHop(nh))
		} else {
			nh := "::"
			if a.NextHop.IsValid() {
				nh = a.NextHop.String()
			}
			nlri = bgp.NewIPv6AddrPrefix(bits, a.Prefix.Addr().String())
			attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(nh, []bgp.AddrPrefixInterface{nlri}))
		}
		attrs = append(attrs, bgp.NewPathAttributeCommunities(comms))
	case flowspec.FlowSpec:
		if a.Rule == nil {
			return nil, errors.New("flowspec announcement without a rule")
		}
		var err error
		if nlri, err = NLRI(a.Rule); err != nil {
			return nil, err
		}
		ec, err := ExtCommunity(a.Action)
		if err != nil {
			return nil, err
		}
		// GoBGP needs a next hop even for FlowSpec, which has none.
		nh := "0.0.0.0"
		if !a.Rule.Dst.Addr().Is4() {
			nh = "::"
		}
		attrs = append(attrs,
			bgp.NewPathAttributeMpReachNLRI(nh, []bgp.AddrPrefixInterface{nlri}),
			bgp.NewPathAttributeExtendedCommunities([]bgp.ExtendedCommunityInterface{ec}))
	default:
		return nil, fmt.Errorf("path for %s: unsupported kind", a.Kind)
	}
	p, err := apiutil.NewPath(nlri, false, attrs, time.Unix(0, 0))
	if err != nil {
		return nil, fmt.Errorf("path for %s: %w", a.Key(), err)
	}
	return p, nil
}

// Numeric and bitmask operator bits (RFC 8955 4.2.1).
const (
	opEnd = 0x80
	opAnd = 0x40
	opLT  = 0x04
	opGT  = 0x02
	opEQ  = 0x01
	opNot = 0x02 // bitmask: not
	opMat = 0x01 // bitmask: match
)

func numericItems(rs []flowspec.Range) []*bgp.FlowSpecComponentItem {
	var items []*bgp.FlowSpecComponentItem
	for _, r := range rs {
		if r.Lo == r.Hi {
			items = append(items, bgp.NewFlowSpecComponentItem(opEQ, uint64(r.Lo)))
			continue
		}
		items = append(items,
			bgp.NewFlowSpecComponentItem(opGT|opEQ, uint64(r.Lo)),
			bgp.NewFlowSpecComponentItem(opAnd|opLT|opEQ, uint64(r.Hi)))
	}
	return items
}

// NLRI encodes r as a GoBGP FlowSpec NLRI of its destination's family,
// refusing what r.Validate refuses.
func NLRI(r *flowspec.Rule) (bgp.AddrPrefixInterface, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	v4 := r.Dst.Addr().Is4()
	var cs []bgp.FlowSpecComponentInterface
	prefix := func(p netip.Prefix, dst bool) {
		if !p.IsValid() {
			return
		}
		if v4 {
			pp := bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String())
			if dst {
				cs = append(cs, bgp.NewFlowSpecDestinationPrefix(pp))
			} else {
				cs = append(cs, bgp.NewFlowSpecSourcePrefix(pp))
			}
			return
		}
		pp := bgp.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String())
		if dst {
			cs = append(cs, bgp.NewFlowSpecDestinationPrefix6(pp, 0))
		} else {
			cs = append(cs, bgp.NewFlowSpecSourcePrefix6(pp, 0))
		}
	}
	prefix(r.Dst, true)
	prefix(r.Src, false)
	num := func(t bgp.BGPFlowSpecType, rs []flowspec.Range) {
		if len(rs) > 0 {
			cs = append(cs, bgp.NewFlowSpecComponent(t, numericItems(rs)))
		}
	}
	num(bgp.FLOW_SPEC_TYPE_IP_PROTO, ranges(r.Protocols))
	num(bgp.FLOW_SPEC_TYPE_PORT, r.Ports)
	num(bgp.FLOW_SPEC_TYPE_DST_PORT, r.DstPorts)
	num(bgp.FLOW_SPEC_TYPE_SRC_PORT, r.SrcPorts)
	num(bgp.FLOW_SPEC_TYPE_ICMP_TYPE, ranges(r.ICMPTypes))
	num(bgp.FLOW_SPEC_TYPE_ICMP_CODE, ranges(r.ICMPCodes))
	if r.TCPFlagsSet != 0 || r.TCPFlagsUnset != 0 {
		var items []*bgp.FlowSpecComponentItem
		if r.TCPFlagsSet != 0 {
			items = append(items, bgp.NewFlowSpecComponentItem(opMat, uint64(r.TCPFlagsSet)))
		}
		if r.TCPFlagsUnset != 0 {
			op := uint8(opNot)
			if len(items) > 0 {
				op |= opAnd
			}
			items = append(items, bgp.NewFlowSpecComponentItem(op, uint64(r.TCPFlagsUnset)))
		}
		cs = append(cs, bgp.NewFlowSpecComponent(bgp.FLOW_SPEC_TYPE_TCP_FLAG, items))
	}
	num(bgp.FLOW_SPEC_TYPE_PKT_LEN, r.PacketLengths)
	num(bgp.FLOW_SPEC_TYPE_DSCP, ranges(r.DSCP))
	if r.Fragment != 0 {
		cs = append(cs, bgp.NewFlowSpecComponent(bgp.FLOW_SPEC_TYPE_FRAGMENT,
			[]*bgp.FlowSpecComponentItem{bgp.NewFlowSpecComponentItem(0, uint64(r.Fragment))}))
	}
	if len(r.FlowLabels) > 0 {
		var items []*bgp.FlowSpecComponentItem
		for _, l := range r.FlowLabels {
			items = append(items, bgp.NewFlowSpecComponentItem(opEQ, uint64(l)))
		}
		cs = append(cs, bgp.NewFlowSpecComponent(bgp.FLOW_SPEC_TYPE_LABEL, items))
	}
	var nlri bgp.AddrPrefixInterface
	if v4 {
		nlri = bgp.NewFlowSpecIPv4Unicast(cs)
	} else {
		nlri = bgp.NewFlowSpecIPv6Unicast(cs)
	}
	b, err := nlri.Serialize()
	if err != nil {
		return nil, fmt.Errorf("flowspec rule %s: %w", r, err)
	}
	if len(b) != r.EncodedLen() {
		return nil, fmt.Errorf("flowspec rule %s: %d bytes encoded, %d expected", r, len(b), r.EncodedLen())
	}
	return nlri, nil
}

// ExtCommunity returns the action's extended community.
func ExtCommunity(a flowspec.Action) (bgp.ExtendedCommunityInterface, error) {
	switch a.Kind {
	case flowspec.Discard:
		return bgp.NewTrafficRateExtended(0, 0), nil
	case flowspec.RateLimit:
		if a.RateBytes <= 0 {
			return nil, errors.New("rate-limit with no rate")
		}
		return bgp.NewTrafficRateExtended(0, a.RateBytes), nil
	case flowspec.Redirect:
		return bgp.NewRedirectTwoOctetAsSpecificExtended(a.RTASN, a.RTValue), nil
	case flowspec.Mark:
		if a.DSCP > 63 {
			return nil, fmt.Errorf("dscp %d out of range", a.DSCP)
		}
		return bgp.NewTrafficRemarkExtended(a.DSCP), nil
	}
	return nil, fmt.Errorf("unknown flowspec action %d", a.Kind)
}

func ranges(vs []uint8) []flowspec.Range {
	out := make([]flowspec.Range, len(vs))
	for i, v := range vs {
		out[i] = flowspec.Single(uint32(v))
	}
	return out
}
