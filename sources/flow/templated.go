package flow

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"

	"github.com/floodgate-ddos/floodgate/sources"
)

// decodeTemplated decodes a NetFlow v9 or IPFIX message. goflow2's decoders
// parse the template and options template sets into the exporter's
// template cache; data and options data sets are walked here against those
// templates, allocating nothing per record (goflow2's data decoder
// allocates once per field, which caps it near a million records a second).
// The fuzz target FuzzDecodeTemplatedDifferential checks this walk against
// goflow2's own.
//
// Templates and options data are taken first, in order, then data: a
// sampling rate announced anywhere in a datagram applies to all its data
// records.
func (d *Decoder) decodeTemplated(exporter netip.Addr, now time.Time, b []byte, version uint16, out []sources.Record) ([]sources.Record, error) {
	if err := checkNetFlowSets(b, version); err != nil {
		return out, err
	}
	var domain uint32
	var sets []byte
	if version == 10 {
		domain = binary.BigEndian.Uint32(b[12:16])
		sets = b[ipfixHeaderLen:binary.BigEndian.Uint16(b[2:4])] // length checked
	} else {
		domain = binary.BigEndian.Uint32(b[16:20])
		sets = b[v9HeaderLen:]
	}
	st := d.state(exporter, now)
	dk := uint64(version)<<samplingDomainShift | uint64(domain)

	// Pass 1: templates, options templates, options data.
	for rest := sets; len(rest) >= setHeaderLen; {
		id, body, next := splitSet(rest)
		rest = next
		if err := d.templateSet(st, version, domain, id, body); err != nil {
			return out, err
		}
		if id < 256 {
			continue
		}
		t, err := st.templates.GetTemplate(version, domain, id)
		if err != nil {
			continue // counted in pass 2
		}
		switch t := t.(type) {
		case netflow.NFv9OptionsTemplateRecord:
			if err := walkOptions(body, t.Scopes, t.Options, st, dk, false); err != nil {
				return out, err
			}
		case netflow.IPFIXOptionsTemplateRecord:
			if err := walkOptions(body, t.Scopes, t.Options, st, dk, true); err != nil {
				return out, err
			}
		}
	}

	// Pass 2: data.
	ds := st.sampling[dk]
	unknown := 0
	for rest := sets; len(rest) >= setHeaderLen; {
		id, body, next := splitSet(rest)
		rest = next
		if id < 256 {
			continue
		}
		t, err := st.templates.GetTemplate(version, domain, id)
		if err != nil {
			unknown++
			continue
		}
		tr, ok := t.(netflow.TemplateRecord)
		if !ok {
			continue
		}
		out, err = walkData(body, tr.Fields, exporter, now, ds, d, out)
		if err != nil {
			return out, fmt.Errorf("%w: set %d: %w", ErrMalformed, id, err)
		}
	}
	if unknown > 0 {
		return out, fmt.Errorf("%w: %d sets of domain %d", ErrUnknownTemplate, unknown, domain)
	}
	return out, nil
}

// splitSet returns the ID and body of the set at the start of b and the
// bytes after it. checkNetFlowSets has checked the lengths.
func splitSet(b []byte) (id uint16, body, rest []byte) {
	id = binary.BigEndian.Uint16(b[0:2])
	l := int(binary.BigEndian.Uint16(b[2:4]))
	return id, b[setHeaderLen:l], b[l:]
}

