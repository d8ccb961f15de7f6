package flow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
	"github.com/netsampler/goflow2/v2/decoders/sflow"

	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/header"
)

// Protocol selects how a listener's datagrams are decoded.
type Protocol string

// Listener protocols.
const (
	// ProtoNetFlow accepts NetFlow v5, NetFlow v9 and IPFIX, told apart by
	// the version field of each datagram.
	ProtoNetFlow Protocol = "netflow"
	// ProtoSFlow accepts sFlow v5.
	ProtoSFlow Protocol = "sflow"
)

// ErrUnknownTemplate reports data records whose template has not been
// received yet from that exporter.
var ErrUnknownTemplate = errors.New("unknown template")

// maxFlowDuration bounds the duration taken from an exporter's timestamps,
// so that a wrong clock cannot spread counts over hours.
const maxFlowDuration = 10 * time.Minute

// DecoderConfig holds the settings of a Decoder.
type DecoderConfig struct {
	// Protocol is what the datagrams are expected to be.
	Protocol Protocol
	// DefaultSampling is the sampling rate used when an export carries
	// none. Zero means 1.
	DefaultSampling uint32
	// Sampling overrides the sampling rate of the listed exporters,
	// whatever their exports say.
	Sampling map[netip.Addr]uint32
	// MaxExporters bounds the per-exporter state (templates, sampling)
	// kept by one decoder; the least recently seen exporter is dropped
	// when a new one arrives. Zero means 4096.
	MaxExporters int
	// ExporterIdle is how long an exporter's state is kept without a
	// datagram. Zero means 1 hour.
	ExporterIdle time.Duration
}

// exporterState is what a decoder remembers about one exporter: its
// templates (one template system per exporter, since goflow2 keys templates
// by version, domain and id only) and the sampling rate announced in
// options data.
type exporterState struct {
	templates netflow.NetFlowTemplateSystem
	sampling  uint32
	lastSeen  time.Time
}

// Decoder turns datagrams into records. It keeps per-exporter state and is
// not safe for concurrent use: each collector worker owns one, and every
// exporter is always decoded by the same worker, which keeps its datagrams
// in order.
type Decoder struct {
	cfg       DecoderConfig
	exporters map[netip.Addr]*exporterState

	// Reused decode targets.
	v5    netflowlegacy.PacketNetFlowV5
	v9    netflow.NFv9Packet
	ipfix netflow.IPFIXPacket
	sf    sflow.Packet
	hdr   header.Packet
}

// NewDecoder returns a Decoder with cfg, defaults applied.
func NewDecoder(cfg DecoderConfig) *Decoder {
	if cfg.DefaultSampling == 0 {
		cfg.DefaultSampling = 1
	}
	if cfg.MaxExporters <= 0 {
		cfg.MaxExporters = 4096
	}
	if cfg.ExporterIdle <= 0 {
		cfg.ExporterIdle = time.Hour
	}
	return &Decoder{cfg: cfg, exporters: make(map[netip.Addr]*exporterState)}
}

// Exporters returns the number of exporters whose state is kept.
func (d *Decoder) Exporters() int { return len(d.exporters) }

// Decode decodes one datagram received from exporter at now and appends its
// records to out. On error the records decoded before it are still
// returned, and the error says what was wrong; ErrMalformed and
// ErrUnknownTemplate can be told apart with errors.Is.
func (d *Decoder) Decode(exporter netip.Addr, now time.Time, b []byte, out []sources.Record) ([]sources.Record, error) {
	exporter = exporter.Unmap()
	switch d.cfg.Protocol {
	case ProtoSFlow:
		return d.decodeSFlow(exporter, now, b, out)
	default:
		if len(b) < 2 {
			return out, malformed("%d bytes", len(b))
		}
		switch v := binary.BigEndian.Uint16(b[0:2]); v {
		case 5:
			return d.decodeV5(exporter, now, b, out)
		case 9, 10:
			return d.decodeTemplated(exporter, now, b, v, out)
		default:
			return out, malformed("netflow version %d", v)
		}
	}
}

func (d *Decoder) state(exporter netip.Addr, now time.Time) *exporterState {
	st, ok := d.exporters[exporter]
	if !ok {
		if len(d.exporters) >= d.cfg.MaxExporters {
			d.evict(now)
		}
		st = &exporterState{templates: netflow.CreateTemplateSystem()}
		d.exporters[exporter] = st
	}
	st.lastSeen = now
	return st
}

