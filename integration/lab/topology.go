package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
)

// Kind is the role of a node in a Topology.
type Kind string

// The node kinds.
const (
	// KindCtl is the controller's namespace. Up starts nothing in it: the
	// test runs floodgate (StartFloodgateIn) or gobgpd (StartGoBGPIn) there.
	// Every router linked to a ctl node peers with it.
	KindCtl Kind = "ctl"
	// KindFRR is FRR 8.4 (zebra and bgpd): RTBH routes reach the kernel as
	// blackhole routes through an import route-map.
	KindFRR Kind = "frr"
	// KindBIRD is BIRD 2.0: RTBH routes reach the kernel as blackhole routes
	// through an import filter.
	KindBIRD Kind = "bird"
	// KindGoBGP is gobgpd, passive towards the controller.
	KindGoBGP Kind = "gobgp"
	// KindExaBGP is ExaBGP 4.2, recording every UPDATE it receives as JSON.
	KindExaBGP Kind = "exabgp"
	// KindHost is a plain namespace (a victim, a traffic source).
	KindHost Kind = "host"
	// KindCRPD is Juniper cRPD (containerlab kind juniper_crpd), configured
	// to accept RTBH and FlowSpec from the controller (see Containerlab). It
	// runs only under containerlab: Up refuses it.
	KindCRPD Kind = "crpd"
	// KindCEOS is Arista cEOS-lab (containerlab kind arista_ceos),
	// configured to accept RTBH and FlowSpec from the controller (see
	// Containerlab). It runs only under containerlab: Up refuses it.
	KindCEOS Kind = "ceos"
)

// kinds lists the valid kinds.
var kinds = []Kind{KindCtl, KindFRR, KindBIRD, KindGoBGP, KindExaBGP, KindHost, KindCRPD, KindCEOS}

// IsRouter reports whether nodes of kind k run a BGP daemon that peers
// with the ctl nodes they are linked to. Up starts it, unless the kind is
// ContainerOnly.
func (k Kind) IsRouter() bool {
	switch k {
	case KindFRR, KindBIRD, KindGoBGP, KindExaBGP, KindCRPD, KindCEOS:
		return true
	}
	return false
}

// ContainerOnly reports whether nodes of kind k exist only in the files
// Containerlab generates: vendor routers, whose images need a vendor
// account and cannot run in a network namespace. Up refuses a topology
// holding one; Without drops them.
func (k Kind) ContainerOnly() bool {
	return k == KindCRPD || k == KindCEOS
}

// Topology describes a lab: namespaces, the veth links between them and
// their addresses. The same description drives Up (network namespaces on
// this machine) and Containerlab (files for a Docker host; container-only
// kinds such as KindCRPD appear only there). Sessions are
// implied: every router node linked to a ctl node peers with it over that
// link (see Sessions). Every router accepts the controller's connections on
// port 179, and all but gobgpd (passive, as gobgpd pairs collide) also
// connect to it, so the controller may dial out, listen, or both.
type Topology struct {
	// Name labels the lab in the containerlab file; default "floodgate".
	Name string
	// Nodes are the namespaces.
	Nodes []Node
	// Links are the veth pairs, each joining two nodes.
	Links []Link
}

// Node is one namespace of a Topology.
type Node struct {
	// Name identifies the node: lower-case letters and digits, starting
	// with a letter, at most 10 characters ("ctl", "frr", "vic").
	Name string
	// Kind is the node's role.
	Kind Kind
	// ASN is the node's AS number; required for ctl and router kinds.
	ASN uint32
	// RouterID is the BGP identifier; default the node's first IPv4 link
	// address.
	RouterID netip.Addr
	// Loopback lists addresses added to the node's lo ("203.0.113.10/32"
	// for a victim).
	Loopback []netip.Prefix
	// Routes are static kernel routes added once the links are up.
	Routes []StaticRoute
	// Forwarding enables IPv4 and IPv6 forwarding in the namespace.
	Forwarding bool
	// Monitor, for a ctl node, lists the networks that the floodgate
	// configuration Containerlab generates for it monitors (the prefixes of
	// its hostgroup); default the loopback prefixes of the host nodes.
	Monitor []netip.Prefix
}

// StaticRoute is a kernel route of a Node.
type StaticRoute struct {
	// Prefix is the destination.
	Prefix netip.Prefix
	// Via is the gateway; the zero Addr makes a blackhole route.
	Via netip.Addr
}

// Link is a veth pair between nodes A and B.
type Link struct {
	// A and B name the nodes.
	A, B string
	// IPv4 is the link's /30; A gets its first host address, B the second.
	// Default 10.0.N.0/30 for the N-th link (from 1).
	IPv4 netip.Prefix
	// IPv6 is the link's /64; A gets ::1, B ::2 (added with nodad).
	// Default 2001:db8:N::/64 for the N-th link (from 1).
	IPv6 netip.Prefix
}

