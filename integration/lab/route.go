package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// fragmentType is the FlowSpec fragment component type.
const fragmentType = bgp.FLOW_SPEC_TYPE_FRAGMENT

// Family is an address family and subsequent address family, named as in
// GoBGP configuration files.
type Family string

// The families a lab router can be asked about.
const (
	FamilyIPv4Unicast  Family = "ipv4-unicast"
	FamilyIPv6Unicast  Family = "ipv6-unicast"
	FamilyIPv4FlowSpec Family = "ipv4-flowspec"
	FamilyIPv6FlowSpec Family = "ipv6-flowspec"
)

// DefaultFamilies are the families a lab session negotiates unless told
// otherwise.
var DefaultFamilies = []Family{FamilyIPv4Unicast, FamilyIPv6Unicast, FamilyIPv4FlowSpec, FamilyIPv6FlowSpec}

// Valid reports whether f is one of the Family constants.
func (f Family) Valid() bool {
	return slices.Contains(DefaultFamilies, f)
}

// IsFlowSpec reports whether f is a FlowSpec family.
func (f Family) IsFlowSpec() bool {
	return f == FamilyIPv4FlowSpec || f == FamilyIPv6FlowSpec
}

// Route is one path a router holds in its table, reduced to comparable text.
//
// Prefix is the NLRI in canonical text:
//
//   - unicast: the prefix as netip.Prefix prints it, "203.0.113.10/32" or
//     "2001:db8::10/128".
//   - FlowSpec: the components in ascending type order (GoBGP's decoder
//     sorts them, so a wrong order on the wire does not show), joined by
//     single spaces, each "name:value" with the names of RFC 8955/8956 as
//     GoBGP spells them (destination, source, protocol, port,
//     destination-port, source-port, icmp-type, icmp-code, tcp-flags,
//     packet-length, dscp, fragment, label). Prefixes print as
//     netip.Prefix does; an IPv6 prefix with a non-zero offset gets
//     "/offN" appended ("2001:db8::/64/off8"). Numeric values print as a
//     list of operator and value ("==123", ">=80&<=443", "==53|==123"),
//     where "&" joins an item ANDed to the previous one and "|" one ORed to
//     it; the operators are ==, >, >=, <, <=, != and the constants true and
//     false. Protocols print by name when known (icmp, igmp, tcp, udp, gre,
//     esp, ah, icmpv6, sctp), else as a number. tcp-flags and fragment print
//     "!" for NOT and "=" for MATCH before the value; tcp-flags values are
//     letters F S R P A U E C ("=S", "!SA"), fragment values are
//     dont-fragment, is-fragment, first-fragment, last-fragment joined by
//     "+"; a value of 0 prints as "0" and one with unknown bits in hex. A
//     component that cannot be decoded prints as "unknown:<hex>".
//     Example: "destination:203.0.113.10/32 protocol:==udp source-port:==123".
type Route struct {
	// Family is the family of the route.
	Family Family
	// Prefix is the canonical text of the NLRI (see the type documentation).
	Prefix string
	// NextHop is the next hop; invalid when the route has none (FlowSpec).
	// An IPv6 route learnt over an IPv4 session keeps its IPv4-mapped next
	// hop ("::ffff:127.0.0.2"), which some routers reject.
	NextHop netip.Addr
	// ASPath lists the AS numbers of the AS_PATH in order, sets flattened.
	ASPath []uint32
	// Communities are RFC 1997 communities in numeric form, "65535:666";
	// well-known ones too (NO_EXPORT is "65535:65281").
	Communities []string
	// LargeCommunities are RFC 8092 communities, "65000:1:2".
	LargeCommunities []string
	// ExtCommunities are extended communities. FlowSpec actions are decoded:
	// "traffic-rate:0" and "traffic-rate:1000" (bytes/s, RFC 8955),
	// "traffic-rate-packets:1000" (packets/s), "traffic-action:terminal",
	// "traffic-action:sample", "traffic-action:sample,terminal",
	// "traffic-action:none", "redirect:65000:100" (2- and 4-octet AS and
	// IPv4 forms), "traffic-marking:10"; a non-zero AS in a rate prints as
	// "traffic-rate:1000/as65000". Route targets print as "rt:65000:100".
	// Anything else prints as 16 hex digits with a 0x prefix.
	ExtCommunities []string
	// From is the neighbor the route was received from; invalid for routes
	// originated by the router itself.
	From netip.Addr
	// Best reports whether the router selected this path as best.
	Best bool
	// Stale reports a route kept from a session that went down, waiting
	// for the peer to come back (graceful restart): gobgpd reports it for
	// every family, FRR for unicast; BIRD and ExaBGP never set it.
	Stale bool
	// Received is when the router received or originated the path, as the
	// router reports it (zero if it does not).
	Received time.Time
}

