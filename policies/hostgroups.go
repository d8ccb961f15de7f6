package policies

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// groupSettings is what the defaults block gives every hostgroup.
type groupSettings struct {
	incoming, outgoing *Threshold
	ewma, baseline     time.Duration
	whitelist          []netip.Prefix
	whitelistFlows     []WhitelistFlow
	maxRules           int
	onFull             []string
	aggregate          Aggregate
	responses          []*Response
}

// compileBody compiles the settings a hostgroup or the defaults block
// writes, on top of base. Threshold blocks replace base's whole direction.
func (c *compiler) compileBody(b *groupBody, base groupSettings) groupSettings {
	out := base
	seen := map[string]hcl.Range{}
	for i := range b.Thresholds {
		t := &b.Thresholds[i]
		if prev, dup := seen[t.Direction]; dup {
			c.errorf(t.DeclRange, "Duplicate threshold", "a %q threshold is already defined at %s", t.Direction, rangeString(prev))
			continue
		}
		seen[t.Direction] = t.DeclRange
		th := c.compileThreshold(t)
		switch t.Direction {
		case "incoming":
			out.incoming = &th
		case "outgoing":
			out.outgoing = &th
		default:
			c.errorf(t.DeclRange, "Invalid threshold direction", "%q is not a direction; write threshold \"incoming\" or threshold \"outgoing\"", t.Direction)
		}
	}
	if d, rng, ok := c.duration(b.EWMA); ok {
		if d < 100*time.Millisecond || d > time.Hour {
			c.errorf(rng, "Invalid ewma", "time constant %s is out of range; write a duration from 100ms to 1h", d)
		}
		out.ewma = d
	}
	if d, rng, ok := c.duration(b.Baseline); ok {
		if d < time.Minute || d > 7*24*time.Hour {
			c.errorf(rng, "Invalid baseline", "time constant %s is out of range; write a duration from 1m to 168h, such as \"15m\"", d)
		}
		out.baseline = d
	}
	if list, ok := c.strList(b.Whitelist); ok {
		out.whitelist = nil
		for _, it := range list {
			if p, ok := c.prefix(it); ok {
				out.whitelist = append(out.whitelist, p)
			}
		}
	}
	if len(b.WhiteFlows) > 0 {
		// A hostgroup's own flows come first, then those of the defaults.
		own := make([]WhitelistFlow, 0, len(b.WhiteFlows)+len(base.whitelistFlows))
		for i := range b.WhiteFlows {
			if w, ok := c.compileWhitelistFlow(&b.WhiteFlows[i]); ok {
				own = append(own, w)
			}
		}
		out.whitelistFlows = append(own, base.whitelistFlows...)
	}
	if n, _, ok := c.uintRange(b.MaxRules, 1, 1_000_000, "max_rules"); ok {
		out.maxRules = int(n)
	}
	if list, ok := c.strList(b.OnFull); ok {
		out.onFull = nil
		for _, it := range list {
			if !slices.Contains(BudgetActions, it.s) {
				c.errorf(it.rng, "Unknown budget action", "%q is not an action; write any of %q, %q, %q, in the order to try them", it.s, BudgetAggregate, BudgetReplace, BudgetRTBH)
				continue
			}
			out.onFull = append(out.onFull, it.s)
		}
	}
	if n, _, ok := c.uintRange(b.AggAfter, 0, 1_000_000, "aggregate_after"); ok {
		out.aggregate.After = int(n)
	}
	if n, _, ok := c.uintRange(b.AggPrefix4, 8, 32, "aggregate_prefix_ipv4"); ok {
		out.aggregate.MaxPrefix4 = int(n)
	}
	if n, _, ok := c.uintRange(b.AggPrefix6, 16, 128, "aggregate_prefix_ipv6"); ok {
		out.aggregate.MaxPrefix6 = int(n)
	}
	if len(b.Responses) > 0 {
		own := c.compileResponses(b.Responses)
		out.responses = append(own, base.responses...)
	}
	return out
}

