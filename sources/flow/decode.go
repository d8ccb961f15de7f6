package flow

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

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
// received yet from that exporter (or has expired).
var ErrUnknownTemplate = errors.New("unknown template")

// maxFlowDuration bounds the duration taken from an exporter's timestamps,
// so that a wrong clock cannot spread counts over hours.
const maxFlowDuration = 10 * time.Minute

// MaxSamplingRate is the largest sampling rate taken from an export or a
// configuration; larger values are ignored as nonsense.
const MaxSamplingRate = 1 << 24

// Bounds of the sampling state kept per exporter.
const (
	maxSamplingDomains = 256 // observation domains with a sampling rate
	maxSamplers        = 64  // sampler IDs per domain
)

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
	// kept by one decoder; when a new exporter arrives in a full table,
	// idle exporters and then the least recently seen are dropped (an
	// eighth of the table at once). Zero means DefaultMaxExporters.
	MaxExporters int
	// ExporterIdle is how long an exporter's state is kept without a
	// datagram. Zero means DefaultExporterIdle.
	ExporterIdle time.Duration
	// MaxTemplates bounds the NetFlow v9 and IPFIX templates kept per
	// exporter, over all its observation domains; when full, the template
	// announced longest ago is dropped. Zero means DefaultMaxTemplates.
	MaxTemplates int
	// TemplateTTL is how long a template lives after it was last
	// announced. Zero means DefaultTemplateTTL.
	TemplateTTL time.Duration
	// MaxTemplateFields bounds the template fields held over all
	// exporters, which bounds the memory templates take (about 16 bytes a
	// field) even when exporter addresses are spoofed; a template past it
	// is refused. Zero means DefaultMaxTemplateFields.
	MaxTemplateFields int
	// MaxRecordPPS and MaxRecordBPS bound the rates a flow record may
	// imply (its packets and bits, sampling applied, over its span or at
	// least a second); a record past either, or whose mean packet size
	// is outside 20 to 65,535 bytes, is dropped and counted as malformed.
	// Zero means DefaultMaxRecordPPS and DefaultMaxRecordBPS.
	MaxRecordPPS, MaxRecordBPS float64
}

// DecoderStats counts what a Decoder saw besides records and errors.
type DecoderStats struct {
	// CounterSamples is the number of sFlow counter samples skipped.
	CounterSamples uint64
	// TemplatesDropped counts templates that expired or were evicted
	// from a full per-exporter cache.
	TemplatesDropped uint64
	// ExportersDropped counts exporters whose state was dropped because
	// the table was full or they were idle.
	ExportersDropped uint64
	// Implausible counts records dropped because no traffic could have
	// made them (see DecoderConfig.MaxRecordPPS).
	Implausible uint64
}

// exporterState is what a decoder remembers about one exporter: its
// templates (one cache per exporter, since goflow2 keys templates by
// version, domain and ID only) and the sampling rates announced in options
// data, per observation domain.
type exporterState struct {
	templates *templateCache
	sampling  map[uint64]*domainSampling // key: version<<32 | domain
	lastSeen  time.Time
}

// domainSampling is the sampling announced by one observation domain: the
// last rate announced, and the rate of each sampler ID for data records
// that name their sampler.
type domainSampling struct {
	rate     uint32
	samplers map[uint64]uint32
}

// Decoder turns datagrams into records. It keeps per-exporter state and is
// not safe for concurrent use: each collector worker owns one, and every
// exporter is always decoded by the same worker, which keeps its datagrams
// in order.
type Decoder struct {
	cfg       DecoderConfig
	exporters map[netip.Addr]*exporterState
	stats     DecoderStats
	budget    templateBudget

	// Reused decode targets.
	v5  netflowlegacy.PacketNetFlowV5
	sf  sflow.Packet
	hdr header.Packet
}

