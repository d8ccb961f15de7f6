// Package gen owns the project's traffic generator: a seeded model of the
// traffic a network sees during a DDoS attack, and emitters that play it, at
// a controlled rate, as sFlow v5, NetFlow v5, NetFlow v9 or IPFIX exports to
// a loopback collector, or as raw Ethernet frames onto a veth for the mirror
// input.
//
// # Model
//
// A Scenario describes the traffic: background traffic to many hosts (HTTPS
// downloads and DNS answers at modest per-host rates) from the start, and
// from Scenario.Start an attack of one type (NTP, DNS, memcached, SSDP or
// CLDAP reflection, SYN, ACK, UDP or ICMP flood, fragment flood, carpet
// bombing) against one victim, IPv4 or IPv6, at Scenario.AttackPPS packets
// per second. A Model cuts the scenario into intervals (100 ms by default)
// and fills each with Flows: streams of identical packets. Packet counts
// are exact: over any run of whole intervals the victim receives
// AttackPPS × time packets, to one packet. The same seed gives the same
// traffic, interval by interval, in any order.
//
// # Emitters
//
// An Emitter turns the flows of an interval into output and paces it over
// the interval's wall-clock span:
//
//   - NetFlowEmitter: one record per flow and interval (packets sampled 1 in
//     SamplingRate), templates and sampling options resent periodically,
//     through the encoders of package flowgen;
//   - SFlowEmitter: flow samples of 1 in SamplingRate packets, each with
//     the first 128 octets of the real frame;
//   - RawEmitter: every packet as an Ethernet frame through an AF_PACKET
//     socket on a veth.
//
// Network safety is enforced, not advised: the flow emitters refuse any
// destination that is not a loopback address (127.0.0.0/8, ::1), and the
// raw emitter refuses an interface that is not a veth or that lives in the
// host's initial network namespace. Every run is bounded in time
// (MaxDuration) and in rate (MaxPPS), and the raw emitter in frames
// (RawEmitter.MaxPackets).
//
// # Running
//
// Run plays a scenario through emitters in real time, prints the moment the
// first attack datagram or frame is sent ("attack ntp starts at
// 2026-11-24T18:00:03.123456Z") and returns that time with the counts of
// what was sent, so that a test can measure how long detection took.
// Emitters also work without Run: an Interval with zero Start and End is
// sent as fast as possible, which tests and benchmarks use.
package gen