func (c *compiler) compileHostgroups(defaults *groupBody, blocks []*hostgroupBlock) {
	base := groupSettings{
		incoming: &Threshold{}, outgoing: &Threshold{},
		ewma: DefaultEWMA, baseline: DefaultBaseline, maxRules: DefaultMaxRules,
		onFull:    []string{BudgetAggregate, BudgetReplace},
		aggregate: Aggregate{After: DefaultAggregateAfter, MaxPrefix4: DefaultAggregatePrefix4, MaxPrefix6: DefaultAggregatePrefix6},
	}
	if defaults != nil {
		base = c.compileBody(defaults, base)
	}
	names := map[string]hcl.Range{}
	type owner struct {
		group string
		rng   hcl.Range
	}
	prefixes := map[netip.Prefix]owner{}
	for _, b := range blocks {
		if prev, dup := names[b.Name]; dup {
			c.errorf(b.DeclRange, "Duplicate hostgroup", "hostgroup %q is already defined at %s; rename one or merge them", b.Name, rangeString(prev))
			continue
		}
		names[b.Name] = b.DeclRange
		set := c.compileBody(b.body(), base)
		h := &Hostgroup{
			Name: b.Name, Incoming: *set.incoming, Outgoing: *set.outgoing,
			EWMA: set.ewma, Baseline: set.baseline, Whitelist: set.whitelist, WhitelistFlows: set.whitelistFlows,
			MaxRules: set.maxRules, OnBudgetFull: set.onFull, Aggregate: set.aggregate, Responses: set.responses,
		}
		list, ok := c.strList(b.Prefixes)
		if !ok {
			c.errorf(b.DeclRange, "Missing prefixes", "a hostgroup lists its networks, such as prefixes = [\"203.0.113.0/24\"]")
		}
		for _, it := range list {
			p, ok := c.prefix(it)
			if !ok {
				continue
			}
			if prev, dup := prefixes[p]; dup {
				c.errorf(it.rng, "Duplicate prefix", "%s is already in hostgroup %q at %s; a prefix belongs to one hostgroup", p, prev.group, rangeString(prev.rng))
				continue
			}
			prefixes[p] = owner{b.Name, it.rng}
			h.Prefixes = append(h.Prefixes, p)
		}
		c.checkResponsesFit(h, b.DeclRange)
		c.pol.Hostgroups = append(c.pol.Hostgroups, h)
	}
}

// prefix parses a CIDR list item, reporting what is wrong with it.
func (c *compiler) prefix(it strItem) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(it.s)
	if err != nil {
		c.errorf(it.rng, "Invalid prefix", "%q is not a CIDR prefix; write an address and a length, such as \"203.0.113.0/24\"", it.s)
		return p, false
	}
	if p.Addr().Is4In6() {
		c.errorf(it.rng, "Invalid prefix", "%q is IPv4-mapped; write the IPv4 prefix itself", it.s)
		return p, false
	}
	if m := p.Masked(); m != p {
		c.errorf(it.rng, "Prefix has host bits set", "%q has bits set past /%d; write %q", it.s, p.Bits(), m.String())
		return p, false
	}
	return p, true
}

// checkResponsesFit refuses a response that could announce a blackhole
// broader than one of the hostgroup's prefixes.
func (c *compiler) checkResponsesFit(h *Hostgroup, at hcl.Range) {
	for _, r := range h.Responses {
		for _, act := range []*RTBHAction{r.RTBH, escalationRTBH(r.Escalate)} {
			if act == nil {
				continue
			}
			for _, p := range h.Prefixes {
				l := act.PrefixLength4
				if !p.Addr().Is4() {
					l = act.PrefixLength6
				}
				if l < p.Bits() {
					rng := hcl.Range{Filename: r.File, Start: hcl.Pos{Line: r.Line, Column: 1, Byte: 0}, End: hcl.Pos{Line: r.Line, Column: 1}}
					c.errorf(rng, "Response too broad", "response %q blackholes /%d, broader than %s of hostgroup %q (%s); write a prefix length of at least %d",
						r.Name, l, p, h.Name, rangeString(at), p.Bits())
				}
			}
		}
	}
}

func escalationRTBH(e *Escalation) *RTBHAction {
	if e == nil {
		return nil
	}
	return e.RTBH
}

