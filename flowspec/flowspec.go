// Package flowspec owns what Floodgate announces: the Announcement model
// (RTBH routes per RFC 7999, FlowSpec rules per RFC 8955 and RFC 8956), the
// builder that turns an attack's shape into the narrowest rules covering it,
// the safety checks every announcement passes whatever asked for it. It
// decides what a route looks like, never when to announce it, and knows
// nothing of GoBGP: package bgp encodes its announcements.
package flowspec

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/floodgate-ddos/floodgate/policies"
)

// Kind is the kind of announcement.
type Kind uint8

// Announcement kinds.
const (
	RTBH     Kind = iota + 1 // remotely triggered blackhole (RFC 7999)
	FlowSpec                 // FlowSpec rule (RFC 8955, RFC 8956)
)

// String names the kind as policies do.
func (k Kind) String() string {
	switch k {
	case RTBH:
		return policies.KindRTBH
	case FlowSpec:
		return policies.KindFlowSpec
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Announcement is one route Floodgate announces. Its Key identifies it:
// announcing the same key again replaces the route, withdrawing removes
// exactly it.
type Announcement struct {
	Kind Kind
	// Prefix is the blackholed prefix (RTBH).
	Prefix netip.Prefix
	// Communities are the standard communities of an RTBH route.
	Communities []policies.Community
	// NextHop is the RTBH next hop; invalid means the session's own
	// address.
	NextHop netip.Addr
	// Rule and Action are the FlowSpec rule.
	Rule   *Rule
	Action Action
}

// Key identifies the announcement's NLRI, stable across processes.
func (a *Announcement) Key() string {
	if a.Kind == FlowSpec && a.Rule != nil {
		return "flowspec:" + a.Rule.String()
	}
	return a.Kind.String() + ":" + a.Prefix.String()
}

// Destination is the destination prefix the announcement affects.
func (a *Announcement) Destination() netip.Prefix {
	if a.Kind == FlowSpec && a.Rule != nil {
		return a.Rule.Dst
	}
	return a.Prefix
}

// String describes the announcement for logs.
func (a *Announcement) String() string {
	if a.Kind == FlowSpec && a.Rule != nil {
		return fmt.Sprintf("flowspec [%s] then %s", a.Rule, a.Action)
	}
	cs := make([]string, len(a.Communities))
	for i, c := range a.Communities {
		cs[i] = c.String()
	}
	nh := "self"
	if a.NextHop.IsValid() {
		nh = a.NextHop.String()
	}
	return fmt.Sprintf("rtbh %s communities [%s] next-hop %s", a.Prefix, strings.Join(cs, " "), nh)
}

// NewRTBH returns the blackhole announcement for a prefix: BLACKHOLE,
// NO_EXPORT, the global communities, then extra; the configured next hop
// of its family.
func NewRTBH(p netip.Prefix, g policies.BGP, extra []policies.Community) Announcement {
	p = netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen())).Masked()
	comms := append([]policies.Community{policies.Blackhole, policies.NoExport}, g.Communities...)
	for _, c := range extra {
		if !slices.Contains(comms, c) {
			comms = append(comms, c)
		}
	}
	a := Announcement{Kind: RTBH, Prefix: p, Communities: comms}
	if p.Addr().Is4() {
		a.NextHop = g.NextHopIPv4
	} else {
		a.NextHop = g.NextHopIPv6
	}
	return a
}

// HostPrefix returns addr as a /32 or /128.
func HostPrefix(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	return netip.PrefixFrom(addr, addr.BitLen())
}

// NewFlowSpec returns the FlowSpec announcement of a rule and the policy
// action.
func NewFlowSpec(r Rule, act *policies.FlowSpecAction) (Announcement, error) {
	a := Announcement{Kind: FlowSpec, Rule: &r}
	switch act.Action {
	case "discard":
		a.Action = Action{Kind: Discard}
	case "rate-limit":
		a.Action = Action{Kind: RateLimit, RateBytes: float32(act.RateBPS) / 8}
	case "redirect":
		asn, v, err := policies.ParseRouteTarget(act.Redirect)
		if err != nil {
			return a, err
		}
		a.Action = Action{Kind: Redirect, RTASN: asn, RTValue: v}
	case "mark":
		a.Action = Action{Kind: Mark, DSCP: act.DSCP}
	default:
		return a, fmt.Errorf("unknown flowspec action %q", act.Action)
	}
	return a, nil
}

// ErrRefused wraps every safety refusal.
var ErrRefused = errors.New("announcement refused")

// Refusal reasons, for counting.
const (
	ReasonNoDestination = "no_destination"
	ReasonMalformed     = "malformed"
	ReasonOutside       = "outside_monitored"
	ReasonWhitelisted   = "whitelisted"
	ReasonTooBroad      = "too_broad"
	ReasonTooLarge      = "too_large"
)

// RefusedError says why an announcement was refused.
type RefusedError struct {
	Reason string // one of the Reason constants
	Detail string
}

func (e *RefusedError) Error() string { return "announcement refused: " + e.Detail }

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