// NewDecoder returns a Decoder with cfg, defaults applied: a setting
// that is zero or negative takes its default.
func NewDecoder(cfg DecoderConfig) *Decoder {
	cfg.DefaultSampling = cmp.Or(cfg.DefaultSampling, 1)
	cfg.MaxExporters = cmp.Or(max(cfg.MaxExporters, 0), DefaultMaxExporters)
	cfg.ExporterIdle = cmp.Or(max(cfg.ExporterIdle, 0), DefaultExporterIdle)
	cfg.MaxTemplates = cmp.Or(max(cfg.MaxTemplates, 0), DefaultMaxTemplates)
	cfg.TemplateTTL = cmp.Or(max(cfg.TemplateTTL, 0), DefaultTemplateTTL)
	cfg.MaxTemplateFields = cmp.Or(max(cfg.MaxTemplateFields, 0), DefaultMaxTemplateFields)
	cfg.MaxRecordPPS = cmp.Or(max(cfg.MaxRecordPPS, 0), DefaultMaxRecordPPS)
	cfg.MaxRecordBPS = cmp.Or(max(cfg.MaxRecordBPS, 0), DefaultMaxRecordBPS)
	return &Decoder{
		cfg:       cfg,
		exporters: make(map[netip.Addr]*exporterState),
		budget:    templateBudget{max: cfg.MaxTemplateFields},
	}
}

// Exporters returns the number of exporters whose state is kept.
func (d *Decoder) Exporters() int { return len(d.exporters) }

// Templates returns the number of templates kept for exporter.
func (d *Decoder) Templates(exporter netip.Addr) int {
	if st, ok := d.exporters[exporter.Unmap()]; ok {
		return st.templates.len()
	}
	return 0
}

// Stats returns the decoder's counters since it was made.
func (d *Decoder) Stats() DecoderStats { return d.stats }

// Decode decodes one datagram received from exporter at now and appends its
// records to out. On error the records decoded before it are still
// returned, and the error says what was wrong; ErrMalformed and
// ErrUnknownTemplate can be told apart with errors.Is. NetFlow v9 and IPFIX
// data allocate nothing; goflow2's sFlow decoder allocates per sample and
// its v5 decoder per datagram.
//
// Records that no traffic could have made (see DecoderConfig.MaxRecordPPS)
// are dropped and reported with ErrImplausible, which wraps ErrMalformed.
func (d *Decoder) Decode(exporter netip.Addr, now time.Time, b []byte, out []sources.Record) ([]sources.Record, error) {
	from := len(out)
	out, err := d.decode(exporter, now, b, out)
	out, ierr := d.dropImplausible(out, from)
	if err == nil {
		err = ierr
	}
	return out, err
}

func (d *Decoder) decode(exporter netip.Addr, now time.Time, b []byte, out []sources.Record) ([]sources.Record, error) {
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
			d.stats.ExportersDropped += uint64(evictOldest(d.exporters, d.cfg.MaxExporters, now.Add(-d.cfg.ExporterIdle),
				func(st *exporterState) time.Time { return st.lastSeen },
				func(st *exporterState) { st.templates.release() }))
		}
		st = &exporterState{
			templates: newTemplateCache(d.cfg.MaxTemplates, d.cfg.TemplateTTL, &d.stats.TemplatesDropped, &d.budget),
			sampling:  make(map[uint64]*domainSampling),
		}
		d.exporters[exporter] = st
	}
	st.lastSeen = now
	st.templates.now = now
	return st
}

// evictOldest makes room in a full map: it drops every entry last seen
// before idleBefore, then the least recently seen until at most 7/8 of max
// are left, so that a stream of new keys costs a sort every max/8 inserts
// rather than a scan per insert. It calls drop, if not nil, for each entry
// dropped, and returns their number.
func evictOldest[K comparable, V any](m map[K]V, max int, idleBefore time.Time, seen func(V) time.Time, drop func(V)) int {
	type kt struct {
		k K
		t time.Time
	}
	n := len(m)
	live := make([]kt, 0, len(m))
	for k, v := range m {
		if t := seen(v); t.Before(idleBefore) {
			if drop != nil {
				drop(v)
			}
			delete(m, k)
		} else {
			live = append(live, kt{k, t})
		}
	}
	keep := max - max/8 - 1
	if keep < 0 {
		keep = 0
	}
	if len(live) > keep {
		slices.SortFunc(live, func(a, b kt) int { return a.t.Compare(b.t) })
		for _, e := range live[:len(live)-keep] {
			if drop != nil {
				drop(m[e.k])
			}
			delete(m, e.k)
		}
	}
	return n - len(m)
}