// HasCommunity reports whether r carries the community c ("65535:666").
func (r Route) HasCommunity(c string) bool {
	return slices.Contains(r.Communities, c)
}

// HasExtCommunity reports whether r carries the extended community c in the
// text form documented on Route ("traffic-rate:0").
func (r Route) HasExtCommunity(c string) bool {
	return slices.Contains(r.ExtCommunities, c)
}

// String returns a one-line description of r for test messages.
func (r Route) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Family, r.Prefix)
	if r.NextHop.IsValid() {
		fmt.Fprintf(&b, " nexthop=%s", r.NextHop)
	}
	if r.From.IsValid() {
		fmt.Fprintf(&b, " from=%s", r.From)
	}
	if len(r.ASPath) > 0 {
		fmt.Fprintf(&b, " aspath=%v", r.ASPath)
	}
	if len(r.Communities) > 0 {
		fmt.Fprintf(&b, " communities=[%s]", strings.Join(r.Communities, " "))
	}
	if len(r.LargeCommunities) > 0 {
		fmt.Fprintf(&b, " large-communities=[%s]", strings.Join(r.LargeCommunities, " "))
	}
	if len(r.ExtCommunities) > 0 {
		fmt.Fprintf(&b, " ext-communities=[%s]", strings.Join(r.ExtCommunities, " "))
	}
	if r.Best {
		b.WriteString(" best")
	}
	if r.Stale {
		b.WriteString(" stale")
	}
	return b.String()
}

// MatchPrefix returns a matcher for WaitRoute and WaitNoRoute that selects
// routes whose canonical Prefix text equals prefix.
func MatchPrefix(prefix string) func(Route) bool {
	return func(r Route) bool { return r.Prefix == prefix }
}

// Router is a routing daemon run by a test.
//
// A Router is started by a kind-specific helper (StartGoBGP) that registers
// its teardown with t.Cleanup; the test owns it until then. Methods may be
// called from any goroutine. Routes answers with the router's table as it
// is now; WaitEstablished polls until the session is up. Both return early
// when the context is done or the daemon has exited.
type Router interface {
	// WaitEstablished blocks until the BGP session with peer is
	// Established, the context is done, or the daemon exits.
	WaitEstablished(ctx context.Context, peer netip.Addr) error
	// Routes returns the routes of family fam in the router's table, in a
	// stable order, as they are at the time of the call.
	Routes(ctx context.Context, fam Family) ([]Route, error)
	// Stop ends the daemon. It is idempotent and safe to call before the
	// test's cleanup does.
	Stop() error
}

// pollInterval is how often WaitRoute and WaitNoRoute ask a router.
const pollInterval = 20 * time.Millisecond

// WaitRoute polls r until a route of family fam satisfies match and returns
// it. When ctx is done first, the error lists the routes seen last. An error
// from r.Routes ends the wait at once.
func WaitRoute(ctx context.Context, r Router, fam Family, match func(Route) bool) (Route, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last []Route
	for {
		routes, err := r.Routes(ctx, fam)
		if err != nil {
			if ctx.Err() != nil {
				return Route{}, fmt.Errorf("wait for %s route: no match among %s: %w", fam, describe(last), ctx.Err())
			}
			return Route{}, fmt.Errorf("wait for %s route: %w", fam, err)
		}
		for _, rt := range routes {
			if match(rt) {
				return rt, nil
			}
		}
		last = routes
		select {
		case <-ctx.Done():
			return Route{}, fmt.Errorf("wait for %s route: no match among %s: %w", fam, describe(last), ctx.Err())
		case <-tick.C:
		}
	}
}

// WaitNoRoute polls r until no route of family fam satisfies match. When ctx
// is done first, the error lists the routes that still match. An error from
// r.Routes ends the wait at once.
func WaitNoRoute(ctx context.Context, r Router, fam Family, match func(Route) bool) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var still []Route
	for {
		routes, err := r.Routes(ctx, fam)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wait for %s route to go: still present: %s: %w", fam, describe(still), ctx.Err())
			}
			return fmt.Errorf("wait for %s route to go: %w", fam, err)
		}
		still = still[:0]
		for _, rt := range routes {
			if match(rt) {
				still = append(still, rt)
			}
		}
		if len(still) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s route to go: still present: %s: %w", fam, describe(still), ctx.Err())
		case <-tick.C:
		}
	}
}

