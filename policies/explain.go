package policies

import (
	"fmt"
	"net/netip"
	"strings"
)

// Explain describes what the policy does for addr: its hostgroup and
// prefix, whether it is whitelisted, its thresholds, and the responses in
// the order they are tried.
func (p *Policy) Explain(addr netip.Addr) string {
	addr = addr.Unmap()
	var b strings.Builder
	hg, ok := p.Covering(netip.PrefixFrom(addr, addr.BitLen()))
	if !ok {
		fmt.Fprintf(&b, "%s is not monitored: no hostgroup contains it.\n", addr)
		return b.String()
	}
	var prefix netip.Prefix
	for _, q := range hg.Prefixes {
		if q.Contains(addr) && q.Bits() > prefix.Bits() {
			prefix = q
		}
	}
	fmt.Fprintf(&b, "%s is in hostgroup %q (prefix %s)\n", addr, hg.Name, prefix)
	for _, w := range hg.Whitelist {
		if w.Contains(addr) {
			fmt.Fprintf(&b, "  whitelisted by %s: detected, never mitigated\n", w)
		}
	}
	for _, w := range hg.WhitelistFlows {
		if !w.Dst.IsValid() || w.Dst.Contains(addr) {
			fmt.Fprintf(&b, "  whitelisted flow %s: no FlowSpec rule that could match it, no RTBH\n", w)
		}
	}
	fmt.Fprintf(&b, "  smoothing: ewma %s, baseline %s; at most %d active mitigations\n", hg.EWMA, hg.Baseline, hg.MaxRules)
	for _, d := range []struct {
		name string
		t    Threshold
	}{{"incoming", hg.Incoming}, {"outgoing", hg.Outgoing}} {
		fmt.Fprintf(&b, "  threshold %s: %s\n", d.name, d.t.describe())
	}
	if len(hg.Responses) == 0 {
		b.WriteString("  responses: none (attacks are detected and logged only)\n")
	}
	for i, r := range hg.Responses {
		when := "always"
		if r.When != nil {
			when = r.When.Source
		}
		fmt.Fprintf(&b, "  response %d %q (%s:%d)\n    when %s\n    then %s\n", i+1, r.Name, r.File, r.Line, when, r.describe())
	}
	return b.String()
}

func (l Limits) describe(prefix string) []string {
	var out []string
	if l.PPS > 0 {
		out = append(out, fmt.Sprintf("%spps > %d", prefix, l.PPS))
	}
	if l.BPS > 0 {
		out = append(out, fmt.Sprintf("%sbps > %d", prefix, l.BPS))
	}
	if l.Flows > 0 {
		out = append(out, fmt.Sprintf("%sflows > %d/s", prefix, l.Flows))
	}
	return out
}

func (t Threshold) describe() string {
	if !t.Enabled() {
		return "none"
	}
	var parts []string
	for _, c := range []struct {
		l    Limits
		name string
	}{{t.Total, ""}, {t.TCP, "tcp "}, {t.TCPSYN, "tcp_syn "}, {t.UDP, "udp "}, {t.ICMP, "icmp "}, {t.Fragment, "fragment "}, {t.Group, "hostgroup total "}} {
		parts = append(parts, c.l.describe(c.name)...)
	}
	if r := t.Relative; r.Factor > 0 {
		parts = append(parts, fmt.Sprintf("over %.1f× baseline (floors %d pps, %d bps)", r.Factor, r.FloorPPS, r.FloorBPS))
	}
	return strings.Join(parts, ", ")
}

func (r *Response) describe() string {
	var parts []string
	if f := r.FlowSpec; f != nil {
		s := "flowspec " + f.Action
		switch f.Action {
		case "rate-limit":
			s += fmt.Sprintf(" %d bps", f.RateBPS)
		case "redirect":
			s += " to " + f.Redirect
		case "mark":
			s += fmt.Sprintf(" dscp %d", f.DSCP)
		}
		parts = append(parts, s+fmt.Sprintf(" (narrowest rules covering %.0f%%, at most %d)", f.Coverage*100, f.MaxRules))
	}
	if a := r.RTBH; a != nil {
		parts = append(parts, "rtbh")
	}
	if len(parts) == 0 {
		return "nothing (not mitigated)"
	}
	s := strings.Join(parts, " + ") + fmt.Sprintf(" for %s", r.Duration)
	if r.Extend {
		s += ", extended while the attack lasts"
	}
	if r.Hold > 0 {
		s += fmt.Sprintf(", held %s after it ends", r.Hold)
	}
	if e := r.Escalate; e != nil {
		var what []string
		if e.FlowSpec != nil {
			what = append(what, "flowspec "+e.FlowSpec.Action)
		}
		if e.RTBH != nil {
			what = append(what, "rtbh")
		}
		s += fmt.Sprintf("; after %s still on: %s", e.After, strings.Join(what, " + "))
	}
	return s
}
