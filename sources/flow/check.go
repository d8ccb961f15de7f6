package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed wraps every structural error found before a datagram is
// handed to a goflow2 decoder.
var ErrMalformed = errors.New("malformed datagram")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Wire sizes.
const (
	v5HeaderLen     = 24
	v5RecordLen     = 48
	v9HeaderLen     = 20
	ipfixHeaderLen  = 16
	setHeaderLen    = 4
	maxV5Records    = 30 * 4 // exporters send at most 30; leave room
	variableLength  = 0xffff
	maxSFlowSamples = 1000
	// maxTemplateFields is the most fields a template may have; real
	// templates have tens.
	maxTemplateFields = 1024
)

// checkNetFlowV5 rejects a v5 datagram whose record count does not fit its
// length (goflow2 would otherwise allocate and return zero records).
func checkNetFlowV5(b []byte) error {
	if len(b) < v5HeaderLen {
		return malformed("netflow v5: %d bytes, header needs %d", len(b), v5HeaderLen)
	}
	count := int(binary.BigEndian.Uint16(b[2:4]))
	if count == 0 || count > maxV5Records {
		return malformed("netflow v5: record count %d out of range", count)
	}
	if need := v5HeaderLen + count*v5RecordLen; len(b) < need {
		return malformed("netflow v5: %d records need %d bytes, datagram has %d", count, need, len(b))
	}
	return nil
}

// checkNetFlowSets walks the sets of a NetFlow v9 or IPFIX datagram and
// rejects lengths that overrun the datagram and templates that would make
// goflow2 allocate without bound or loop for ever (a template whose records
// have zero length).
func checkNetFlowSets(b []byte, version uint16) error {
	hdr := v9HeaderLen
	name := "netflow v9"
	if version == 10 {
		hdr = ipfixHeaderLen
		name = "ipfix"
	}
	if len(b) < hdr {
		return malformed("%s: %d bytes, header needs %d", name, len(b), hdr)
	}
	if version == 10 {
		l := int(binary.BigEndian.Uint16(b[2:4]))
		if l < hdr || l > len(b) {
			return malformed("%s: message length %d, datagram has %d", name, l, len(b))
		}
		b = b[:l]
	}
	b = b[hdr:]
	for len(b) > 0 {
		if len(b) < setHeaderLen {
			return malformed("%s: %d trailing bytes", name, len(b))
		}
		id := binary.BigEndian.Uint16(b[0:2])
		l := int(binary.BigEndian.Uint16(b[2:4]))
		if l < setHeaderLen || l > len(b) {
			return malformed("%s: set %d length %d, %d bytes left", name, id, l, len(b))
		}
		body := b[setHeaderLen:l]
		var err error
		switch {
		case version == 9 && id == 0, version == 10 && id == 2:
			err = checkTemplateSet(body, version)
		case version == 9 && id == 1:
			err = checkV9OptionsTemplateSet(body)
		case version == 10 && id == 3:
			err = checkIPFIXOptionsTemplateSet(body)
		case id < 256:
			err = malformed("reserved set id")
		}
		if err != nil {
			return fmt.Errorf("%s: set %d: %w", name, id, err)
		}
		b = b[l:]
	}
	return nil
}

// fieldSpecs checks count field specifiers at the start of b and returns the
// minimum encoded record size they describe and the bytes after them.
func fieldSpecs(b []byte, count int, version uint16) (minSize int, rest []byte, err error) {
	for i := 0; i < count; i++ {
		if len(b) < 4 {
			return 0, nil, malformed("field %d of %d truncated", i+1, count)
		}
		typ := binary.BigEndian.Uint16(b[0:2])
		l := int(binary.BigEndian.Uint16(b[2:4]))
		b = b[4:]
		if version == 10 && typ&0x8000 != 0 {
			if len(b) < 4 {
				return 0, nil, malformed("enterprise number of field %d truncated", i+1)
			}
			b = b[4:]
		}
		switch {
		case version == 10 && l == variableLength:
			minSize++ // at least the one-byte length prefix
		case version == 9 && l == variableLength:
			return 0, nil, malformed("variable-length field in netflow v9")
		default:
			minSize += l
		}
	}
	return minSize, b, nil
}

func checkTemplateSet(b []byte, version uint16) error {
	for len(b) >= 4 {
		id := binary.BigEndian.Uint16(b[0:2])
		count := int(binary.BigEndian.Uint16(b[2:4]))
		if id < 256 {
			return malformed("template id %d below 256", id)
		}
		if count == 0 {
			return malformed("template %d has no fields", id)
		}
		if count > maxTemplateFields {
			return malformed("template %d has %d fields, at most %d accepted", id, count, maxTemplateFields)
		}
		if count*4 > len(b)-4 {
			return malformed("template %d claims %d fields in %d bytes", id, count, len(b)-4)
		}
		size, rest, err := fieldSpecs(b[4:], count, version)
		if err != nil {
			return fmt.Errorf("template %d: %w", id, err)
		}
		if size == 0 {
			return malformed("template %d describes empty records", id)
		}
		b = rest
	}
	return nil
}