// describe formats routes for an error message, one per line.
func describe(routes []Route) string {
	if len(routes) == 0 {
		return "(no routes)"
	}
	var b strings.Builder
	for _, r := range routes {
		b.WriteString("\n\t")
		b.WriteString(r.String())
	}
	return b.String()
}

// Comparable returns r reduced to what the announcing speaker sets and a
// receiving router reports: Family, Prefix, ASPath and the community lists
// (sorted). NextHop, From, Best and Received, which differ from router to
// router (FRR shows the next hop its import policy set), are cleared. Use
// it with ReportedBy to compare what different routers received.
func (r Route) Comparable() Route {
	return Route{
		Family:           r.Family,
		Prefix:           r.Prefix,
		ASPath:           slices.Clone(r.ASPath),
		Communities:      sortedClone(r.Communities),
		LargeCommunities: sortedClone(r.LargeCommunities),
		ExtCommunities:   sortedClone(r.ExtCommunities),
	}
}

func sortedClone(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// ReportedBy returns r.Comparable() as a router of kind k shows it when it
// received r: the fields k cannot report are cleared or replaced as
// documented on its type (FRR, BIRD). One expected route, as sent, can
// thus be checked against every router. GoBGP and ExaBGP report
// everything.
func (r Route) ReportedBy(k Kind) Route {
	c := r.Comparable()
	switch k {
	case KindFRR:
		if !c.Family.IsFlowSpec() {
			return c
		}
		c.ASPath, c.Communities, c.LargeCommunities = nil, nil, nil
		for i, ec := range c.ExtCommunities {
			switch {
			case strings.HasPrefix(ec, "traffic-action:"):
				c.ExtCommunities[i] = ExtCommunityActionUnreported
			case strings.HasPrefix(ec, "traffic-rate:"):
				c.ExtCommunities[i], _, _ = strings.Cut(ec, "/as")
			}
		}
		slices.Sort(c.ExtCommunities)
		if rule, err := parseFlowText(c.Prefix); err == nil {
			for i := range rule {
				if !isPrefixType(rule[i].typ) && !isBitmaskType(rule[i].typ) {
					guessNumericAnd(rule[i].items)
				}
			}
			c.Prefix = rule.String()
		}
	case KindBIRD:
		if !c.Family.IsFlowSpec() {
			return c
		}
		if rule, err := parseFlowText(c.Prefix); err == nil {
			for i := range rule {
				if rule[i].typ != fragmentType {
					continue
				}
				for j, it := range rule[i].items {
					if it.op == fsOpNot|fsOpMatch && it.value != 0 && it.value&(it.value-1) == 0 {
						rule[i].items[j].op = fsOpNot
					}
				}
			}
			c.Prefix = rule.String()
		}
	}
	return c
}

// CompareTable compares the routes a router of kind k reports (got) with
// the routes that were sent (want), as sets reduced with Comparable and
// ReportedBy, and returns a diff (-got +want), empty when they match.
func CompareTable(k Kind, got, want []Route) string {
	g := make([]Route, 0, len(got))
	for _, r := range got {
		g = append(g, r.Comparable())
	}
	w := make([]Route, 0, len(want))
	for _, r := range want {
		w = append(w, r.ReportedBy(k))
	}
	less := func(a, b Route) int {
		if c := strings.Compare(string(a.Family), string(b.Family)); c != 0 {
			return c
		}
		return strings.Compare(a.Prefix, b.Prefix)
	}
	slices.SortFunc(g, less)
	slices.SortFunc(w, less)
	return cmp.Diff(g, w, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}))
}

// WaitTable polls r, a router of kind k, until its routes of family fam
// match want (see CompareTable), and returns the last difference when ctx
// is done first. An error from r.Routes ends the wait at once.
func WaitTable(ctx context.Context, r Router, k Kind, fam Family, want []Route) error {
	var fw []Route
	for _, w := range want {
		if w.Family == fam {
			fw = append(fw, w)
		}
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	diff := ""
	for {
		got, err := r.Routes(ctx, fam)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wait for %s table (-got +want):\n%s: %w", fam, diff, ctx.Err())
			}
			return fmt.Errorf("wait for %s table: %w", fam, err)
		}
		if diff = CompareTable(k, got, fw); diff == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s table (-got +want):\n%s: %w", fam, diff, ctx.Err())
		case <-tick.C:
		}
	}
}