// Session is a BGP session implied by a Topology: a router node peering
// with a ctl node over one address family of their link.
type Session struct {
	// Ctl and Router name the nodes.
	Ctl, Router string
	// CtlAddr and RouterAddr are the link addresses of each side.
	CtlAddr, RouterAddr netip.Addr
	// CtlASN and RouterASN are the nodes' AS numbers.
	CtlASN, RouterASN uint32
	// Families are the negotiated families: ipv4-unicast, ipv4-flowspec
	// and ipv6-flowspec on the IPv4 session, ipv6-unicast on the IPv6 one
	// (an IPv6 route over an IPv4 session gets an IPv4-mapped next hop,
	// which BIRD rejects and FRR cannot install).
	Families []Family
}

// linkAddrs is a Link with its defaults resolved.
type linkAddrs struct {
	Link
	// AIf and BIf are the interface names on each side ("eth1"...,
	// numbered per node in link order, as containerlab names them).
	AIf, BIf string
	// A4, B4, A6, B6 are the interface addresses with the link's prefix
	// length.
	A4, B4, A6, B6 netip.Prefix
}

var nodeNameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// Validate checks the topology: unique well-formed node names, known kinds,
// AS numbers where needed, links between existing nodes with /30 and /64
// prefixes, and at most one link per pair of nodes. A valid topology may
// still hold container-only nodes, which Up refuses.
func (t Topology) Validate() error {
	_, err := t.resolveAll()
	return err
}