func checkV9OptionsTemplateSet(b []byte) error {
	for len(b) >= 6 {
		id := binary.BigEndian.Uint16(b[0:2])
		scopeLen := int(binary.BigEndian.Uint16(b[2:4]))
		optLen := int(binary.BigEndian.Uint16(b[4:6]))
		if id < 256 {
			return malformed("options template id %d below 256", id)
		}
		if scopeLen%4 != 0 || optLen%4 != 0 || scopeLen+optLen > len(b)-6 {
			return malformed("options template %d: scope %d and option %d bytes in %d", id, scopeLen, optLen, len(b)-6)
		}
		if (scopeLen+optLen)/4 > maxTemplateFields {
			return malformed("options template %d has %d fields, at most %d accepted", id, (scopeLen+optLen)/4, maxTemplateFields)
		}
		scopeSize, rest, err := fieldSpecs(b[6:], scopeLen/4, 9)
		if err != nil {
			return fmt.Errorf("options template %d: %w", id, err)
		}
		optSize, rest, err := fieldSpecs(rest, optLen/4, 9)
		if err != nil {
			return fmt.Errorf("options template %d: %w", id, err)
		}
		if scopeSize+optSize == 0 {
			return malformed("options template %d describes empty records", id)
		}
		b = rest
		// Sets are padded to 4 bytes: stop at padding.
		if len(b) < 6 {
			break
		}
	}
	return nil
}

func checkIPFIXOptionsTemplateSet(b []byte) error {
	for len(b) >= 6 {
		id := binary.BigEndian.Uint16(b[0:2])
		count := int(binary.BigEndian.Uint16(b[2:4]))
		scopeCount := int(binary.BigEndian.Uint16(b[4:6]))
		if id < 256 {
			return malformed("options template id %d below 256", id)
		}
		if count == 0 || scopeCount > count || count*4 > len(b)-6 {
			return malformed("options template %d: %d fields (%d scope) in %d bytes", id, count, scopeCount, len(b)-6)
		}
		if count > maxTemplateFields {
			return malformed("options template %d has %d fields, at most %d accepted", id, count, maxTemplateFields)
		}
		size, rest, err := fieldSpecs(b[6:], count, 10)
		if err != nil {
			return fmt.Errorf("options template %d: %w", id, err)
		}
		if size == 0 {
			return malformed("options template %d describes empty records", id)
		}
		b = rest
	}
	return nil
}

// checkSFlow walks an sFlow v5 datagram's samples and rejects sample and
// record counts that its length cannot hold, before goflow2 allocates for
// them.
func checkSFlow(b []byte) error {
	if len(b) < 8 {
		return malformed("sflow: %d bytes", len(b))
	}
	if v := binary.BigEndian.Uint32(b[0:4]); v != 5 {
		return malformed("sflow: version %d", v)
	}
	off := 8
	switch binary.BigEndian.Uint32(b[4:8]) {
	case 1:
		off += 4
	case 2:
		off += 16
	default:
		return malformed("sflow: agent address type %d", binary.BigEndian.Uint32(b[4:8]))
	}
	off += 12 // sub-agent id, sequence number, uptime
	if len(b) < off+4 {
		return malformed("sflow: header truncated")
	}
	count := int(binary.BigEndian.Uint32(b[off : off+4]))
	b = b[off+4:]
	if count > maxSFlowSamples || count*8 > len(b) {
		return malformed("sflow: %d samples in %d bytes", count, len(b))
	}
	for i := 0; i < count; i++ {
		if len(b) < 8 {
			return malformed("sflow: sample %d of %d truncated", i+1, count)
		}
		format := binary.BigEndian.Uint32(b[0:4]) & 0xfff // enterprise 0
		l := int(binary.BigEndian.Uint32(b[4:8]))
		if l > len(b)-8 {
			return malformed("sflow: sample %d length %d, %d bytes left", i+1, l, len(b)-8)
		}
		body := b[8 : 8+l]
		var countOff int
		switch format {
		case 1: // flow sample: seq, source, rate, pool, drops, in, out
			countOff = 28
		case 3: // expanded flow sample: seq, type, index, rate, pool, drops, in fmt, in, out fmt, out
			countOff = 40
		case 2: // counter sample: seq, source
			countOff = 8
		case 4: // expanded counter sample: seq, type, index
			countOff = 12
		case 5: // drop sample: seq, type, index, drops, in, out, reason
			countOff = 28
		default:
			countOff = -1 // unknown formats are skipped by length
		}
		if countOff >= 0 {
			if len(body) < countOff+4 {
				return malformed("sflow: sample %d (format %d) truncated", i+1, format)
			}
			n := int(binary.BigEndian.Uint32(body[countOff : countOff+4]))
			if n*8 > len(body)-countOff-4 {
				return malformed("sflow: sample %d claims %d records in %d bytes", i+1, n, len(body)-countOff-4)
			}
		}
		b = b[8+l:]
	}
	return nil
}