func refuse(reason, format string, args ...any) error {
	return &RefusedError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Check applies the safety rules to a, whatever asked for it, and returns
// the hostgroup the destination is in:
//   - there is a destination prefix, host bits clear, not IPv4-mapped;
//   - it lies inside a monitored hostgroup, and no whitelisted prefix of
//     that hostgroup overlaps it;
//   - an RTBH prefix is a host route, unless a response of the hostgroup
//     blackholes that prefix length; it carries BLACKHOLE and its next hop
//     matches its family;
//   - a FlowSpec rule's encoding fits (see MaxNLRILen).
func Check(a *Announcement, pol *policies.Policy) (*policies.Hostgroup, error) {
	p := a.Destination()
	if !p.IsValid() {
		return nil, refuse(ReasonNoDestination, "no destination prefix")
	}
	if p.Addr().Is4In6() || p.Masked() != p {
		return nil, refuse(ReasonMalformed, "destination %s is IPv4-mapped or has host bits set", p)
	}
	hg, ok := pol.Covering(p)
	if !ok {
		return nil, refuse(ReasonOutside, "%s is outside every monitored network", p)
	}
	for _, w := range hg.Whitelist {
		if w.Overlaps(p) {
			return nil, refuse(ReasonWhitelisted, "%s overlaps whitelisted %s of hostgroup %q", p, w, hg.Name)
		}
	}
	for _, w := range hg.WhitelistFlows {
		if mayDrop(a, p, w) {
			return nil, refuse(ReasonWhitelisted, "%s could drop whitelisted flow %q of hostgroup %q", p, w.String(), hg.Name)
		}
	}
	switch a.Kind {
	case RTBH:
		if p.Bits() != p.Addr().BitLen() && !allowsRTBHLength(hg, p) {
			return nil, refuse(ReasonTooBroad, "RTBH prefix %s is not a host route and no response of hostgroup %q blackholes /%d", p, hg.Name, p.Bits())
		}
		if !slices.Contains(a.Communities, policies.Blackhole) {
			return nil, refuse(ReasonMalformed, "RTBH %s lacks the BLACKHOLE community", p)
		}
		if a.NextHop.IsValid() && a.NextHop.Is4() != p.Addr().Is4() {
			return nil, refuse(ReasonMalformed, "next hop %s does not match %s", a.NextHop, p)
		}
	case FlowSpec:
		if a.Rule == nil {
			return nil, refuse(ReasonNoDestination, "flowspec announcement without a rule")
		}
		if err := a.Rule.Validate(); err != nil {
			if errors.Is(err, ErrRuleTooLarge) {
				return nil, refuse(ReasonTooLarge, "%v", err)
			}
			return nil, refuse(ReasonMalformed, "%v", err)
		}
		if err := a.Action.Validate(); err != nil {
			return nil, refuse(ReasonMalformed, "%v", err)
		}
		if len(a.Rule.Protocols) == 0 {
			// A rule that matches every protocol to a host is a
			// blackhole by another name: RTBH says so openly.
			return nil, refuse(ReasonTooBroad, "flowspec rule for %s has no protocol component; a rule for all of a host's traffic is an RTBH, not a filter", p)
		}
	default:
		return nil, refuse(ReasonMalformed, "unknown kind %d", a.Kind)
	}
	return hg, nil
}

func allowsRTBHLength(hg *policies.Hostgroup, p netip.Prefix) bool {
	for _, r := range hg.Responses {
		for _, act := range []*policies.RTBHAction{r.RTBH, escalationRTBH(r)} {
			if act == nil {
				continue
			}
			if (p.Addr().Is4() && act.PrefixLength4 == p.Bits()) || (p.Addr().Is6() && act.PrefixLength6 == p.Bits()) {
				return true
			}
		}
	}
	return false
}

func escalationRTBH(r *policies.Response) *policies.RTBHAction {
	if r.Escalate == nil {
		return nil
	}
	return r.Escalate.RTBH
}

// Family returns the address family the announcement is sent in.
func (a *Announcement) Family() string {
	v4 := a.Destination().Addr().Is4()
	switch {
	case a.Kind == FlowSpec && v4:
		return "ipv4-flowspec"
	case a.Kind == FlowSpec:
		return "ipv6-flowspec"
	case v4:
		return "ipv4-unicast"
	}
	return "ipv6-unicast"
}

// MarshalText writes the kind's name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind's name.
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case policies.KindRTBH:
		*k = RTBH
	case policies.KindFlowSpec:
		*k = FlowSpec
	default:
		return fmt.Errorf("kind %q is not rtbh or flowspec", b)
	}
	return nil
}

// mayDrop reports whether announcement a, for destination p, could drop
// traffic of whitelisted flow w. It errs towards yes: an RTBH route drops
// all traffic to p, and a component that either side leaves open matches
// anything.
func mayDrop(a *Announcement, p netip.Prefix, w policies.WhitelistFlow) bool {
	if w.Dst.IsValid() && !w.Dst.Overlaps(p) {
		return false
	}
	r := a.Rule
	if a.Kind != FlowSpec || r == nil {
		return true
	}
	if w.Src.IsValid() && r.Src.IsValid() && !w.Src.Overlaps(r.Src) {
		return false
	}
	if w.Protocol != 0 && len(r.Protocols) > 0 && !slices.Contains(r.Protocols, w.Protocol) {
		return false
	}
	if !portMayMatch(r.SrcPorts, w.SrcPort) || !portMayMatch(r.DstPorts, w.DstPort) {
		return false
	}
	// Ports matches either side: the flow escapes it only when both of its
	// ports are known and neither is listed.
	if len(r.Ports) > 0 && w.SrcPort != 0 && w.DstPort != 0 && !inRanges(r.Ports, w.SrcPort) && !inRanges(r.Ports, w.DstPort) {
		return false
	}
	return true
}

// portMayMatch reports whether port (0: any) may fall in rs (empty: any).
func portMayMatch(rs []Range, port uint16) bool {
	return port == 0 || len(rs) == 0 || inRanges(rs, port)
}

func inRanges(rs []Range, port uint16) bool { return inRanges32(rs, uint32(port)) }
