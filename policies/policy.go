// Package policies owns Floodgate's configuration language: the HCL schema,
// loading one file or a directory of per-customer *.hcl files, defaults,
// validation that reports every error with its file:line:col, and compiling
// the result into an immutable Policy that the other components read.
//
// It reads files and nothing else: no network, no clock.
package policies

import (
	"net/netip"
	"time"
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
	// Listeners are the flow listeners.
	Listeners []Listener
	// BGP is the embedded speaker and its neighbours.
	BGP BGP
	// Hostgroups are the monitored networks, in the order they were
	// defined. Prefixes do not repeat across hostgroups.
	Hostgroups []*Hostgroup
}

// Log configures logging.
type Log struct {
	// Level is one of trace, debug, info, warn, error. Default info.
	Level string
	// Format is "text" or "json". Default text.
	Format string
}

// Detection holds global detection settings.
type Detection struct {
	// Tick is how often counters become rates. Default 1s, at least
	// 100ms.
	Tick time.Duration
}

// Listener is one flow listener.
type Listener struct {
	// Name identifies the listener ("edge-routers").
	Name string
	// Protocol is "netflow" (v5, v9 and IPFIX on one port) or "sflow".
	Protocol string
	// Listen is the UDP address.
	Listen netip.AddrPort
	// ReceiveBuffer is the socket receive buffer in bytes (0: default).
	ReceiveBuffer int
	// Workers is the number of decoding goroutines (0: default).
	Workers int
	// QueueSize is the per-worker datagram queue length (0: default).
	QueueSize int
	// DefaultSampling is the sampling rate assumed when an export carries
	// none (0: 1).
	DefaultSampling uint32
	// Sampling overrides the sampling rate per exporter.
	Sampling map[netip.Addr]uint32
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
	// DryRun logs announcements instead of sending them.
	DryRun bool
	// Communities are added to every RTBH announcement, after BLACKHOLE
	// (65535:666) and NO_EXPORT.
	Communities []Community
	// NextHopIPv4 and NextHopIPv6 are the next hops of RTBH routes.
	// Invalid means "self" (the session's local address).
	NextHopIPv4, NextHopIPv6 netip.Addr
	// Neighbors are the routers the speaker peers with.
	Neighbors []Neighbor
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
	// "ipv6-unicast". Default: the unicast family of Address.
	Families []string
}

// Hostgroup is a set of monitored prefixes with their thresholds and
// response.
type Hostgroup struct {
	// Name is unique across all files.
	Name string
	// Prefixes are the monitored networks (host bits clear).
	Prefixes []netip.Prefix
	// Incoming and Outgoing are the per-host thresholds by direction.
	Incoming, Outgoing Threshold
	// EWMA is the time constant of rate smoothing. Default 1s.
	EWMA time.Duration
	// BanTime is how long a mitigation stays announced. Default 10m.
	BanTime time.Duration
}

// Threshold is a set of per-host rate limits; zero fields are off. An
// attack starts when any enabled rate is crossed.
type Threshold struct {
	// PPS is packets per second.
	PPS uint64
	// BPS is bits per second.
	BPS uint64
}

// Enabled reports whether any limit is set.
func (t Threshold) Enabled() bool { return t.PPS > 0 || t.BPS > 0 }

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
