// Package policies owns Floodgate's configuration language: the HCL schema,
// loading one file or a directory of per-customer *.hcl files, defaults,
// validation that reports every error with its file:line:col, and compiling
// the result into an immutable Policy that the other components read.
//
// It reads files, and the host name for the default kafka node, and
// nothing else: no network, no clock.
package policies

import (
	"net/netip"
	"time"

	"github.com/floodgate-ddos/floodgate/controller/hooks"
	"github.com/floodgate-ddos/floodgate/sources/flow"
	"github.com/floodgate-ddos/floodgate/sources/mirror"
	"github.com/floodgate-ddos/floodgate/sources/pcapfile"
)

// Policy is a compiled, validated configuration. It is immutable once
// returned by Load: components share it by pointer and a reload replaces it
// whole.
type Policy struct {
	// Files are the configuration files the policy was loaded from.
	Files []string
	// Log configures logging.
	Log Log
	// Detection holds global detection settings.
	Detection Detection
	// Daemon holds the daemon's own settings.
	Daemon Daemon
	// Kafka is the cluster's Kafka; not Enabled for a single node.
	Kafka Kafka
	// Listeners are the flow listeners, each the whole configuration of
	// its collector (every default filled in).
	Listeners []flow.ListenerConfig
	// Mirrors are the port-mirror captures.
	Mirrors []mirror.Config
	// Pcaps are capture files replayed as sources.
	Pcaps []pcapfile.Config
	// KafkaSources are Kafka topics of flow records written by other
	// programs (goflow2), read by the collectors of a cluster. Their
	// names are unique among all sources.
	KafkaSources []KafkaSource
	// BGP is the embedded speaker and its neighbours.
	BGP BGP
	// Mitigation holds global mitigation settings.
	Mitigation Mitigation
	// API is where the daemon serves its HTTP API.
	API API
	// Metrics is an extra listener for /metrics.
	Metrics Metrics
	// Hooks are the notification hooks.
	Hooks hooks.Config
	// Hostgroups are the monitored networks, in the order they were
	// defined, with the defaults block applied. Prefixes do not repeat
	// across hostgroups.
	Hostgroups []*Hostgroup
}

// Mitigation holds global mitigation settings.
type Mitigation struct {
	// DryRun logs announcements instead of sending them.
	DryRun bool
	// MaxActive caps the mitigations active at once across all
	// hostgroups. Default 10000.
	MaxActive int
	// StateFile is the crash-safe store of active mitigations.
	// Default "floodgate.db" in the working directory.
	StateFile string
	// WithdrawOnShutdown withdraws every route when the daemon stops.
	// By default routes stay announced until their expiry, so that a
	// restart within it is seamless.
	WithdrawOnShutdown bool
}

// API is where the daemon serves its JSON API (and /metrics).
type API struct {
	// Socket is the unix socket path, mode 0660. Default
	// "/run/floodgate/api.sock"; "" disables it.
	Socket string
	// Listen is an optional TCP address. Outside loopback it requires
	// Token.
	Listen netip.AddrPort
	// Token is the bearer token required on TCP.
	Token string
}

// Metrics is an extra listener that serves only /metrics.
type Metrics struct {
	// Listen is the TCP address (invalid: none; /metrics is also on the
	// API).
	Listen netip.AddrPort
}

