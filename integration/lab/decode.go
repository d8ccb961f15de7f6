package lab

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// apiFamily returns the GoBGP API family of f.
func (f Family) apiFamily() (*api.Family, error) {
	switch f {
	case FamilyIPv4Unicast:
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, nil
	case FamilyIPv6Unicast:
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, nil
	case FamilyIPv4FlowSpec:
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_FLOW_SPEC_UNICAST}, nil
	case FamilyIPv6FlowSpec:
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_FLOW_SPEC_UNICAST}, nil
	}
	return nil, fmt.Errorf("unsupported family %q", f)
}

// routeFromPath converts a path listed by the GoBGP API. It uses the binary
// NLRI and attributes when the daemon sent them, else the structured ones.
func routeFromPath(fam Family, p *api.Path) (Route, error) {
	nlri, err := apiutil.GetNativeNlri(p)
	if err != nil {
		return Route{}, fmt.Errorf("decode %s nlri: %w", fam, err)
	}
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return Route{}, fmt.Errorf("decode %s path attributes of %s: %w", fam, nlri, err)
	}
	r, err := newRoute(fam, nlri, attrs)
	if err != nil {
		return Route{}, err
	}
	r.Best = p.GetBest()
	r.Stale = p.GetStale()
	if a, err := netip.ParseAddr(p.GetNeighborIp()); err == nil && !a.IsUnspecified() {
		r.From = a.Unmap()
	}
	if ts := p.GetAge(); ts != nil && (ts.GetSeconds() != 0 || ts.GetNanos() != 0) {
		r.Received = ts.AsTime()
	}
	return r, nil
}

// newRoute builds a Route from decoded NLRI and path attributes.
func newRoute(fam Family, nlri bgp.AddrPrefixInterface, attrs []bgp.PathAttributeInterface) (Route, error) {
	r := Route{Family: fam}
	switch n := nlri.(type) {
	case *bgp.IPAddrPrefix:
		p, err := prefixText(&n.IPAddrPrefixDefault, true, 0)
		if err != nil {
			return Route{}, err
		}
		r.Prefix = p
	case *bgp.IPv6AddrPrefix:
		p, err := prefixText(&n.IPAddrPrefixDefault, false, 0)
		if err != nil {
			return Route{}, err
		}
		r.Prefix = p
	case *bgp.FlowSpecIPv4Unicast:
		r.Prefix = FlowSpecText(&n.FlowSpecNLRI)
	case *bgp.FlowSpecIPv6Unicast:
		r.Prefix = FlowSpecText(&n.FlowSpecNLRI)
	default:
		return Route{}, fmt.Errorf("decode %s nlri: unsupported type %T (%s)", fam, nlri, nlri)
	}
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			r.NextHop = ipAddr(a.Value).Unmap()
		case *bgp.PathAttributeMpReachNLRI:
			nh := ipAddr(a.Nexthop)
			if fam == FamilyIPv4Unicast || fam == FamilyIPv4FlowSpec {
				nh = nh.Unmap()
			}
			if nh.IsValid() && !(fam.IsFlowSpec() && nh.IsUnspecified()) {
				r.NextHop = nh
			}
		case *bgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				r.ASPath = append(r.ASPath, seg.GetAS()...)
			}
		case *bgp.PathAttributeCommunities:
			for _, c := range a.Value {
				r.Communities = append(r.Communities, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
			}
		case *bgp.PathAttributeLargeCommunities:
			for _, c := range a.Values {
				r.LargeCommunities = append(r.LargeCommunities, fmt.Sprintf("%d:%d:%d", c.ASN, c.LocalData1, c.LocalData2))
			}
		case *bgp.PathAttributeExtendedCommunities:
			for _, c := range a.Value {
				b, err := c.Serialize()
				if err != nil {
					return Route{}, fmt.Errorf("encode extended community %s of %s: %w", c, r.Prefix, err)
				}
				r.ExtCommunities = append(r.ExtCommunities, ExtCommunityText(b))
			}
		}
	}
	return r, nil
}

// ipAddr converts a net.IP, returning the zero Addr for nil or bad input.
// An IPv4 address in 16-byte form becomes an IPv4-mapped IPv6 address; the
// caller unmaps it where the family says IPv4.
func ipAddr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a
}

// prefixText prints a decoded prefix (IPv4 if v4) as netip.Prefix does, with "/offN"
// appended for a non-zero IPv6 FlowSpec offset.
func prefixText(p *bgp.IPAddrPrefixDefault, v4 bool, offset uint8) (string, error) {
	a := ipAddr(p.Prefix)
	if v4 {
		a = a.Unmap()
	}
	if !a.IsValid() {
		return "", fmt.Errorf("bad prefix address %v", p.Prefix)
	}
	pfx, err := a.Prefix(int(p.Length))
	if err != nil {
		return "", fmt.Errorf("bad prefix %v/%d: %w", p.Prefix, p.Length, err)
	}
	s := pfx.String()
	if offset != 0 {
		s += "/off" + strconv.FormatUint(uint64(offset), 10)
	}
	return s, nil
}

// FlowSpecText returns the canonical text of a FlowSpec NLRI documented on
// Route.Prefix, for example
// "destination:203.0.113.10/32 protocol:==udp source-port:==123".
func FlowSpecText(n *bgp.FlowSpecNLRI) string {
	parts := make([]string, 0, len(n.Value))
	for _, c := range n.Value {
		parts = append(parts, flowSpecComponentText(c))
	}
	return strings.Join(parts, " ")
}

