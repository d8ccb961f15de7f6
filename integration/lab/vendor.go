package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Configurations of the container-only routers (KindCRPD, KindCEOS). They
// accept from the controller what FRR's configuration does: RTBH routes,
// whose BLACKHOLE community (65535:666) gives them a discard next hop, and
// FlowSpec rules, accepted without the RFC 8955 validation against the
// unicast route of their destination (the controller announces none: it
// is not on the data path). Sessions are split as for every router (see
// Session): IPv4 unicast and both FlowSpec families over IPv4, IPv6
// unicast over IPv6.
//
// Neither is checked by its vendor's software here (no cRPD or cEOS image
// on the CI machines): they follow the vendors' documentation, and every
// statement not seen working is marked UNVERIFIED in the file.

// crpdRootPassword is the SHA-512 crypt of "clab123", containerlab's
// default root password for cRPD, so that `ssh root@...` works as in
// containerlab's own cRPD configuration.
const crpdRootPassword = "$6$floodgatelab$sg2zFkGnrhXEejl17ZNswioLWsRzfK35sK6NijJgf.ynEdRbafcMAxFVKaSuJy3jok2oBJRmosdWryzMAG526/"

// crpdConfig renders the Junos configuration (curly-brace format) that
// containerlab installs as /config/juniper.conf, which cRPD loads at
// startup. Interface addresses are not in it: cRPD uses the container's
// Linux interfaces, which the containerlab file addresses with exec
// commands.
func crpdConfig(spec routerSpec) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("/* Generated from a lab.Topology by integration/lab (Topology.Containerlab):")
	w("   Juniper cRPD node %s, AS %d, peering with Floodgate.", spec.node.Name, spec.node.ASN)
	w("   UNVERIFIED: never loaded by cRPD on the machines that generate it (no")
	w("   image); written from the Junos documentation. */")
	w("system {")
	w("    root-authentication {")
	w("        /* clab123, as containerlab's default cRPD configuration. */")
	w("        encrypted-password \"%s\"; ## SECRET-DATA", crpdRootPassword)
	w("    }")
	w("}")
	w("routing-options {")
	w("    router-id %s;", spec.routerID)
	w("    autonomous-system %d;", spec.node.ASN)
	w("    /* Order FlowSpec rules as RFC 8955 does (the default, legacy, is the")
	w("       order of the pre-standard draft). For IPv6 rules it is probably")
	w("       term-order standard under rib inet6.0 flow, left out as UNVERIFIED:")
	w("       a statement cRPD refuses would void the whole file. */")
	w("    flow {")
	w("        term-order standard;")
	w("    }")
	w("}")
	w("policy-options {")
	w("    community BLACKHOLE members 65535:666;")
	w("    /* RTBH (RFC 7999): a route carrying BLACKHOLE gets a discard next hop;")
	w("       everything else from Floodgate (FlowSpec rules) is accepted as sent. */")
	w("    policy-statement FLOODGATE-IN {")
	w("        term rtbh {")
	w("            from community BLACKHOLE;")
	w("            then {")
	w("                next-hop discard;")
	w("                accept;")
	w("            }")
	w("        }")
	w("        term rest {")
	w("            then accept;")
	w("        }")
	w("    }")
	w("    /* Flow routes accepted by this policy skip the RFC 8955 validation")
	w("       (originator of the best unicast route to the destination): the")
	w("       controller is not on the data path and announces no unicast route. */")
	w("    policy-statement FLOWSPEC-NO-VALIDATE {")
	w("        then accept;")
	w("    }")
	w("}")
	w("protocols {")
	w("    bgp {")
	w("        group floodgate {")
	w("            type external;")
	w("            import FLOODGATE-IN;")
	for _, s := range spec.sessions {
		w("            neighbor %s {", s.CtlAddr)
		w("                peer-as %d;", s.CtlASN)
		var v4, v6 []string
		if slices.Contains(s.Families, FamilyIPv4Unicast) {
			v4 = append(v4, "unicast;")
		}
		if slices.Contains(s.Families, FamilyIPv4FlowSpec) {
			v4 = append(v4, "flow {", "    no-validate FLOWSPEC-NO-VALIDATE;", "}")
		}
		if slices.Contains(s.Families, FamilyIPv6Unicast) {
			v6 = append(v6, "unicast;")
		}
		if slices.Contains(s.Families, FamilyIPv6FlowSpec) {
			v6 = append(v6, "flow {", "    no-validate FLOWSPEC-NO-VALIDATE;", "}")
		}
		for _, fam := range []struct {
			name  string
			lines []string
		}{{"inet", v4}, {"inet6", v6}} {
			if len(fam.lines) == 0 {
				continue
			}
			w("                family %s {", fam.name)
			for _, l := range fam.lines {
				w("                    %s", l)
			}
			w("                }")
		}
		w("            }")
	}
	w("        }")
	w("    }")
	w("}")
	return b.String()
}

// EOS discard routes: the RTBH route-maps set these next hops, the same as
// FRR's, and static routes to Null0 make them discard.
var (
	ceosDiscardNextHop4 = frrDiscardNextHop4
	ceosDiscardNextHop6 = frrDiscardNextHop6
	ceosDiscardRoutes   = frrDiscardRoutes
)

