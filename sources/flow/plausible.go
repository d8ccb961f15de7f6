package flow

import (
	"fmt"
	"time"

	"github.com/floodgate-ddos/floodgate/sources"
)

// Plausibility bounds of a decoded record. A record past them describes
// traffic no link carries (a bit flip in a counter, a broken exporter) and
// is dropped as malformed, so that it can never declare an attack.
const (
	// DefaultMaxRecordPPS bounds the packet rate a flow record may imply:
	// a 400 Gbit/s port carries at most 595 Mpps of minimum-size frames.
	DefaultMaxRecordPPS = 1_000_000_000
	// DefaultMaxRecordBPS bounds the bit rate a flow record may imply:
	// four 400 Gbit/s ports' worth.
	DefaultMaxRecordBPS = 1_600_000_000_000
	// minRateSpan is the shortest span a record's implied rate is taken
	// over: spans in exports are coarse (often whole seconds), and a
	// one-packet flow has none.
	minRateSpan = time.Second
	// minPacketBytes and maxPacketBytes bound the mean IP packet size:
	// the IPv4 header alone, and the largest IP packet.
	minPacketBytes = 20
	maxPacketBytes = 65535
)

// ErrImplausible reports records whose counts no traffic could have made;
// it wraps ErrMalformed, so such datagrams are counted as malformed.
var ErrImplausible = fmt.Errorf("%w: implausible record", ErrMalformed)

// Implausible says why r cannot describe real traffic, or "" if it can.
// Counts are already scaled by the sampling rate. sFlow samples are one
// packet each and carry no span: only their size is checked.
func Implausible(r *sources.Record, maxPPS, maxBPS float64, sampled bool) string {
	if r.Packets == 0 {
		if r.Bytes > 0 {
			return fmt.Sprintf("%d bytes in 0 packets", r.Bytes)
		}
		return ""
	}
	if per := r.Bytes / r.Packets; per < minPacketBytes || per > maxPacketBytes {
		return fmt.Sprintf("%d bytes per packet (%d bytes in %d packets), outside %d to %d", per, r.Bytes, r.Packets, minPacketBytes, maxPacketBytes)
	}
	if sampled {
		return ""
	}
	secs := max(time.Duration(r.End-r.Start), minRateSpan).Seconds()
	if pps := float64(r.Packets) / secs; pps > maxPPS {
		return fmt.Sprintf("%d packets in %.3fs imply %.3g pps, over max_record_pps %.3g", r.Packets, secs, pps, maxPPS)
	}
	if bps := float64(r.Bytes) * 8 / secs; bps > maxBPS {
		return fmt.Sprintf("%d bytes in %.3fs imply %.3g bit/s, over max_record_bps %.3g", r.Bytes, secs, bps, maxBPS)
	}
	return ""
}

// dropImplausible removes from out[from:] the records that no traffic
// could have made, counts them and returns the kept records with an error
// naming the first one dropped (nil if none was).
func (d *Decoder) dropImplausible(out []sources.Record, from int) ([]sources.Record, error) {
	var first string
	kept := from
	for i := from; i < len(out); i++ {
		why := Implausible(&out[i], d.cfg.MaxRecordPPS, d.cfg.MaxRecordBPS, d.cfg.Protocol == ProtoSFlow)
		if why == "" {
			out[kept] = out[i]
			kept++
			continue
		}
		d.stats.Implausible++
		if first == "" {
			first = why
		}
	}
	if first == "" {
		return out, nil
	}
	return out[:kept], fmt.Errorf("%w: %d dropped, the first: %s", ErrImplausible, len(out)-kept, first)
}