// compileLimits compiles a limits block; a block with no limit at all is
// an error unless it is the threshold's own attributes (allowEmpty).
func (c *compiler) compileLimits(b *limitsBlock, allowEmpty bool) Limits {
	var l Limits
	if b == nil {
		return l
	}
	if v, _, ok := c.rate(b.PPS, "pps"); ok {
		l.PPS = v
	}
	if v, _, ok := c.rate(b.BPS, "bps"); ok {
		l.BPS = v
	}
	if v, _, ok := c.rate(b.Flows, "fps"); ok {
		l.Flows = v
	}
	if !allowEmpty && !present(b.PPS) && !present(b.BPS) && !present(b.Flows) {
		c.errorf(b.DeclRange, "Empty limits", "set at least one of pps, bps or flows, or remove the block")
	}
	return l
}

func (c *compiler) compileThreshold(t *thresholdBlock) Threshold {
	th := Threshold{
		Total: c.compileLimits(&limitsBlock{PPS: t.PPS, BPS: t.BPS, Flows: t.Flows, DeclRange: t.DeclRange}, true),
	}
	for _, x := range []struct {
		b   *limitsBlock
		dst *Limits
	}{{t.TCP, &th.TCP}, {t.TCPSYN, &th.TCPSYN}, {t.UDP, &th.UDP}, {t.ICMP, &th.ICMP}, {t.Fragment, &th.Fragment}, {t.Group, &th.Group}} {
		if x.b != nil {
			*x.dst = c.compileLimits(x.b, false)
		}
	}
	if r := t.Relative; r != nil {
		f, rng, ok := c.number(r.Factor)
		switch {
		case !ok && rng.Filename == "":
			c.errorf(r.DeclRange, "Missing factor", "a relative threshold sets factor, such as factor = 5 (five times the baseline)")
		case ok && (f < 1.1 || f > 1000):
			c.errorf(rng, "Invalid factor", "factor %g is out of range; write a number from 1.1 to 1000", f)
		case ok:
			th.Relative.Factor = f
		}
		if v, _, ok := c.rate(r.FloorPPS, "pps"); ok {
			th.Relative.FloorPPS = v
		}
		if v, _, ok := c.rate(r.FloorBPS, "bps"); ok {
			th.Relative.FloorBPS = v
		}
		if th.Relative.FloorPPS == 0 && th.Relative.FloorBPS == 0 {
			c.errorf(r.DeclRange, "Missing floor", "a relative threshold needs floor_pps or floor_bps, the rate under which it never triggers (a new host has no baseline yet)")
		}
	}
	return th
}

func (c *compiler) compileResponses(blocks []responseBlock) []*Response {
	var out []*Response
	seen := map[string]hcl.Range{}
	for i := range blocks {
		b := &blocks[i]
		if prev, dup := seen[b.Name]; dup {
			c.errorf(b.DeclRange, "Duplicate response", "a response named %q is already defined at %s in this block", b.Name, rangeString(prev))
			continue
		}
		seen[b.Name] = b.DeclRange
		r := &Response{Name: b.Name, Duration: DefaultDuration, Extend: true, File: b.DeclRange.Filename, Line: b.DeclRange.Start.Line}
		if present(b.When) {
			cond, diags := compileCondition(b.When, c.srcs[b.DeclRange.Filename])
			c.diags = append(c.diags, diags...)
			r.When = cond
		}
		r.FlowSpec = c.compileFlowSpec(b.FlowSpec)
		r.RTBH = c.compileRTBH(b.RTBH)
		if d, _, ok := c.duration(b.Duration); ok {
			r.Duration = d
		}
		if b.Extend != nil {
			r.Extend = *b.Extend
		}
		if d, _, ok := c.duration(b.Hold); ok {
			r.Hold = d
		}
		if e := b.Escalate; e != nil {
			esc := &Escalation{FlowSpec: c.compileFlowSpec(e.FlowSpec), RTBH: c.compileRTBH(e.RTBH)}
			if d, rng, ok := c.duration(e.After); ok {
				esc.After = d
			} else if rng.Filename == "" {
				c.errorf(e.DeclRange, "Missing after", "an escalation says when it applies, such as after = \"5m\"")
			}
			if esc.FlowSpec == nil && esc.RTBH == nil {
				c.errorf(e.DeclRange, "Empty escalation", "an escalation announces something: add an rtbh {} or flowspec {} block")
			}
			r.Escalate = esc
		}
		out = append(out, r)
	}
	return out
}

// FlowSpec actions.
var flowSpecActions = []string{"discard", "rate-limit", "redirect", "mark"}

