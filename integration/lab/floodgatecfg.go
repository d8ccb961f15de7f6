package lab

import (
	"fmt"
	"net/netip"
	"strings"
)

// Paths of the floodgate container in the files Containerlab generates
// (examples/containerlab/Dockerfile creates the directories).
const (
	clabFloodgateConfig = "/etc/floodgate/floodgate.hcl"
	clabFloodgateSocket = "/run/floodgate/api.sock"
	clabFloodgateState  = "/var/lib/floodgate/state.db"
)

// floodgateLabConfig renders the configuration of floodgate run in ctl
// node n of a lab: a neighbour per session of the node, with the
// session's families and local address (floodgate dials out, every second
// until the session is up); NetFlow/IPFIX and sFlow listeners on every
// address of the node; the API on socket and the state in stateFile; and,
// when monitor is not empty, a hostgroup "lab" over it that discards
// reflection attacks with a FlowSpec rule and blackholes the victim of any
// other attack (RTBH).
func floodgateLabConfig(n Node, routerID netip.Addr, sessions []Session, monitor []netip.Prefix, socket, stateFile string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Generated from a lab.Topology by integration/lab (Topology.Containerlab):")
	w("# Floodgate in node %s, AS %d. Check it with: floodgate check --config FILE", n.Name, n.ASN)
	w("")
	w(`log { level = "info" }`)
	w("")
	w("# Flow exports: floodgate-gen in this container sends to loopback.")
	w("sources {")
	w(`  netflow "exports" { listen = "[::]:2055" }`)
	w(`  sflow "sflow" { listen = "[::]:6343" }`)
	w("}")
	w("")
	w("bgp {")
	w("  asn              = %d", n.ASN)
	w("  router_id        = %q", routerID)
	if n.ASN <= 0xffff {
		w(`  rtbh_communities = ["%d:666"]`, n.ASN)
	}
	for _, s := range sessions {
		if s.Ctl != n.Name {
			continue
		}
		fams := make([]string, len(s.Families))
		for i, f := range s.Families {
			fams[i] = fmt.Sprintf("%q", string(f))
		}
		name := s.Router + "-v4"
		if s.RouterAddr.Is6() {
			name = s.Router + "-v6"
		}
		w("")
		w("  neighbor %q {", name)
		w("    address       = %q", s.RouterAddr)
		w("    asn           = %d", s.RouterASN)
		w("    local_address = %q", s.CtlAddr)
		w("    families      = [%s]", strings.Join(fams, ", "))
		w("  }")
	}
	w("}")
	w("")
	w("api { socket = %q }", socket)
	w("mitigation { state_file = %q }", stateFile)
	if len(monitor) == 0 {
		return b.String()
	}
	prefixes := make([]string, len(monitor))
	for i, p := range monitor {
		prefixes[i] = fmt.Sprintf("%q", p.Masked())
	}
	w("")
	w(`hostgroup "lab" {`)
	w("  prefixes = [%s]", strings.Join(prefixes, ", "))
	w("")
	w(`  threshold "incoming" {`)
	w(`    pps = "20kpps"`)
	w(`    bps = "200Mbps"`)
	w(`    udp { pps = "10kpps" }`)
	w("  }")
	w("")
	w("  # A reflection (one UDP source port, such as NTP's 123): a FlowSpec rule.")
	w(`  response "reflection" {`)
	w(`    when     = attack.protocol == "udp" && attack.top_src_port.share > 0.8`)
	w(`    flowspec { action = "discard" }`)
	w(`    duration = "5m"`)
	w("  }")
	w("")
	w("  # Anything else: blackhole the victim.")
	w(`  response "blackhole" {`)
	w("    rtbh {}")
	w(`    duration = "5m"`)
	w("  }")
	w("}")
	return b.String()
}

// ctlMonitor returns the networks the floodgate configuration of ctl node
// n monitors: its Monitor, or the loopback prefixes of the host nodes.
func (t Topology) ctlMonitor(n Node) []netip.Prefix {
	if len(n.Monitor) > 0 {
		return n.Monitor
	}
	var out []netip.Prefix
	for _, h := range t.Nodes {
		if h.Kind == KindHost {
			out = append(out, h.Loopback...)
		}
	}
	return out
}
