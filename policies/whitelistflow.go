package policies

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// WhitelistFlow is traffic of a hostgroup never to be mitigated: a
// FlowSpec rule that could match any of it, or an RTBH route covering its
// destination, is refused. Zero fields match anything.
type WhitelistFlow struct {
	Src, Dst netip.Prefix
	// Protocol is the IP protocol number; 0 is any.
	Protocol uint8
	// SrcPort and DstPort are 0 for any.
	SrcPort, DstPort uint16
}

// String writes the flow in FlowSpec words, for explain and refusals.
func (w WhitelistFlow) String() string {
	var parts []string
	if w.Src.IsValid() {
		parts = append(parts, "src "+w.Src.String())
	}
	if w.Dst.IsValid() {
		parts = append(parts, "dst "+w.Dst.String())
	}
	if w.Protocol != 0 {
		parts = append(parts, fmt.Sprintf("proto %d", w.Protocol))
	}
	if w.SrcPort != 0 {
		parts = append(parts, fmt.Sprintf("sport %d", w.SrcPort))
	}
	if w.DstPort != 0 {
		parts = append(parts, fmt.Sprintf("dport %d", w.DstPort))
	}
	return strings.Join(parts, " ")
}

type whitelistFlowBlock struct {
	Src       hcl.Expression `hcl:"src"`
	Dst       hcl.Expression `hcl:"dst"`
	Protocol  hcl.Expression `hcl:"protocol"`
	SrcPort   hcl.Expression `hcl:"src_port"`
	DstPort   hcl.Expression `hcl:"dst_port"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

// ProtocolNumber returns the IP protocol number of a name the policy and
// FlowSpec rule texts accept (icmp, tcp, udp, gre, esp, icmpv6, sctp; any
// case).
func ProtocolNumber(name string) (uint8, bool) {
	switch strings.ToLower(name) {
	case "icmp":
		return 1, true
	case "tcp":
		return 6, true
	case "udp":
		return 17, true
	case "gre":
		return 47, true
	case "esp":
		return 50, true
	case "icmpv6":
		return 58, true
	case "sctp":
		return 132, true
	}
	return 0, false
}

func (c *compiler) compileWhitelistFlow(b *whitelistFlowBlock) (WhitelistFlow, bool) {
	var w WhitelistFlow
	ok := true
	for _, f := range []struct {
		e   hcl.Expression
		out *netip.Prefix
	}{{b.Src, &w.Src}, {b.Dst, &w.Dst}} {
		if s, rng, present := c.str(f.e); present {
			p, good := c.prefix(strItem{s: s, rng: rng})
			ok = ok && good
			*f.out = p
		}
	}
	if s, rng, present := c.str(b.Protocol); present {
		n, known := ProtocolNumber(s)
		if !known {
			c.errorf(rng, "Invalid protocol", "%q is not a protocol here; write one of icmp, tcp, udp, gre, esp, icmpv6, sctp", s)
			ok = false
		}
		w.Protocol = n
	}
	for _, f := range []struct {
		e    hcl.Expression
		name string
		out  *uint16
	}{{b.SrcPort, "src_port", &w.SrcPort}, {b.DstPort, "dst_port", &w.DstPort}} {
		if !present(f.e) {
			continue
		}
		n, rng, good := c.uintRange(f.e, 1, 65535, f.name)
		if !good {
			ok = false
			continue
		}
		if w.Protocol != 6 && w.Protocol != 17 && w.Protocol != 132 {
			c.errorf(rng, "Port without protocol", "%s needs protocol = \"tcp\", \"udp\" or \"sctp\" in the same block", f.name)
			ok = false
		}
		*f.out = uint16(n)
	}
	if ok && w == (WhitelistFlow{}) {
		c.errorf(b.DeclRange, "Empty whitelist_flow", "a whitelist_flow naming nothing would whitelist all traffic; give at least one of src, dst, protocol, src_port, dst_port")
		ok = false
	}
	return w, ok
}
