package flowspec

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/floodgate-ddos/floodgate/detect"
	"github.com/floodgate-ddos/floodgate/policies"
)

// Refusal is an announcement a plan leaves out, and why.
type Refusal struct {
	// Announcement is what was refused; nil when nothing could be built.
	Announcement *Announcement
	// Reason is one of the Reason* values (metric label).
	Reason string
	Err    error
}

// Plan turns an attack's signature and a response's actions into the
// announcements that mitigate it, each already through Check against pol:
// with fs, the rule set BuildSet makes of the signature's shape, one
// announcement per rule with fs's action; with rt, the RTBH route of the
// victim widened to rt's prefix length. It is the one entry point from a
// decision to what the speaker may send; what it refuses, and why, is in
// the second result.
func Plan(sig *detect.Signature, fs *policies.FlowSpecAction, rt *policies.RTBHAction, pol *policies.Policy) ([]Announcement, []Refusal) {
	var out []Announcement
	var refused []Refusal
	add := func(a Announcement) {
		if _, err := Check(&a, pol); err != nil {
			reason := ReasonMalformed
			var re *RefusedError
			if errors.As(err, &re) {
				reason = re.Reason
			}
			refused = append(refused, Refusal{Announcement: &a, Reason: reason, Err: err})
			return
		}
		out = append(out, a)
	}
	if fs != nil {
		for _, rule := range BuildSet(ShapeOf(sig), fs.Coverage, fs.MaxRules) {
			a, err := NewFlowSpec(rule, fs)
			if err != nil {
				refused = append(refused, Refusal{Reason: ReasonMalformed, Err: fmt.Errorf("build flowspec rule: %w", err)})
				continue
			}
			add(a)
		}
	}
	if rt != nil {
		p, ok := RTBHPrefix(sig.Victim, rt)
		if !ok {
			refused = append(refused, Refusal{Reason: ReasonTooBroad, Err: fmt.Errorf(
				"the victim is a /%d; set prefix_length_ipv4/ipv6 in the response's rtbh block to blackhole it whole", sig.Victim.Bits())})
		} else {
			add(NewRTBH(p, pol.BGP, rt.Communities))
		}
	}
	return out, refused
}

// RTBHPrefix is the prefix to blackhole for a victim: the victim widened
// to the response's prefix length. A victim wider than that length (an
// attack on a hostgroup total) cannot be blackholed by it.
func RTBHPrefix(victim netip.Prefix, rt *policies.RTBHAction) (netip.Prefix, bool) {
	l := rt.PrefixLength4
	if !victim.Addr().Is4() {
		l = rt.PrefixLength6
	}
	if victim.Bits() < l {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(victim.Addr(), l).Masked(), true
}
