package lab

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/afpacket"
	"github.com/google/gopacket/layers"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/floodgate-ddos/floodgate/integration/netns"
)

// WireMessage is one BGP message a node sent on a session, as captured on
// the wire.
type WireMessage struct {
	// Conn names the TCP connection: "10.0.1.1:40321>10.0.1.2:179".
	Conn string
	// To is the receiving peer's address.
	To netip.Addr
	// At is when the segment that ended the message was captured.
	At time.Time
	// Text is the message in short: "OPEN restart=20 R N F=ipv4-unicast",
	// "UPDATE ipv4-flowspec +1", "EOR ipv4-flowspec", "NOTIFICATION 6/9",
	// "KEEPALIVE".
	Text string
}

// CaptureBGP captures, on every interface of node's namespace, the BGP
// messages that node sends to port 179 (the sessions it opens), until
// stop is called; stop returns them in capture order per connection, the
// connections in the order they opened.
func (l *Lab) CaptureBGP(node string) (stop func() ([]WireMessage, error), err error) {
	ns := l.Netns(node)
	if ns == "" {
		return nil, fmt.Errorf("capture bgp: no node %q", node)
	}
	var tp *afpacket.TPacket
	err = netns.Do(ns, func() error {
		var err error
		tp, err = afpacket.NewTPacket(afpacket.TPacketVersion3, afpacket.OptPollTimeout(50*time.Millisecond))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("capture bgp in %s: %w", node, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu   sync.Mutex
		segs []wireSegment
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			data, ci, err := tp.ReadPacketData()
			if err != nil {
				continue
			}
			if s, ok := decodeSegment(data, ci.Timestamp); ok {
				mu.Lock()
				segs = append(segs, s)
				mu.Unlock()
			}
		}
	}()
	return func() ([]WireMessage, error) {
		cancel()
		<-done
		tp.Close()
		mu.Lock()
		defer mu.Unlock()
		return reassembleBGP(segs)
	}, nil
}

// wireSegment is one captured TCP segment to port 179.
type wireSegment struct {
	src, dst netip.AddrPort
	seq      uint32
	syn      bool
	payload  []byte
	at       time.Time
}

func decodeSegment(data []byte, at time.Time) (wireSegment, bool) {
	var (
		eth  layers.Ethernet
		ip4  layers.IPv4
		ip6  layers.IPv6
		tcp  layers.TCP
		pay  gopacket.Payload
		seen []gopacket.LayerType
	)
	p := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &tcp, &pay)
	p.IgnoreUnsupported = true
	_ = p.DecodeLayers(data, &seen)
	if !slices.Contains(seen, layers.LayerTypeTCP) || tcp.DstPort != 179 {
		return wireSegment{}, false
	}
	var src, dst netip.Addr
	if slices.Contains(seen, layers.LayerTypeIPv4) {
		src, _ = netip.AddrFromSlice(ip4.SrcIP)
		dst, _ = netip.AddrFromSlice(ip4.DstIP)
	} else {
		src, _ = netip.AddrFromSlice(ip6.SrcIP)
		dst, _ = netip.AddrFromSlice(ip6.DstIP)
	}
	return wireSegment{
		src: netip.AddrPortFrom(src.Unmap(), uint16(tcp.SrcPort)), dst: netip.AddrPortFrom(dst.Unmap(), uint16(tcp.DstPort)),
		seq: tcp.Seq, syn: tcp.SYN, payload: append([]byte(nil), tcp.Payload...), at: at,
	}, true
}