// resolve is resolveAll for Up: it also refuses container-only nodes,
// which cannot run in a network namespace.
func (t Topology) resolve() ([]linkAddrs, error) {
	links, err := t.resolveAll()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, n := range t.Nodes {
		if n.Kind.ContainerOnly() {
			errs = append(errs, fmt.Errorf("node %q is of kind %s, which runs only under containerlab (Topology.Containerlab), not in a network namespace", n.Name, n.Kind))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w (Topology.Without drops such nodes and their links)", errors.Join(errs...))
	}
	return links, nil
}

// resolveAll validates the topology and fills in link defaults.
func (t Topology) resolveAll() ([]linkAddrs, error) {
	var errs []error
	nodes := make(map[string]Node, len(t.Nodes))
	for i, n := range t.Nodes {
		if !nodeNameRE.MatchString(n.Name) {
			errs = append(errs, fmt.Errorf("node %d: name %q must match %s", i, n.Name, nodeNameRE))
		}
		if _, dup := nodes[n.Name]; dup {
			errs = append(errs, fmt.Errorf("node %d: duplicate name %q", i, n.Name))
		}
		nodes[n.Name] = n
		if !slices.Contains(kinds, n.Kind) {
			errs = append(errs, fmt.Errorf("node %q: unknown kind %q", n.Name, n.Kind))
		}
		if (n.Kind == KindCtl || n.Kind.IsRouter()) && n.ASN == 0 {
			errs = append(errs, fmt.Errorf("node %q: asn is required for kind %s", n.Name, n.Kind))
		}
		if n.RouterID.IsValid() && !n.RouterID.Is4() {
			errs = append(errs, fmt.Errorf("node %q: router id %s is not IPv4", n.Name, n.RouterID))
		}
		for _, r := range n.Routes {
			if !r.Prefix.IsValid() || (r.Via.IsValid() && r.Via.Is4() != r.Prefix.Addr().Is4()) {
				errs = append(errs, fmt.Errorf("node %q: bad static route %s via %s", n.Name, r.Prefix, r.Via))
			}
		}
	}
	ifCount := make(map[string]int)
	pairs := make(map[[2]string]bool)
	used := make(map[netip.Prefix]int)
	links := make([]linkAddrs, 0, len(t.Links))
	for i, l := range t.Links {
		a, aok := nodes[l.A]
		b, bok := nodes[l.B]
		if !aok || !bok || l.A == l.B {
			errs = append(errs, fmt.Errorf("link %d: %q-%q must join two different nodes of the topology", i+1, l.A, l.B))
			continue
		}
		pair := [2]string{min(l.A, l.B), max(l.A, l.B)}
		if pairs[pair] {
			errs = append(errs, fmt.Errorf("link %d: second link between %s and %s", i+1, l.A, l.B))
		}
		pairs[pair] = true
		if a.Kind.IsRouter() && b.Kind.IsRouter() {
			errs = append(errs, fmt.Errorf("link %d: routers %s and %s linked to each other (routers only peer with ctl nodes)", i+1, l.A, l.B))
		}
		if !l.IPv4.IsValid() {
			l.IPv4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i + 1), 0}), 30)
		}
		if !l.IPv6.IsValid() {
			l.IPv6 = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte((i + 1) >> 8), byte(i + 1)}), 64)
		}
		if !l.IPv4.Addr().Is4() || l.IPv4.Bits() != 30 || l.IPv4.Masked() != l.IPv4 {
			errs = append(errs, fmt.Errorf("link %d: ipv4 %s is not a /30 network", i+1, l.IPv4))
		}
		if !l.IPv6.Addr().Is6() || l.IPv6.Addr().Is4In6() || l.IPv6.Bits() != 64 || l.IPv6.Masked() != l.IPv6 {
			errs = append(errs, fmt.Errorf("link %d: ipv6 %s is not a /64 network", i+1, l.IPv6))
		}
		for _, p := range []netip.Prefix{l.IPv4, l.IPv6} {
			if j, dup := used[p]; dup {
				errs = append(errs, fmt.Errorf("link %d: prefix %s already used by link %d", i+1, p, j))
			}
			used[p] = i + 1
		}
		ifCount[l.A]++
		ifCount[l.B]++
		la := linkAddrs{
			Link: l,
			AIf:  fmt.Sprintf("eth%d", ifCount[l.A]),
			BIf:  fmt.Sprintf("eth%d", ifCount[l.B]),
			A4:   netip.PrefixFrom(l.IPv4.Addr().Next(), 30),
			B4:   netip.PrefixFrom(l.IPv4.Addr().Next().Next(), 30),
			A6:   netip.PrefixFrom(l.IPv6.Addr().Next(), 64),
			B6:   netip.PrefixFrom(l.IPv6.Addr().Next().Next(), 64),
		}
		links = append(links, la)
	}
	for _, n := range t.Nodes {
		if n.Kind.IsRouter() && ifCount[n.Name] == 0 {
			errs = append(errs, fmt.Errorf("node %q: router without a link", n.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid topology: %w", err)
	}
	return links, nil
}

// node returns the node called name.
func (t Topology) node(name string) (Node, bool) {
	i := slices.IndexFunc(t.Nodes, func(n Node) bool { return n.Name == name })
	if i < 0 {
		return Node{}, false
	}
	return t.Nodes[i], true
}

// Sessions returns the BGP sessions the topology implies, in link order:
// for each link between a ctl node and a router node, an IPv4 session and
// an IPv6 session. It returns an error if the topology is invalid.
func (t Topology) Sessions() ([]Session, error) {
	links, err := t.resolveAll()
	if err != nil {
		return nil, err
	}
	return t.sessions(links), nil
}

func (t Topology) sessions(links []linkAddrs) []Session {
	var out []Session
	for _, l := range links {
		a, _ := t.node(l.A)
		b, _ := t.node(l.B)
		ctl, rtr := a, b
		ctl4, rtr4, ctl6, rtr6 := l.A4, l.B4, l.A6, l.B6
		if b.Kind == KindCtl && a.Kind.IsRouter() {
			ctl, rtr = b, a
			ctl4, rtr4, ctl6, rtr6 = l.B4, l.A4, l.B6, l.A6
		}
		if ctl.Kind != KindCtl || !rtr.Kind.IsRouter() {
			continue
		}
		out = append(out,
			Session{
				Ctl: ctl.Name, Router: rtr.Name,
				CtlAddr: ctl4.Addr(), RouterAddr: rtr4.Addr(),
				CtlASN: ctl.ASN, RouterASN: rtr.ASN,
				Families: []Family{FamilyIPv4Unicast, FamilyIPv4FlowSpec, FamilyIPv6FlowSpec},
			},
			Session{
				Ctl: ctl.Name, Router: rtr.Name,
				CtlAddr: ctl6.Addr(), RouterAddr: rtr6.Addr(),
				CtlASN: ctl.ASN, RouterASN: rtr.ASN,
				Families: []Family{FamilyIPv6Unicast},
			},
		)
	}
	return out
}

// routerID returns the node's router id: the configured one or its first
// IPv4 link address.
func (t Topology) routerID(n Node, links []linkAddrs) netip.Addr {
	if n.RouterID.IsValid() {
		return n.RouterID
	}
	for _, l := range links {
		switch n.Name {
		case l.A:
			return l.A4.Addr()
		case l.B:
			return l.B4.Addr()
		}
	}
	return netip.AddrFrom4([4]byte{192, 0, 2, 254})
}

// nodeSessions returns the sessions whose router side is node.
func nodeSessions(all []Session, node string) []Session {
	var out []Session
	for _, s := range all {
		if s.Router == node {
			out = append(out, s)
		}
	}
	return out
}

// Without returns a copy of the topology without the nodes of the given
// kinds (Without(KindCRPD, KindCEOS) for Up) and their links. The
// remaining links keep the addresses they have in t, defaults included,
// so they do not depend on the dropped nodes; a node's interface names
// and default router id do when one of its dropped links came before its
// others (put optional nodes' links last). An invalid t is filtered as it
// is, with its defaults unresolved.
func (t Topology) Without(drop ...Kind) Topology {
	links, err := t.resolveAll()
	out := Topology{Name: t.Name}
	gone := make(map[string]bool)
	for _, n := range t.Nodes {
		if slices.Contains(drop, n.Kind) {
			gone[n.Name] = true
			continue
		}
		out.Nodes = append(out.Nodes, n)
	}
	for i, l := range t.Links {
		if gone[l.A] || gone[l.B] {
			continue
		}
		if err == nil {
			l = links[i].Link
		}
		out.Links = append(out.Links, l)
	}
	return out
}
