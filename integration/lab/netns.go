package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/integration/netns"
)

// inNetns runs fn in network namespace ns (see netns.Do).
func inNetns(ns string, fn func() error) error { return netns.Do(ns, fn) }

// ListenUDP opens a UDP socket bound to addr in node's namespace; the
// test's cleanup closes it.
func (l *Lab) ListenUDP(t testing.TB, node string, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := l.listenUDP(node, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (l *Lab) listenUDP(node string, addr netip.AddrPort) (*net.UDPConn, error) {
	ns := l.Netns(node)
	if ns == "" {
		return nil, fmt.Errorf("lab has no node %q", node)
	}
	var c *net.UDPConn
	err := inNetns(ns, func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen udp %s in %s: %w", addr, node, err)
	}
	return c, nil
}

// Probe describes a burst of UDP datagrams sent by ProbeUDP.
type Probe struct {
	// From and To name the sending and receiving nodes.
	From, To string
	// Src and Dst are the source and destination addresses and ports;
	// Src's address must be one of From's, Dst's one of To's.
	Src, Dst netip.AddrPort
	// Count is the number of datagrams; default 20.
	Count int
	// Size is the UDP payload size in bytes; default 64 (at least 8).
	Size int
	// Wait is how long to wait for datagrams after the last one was sent;
	// default 300 ms.
	Wait time.Duration
}

// ProbeUDP sends p.Count datagrams from p.Src in node p.From to p.Dst in
// node p.To and returns how many arrived. Every datagram carries a tag
// unique to the call, so stray traffic is not counted.
func (l *Lab) ProbeUDP(ctx context.Context, p Probe) (int, error) {
	if p.Count <= 0 {
		p.Count = 20
	}
	if p.Size < 8 {
		p.Size = 64
	}
	if p.Wait <= 0 {
		p.Wait = 300 * time.Millisecond
	}
	rx, err := l.listenUDP(p.To, p.Dst)
	if err != nil {
		return 0, err
	}
	defer rx.Close()
	tx, err := l.listenUDP(p.From, p.Src)
	if err != nil {
		return 0, err
	}
	defer tx.Close()

	tag := uint64(time.Now().UnixNano())
	payload := make([]byte, p.Size)
	for i := range 8 {
		payload[i] = byte(tag >> (8 * i))
	}
	for i := 0; i < p.Count; i++ {
		if _, err := tx.WriteToUDPAddrPort(payload, p.Dst); err != nil {
			return 0, fmt.Errorf("send %s -> %s from %s: %w", p.Src, p.Dst, p.From, err)
		}
	}
	got := 0
	buf := make([]byte, p.Size+64)
	deadline := time.Now().Add(p.Wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := rx.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	for got < p.Count {
		n, _, err := rx.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return got, fmt.Errorf("receive on %s in %s: %w", p.Dst, p.To, err)
		}
		if n == p.Size && matchesTag(buf, tag) {
			got++
		}
	}
	return got, ctx.Err()
}

func matchesTag(b []byte, tag uint64) bool {
	for i := range 8 {
		if b[i] != byte(tag>>(8*i)) {
			return false
		}
	}
	return true
}