// templateSet stores the templates of a template or options template set
// (parsed by goflow2) and ignores other sets.
func (d *Decoder) templateSet(st *exporterState, version uint16, domain uint32, id uint16, body []byte) error {
	add := func(tid uint16, t any) error {
		if err := st.templates.AddTemplate(version, domain, tid, t); err != nil {
			return fmt.Errorf("%w: template %d: %w", ErrMalformed, tid, err)
		}
		return nil
	}
	switch {
	case version == 9 && id == 0, version == 10 && id == 2:
		recs, err := netflow.DecodeTemplateSet(version, bytes.NewBuffer(body))
		if err != nil {
			return fmt.Errorf("%w: template set: %w", ErrMalformed, err)
		}
		for _, r := range recs {
			if err := add(r.TemplateId, r); err != nil {
				return err
			}
		}
	case version == 9 && id == 1:
		recs, err := netflow.DecodeNFv9OptionsTemplateSet(bytes.NewBuffer(body))
		if err != nil {
			return fmt.Errorf("%w: options template set: %w", ErrMalformed, err)
		}
		for _, r := range recs {
			if err := add(r.TemplateId, r); err != nil {
				return err
			}
		}
	case version == 10 && id == 3:
		recs, err := netflow.DecodeIPFIXOptionsTemplateSet(bytes.NewBuffer(body))
		if err != nil {
			return fmt.Errorf("%w: options template set: %w", ErrMalformed, err)
		}
		for _, r := range recs {
			if err := add(r.TemplateId, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// minRecordLen is the least room a record of fields takes: the fixed
// lengths, and the length prefix of each variable-length field. Data after
// the last record shorter than this is padding.
func minRecordLen(fields []netflow.Field) int {
	n := 0
	for i := range fields {
		if fields[i].Length == variableLength {
			n++
		} else {
			n += int(fields[i].Length)
		}
	}
	return n
}

// fieldValue returns the value of field f at the start of b and the bytes
// after it, or false if b is too short. IPFIX variable-length values have a
// one-byte length, or 255 and a two-byte length (RFC 7011 section 7).
func fieldValue(b []byte, f *netflow.Field) (v, rest []byte, ok bool) {
	n := int(f.Length)
	if f.Length == variableLength {
		if len(b) < 1 {
			return nil, nil, false
		}
		n, b = int(b[0]), b[1:]
		if n == 255 {
			if len(b) < 2 {
				return nil, nil, false
			}
			n, b = int(binary.BigEndian.Uint16(b)), b[2:]
		}
	}
	if len(b) < n {
		return nil, nil, false
	}
	return b[:n], b[n:], true
}

// walkData appends the records of a data set to out.
func walkData(body []byte, fields []netflow.Field, exporter netip.Addr, now time.Time, ds *domainSampling, d *Decoder, out []sources.Record) ([]sources.Record, error) {
	minLen := minRecordLen(fields)
	if minLen == 0 {
		return out, nil // refused by checkNetFlowSets; never loop on it
	}
	for len(body) >= minLen {
		var rb recordBuilder
		for i := range fields {
			f := &fields[i]
			v, rest, ok := fieldValue(body, f)
			if !ok {
				return out, fmt.Errorf("record truncated in field %d of %d", i+1, len(fields))
			}
			rb.add(f.Type, f.PenProvided, v)
			body = rest
		}
		r, fr, ok := rb.record(now)
		if !ok {
			continue
		}
		r.Exporter = exporter
		carried := fr.sampling
		if carried == 0 && ds != nil {
			carried = ds.rate
			if fr.haveSampler {
				if sr, ok := ds.samplers[fr.sampler]; ok {
					carried = sr
				}
			}
		}
		finish(&r, d.sampling(exporter, carried))
		out = append(out, r)
	}
	return out, nil
}

// walkOptions reads the sampling rates of an options data set into the
// domain's sampling state. In NetFlow v9 the scope fields are scope types,
// not information elements, so only IPFIX scopes are read.
func walkOptions(body []byte, scopes, options []netflow.Field, st *exporterState, dk uint64, readScopes bool) error {
	minLen := minRecordLen(scopes) + minRecordLen(options)
	if minLen == 0 {
		return nil
	}
	for len(body) >= minLen {
		var ob optionsBuilder
		for i := range scopes {
			v, rest, ok := fieldValue(body, &scopes[i])
			if !ok {
				return fmt.Errorf("%w: options record truncated", ErrMalformed)
			}
			if readScopes {
				ob.add(scopes[i].Type, scopes[i].PenProvided, v)
			}
			body = rest
		}
		for i := range options {
			v, rest, ok := fieldValue(body, &options[i])
			if !ok {
				return fmt.Errorf("%w: options record truncated", ErrMalformed)
			}
			ob.add(options[i].Type, options[i].PenProvided, v)
			body = rest
		}
		ob.apply(st, dk)
	}
	return nil
}

// optionsBuilder collects the sampling information of one options record.
type optionsBuilder struct {
	rate, interval, space  uint64
	sampler                uint64
	haveSampler, haveSpace bool
}

func (o *optionsBuilder) add(typ uint16, pen bool, v []byte) {
	if pen || len(v) > 8 {
		return
	}
	switch typ {
	case ieSamplingIntv, ieSamplerRandIntv:
		o.rate = beUint(v)
	case ieSamplingPktIntv:
		o.interval = beUint(v)
	case ieSamplingPktSpace:
		o.space, o.haveSpace = beUint(v), true
	case ieSamplerID, ieSelectorID:
		o.sampler, o.haveSampler = beUint(v), true
	}
}

// apply records the rate found, if any, for the domain (and the sampler
// it names), within the bounds of the per-exporter sampling state.
func (o *optionsBuilder) apply(st *exporterState, dk uint64) {
	rate := o.rate
	if r := packetIntervalRate(o.interval, o.space, o.haveSpace); r > 0 {
		rate = r
	}
	if rate == 0 || rate > MaxSamplingRate {
		return
	}
	ds := st.sampling[dk]
	if ds == nil {
		if len(st.sampling) >= maxSamplingDomains {
			clear(st.sampling)
		}
		ds = &domainSampling{}
		st.sampling[dk] = ds
	}
	ds.rate = uint32(rate)
	if o.haveSampler {
		if ds.samplers == nil || len(ds.samplers) >= maxSamplers {
			ds.samplers = make(map[uint64]uint32)
		}
		ds.samplers[o.sampler] = uint32(rate)
	}
}

// packetIntervalRate turns IPFIX samplingPacketInterval and
// samplingPacketSpace into a 1-in-N rate. Per RFC 5477 the interval is the
// number of packets selected in a row and the space the number skipped, so
// the rate is (interval+space)/interval (softflowd sends 1 and 3 for 1 in
// 4). Exporters that send the interval alone use it, as goflow2 does, as N.
// It returns 0 when there is no usable value.
func packetIntervalRate(interval, space uint64, haveSpace bool) uint64 {
	switch {
	case interval == 0 || interval > MaxSamplingRate || space > MaxSamplingRate:
		return 0
	case haveSpace:
		return (interval + space) / interval
	default:
		return interval
	}
}

// fieldsRecord is what a recordBuilder found besides the record itself.
type fieldsRecord struct {
	sampling    uint32 // a sampling rate carried in the record, or 0
	sampler     uint64 // the sampler ID the record names
	haveSampler bool
}

// timePair collects a flow's start and end in one unit.
type timePair struct {
	start, end     uint64
	hasStart, hasE bool
}

func (p *timePair) dur(unit time.Duration) (time.Duration, bool) {
	if !p.hasStart || !p.hasE || p.end < p.start {
		return 0, false
	}
	return time.Duration(p.end-p.start) * unit, true
}

// ntpDur is the duration between two NTP-format timestamps (seconds since
// 1900 in the high 32 bits, a binary fraction in the low 32).
func (p *timePair) ntpDur() (time.Duration, bool) {
	if !p.hasStart || !p.hasE || p.end < p.start {
		return 0, false
	}
	d := p.end - p.start
	return time.Duration(d>>32)*time.Second + time.Duration((d&0xffffffff)*uint64(time.Second)>>32), true
}

// recordBuilder turns the fields of one data record into a record. The
// zero value is ready; add every field, then call record.
type recordBuilder struct {
	r                              sources.Record
	fr                             fieldsRecord
	uptime, sec, ms, us, ns, delta timePair
	fragOffset, fragFlags          uint64
	icmp, icmpType, icmpCode       uint64
	haveICMP, haveICMPParts        bool
	pktInterval, pktSpace          uint64
	havePktSpace                   bool
}

// add takes one field. Enterprise fields are skipped: their numbers mean
// something else for every enterprise.
func (b *recordBuilder) add(typ uint16, pen bool, v []byte) {
	if pen {
		return
	}
	r := &b.r
	switch typ {
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
	case ieICMPTypeCodeIPv4, ieICMPTypeCodeIPv6:
		b.icmp, b.haveICMP = beUint(v), true
	case ieICMPTypeIPv4, ieICMPTypeIPv6:
		b.icmpType, b.haveICMPParts = beUint(v), true
	case ieICMPCodeIPv4, ieICMPCodeIPv6:
		b.icmpCode, b.haveICMPParts = beUint(v), true
	case ieFirstSwitched:
		b.uptime.start, b.uptime.hasStart = beUint(v), true
	case ieLastSwitched:
		b.uptime.end, b.uptime.hasE = beUint(v), true
	case ieFlowStartSec:
		b.sec.start, b.sec.hasStart = beUint(v), true
	case ieFlowEndSec:
		b.sec.end, b.sec.hasE = beUint(v), true
	case ieFlowStartMs:
		b.ms.start, b.ms.hasStart = beUint(v), true
	case ieFlowEndMs:
		b.ms.end, b.ms.hasE = beUint(v), true
	case ieFlowStartUs:
		b.us.start, b.us.hasStart = beUint(v), true
	case ieFlowEndUs:
		b.us.end, b.us.hasE = beUint(v), true
	case ieFlowStartNs:
		b.ns.start, b.ns.hasStart = beUint(v), true
	case ieFlowEndNs:
		b.ns.end, b.ns.hasE = beUint(v), true
	case ieFlowStartDeltaUs:
		b.delta.end, b.delta.hasE = beUint(v), true // counted backwards: the start is the larger delta
	case ieFlowEndDeltaUs:
		b.delta.start, b.delta.hasStart = beUint(v), true
	case ieSamplingIntv, ieSamplerRandIntv:
		if s := beUint(v); s <= MaxSamplingRate {
			b.fr.sampling = uint32(s)
		}
	case ieSamplingPktIntv:
		b.pktInterval = beUint(v)
	case ieSamplingPktSpace:
		b.pktSpace, b.havePktSpace = beUint(v), true
	case ieSamplerID, ieSelectorID:
		b.fr.sampler, b.fr.haveSampler = beUint(v), true
	case ieFragmentOffset:
		b.fragOffset = beUint(v)
	case ieFragmentFlags:
		b.fragFlags = beUint(v)
	}
}

// record returns the record built, anchored to now. It reports false for
// records without both addresses of one family (for example options-like
// data sent with a plain template).
func (b *recordBuilder) record(now time.Time) (sources.Record, fieldsRecord, bool) {
	r, fr := b.r, b.fr
	if !r.Src.IsValid() || !r.Dst.IsValid() || r.Src.Is4() != r.Dst.Is4() {
		return r, fr, false
	}
	if rate := packetIntervalRate(b.pktInterval, b.pktSpace, b.havePktSpace); rate > 0 && fr.sampling == 0 {
		fr.sampling = uint32(rate)
	}
	if r.Proto == 1 || r.Proto == 58 {
		// Normalise ICMP to NetFlow's convention: type<<8 | code in
		// DstPort, whichever way the exporter sent it.
		switch {
		case b.haveICMP:
			r.DstPort = uint16(b.icmp)
		case b.haveICMPParts:
			r.DstPort = uint16(b.icmpType)<<8 | uint16(b.icmpCode&0xff)
		}
		r.SrcPort = 0
	}
	r.Fragment = b.fragOffset&0x1fff != 0 || b.fragFlags&0x01 != 0 // IPFIX fragmentFlags bit 0: more fragments
	// The first pair of times present gives the duration.
	dur, have := b.ms.dur(time.Millisecond)
	if !have {
		dur, have = b.uptime.dur(time.Millisecond)
	}
	if !have {
		dur, have = b.us.ntpDur()
	}
	if !have {
		dur, have = b.ns.ntpDur()
	}
	if !have {
		dur, have = b.delta.dur(time.Microsecond)
	}
	if !have {
		dur, _ = b.sec.dur(time.Second)
	}
	anchor(&r, now, dur)
	return r, fr, true
}
