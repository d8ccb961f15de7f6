// Package sources owns what every traffic input hands to detection: the
// Record type, one observation of traffic already scaled by its sampling
// rate, and the Sink interface that receives batches of them. The inputs
// themselves live in sub-packages: sources/flow (sFlow v5, NetFlow v5/v9 and
// IPFIX over UDP), sources/mirror (AF_PACKET capture of mirror ports),
// sources/pcapfile (capture replay) and sources/header (the allocation-free
// parser for raw packet headers shared by sFlow and the packet inputs).
//
// Every input describes the same traffic with the same records: addresses,
// ports (for ICMP and ICMPv6, SrcPort 0 and DstPort type<<8 | code, as
// NetFlow has it), IP bytes, counts multiplied by the sampling rate.
package sources

import "net/netip"

// Record is one observation of traffic: a sampled packet, or a flow record
// from a router. Packets and Bytes are already multiplied by the sampling
// rate, so a consumer never scales them again.
type Record struct {
	// Src and Dst are the IP addresses of the packet or flow. IPv4
	// addresses are plain 4-byte addresses, never IPv4-mapped IPv6.
	Src, Dst netip.Addr
	// SrcPort and DstPort are the transport ports for TCP and UDP, zero
	// otherwise.
	SrcPort, DstPort uint16
	// Proto is the IP protocol number (IPv6: the upper-layer next header).
	Proto uint8
	// TCPFlags holds the TCP flags byte (for a flow: the OR of all flags).
	TCPFlags uint8
	// Fragment reports an IP fragment (non-first or first with more
	// fragments).
	Fragment bool
	// Packets and Bytes are the counts this record stands for, sampling
	// rate applied.
	Packets, Bytes uint64
	// Length is the IP packet length, or the average for a flow record.
	Length uint16
	// Exporter is the address the record came from (router or agent); the
	// zero Addr for packet inputs.
	Exporter netip.Addr
	// Sampling is the sampling rate that was applied (1 when unsampled).
	Sampling uint32
	// Start and End are the first and last time the traffic was seen, in
	// Unix nanoseconds. For a single packet they are equal. Detection
	// spreads a record's counts over [Start, End].
	Start, End int64
}

// Sink receives batches of records from a source.
//
// Ingest is called from a source's own goroutine, possibly from several
// sources at once, so implementations must be safe for concurrent use. It
// must not block on anything slow: sources call it on their decode path.
// The batch slice and its records are owned by the caller and reused after
// Ingest returns, so Ingest must not retain them.
type Sink interface {
	Ingest(batch []Record)
}

// SinkFunc adapts a function to the Sink interface.
type SinkFunc func(batch []Record)

// Ingest calls f(batch).
func (f SinkFunc) Ingest(batch []Record) { f(batch) }
