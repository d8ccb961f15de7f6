// Package flowspec owns what Floodgate announces: the Announcement model
// (RTBH routes today; FlowSpec rules per RFC 8955/8956 next), the safety
// checks every announcement passes whatever asked for it, and the
// conversion to GoBGP API paths. It decides what a route looks like, never
// when to announce it.
package flowspec

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/floodgate-ddos/floodgate/policies"
)

// Kind is the kind of announcement.
type Kind uint8

// Announcement kinds.
const (
	RTBH Kind = iota + 1 // remotely triggered blackhole (RFC 7999)
)

// String names the kind.
func (k Kind) String() string {
	if k == RTBH {
		return "rtbh"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Announcement is one route Floodgate announces. Its Key identifies it:
// announcing the same key again replaces the route, withdrawing removes
// exactly it.
type Announcement struct {
	Kind Kind
	// Prefix is the destination: the victim host for RTBH.
	Prefix netip.Prefix
	// Communities are the standard communities attached, in order.
	Communities []policies.Community
	// NextHop is the route's next hop; invalid means the session's own
	// address.
	NextHop netip.Addr
}

// Key identifies the announcement's NLRI, stable across processes.
func (a Announcement) Key() string {
	return a.Kind.String() + ":" + a.Prefix.String()
}

// String describes the announcement for logs.
func (a Announcement) String() string {
	cs := make([]string, len(a.Communities))
	for i, c := range a.Communities {
		cs[i] = c.String()
	}
	nh := "self"
	if a.NextHop.IsValid() {
		nh = a.NextHop.String()
	}
	return fmt.Sprintf("%s %s communities [%s] next-hop %s", a.Kind, a.Prefix, strings.Join(cs, " "), nh)
}

// NewRTBH returns the blackhole announcement for victim: the host route
// (/32 or /128) with BLACKHOLE, NO_EXPORT and the configured communities,
// and the configured next hop of its family.
func NewRTBH(victim netip.Addr, g policies.BGP) Announcement {
	victim = victim.Unmap()
	a := Announcement{
		Kind:        RTBH,
		Prefix:      netip.PrefixFrom(victim, victim.BitLen()),
		Communities: append([]policies.Community{policies.Blackhole, policies.NoExport}, g.Communities...),
	}
	if victim.Is4() {
		a.NextHop = g.NextHopIPv4
	} else {
		a.NextHop = g.NextHopIPv6
	}
	return a
}

// ErrRefused wraps every safety refusal.
var ErrRefused = errors.New("announcement refused")

// Check applies the safety rules to a: the prefix is a host route inside a
// monitored hostgroup, and the next hop matches its family. It returns the
// hostgroup, or an error wrapping ErrRefused that says why.
func Check(a Announcement, pol *policies.Policy) (*policies.Hostgroup, error) {
	if !a.Prefix.IsValid() {
		return nil, fmt.Errorf("%w: no destination prefix", ErrRefused)
	}
	if a.Prefix.Addr().Is4In6() {
		return nil, fmt.Errorf("%w: %s is IPv4-mapped", ErrRefused, a.Prefix)
	}
	if a.Prefix.Masked() != a.Prefix {
		return nil, fmt.Errorf("%w: %s has host bits set", ErrRefused, a.Prefix)
	}
	switch a.Kind {
	case RTBH:
		if a.Prefix.Bits() != a.Prefix.Addr().BitLen() {
			return nil, fmt.Errorf("%w: RTBH prefix %s is not a host route", ErrRefused, a.Prefix)
		}
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrRefused, a.Kind)
	}
	if a.NextHop.IsValid() && a.NextHop.Is4() != a.Prefix.Addr().Is4() {
		return nil, fmt.Errorf("%w: next hop %s does not match %s", ErrRefused, a.NextHop, a.Prefix)
	}
	if !slices.Contains(a.Communities, policies.Blackhole) {
		return nil, fmt.Errorf("%w: RTBH %s lacks the BLACKHOLE community", ErrRefused, a.Prefix)
	}
	hg, ok := pol.Covering(a.Prefix)
	if !ok {
		return nil, fmt.Errorf("%w: %s is outside every monitored network", ErrRefused, a.Prefix)
	}
	return hg, nil
}

// Family returns the address family the announcement is sent in.
func (a Announcement) Family() string {
	if a.Prefix.Addr().Is4() {
		return "ipv4-unicast"
	}
	return "ipv6-unicast"
}

// Path converts the announcement into a GoBGP API path.
func (a Announcement) Path() (*api.Path, error) {
	if a.Kind != RTBH {
		return nil, fmt.Errorf("path for %s: unsupported kind", a.Kind)
	}
	comms := make([]uint32, len(a.Communities))
	for i, c := range a.Communities {
		comms[i] = uint32(c)
	}
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_INCOMPLETE),
	}
	var nlri bgp.AddrPrefixInterface
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
	p, err := apiutil.NewPath(nlri, false, attrs, time.Unix(0, 0))
	if err != nil {
		return nil, fmt.Errorf("path for %s: %w", a.Prefix, err)
	}
	return p, nil
}