// reassembleBGP orders each connection's segments by sequence number,
// drops retransmitted bytes and splits the stream into BGP messages.
func reassembleBGP(segs []wireSegment) ([]WireMessage, error) {
	type conn struct {
		key   string
		to    netip.Addr
		first time.Time
		isn   uint32
		segs  []wireSegment
	}
	conns := map[string]*conn{}
	var order []*conn
	for _, s := range segs {
		k := s.src.String() + ">" + s.dst.String()
		c := conns[k]
		if c == nil || s.syn && c.isn != s.seq {
			c = &conn{key: k, to: s.dst.Addr(), first: s.at, isn: s.seq}
			conns[k] = c
			order = append(order, c)
		}
		if len(s.payload) > 0 {
			c.segs = append(c.segs, s)
		}
	}
	var out []WireMessage
	var errs []error
	for _, c := range order {
		slices.SortStableFunc(c.segs, func(a, b wireSegment) int { return cmp.Compare(a.seq-c.isn, b.seq-c.isn) })
		var stream []byte
		var ends []time.Time // ends[i]: when byte i arrived
		next := c.isn + 1
		for _, s := range c.segs {
			off := int32(next - s.seq)
			if off < 0 || int(off) >= len(s.payload) {
				if off < 0 {
					errs = append(errs, fmt.Errorf("%s: %d bytes missing from the capture", c.key, -off))
				}
				continue
			}
			for range s.payload[off:] {
				ends = append(ends, s.at)
			}
			stream = append(stream, s.payload[off:]...)
			next = s.seq + uint32(len(s.payload))
		}
		for len(stream) >= bgp.BGP_HEADER_LENGTH {
			n := int(binary.BigEndian.Uint16(stream[16:18]))
			if n < bgp.BGP_HEADER_LENGTH || n > len(stream) {
				break
			}
			m, err := bgp.ParseBGPMessage(stream[:n])
			text := ""
			if err != nil {
				text = "UNPARSED " + err.Error()
			} else {
				text = describeBGP(m)
			}
			out = append(out, WireMessage{Conn: c.key, To: c.to, At: ends[n-1], Text: text})
			stream, ends = stream[n:], ends[n:]
		}
	}
	return out, errors.Join(errs...)
}

// describeBGP is WireMessage.Text.
func describeBGP(m *bgp.BGPMessage) string {
	switch b := m.Body.(type) {
	case *bgp.BGPOpen:
		parts := []string{"OPEN"}
		for _, op := range b.OptParams {
			c, ok := op.(*bgp.OptionParameterCapability)
			if !ok {
				continue
			}
			for _, cap := range c.Capability {
				gr, ok := cap.(*bgp.CapGracefulRestart)
				if !ok {
					continue
				}
				parts = append(parts, fmt.Sprintf("restart=%d", gr.Time))
				if gr.Flags&0x08 != 0 {
					parts = append(parts, "R")
				}
				if gr.Flags&0x04 != 0 {
					parts = append(parts, "N")
				}
				var f []string
				for _, t := range gr.Tuples {
					if t.Flags&0x80 != 0 {
						f = append(f, bgp.AfiSafiToRouteFamily(t.AFI, t.SAFI).String())
					}
				}
				if len(f) > 0 {
					parts = append(parts, "F="+strings.Join(f, ","))
				}
			}
		}
		return strings.Join(parts, " ")
	case *bgp.BGPUpdate:
		if eor, fam := b.IsEndOfRib(); eor {
			return "EOR " + fam.String()
		}
		var parts []string
		if len(b.NLRI) > 0 {
			parts = append(parts, fmt.Sprintf("ipv4-unicast +%d", len(b.NLRI)))
		}
		if len(b.WithdrawnRoutes) > 0 {
			parts = append(parts, fmt.Sprintf("ipv4-unicast -%d", len(b.WithdrawnRoutes)))
		}
		for _, a := range b.PathAttributes {
			switch a := a.(type) {
			case *bgp.PathAttributeMpReachNLRI:
				parts = append(parts, fmt.Sprintf("%s +%d", bgp.AfiSafiToRouteFamily(a.AFI, a.SAFI), len(a.Value)))
			case *bgp.PathAttributeMpUnreachNLRI:
				parts = append(parts, fmt.Sprintf("%s -%d", bgp.AfiSafiToRouteFamily(a.AFI, a.SAFI), len(a.Value)))
			}
		}
		return "UPDATE " + strings.Join(parts, " ")
	case *bgp.BGPNotification:
		return fmt.Sprintf("NOTIFICATION %d/%d", b.ErrorCode, b.ErrorSubcode)
	case *bgp.BGPKeepAlive:
		return "KEEPALIVE"
	}
	return fmt.Sprintf("TYPE %d", m.Header.Type)
}