func flowSpecComponentText(c bgp.FlowSpecComponentInterface) string {
	name := c.Type().String()
	var value string
	var err error
	switch c := c.(type) {
	case *bgp.FlowSpecDestinationPrefix:
		value, err = flowSpecPrefixText(c.Prefix, 0)
	case *bgp.FlowSpecSourcePrefix:
		value, err = flowSpecPrefixText(c.Prefix, 0)
	case *bgp.FlowSpecDestinationPrefix6:
		value, err = flowSpecPrefixText(c.Prefix, c.Offset)
	case *bgp.FlowSpecSourcePrefix6:
		value, err = flowSpecPrefixText(c.Prefix, c.Offset)
	case *bgp.FlowSpecSourceMac:
		value = c.Mac.String()
	case *bgp.FlowSpecDestinationMac:
		value = c.Mac.String()
	case *bgp.FlowSpecComponent:
		value = flowSpecItemsText(c.Type(), c.Items)
	default:
		err = fmt.Errorf("unsupported component %T", c)
	}
	if err != nil {
		b, serr := c.Serialize()
		if serr != nil {
			return "unknown:" + c.String()
		}
		return "unknown:" + fmt.Sprintf("%x", b)
	}
	return name + ":" + value
}

func flowSpecPrefixText(p bgp.AddrPrefixInterface, offset uint8) (string, error) {
	switch p := p.(type) {
	case *bgp.IPAddrPrefix:
		return prefixText(&p.IPAddrPrefixDefault, true, offset)
	case *bgp.IPv6AddrPrefix:
		return prefixText(&p.IPAddrPrefixDefault, false, offset)
	}
	return "", fmt.Errorf("unsupported prefix %T", p)
}

// FlowSpec operator bits (RFC 8955 section 4.2.1).
const (
	fsOpAnd      = 0x40
	fsOpLessThan = 0x04
	fsOpGreater  = 0x02
	fsOpEqual    = 0x01
	fsOpNot      = 0x02 // bitmask operator
	fsOpMatch    = 0x01 // bitmask operator
)

func flowSpecItemsText(typ bgp.BGPFlowSpecType, items []*bgp.FlowSpecComponentItem) string {
	return formatFlowItems(typ, fromBGPItems(items))
}

var protocolNames = map[uint64]string{
	1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 132: "sctp",
}

func protocolText(v uint64) string {
	if n, ok := protocolNames[v]; ok {
		return n
	}
	return strconv.FormatUint(v, 10)
}

// Flag names in bit order, least significant first.
var (
	tcpFlagNames      = []string{"F", "S", "R", "P", "A", "U", "E", "C"}
	fragmentFlagNames = []string{"dont-fragment", "is-fragment", "first-fragment", "last-fragment"}
)

func bitmaskValueText(typ bgp.BGPFlowSpecType, v uint64) string {
	names, sep := tcpFlagNames, ""
	if typ == bgp.FLOW_SPEC_TYPE_FRAGMENT {
		names, sep = fragmentFlagNames, "+"
	}
	if v == 0 {
		return "0"
	}
	if v>>len(names) != 0 {
		return "0x" + strconv.FormatUint(v, 16)
	}
	var parts []string
	for i, n := range names {
		if v&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, sep)
}

// ExtCommunityText returns the text of one extended community given its 8
// wire bytes, as documented on Route.ExtCommunities.
func ExtCommunityText(b []byte) string {
	if len(b) != 8 {
		return fmt.Sprintf("0x%x", b)
	}
	as2 := binary.BigEndian.Uint16(b[2:4])
	switch typ, sub := b[0], b[1]; {
	case typ == 0x80 && (sub == 0x06 || sub == 0x0c):
		name := "traffic-rate:"
		if sub == 0x0c {
			name = "traffic-rate-packets:"
		}
		rate := math.Float32frombits(binary.BigEndian.Uint32(b[4:8]))
		s := name + strconv.FormatFloat(float64(rate), 'f', -1, 32)
		if as2 != 0 {
			s += "/as" + strconv.FormatUint(uint64(as2), 10)
		}
		return s
	case typ == 0x80 && sub == 0x07:
		var acts []string
		if b[7]&0x02 != 0 {
			acts = append(acts, "sample")
		}
		if b[7]&0x01 != 0 {
			acts = append(acts, "terminal")
		}
		if len(acts) == 0 {
			return "traffic-action:none"
		}
		return "traffic-action:" + strings.Join(acts, ",")
	case typ == 0x80 && sub == 0x08:
		return fmt.Sprintf("redirect:%d:%d", as2, binary.BigEndian.Uint32(b[4:8]))
	case typ == 0x81 && sub == 0x08:
		return fmt.Sprintf("redirect:%s:%d", netip.AddrFrom4([4]byte(b[2:6])), binary.BigEndian.Uint16(b[6:8]))
	case typ == 0x82 && sub == 0x08:
		return fmt.Sprintf("redirect:%d:%d", binary.BigEndian.Uint32(b[2:6]), binary.BigEndian.Uint16(b[6:8]))
	case typ == 0x80 && sub == 0x09:
		return "traffic-marking:" + strconv.Itoa(int(b[7]&0x3f))
	case typ == 0x00 && sub == 0x02:
		return fmt.Sprintf("rt:%d:%d", as2, binary.BigEndian.Uint32(b[4:8]))
	case typ == 0x01 && sub == 0x02:
		return fmt.Sprintf("rt:%s:%d", netip.AddrFrom4([4]byte(b[2:6])), binary.BigEndian.Uint16(b[6:8]))
	case typ == 0x02 && sub == 0x02:
		return fmt.Sprintf("rt:%d:%d", binary.BigEndian.Uint32(b[2:6]), binary.BigEndian.Uint16(b[6:8]))
	}
	return fmt.Sprintf("0x%016x", binary.BigEndian.Uint64(b))
}