// ceosConfig renders the EOS startup configuration containerlab installs
// as /mnt/flash/startup-config (containerlab adds the management
// interface's address after boot). Its interfaces are EthernetN for the
// containerlab interfaces ethN, addressed here rather than by exec
// commands, since EOS owns them.
func ceosConfig(spec routerSpec, links []linkAddrs) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	n := spec.node
	w("! Generated from a lab.Topology by integration/lab (Topology.Containerlab):")
	w("! Arista cEOS-lab node %s, AS %d, peering with Floodgate.", n.Name, n.ASN)
	w("! UNVERIFIED: never loaded by cEOS on the machines that generate it (no")
	w("! image); written from Arista's documentation.")
	w("hostname %s", n.Name)
	w("! containerlab's default credentials for cEOS.")
	w("username admin privilege 15 secret admin")
	w("!")
	w("! FlowSpec needs the multi-agent routing model.")
	w("service routing protocols model multi-agent")
	w("!")
	w("ip routing")
	w("ipv6 unicast-routing")
	w("!")
	for _, l := range links {
		var ifname string
		var a4, a6 netip.Prefix
		switch n.Name {
		case l.A:
			ifname, a4, a6 = l.AIf, l.A4, l.A6
		case l.B:
			ifname, a4, a6 = l.BIf, l.B4, l.B6
		default:
			continue
		}
		w("interface Ethernet%s", strings.TrimPrefix(ifname, "eth"))
		w("   no switchport")
		w("   ip address %s", a4)
		w("   ipv6 enable")
		w("   ipv6 address %s", a6)
		w("   ! Apply received FlowSpec rules to the traffic entering here.")
		w("   ! UNVERIFIED: whether cEOS-lab's software forwarding (Etba) enforces them.")
		w("   flow-spec ipv4 ipv6")
		w("!")
	}
	for i, p := range n.Loopback {
		w("interface Loopback%d", i)
		if p.Addr().Is4() {
			w("   ip address %s", p)
		} else {
			w("   ipv6 address %s", p)
		}
		w("!")
	}
	w("! RTBH discard next hops.")
	for _, r := range append(slices.Clone(n.Routes), ceosDiscardRoutes...) {
		cmd := "ip route"
		if r.Prefix.Addr().Is6() {
			cmd = "ipv6 route"
		}
		if r.Via.IsValid() {
			w("%s %s %s", cmd, r.Prefix, r.Via)
		} else {
			w("%s %s Null0", cmd, r.Prefix)
		}
	}
	w("!")
	w("ip community-list BLACKHOLE permit 65535:666")
	w("!")
	w("! RTBH (RFC 7999): a route carrying BLACKHOLE gets the discard next hop;")
	w("! everything else from Floodgate is accepted as sent.")
	w("route-map RTBH-IN permit 10")
	w("   match community BLACKHOLE")
	w("   set ip next-hop %s", ceosDiscardNextHop4)
	w("!")
	w("route-map RTBH-IN permit 20")
	w("!")
	w("route-map RTBH6-IN permit 10")
	w("   match community BLACKHOLE")
	w("   set ipv6 next-hop %s", ceosDiscardNextHop6)
	w("!")
	w("route-map RTBH6-IN permit 20")
	w("!")
	w("router bgp %d", n.ASN)
	w("   router-id %s", spec.routerID)
	w("   no bgp default ipv4-unicast")
	for _, s := range spec.sessions {
		w("   neighbor %s remote-as %d", s.CtlAddr, s.CtlASN)
	}
	for _, fam := range []struct {
		family Family
		af     string
		policy string
	}{
		{FamilyIPv4Unicast, "ipv4", "RTBH-IN"},
		{FamilyIPv6Unicast, "ipv6", "RTBH6-IN"},
		{FamilyIPv4FlowSpec, "flow-spec ipv4", ""},
		{FamilyIPv6FlowSpec, "flow-spec ipv6", ""},
	} {
		var lines []string
		for _, s := range spec.sessions {
			if !slices.Contains(s.Families, fam.family) {
				continue
			}
			lines = append(lines, fmt.Sprintf("      neighbor %s activate", s.CtlAddr))
			if fam.policy != "" {
				lines = append(lines, fmt.Sprintf("      neighbor %s route-map %s in", s.CtlAddr, fam.policy))
			}
		}
		if len(lines) == 0 {
			continue
		}
		w("   !")
		w("   address-family %s", fam.af)
		if fam.policy == "" {
			w("      ! FlowSpec rules have no inbound route-map: accept them all.")
			w("      bgp missing-policy direction in action permit")
			w("      ! UNVERIFIED: whether this EOS version validates flow routes against the")
			w("      ! unicast route of their destination (RFC 8955 section 6), which Floodgate")
			w("      ! does not announce; if `show bgp flow-spec %s detail` reports a rule", strings.TrimPrefix(fam.af, "flow-spec "))
			w("      ! as not valid, turn that validation off for this neighbour.")
		}
		for _, l := range lines {
			w("%s", l)
		}
	}
	w("!")
	w("management api http-commands")
	w("   no shutdown")
	w("!")
	w("end")
	return b.String()
}