// sampling returns the rate to apply: a configured override first, then
// the rate the export carried, then the configured default.
func (d *Decoder) sampling(exporter netip.Addr, carried uint32) uint32 {
	if r, ok := d.cfg.Sampling[exporter]; ok && r > 0 {
		return r
	}
	if carried > 0 && carried <= MaxSamplingRate {
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
		if r.Proto == 1 {
			r.SrcPort = 0 // ICMP type and code are in DstPort
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
	ieOctets            = 1
	iePackets           = 2
	ieProtocol          = 4
	ieTCPFlags          = 6
	ieSrcPort           = 7
	ieSrcIPv4           = 8
	ieDstPort           = 11
	ieDstIPv4           = 12
	ieLastSwitched      = 21 // flowEndSysUpTime, milliseconds
	ieFirstSwitched     = 22 // flowStartSysUpTime, milliseconds
	ieSrcIPv6           = 27
	ieDstIPv6           = 28
	ieICMPTypeCodeIPv4  = 32
	ieSamplingIntv      = 34
	ieSamplerID         = 48
	ieSamplerRandIntv   = 50
	ieOctetsTotal       = 85
	iePacketsTotal      = 86
	ieFragmentOffset    = 88
	ieICMPTypeCodeIPv6  = 139
	ieFlowStartSec      = 150
	ieFlowEndSec        = 151
	ieFlowStartMs       = 152
	ieFlowEndMs         = 153
	ieFlowStartUs       = 154 // NTP format
	ieFlowEndUs         = 155
	ieFlowStartNs       = 156 // NTP format
	ieFlowEndNs         = 157
	ieFlowStartDeltaUs  = 158 // microseconds before the export time
	ieFlowEndDeltaUs    = 159
	ieICMPTypeIPv4      = 176
	ieICMPCodeIPv4      = 177
	ieICMPTypeIPv6      = 178
	ieICMPCodeIPv6      = 179
	ieFragmentFlags     = 197
	ieSelectorID        = 302
	ieSamplingPktIntv   = 305
	ieSamplingPktSpace  = 306
	samplingDomainShift = 32
)

func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
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
		case sflow.CounterSample:
			d.stats.CounterSamples++
			continue
		default:
			continue // drop samples and unknown formats carry no traffic
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
			if !r.Src.IsValid() || !r.Dst.IsValid() || r.Src.Is4() != r.Dst.Is4() {
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
	p.FillRecord(r)
	// The IP length matches what flow exports count; without one (an
	// IPv6 jumbogram), fall back to the frame length.
	if p.IPLength == 0 {
		r.Bytes = uint64(h.FrameLength)
	}
	return true
}

// fromSampledIP fills r from an sFlow sampled IPv4 or IPv6 record. For ICMP
// the agents put the type in the source port field and the code in the
// destination port field; they are moved to NetFlow's convention.
func fromSampledIP(b *sflow.SampledIPBase, r *sources.Record) {
	if a, ok := netip.AddrFromSlice(b.SrcIP); ok {
		r.Src = a.Unmap()
	}
	if a, ok := netip.AddrFromSlice(b.DstIP); ok {
		r.Dst = a.Unmap()
	}
	r.Proto = uint8(b.Protocol)
	r.SrcPort, r.DstPort = uint16(b.SrcPort), uint16(b.DstPort)
	if r.Proto == 1 || r.Proto == 58 {
		r.SrcPort, r.DstPort = 0, uint16(b.SrcPort)<<8|uint16(b.DstPort&0xff)
	}
	r.TCPFlags = uint8(b.TcpFlags)
	r.Bytes = uint64(b.Length)
}