func (c *compiler) compileFlowSpec(b *flowspecBlock) *FlowSpecAction {
	if b == nil {
		return nil
	}
	a := &FlowSpecAction{Action: "discard", Coverage: DefaultCoverage, MaxRules: DefaultRulesPerAttack}
	if s, rng, ok := c.str(b.Action); ok {
		if !slices.Contains(flowSpecActions, s) {
			c.errorf(rng, "Unknown FlowSpec action", "%q is not an action; write one of discard, rate-limit, redirect, mark", s)
		}
		a.Action = s
	}
	rate, rateRng, haveRate := c.rate(b.Rate, "bps")
	redirect, redirRng, haveRedirect := c.str(b.Redirect)
	dscp, dscpRng, haveDSCP := c.uintRange(b.DSCP, 0, 63, "dscp")
	need := func(have bool, what, example string) {
		if !have {
			c.errorf(b.DeclRange, "Missing "+what, "action %q needs %s, such as %s", a.Action, what, example)
		}
	}
	unused := func(have bool, rng hcl.Range, what string) {
		if have {
			c.errorf(rng, "Unused "+what, "%s applies to another action than %q; remove it or change the action", what, a.Action)
		}
	}
	switch a.Action {
	case "rate-limit":
		need(haveRate, "rate", `rate = "100Mbps"`)
		a.RateBPS = rate
		unused(haveRedirect, redirRng, "redirect")
		unused(haveDSCP, dscpRng, "dscp")
	case "redirect":
		need(haveRedirect, "redirect", `redirect = "65000:100"`)
		if haveRedirect {
			if _, _, err := ParseRouteTarget(redirect); err != nil {
				c.errorf(redirRng, "Invalid route target", "%v; write ASN:value, such as \"65000:100\"", err)
			}
		}
		a.Redirect = redirect
		unused(haveRate, rateRng, "rate")
		unused(haveDSCP, dscpRng, "dscp")
	case "mark":
		need(haveDSCP, "dscp", "dscp = 8")
		a.DSCP = uint8(dscp)
		unused(haveRate, rateRng, "rate")
		unused(haveRedirect, redirRng, "redirect")
	default:
		unused(haveRate, rateRng, "rate")
		unused(haveRedirect, redirRng, "redirect")
		unused(haveDSCP, dscpRng, "dscp")
	}
	if f, rng, ok := c.number(b.Coverage); ok {
		if f <= 0 || f > 1 {
			c.errorf(rng, "Invalid coverage", "coverage %g is out of range; write a share above 0 and up to 1, such as 0.9", f)
		}
		a.Coverage = f
	}
	if n, _, ok := c.uintRange(b.MaxRules, 1, 16, "max_rules_per_attack"); ok {
		a.MaxRules = int(n)
	}
	return a
}

func (c *compiler) compileRTBH(b *rtbhBlock) *RTBHAction {
	if b == nil {
		return nil
	}
	a := &RTBHAction{PrefixLength4: 32, PrefixLength6: 128}
	if list, ok := c.strList(b.Communities); ok {
		for _, it := range list {
			cm, err := ParseCommunity(it.s)
			if err != nil {
				c.errorf(it.rng, "Invalid community", "%v; write ASN:value with both parts from 0 to 65535, such as \"65000:666\"", err)
				continue
			}
			a.Communities = append(a.Communities, cm)
		}
	}
	if n, _, ok := c.uintRange(b.PrefixLength4, 8, 32, "prefix_length_ipv4"); ok {
		a.PrefixLength4 = int(n)
	}
	if n, _, ok := c.uintRange(b.PrefixLength6, 16, 128, "prefix_length_ipv6"); ok {
		a.PrefixLength6 = int(n)
	}
	return a
}

// ParseRouteTarget parses a two-octet-AS route target "ASN:value" (ASN up
// to 65535, value up to 2^32−1), as used by FlowSpec redirect.
func ParseRouteTarget(s string) (asn uint16, value uint32, err error) {
	var a, v uint64
	if _, err := fmt.Sscanf(s, "%d:%d", &a, &v); err != nil || a > 0xffff || v > 0xffffffff || fmt.Sprintf("%d:%d", a, v) != s {
		return 0, 0, fmt.Errorf("route target %q is not ASN:value", s)
	}
	return uint16(a), uint32(v), nil
}