// Daemon holds the daemon's own settings.
type Daemon struct {
	// ShutdownTimeout bounds a clean stop after SIGINT or SIGTERM: every
	// component's stop shares it. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// DefaultShutdownTimeout is the default of Daemon.ShutdownTimeout.
const DefaultShutdownTimeout = 10 * time.Second

// HookEvents are the events a hook may ask for (hooks.Kinds), as written
// in the configuration.
var HookEvents = func() []string {
	var out []string
	for _, k := range hooks.Kinds() {
		out = append(out, string(k))
	}
	return out
}()

// Log configures logging.
type Log struct {
	// Level is one of trace, debug, info, warn, error. Default info.
	Level string
	// Format is "text" or "json". Default text.
	Format string
}

// Detection holds global detection settings.
type Detection struct {
	// Tick is how often counters become rates. Default 250ms, at
	// least 100ms.
	Tick time.Duration
	// Confidence is how sure detection must be that a rate is over its
	// limit before it declares an attack: the lower confidence bound of
	// the smoothed rate, given how many samples or records it rests on,
	// must pass the limit. Default DefaultConfidence; from 0.5 (the
	// estimate alone) to 0.999999.
	Confidence float64
	// BurstFactor and BurstEWMA make the fast path of detection: an
	// attack also starts when the total packet or bit rate smoothed over
	// BurstEWMA is over BurstFactor times its limit (at the same
	// confidence). The sustained path (the hostgroup's ewma) is slow
	// enough that a short burst of legitimate traffic does not trigger
	// it; the fast path catches a flood many times the limit within a
	// tick or two. Defaults DefaultBurstFactor and DefaultBurstEWMA; a
	// factor of 0 turns the fast path off.
	BurstFactor float64
	BurstEWMA   time.Duration
	// Window is the confidence window: a host near a limit also keeps
	// its counts of the last Window, tick by tick, so that confidence is
	// judged on the counts of a window the attack fills, where the EWMA
	// still mixes in the traffic from before it. The sustained path
	// starts an attack when the EWMA is over the limit and the lower
	// confidence bound of the rate over the whole window is (or the
	// EWMA's own is); the fast path when the bound over any of the
	// window's last ticks is over BurstFactor times the limit. Default
	// DefaultWindow; from 1s to 1m, and at least two ticks.
	Window time.Duration
}

// BGP is the embedded speaker's configuration.
type BGP struct {
	// ASN is the speaker's autonomous system number.
	ASN uint32
	// RouterID is the BGP identifier (an IPv4 address).
	RouterID netip.Addr
	// Listen is where the speaker accepts sessions. Invalid (the zero
	// value) means it does not listen and only connects out.
	Listen netip.AddrPort
	// Communities are added to every RTBH announcement, after BLACKHOLE
	// (65535:666) and NO_EXPORT.
	Communities []Community
	// NextHopIPv4 and NextHopIPv6 are the next hops of RTBH routes.
	// Invalid means "self" (the session's local address).
	NextHopIPv4, NextHopIPv6 netip.Addr
	// Neighbors are the routers the speaker peers with.
	Neighbors []Neighbor
	// GracefulRestart is negotiated with every neighbour for every family.
	GracefulRestart GracefulRestart
}

// GracefulRestart is BGP graceful restart (RFC 4724) as the speaker
// negotiates it: while the speaker restarts, routers that are helpers keep
// its routes (marked stale) for RestartTime, and replace them with what it
// announces once it is back and has sent End-of-RIB.
type GracefulRestart struct {
	// Enabled negotiates graceful restart. Default true.
	Enabled bool
	// RestartTime is how long a router keeps the routes after the
	// session went down, waiting for it to come back. Default
	// DefaultRestartTime; at most 4095 s (a 12-bit field on the wire).
	RestartTime time.Duration
	// Notification sets the N bit (RFC 8538): routes are also kept when
	// the session ends with a NOTIFICATION other than Hard Reset, as at a
	// clean stop. Default true.
	Notification bool
	// DeferralTime bounds how long a restarting speaker waits for the
	// routers' End-of-RIB before it sends its routes and End-of-RIB
	// anyway. Default DefaultDeferralTime.
	DeferralTime time.Duration
	// LongLived adds long-lived graceful restart (RFC 9494): once
	// RestartTime has passed, routers keep the routes, marked LLGR_STALE,
	// for LongLivedTime more. Default false.
	LongLived bool
	// LongLivedTime is the long-lived stale time. Default
	// DefaultLongLivedTime.
	LongLivedTime time.Duration
}

// Defaults of GracefulRestart.
const (
	DefaultRestartTime   = 120 * time.Second
	DefaultDeferralTime  = 5 * time.Second
	DefaultLongLivedTime = time.Hour
)

// DefaultGracefulRestart returns graceful restart with its defaults.
func DefaultGracefulRestart() GracefulRestart {
	return GracefulRestart{Enabled: true, RestartTime: DefaultRestartTime, Notification: true,
		DeferralTime: DefaultDeferralTime, LongLivedTime: DefaultLongLivedTime}
}

// Community is a standard BGP community, ASN:value.
type Community uint32

// Well-known communities.
const (
	Blackhole Community = 0xffff029a // 65535:666, RFC 7999
	NoExport  Community = 0xffffff01 // 65535:65281, RFC 1997
)

// Neighbor is one BGP peer.
type Neighbor struct {
	// Name identifies the neighbour in logs.
	Name string
	// Address is the peer's address.
	Address netip.Addr
	// ASN is the peer's AS number; equal to the speaker's for iBGP.
	ASN uint32
	// Port is the peer's BGP port. Default 179.
	Port uint16
	// LocalAddress is the source address of the session (invalid: any).
	LocalAddress netip.Addr
	// Passive waits for the peer to connect.
	Passive bool
	// Password is the TCP MD5 signature key (empty: none).
	Password string
	// Multihop is the eBGP TTL when the peer is not directly connected
	// (0: directly connected).
	Multihop uint8
	// Families are the address families negotiated: "ipv4-unicast",
	// "ipv6-unicast", "ipv4-flowspec", "ipv6-flowspec". Default: derived
	// from Announce and the family of Address (unicast of the session's
	// own family for RTBH, both FlowSpec families for FlowSpec).
	Families []string
	// Announce lists the announcement kinds the neighbour gets: "rtbh",
	// "flowspec". Default both.
	Announce []string
	// MaxFlowSpec is how many FlowSpec rules the neighbour is sent at
	// most (routers hold only so many in hardware). Default 1000.
	MaxFlowSpec int
}

// Hostgroup is a set of monitored prefixes with their thresholds and
// responses, the defaults block applied.
type Hostgroup struct {
	// Name is unique across all files.
	Name string
	// Prefixes are the monitored networks (host bits clear).
	Prefixes []netip.Prefix
	// Incoming and Outgoing are the thresholds by direction.
	Incoming, Outgoing Threshold
	// EWMA is the time constant of rate smoothing. Default 2s.
	EWMA time.Duration
	// Baseline is the time constant of the slow EWMA that learns each
	// host's normal rate, for relative thresholds. Default 15m.
	Baseline time.Duration
	// Whitelist are prefixes never mitigated, even inside Prefixes.
	Whitelist []netip.Prefix
	// WhitelistFlows are flows never mitigated: no FlowSpec rule that
	// could match them, no RTBH route covering their destination.
	WhitelistFlows []WhitelistFlow
	// MaxRules caps the mitigations active at once for the hostgroup.
	// Default 100.
	MaxRules int
	// OnBudgetFull is what is tried, in order, when a new attack's
	// announcements do not fit a budget (this max_rules, the global
	// max_active, a neighbour's max_flowspec_rules): BudgetAggregate,
	// BudgetReplace, BudgetRTBH. When none helps the attack is refused,
	// loudly. Default aggregate, then replace_smallest.
	OnBudgetFull []string
	// Aggregate sets when attacks of the same shape on several hosts
	// become one rule for a prefix.
	Aggregate Aggregate
	// Responses are evaluated in order for each attack; the first whose
	// When matches decides. The hostgroup's own come first, then those of
	// the defaults block.
	Responses []*Response
}

// Budget actions (on_budget_full).
const (
	// BudgetAggregate merges the new attack's rule with active rules of
	// the same shape on other hosts into one prefix rule.
	BudgetAggregate = "aggregate"
	// BudgetReplace withdraws the active automatic mitigation of the
	// smallest attack, if smaller than the new one, to make room.
	BudgetReplace = "replace_smallest"
	// BudgetRTBH announces one blackhole route for the victim instead
	// of its FlowSpec rules.
	BudgetRTBH = "rtbh"
)

// BudgetActions are the values on_budget_full accepts.
var BudgetActions = []string{BudgetAggregate, BudgetReplace, BudgetRTBH}

// Aggregate sets the aggregation of same-shape attacks on several hosts
// (a carpet or a wave) into one prefix rule.
type Aggregate struct {
	// After is how many hosts of the hostgroup with rules of one shape
	// make them one prefix rule, budget full or not. Default 4; 0 is
	// never (only when a budget is full).
	After int
	// MaxPrefix4 and MaxPrefix6 are the widest prefixes an aggregate
	// may take (default /24 and /64); always inside the hostgroup.
	MaxPrefix4, MaxPrefix6 int
}

// Threshold holds the limits for one direction. Zero limits are off. An
// attack starts when any enabled limit is crossed by a smoothed rate.
type Threshold struct {
	// Total applies to all traffic of a host.
	Total Limits
	// Per-protocol limits: TCP, TCP SYN without ACK, UDP, ICMP (v4 and
	// v6), IP fragments.
	TCP, TCPSYN, UDP, ICMP, Fragment Limits
	// Group applies to the sum over all hosts of the hostgroup, to catch
	// attacks spread thinly over many hosts.
	Group Limits
	// Relative, when Factor > 0, is a limit relative to each host's
	// baseline on its total traffic.
	Relative Relative
}

// Limits are rates per second; zero is off.
type Limits struct {
	PPS   uint64 // packets per second
	BPS   uint64 // bits per second
	Flows uint64 // distinct flows per second (each flow counts once a second)
}

// Set reports whether any limit is on.
func (l Limits) Set() bool { return l.PPS > 0 || l.BPS > 0 || l.Flows > 0 }

// Relative is a threshold relative to the baseline: crossed when a rate is
// over Factor times its baseline and over its floor.
type Relative struct {
	Factor   float64
	FloorPPS uint64
	FloorBPS uint64
}

// Enabled reports whether any limit is set.
func (t Threshold) Enabled() bool {
	return t.Total.Set() || t.TCP.Set() || t.TCPSYN.Set() || t.UDP.Set() || t.ICMP.Set() ||
		t.Fragment.Set() || t.Group.Set() || t.Relative.Factor > 0
}

// Response says what to announce for an attack that matches When.
type Response struct {
	// Name identifies the response in logs and mitigations.
	Name string
	// When is the compiled condition over the attack signature; nil
	// matches every attack.
	When *Condition
	// FlowSpec, if set, announces a FlowSpec rule.
	FlowSpec *FlowSpecAction
	// RTBH, if set, announces a blackhole route.
	RTBH *RTBHAction
	// Duration is how long the mitigation stays announced. Default 10m.
	Duration time.Duration
	// Extend pushes the expiry back by Duration while the attack lasts.
	// Default true.
	Extend bool
	// Hold keeps the mitigation at least this long after the attack
	// ended. Default 0.
	Hold time.Duration
	// Escalate, if set, adds a stronger announcement when the attack is
	// still on after a while.
	Escalate *Escalation
	// File and Line locate the response's definition, for logs.
	File string
	Line int
}

// Mitigates reports whether the response announces anything.
func (r *Response) Mitigates() bool { return r.FlowSpec != nil || r.RTBH != nil }

// FlowSpecAction is how a FlowSpec rule treats the matched traffic.
type FlowSpecAction struct {
	// Action is "discard", "rate-limit", "redirect" or "mark".
	Action string
	// RateBPS is the rate limit in bits per second (rate-limit).
	RateBPS uint64
	// Redirect is the route target to redirect to, "ASN:value" (redirect).
	Redirect string
	// DSCP is the code point to mark with (mark).
	DSCP uint8
	// Coverage is the share of the attack's traffic the rule must match;
	// the rule builder adds match components while they keep at least
	// this share. Default 0.95.
	Coverage float64
	// MaxRules bounds the rules of one attack's rule set (one per
	// vector). Default 4.
	MaxRules int
}

// RTBHAction is a blackhole route.
type RTBHAction struct {
	// Communities are added to the global rtbh_communities.
	Communities []Community
	// PrefixLength is the blackholed prefix length (default the host:
	// 32 or 128). Shorter prefixes must stay inside the hostgroup.
	PrefixLength4, PrefixLength6 int
}

// Escalation adds an announcement when the attack is still on After the
// mitigation started.
type Escalation struct {
	After    time.Duration
	FlowSpec *FlowSpecAction
	RTBH     *RTBHAction
}

// Hostgroup returns the hostgroup with the given name.
func (p *Policy) Hostgroup(name string) (*Hostgroup, bool) {
	for _, h := range p.Hostgroups {
		if h.Name == name {
			return h, true
		}
	}
	return nil, false
}

// Covering returns the hostgroup whose most specific prefix contains
// prefix entirely, if any. It is linear in the number of prefixes: use it
// for rare decisions such as announcements, not per record.
func (p *Policy) Covering(prefix netip.Prefix) (*Hostgroup, bool) {
	var best *Hostgroup
	bits := -1
	for _, h := range p.Hostgroups {
		for _, q := range h.Prefixes {
			if q.Bits() <= prefix.Bits() && q.Contains(prefix.Addr()) && q.Bits() > bits {
				best, bits = h, q.Bits()
			}
		}
	}
	return best, best != nil
}