// evict drops idle exporters, or the least recently seen one if none is
// idle. It runs only when the table is full, so its cost is amortised.
func (d *Decoder) evict(now time.Time) {
	var oldest netip.Addr
	var oldestSeen time.Time
	for a, st := range d.exporters {
		if now.Sub(st.lastSeen) > d.cfg.ExporterIdle {
			delete(d.exporters, a)
			continue
		}
		if oldestSeen.IsZero() || st.lastSeen.Before(oldestSeen) {
			oldest, oldestSeen = a, st.lastSeen
		}
	}
	if len(d.exporters) >= d.cfg.MaxExporters {
		delete(d.exporters, oldest)
	}
}

// sampling returns the rate to apply: a configured override first, then
// the rate the export carried, then the configured default.
func (d *Decoder) sampling(exporter netip.Addr, carried uint32) uint32 {
	if r, ok := d.cfg.Sampling[exporter]; ok && r > 0 {
		return r
	}
	if carried > 0 {
		return carried
	}
	return d.cfg.DefaultSampling
}

// anchor places a flow that lasted dur so that it ends at the collector's
// receive time: exporter clocks are often wrong, durations rarely are.
func anchor(r *sources.Record, now time.Time, dur time.Duration) {
	if dur < 0 {
		dur = 0
	}
	if dur > maxFlowDuration {
		dur = maxFlowDuration
	}
	r.End = now.UnixNano()
	r.Start = r.End - int64(dur)
}

func finish(r *sources.Record, sampling uint32) {
	r.Sampling = sampling
	if r.Packets > 0 {
		avg := r.Bytes / r.Packets
		if avg > 0xffff {
			avg = 0xffff
		}
		r.Length = uint16(avg)
	}
	r.Packets *= uint64(sampling)
	r.Bytes *= uint64(sampling)
}

