package policies

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Attack is the view of an attack signature that response conditions
// see, as the object `attack`. Detection fills it; the field names in HCL
// are the snake_case names given below.
type Attack struct {
	Victim          string             // victim: "203.0.113.10"
	IPVersion       int                // ip_version: 4 or 6
	Direction       string             // direction: "incoming" or "outgoing"
	Hostgroup       string             // hostgroup
	Protocol        string             // protocol: the dominant one, "tcp", "udp", "icmp" or "other"
	PPS, BPS, Flows float64            // pps, bps, flows: smoothed rates
	PeakPPS         float64            // peak_pps
	PeakBPS         float64            // peak_bps
	Share           map[string]float64 // share.tcp, .tcp_syn, .udp, .icmp, .fragment, .other: packet shares
	TopSrcPort      PortShare          // top_src_port.port, top_src_port.share
	TopDstPort      PortShare          // top_dst_port.port, top_dst_port.share
	AvgPacketLength float64            // avg_packet_length: bytes
	Reason          string             // reason: the threshold crossed, such as "udp pps 52000 > 20000"
}

// PortShare is a port and the share of the attack's packets that use it.
type PortShare struct {
	Port  int
	Share float64
}

// ShareKeys are the keys of Attack.Share.
var ShareKeys = []string{"tcp", "tcp_syn", "udp", "icmp", "fragment", "other"}

func portValue(p PortShare) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{"port": cty.NumberIntVal(int64(p.Port)), "share": cty.NumberFloatVal(p.Share)})
}

// Value returns the attack as the cty object conditions are evaluated on.
func (a Attack) Value() cty.Value {
	shares := make(map[string]cty.Value, len(ShareKeys))
	for _, k := range ShareKeys {
		shares[k] = cty.NumberFloatVal(a.Share[k])
	}
	return cty.ObjectVal(map[string]cty.Value{
		"victim":            cty.StringVal(a.Victim),
		"ip_version":        cty.NumberIntVal(int64(a.IPVersion)),
		"direction":         cty.StringVal(a.Direction),
		"hostgroup":         cty.StringVal(a.Hostgroup),
		"protocol":          cty.StringVal(a.Protocol),
		"pps":               cty.NumberFloatVal(a.PPS),
		"bps":               cty.NumberFloatVal(a.BPS),
		"flows":             cty.NumberFloatVal(a.Flows),
		"peak_pps":          cty.NumberFloatVal(a.PeakPPS),
		"peak_bps":          cty.NumberFloatVal(a.PeakBPS),
		"share":             cty.ObjectVal(shares),
		"top_src_port":      portValue(a.TopSrcPort),
		"top_dst_port":      portValue(a.TopDstPort),
		"avg_packet_length": cty.NumberFloatVal(a.AvgPacketLength),
		"reason":            cty.StringVal(a.Reason),
	})
}

// conditionFunctions are the functions a condition may call.
var conditionFunctions = map[string]function.Function{
	"contains": stdlib.ContainsFunc,
	"length":   stdlib.LengthFunc,
	"lower":    stdlib.LowerFunc,
	"min":      stdlib.MinFunc,
	"max":      stdlib.MaxFunc,
}

// Condition is a compiled `when` expression.
type Condition struct {
	expr hcl.Expression
	// Source is the expression's text, for logs.
	Source string
}

func evalContext(a Attack) *hcl.EvalContext {
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{"attack": a.Value()},
		Functions: conditionFunctions,
	}
}

// Match evaluates the condition on a. An evaluation error (which
// compilation makes unlikely) counts as no match and is returned.
func (c *Condition) Match(a Attack) (bool, error) {
	if c == nil {
		return true, nil
	}
	v, diags := c.expr.Value(evalContext(a))
	if diags.HasErrors() {
		return false, fmt.Errorf("when %s: %s", c.Source, diags.Error())
	}
	return v.True(), nil
}

// compileCondition checks that e only uses attack fields and known
// functions and yields a bool, by evaluating it on an empty attack.
func compileCondition(e hcl.Expression, src []byte) (*Condition, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	for _, tr := range e.Variables() {
		if root := tr.RootName(); root != "attack" {
			r := tr.SourceRange()
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown variable in when",
				Detail:   fmt.Sprintf("%q is not defined; conditions refer to the attack, such as attack.protocol == \"udp\"", root),
				Subject:  &r,
			})
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	v, vd := e.Value(evalContext(Attack{Share: map[string]float64{}}))
	for _, d := range vd {
		if d.Severity == hcl.DiagError && strings.Contains(d.Summary, "Unsupported attribute") {
			d.Detail += " Attack fields: victim, ip_version, direction, hostgroup, protocol, pps, bps, flows, peak_pps, peak_bps, share.{tcp,tcp_syn,udp,icmp,fragment,other}, top_src_port.{port,share}, top_dst_port.{port,share}, avg_packet_length, reason."
		}
	}
	if vd.HasErrors() {
		return nil, vd
	}
	if v.Type() != cty.Bool {
		r := e.Range()
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Condition is not true or false",
			Detail:   fmt.Sprintf("when must be a comparison, such as attack.share.udp > 0.9; this one is a %s", v.Type().FriendlyName()),
			Subject:  &r,
		}}
	}
	r := e.Range()
	text := strings.TrimSpace(string(r.SliceBytes(src)))
	return &Condition{expr: e, Source: text}, nil
}