func (d *Decoder) decodeV5(exporter netip.Addr, now time.Time, b []byte, out []sources.Record) ([]sources.Record, error) {
	if err := checkNetFlowV5(b); err != nil {
		return out, err
	}
	p := &d.v5
	p.Records = p.Records[:0]
	if err := netflowlegacy.DecodeMessageVersion(bytes.NewBuffer(b), p); err != nil {
		return out, fmt.Errorf("%w: netflow v5: %w", ErrMalformed, err)
	}
	d.state(exporter, now)
	// The low 14 bits are the interval, the top 2 the sampling mode.
	sampling := d.sampling(exporter, uint32(p.SamplingInterval&0x3fff))
	for i := range p.Records {
		rec := &p.Records[i]
		r := sources.Record{
			Src:      addr4(uint32(rec.SrcAddr)),
			Dst:      addr4(uint32(rec.DstAddr)),
			SrcPort:  rec.SrcPort,
			DstPort:  rec.DstPort,
			Proto:    rec.Proto,
			TCPFlags: rec.TCPFlags,
			Packets:  uint64(rec.DPkts),
			Bytes:    uint64(rec.DOctets),
			Exporter: exporter,
		}
		anchor(&r, now, time.Duration(rec.Last-rec.First)*time.Millisecond)
		finish(&r, sampling)
		out = append(out, r)
	}
	return out, nil
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Information elements read from NetFlow v9 and IPFIX records (the numbers
// are shared by both, RFC 3954 and the IANA IPFIX registry).
const (
	ieOctets          = 1
	iePackets         = 2
	ieProtocol        = 4
	ieTCPFlags        = 6
	ieSrcPort         = 7
	ieSrcIPv4         = 8
	ieDstPort         = 11
	ieDstIPv4         = 12
	ieLastSwitched    = 21
	ieFirstSwitched   = 22
	ieSrcIPv6         = 27
	ieDstIPv6         = 28
	ieSamplingIntv    = 34
	ieSamplerRandIntv = 50
	ieOctetsTotal     = 85
	iePacketsTotal    = 86
	ieFragmentOffset  = 88
	ieFlowStartSec    = 150
	ieFlowEndSec      = 151
	ieFlowStartMs     = 152
	ieFlowEndMs       = 153
	ieFragmentFlags   = 197
	ieSamplingPktIntv = 305
)

func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func (d *Decoder) decodeTemplated(exporter netip.Addr, now time.Time, b []byte, version uint16, out []sources.Record) ([]sources.Record, error) {
	if err := checkNetFlowSets(b, version); err != nil {
		return out, err
	}
	st := d.state(exporter, now)
	err := netflow.DecodeMessageVersion(bytes.NewBuffer(b), st.templates, &d.v9, &d.ipfix)
	sets := d.v9.FlowSets
	if version == 10 {
		sets = d.ipfix.FlowSets
	}
	unknownTemplate := err != nil && errors.Is(err, netflow.ErrorTemplateNotFound)
	if err != nil && !unknownTemplate {
		return out, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	// Options data first: a sampling rate announced in this datagram
	// applies to its own data records.
	for _, s := range sets {
		if od, ok := s.(netflow.OptionsDataFlowSet); ok {
			for _, rec := range od.Records {
				for _, f := range rec.OptionsValues {
					v, ok := f.Value.([]byte)
					if !ok || f.PenProvided {
						continue
					}
					switch f.Type {
					case ieSamplingIntv, ieSamplerRandIntv, ieSamplingPktIntv:
						if r := beUint(v); r > 0 && r <= 1<<24 {
							st.sampling = uint32(r)
						}
					}
				}
			}
		}
	}
	for _, s := range sets {
		df, ok := s.(netflow.DataFlowSet)
		if !ok {
			continue
		}
		for _, rec := range df.Records {
			r, carried, ok := recordFromFields(rec.Values, now)
			if !ok {
				continue
			}
			r.Exporter = exporter
			if carried == 0 {
				carried = st.sampling
			}
			finish(&r, d.sampling(exporter, carried))
			out = append(out, r)
		}
	}
	if unknownTemplate {
		return out, fmt.Errorf("%w: %w", ErrUnknownTemplate, err)
	}
	return out, nil
}

// recordFromFields builds a record from one data record's fields. It reports
// false for records without both addresses (for example options-like data
// sent with a plain template).
func recordFromFields(fields []netflow.DataField, now time.Time) (r sources.Record, sampling uint32, ok bool) {
	var (
		first, last           uint64
		haveFirst, haveLast   bool
		startMs, endMs        uint64
		haveStartMs, haveEnd  bool
		fragOffset, fragFlags uint64
	)
	for i := range fields {
		f := &fields[i]
		v, isBytes := f.Value.([]byte)
		if !isBytes || f.PenProvided {
			continue
		}
		switch f.Type {
		case ieOctets, ieOctetsTotal:
			if r.Bytes == 0 {
				r.Bytes = beUint(v)
			}
		case iePackets, iePacketsTotal:
			if r.Packets == 0 {
				r.Packets = beUint(v)
			}
		case ieProtocol:
			r.Proto = uint8(beUint(v))
		case ieTCPFlags:
			r.TCPFlags = uint8(beUint(v)) // IPFIX sends 2 bytes; the flags are the low byte
		case ieSrcPort:
			r.SrcPort = uint16(beUint(v))
		case ieDstPort:
			r.DstPort = uint16(beUint(v))
		case ieSrcIPv4:
			if len(v) == 4 {
				r.Src = netip.AddrFrom4([4]byte(v))
			}
		case ieDstIPv4:
			if len(v) == 4 {
				r.Dst = netip.AddrFrom4([4]byte(v))
			}
		case ieSrcIPv6:
			if len(v) == 16 {
				r.Src = netip.AddrFrom16([16]byte(v)).Unmap()
			}
		case ieDstIPv6:
			if len(v) == 16 {
				r.Dst = netip.AddrFrom16([16]byte(v)).Unmap()
			}
		case ieFirstSwitched:
			first, haveFirst = beUint(v), true
		case ieLastSwitched:
			last, haveLast = beUint(v), true
		case ieFlowStartMs:
			startMs, haveStartMs = beUint(v), true
		case ieFlowEndMs:
			endMs, haveEnd = beUint(v), true
		case ieFlowStartSec:
			startMs, haveStartMs = beUint(v)*1000, true
		case ieFlowEndSec:
			endMs, haveEnd = beUint(v)*1000, true
		case ieSamplingIntv, ieSamplerRandIntv, ieSamplingPktIntv:
			if s := beUint(v); s <= 1<<24 {
				sampling = uint32(s)
			}
		case ieFragmentOffset:
			fragOffset = beUint(v)
		case ieFragmentFlags:
			fragFlags = beUint(v)
		}
	}
	if !r.Src.IsValid() || !r.Dst.IsValid() || r.Src.Is4() != r.Dst.Is4() {
		return r, 0, false
	}
	r.Fragment = fragOffset&0x1fff != 0 || fragFlags&0x01 != 0 // IPFIX fragmentFlags bit 0: more fragments
	var dur time.Duration
	switch {
	case haveStartMs && haveEnd && endMs >= startMs:
		dur = time.Duration(endMs-startMs) * time.Millisecond
	case haveFirst && haveLast && last >= first:
		dur = time.Duration(last-first) * time.Millisecond
	}
	anchor(&r, now, dur)
	return r, sampling, true
}

func (d *Decoder) decodeSFlow(exporter netip.Addr, now time.Time, b []byte, out []sources.Record) ([]sources.Record, error) {
	if err := checkSFlow(b); err != nil {
		return out, err
	}
	p := &d.sf
	p.Samples = p.Samples[:0]
	if err := sflow.DecodeMessageVersion(bytes.NewBuffer(b), p); err != nil {
		return out, fmt.Errorf("%w: sflow: %w", ErrMalformed, err)
	}
	// The agent address inside the datagram names the switch even when a
	// relay forwarded it; use it for per-exporter settings.
	if a, ok := netip.AddrFromSlice(p.AgentIP); ok && a.IsValid() && !a.IsUnspecified() {
		exporter = a.Unmap()
	}
	d.state(exporter, now)
	ts := now.UnixNano()
	for _, s := range p.Samples {
		var rate uint32
		var records []sflow.FlowRecord
		switch fs := s.(type) {
		case sflow.FlowSample:
			rate, records = fs.SamplingRate, fs.Records
		case sflow.ExpandedFlowSample:
			rate, records = fs.SamplingRate, fs.Records
		default:
			continue // counter samples carry no traffic
		}
		sampling := d.sampling(exporter, rate)
		for _, fr := range records {
			r := sources.Record{Exporter: exporter, Packets: 1, Start: ts, End: ts}
			switch data := fr.Data.(type) {
			case sflow.SampledHeader:
				if !d.fromRawHeader(data, &r) {
					continue
				}
			case sflow.SampledIPv4:
				fromSampledIP(&data.SampledIPBase, &r)
			case sflow.SampledIPv6:
				fromSampledIP(&data.SampledIPBase, &r)
			default:
				continue
			}
			if !r.Src.IsValid() || !r.Dst.IsValid() {
				continue
			}
			r.Length = uint16(min(r.Bytes, 0xffff))
			r.Sampling = sampling
			r.Packets *= uint64(sampling)
			r.Bytes *= uint64(sampling)
			out = append(out, r)
			break // one traffic record per sample
		}
	}
	return out, nil
}

// fromRawHeader fills r from a sampled raw packet header. Per the sFlow
// decoder's quirk, OriginalLength holds the header length and HeaderData
// includes padding.
func (d *Decoder) fromRawHeader(h sflow.SampledHeader, r *sources.Record) bool {
	data := h.HeaderData
	if int(h.OriginalLength) < len(data) {
		data = data[:h.OriginalLength]
	}
	var link int
	switch h.Protocol {
	case 1:
		link = header.LinkEthernet
	case 11:
		link = header.LinkIPv4
	case 12:
		link = header.LinkIPv6
	default:
		return false
	}
	p := &d.hdr
	if err := header.Parse(data, link, p); err != nil {
		return false
	}
	r.Src, r.Dst = p.Src, p.Dst
	r.SrcPort, r.DstPort = p.SrcPort, p.DstPort
	r.Proto, r.TCPFlags, r.Fragment = p.Proto, p.TCPFlags, p.Fragment
	// FrameLength is the whole frame on the wire (with link header);
	// prefer the IP length, which matches flow exports.
	r.Bytes = uint64(h.FrameLength)
	if p.IPLength > 0 {
		r.Bytes = uint64(p.IPLength)
	}
	return true
}

func fromSampledIP(b *sflow.SampledIPBase, r *sources.Record) {
	if a, ok := netip.AddrFromSlice(b.SrcIP); ok {
		r.Src = a.Unmap()
	}
	if a, ok := netip.AddrFromSlice(b.DstIP); ok {
		r.Dst = a.Unmap()
	}
	r.Proto = uint8(b.Protocol)
	r.SrcPort, r.DstPort = uint16(b.SrcPort), uint16(b.DstPort)
	r.TCPFlags = uint8(b.TcpFlags)
	r.Bytes = uint64(b.Length)
}
