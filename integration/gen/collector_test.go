package gen

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/flow"
)

// collector receives datagrams on 127.0.0.1 and decodes them with the
// project's own decoder, as the daemon does.
type collector struct {
	conn *net.UDPConn
	done chan struct{}

	mu        sync.Mutex
	dec       *flow.Decoder
	records   []sources.Record
	datagrams uint64
	largest   int // octets of the largest datagram
	errs      []error
}

// newCollector listens on 127.0.0.1:0 for proto; the test's cleanup stops
// it.
func newCollector(t testing.TB, proto flow.Protocol) *collector {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	// Unpaced bursts need a large buffer: as root, past rmem_max.
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20) != nil {
				_ = conn.SetReadBuffer(8 << 20)
			}
		})
	}
	c := &collector{conn: conn, done: make(chan struct{}), dec: flow.NewDecoder(flow.DecoderConfig{Protocol: proto})}
	go c.read()
	t.Cleanup(func() {
		conn.Close()
		<-c.done
	})
	return c
}

// addr returns the address to send to.
func (c *collector) addr() netip.AddrPort { return c.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (c *collector) read() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.datagrams++
		c.largest = max(c.largest, n)
		c.records, err = c.dec.Decode(from.Addr(), time.Now(), buf[:n], c.records)
		if err != nil && len(c.errs) < 10 {
			c.errs = append(c.errs, err)
		}
		c.mu.Unlock()
	}
}

// wait waits until n datagrams arrived (at most 5 s), fails the test on a
// decoding error or a missing datagram, and returns the records.
func (c *collector) wait(t testing.TB, n uint64) []sources.Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got, errs, largest := c.datagrams, c.errs, c.largest
		c.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			if got != n {
				t.Errorf("collector got %d datagrams, %d sent", got, n)
			}
			if largest > flowgen.DatagramSize {
				t.Errorf("a datagram of %d octets, above %d", largest, flowgen.DatagramSize)
			}
			if len(errs) > 0 {
				t.Errorf("decode errors: %v", errors.Join(errs...))
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sources.Record(nil), c.records...)
}

// emitAll sends every interval of m through e at once (no pacing) and
// returns the counts.
func emitAll(t testing.TB, m *Model, e Emitter) Counts {
	t.Helper()
	if err := e.Open(m.Scenario()); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var total Counts
	var iv Interval
	for k := range m.Intervals() {
		m.Fill(k, &iv)
		c, err := e.Emit(context.Background(), &iv)
		if err != nil {
			t.Fatal(err)
		}
		total.Add(c)
	}
	if total.Late != 0 || total.Capped != 0 {
		t.Errorf("unpaced emit: %d late, %d capped", total.Late, total.Capped)
	}
	return total
}

// recordShape is the shape of a decoded record, for comparison with the
// model's flows.
func recordShape(r *sources.Record, want []flowShape) flowShape {
	f := Flow{Proto: r.Proto, TCPFlags: r.TCPFlags, SrcPort: r.SrcPort, DstPort: r.DstPort, Size: r.Length}
	if r.Fragment {
		f.MoreFragments = true // first or not: told apart by the ports below
		if r.SrcPort == 0 && r.DstPort == 0 {
			f.FragOffset = 1
			f.MoreFragments = false
		}
	}
	return shapeOf(&f, want)
}

// traffic sums decoded records per destination, attack and background.
type traffic struct {
	attack, background uint64                // packets
	perHost            map[netip.Addr]uint64 // background packets per host
	shapes             map[flowShape]uint64  // attack packets per shape
	sources            map[netip.Addr]bool   // attack sources
}

// sumRecords sums recs against the targets and hosts of m; a record to
// neither fails the test.
func sumRecords(t testing.TB, m *Model, recs []sources.Record, want []flowShape) traffic {
	t.Helper()
	targets := map[netip.Addr]bool{}
	for _, a := range m.Targets() {
		targets[a] = true
	}
	tr := traffic{perHost: map[netip.Addr]uint64{}, shapes: map[flowShape]uint64{}, sources: map[netip.Addr]bool{}}
	for _, h := range m.BackgroundAddrs() {
		tr.perHost[h] = 0
	}
	for i := range recs {
		r := &recs[i]
		switch _, bg := tr.perHost[r.Dst]; {
		case targets[r.Dst]:
			tr.attack += r.Packets
			tr.shapes[recordShape(r, want)] += r.Packets
			tr.sources[r.Src] = true
		case bg:
			tr.background += r.Packets
			tr.perHost[r.Dst] += r.Packets
		default:
			t.Fatalf("record to %v, neither a target nor a background host", r.Dst)
		}
	}
	return tr
}

// checkShapes fails the test if a shape of got is not in want, or one of
// want has no packets.
func checkShapes(t testing.TB, got map[flowShape]uint64, want []flowShape) {
	t.Helper()
	ok := map[flowShape]bool{}
	for _, w := range want {
		ok[w] = true
		if got[w] == 0 {
			t.Errorf("no packets of shape %+v", w)
		}
	}
	for sh, n := range got {
		if !ok[sh] {
			t.Errorf("%d packets of shape %+v, not one of %+v", n, sh, want)
		}
	}
}

// withoutFragments returns shapes as NetFlow carries them: no fragment
// flags.
func withoutFragments(shapes []flowShape) []flowShape {
	out := make([]flowShape, len(shapes))
	for i, s := range shapes {
		s.Fragment, s.First = false, false
		out[i] = s
	}
	return out
}

// within reports whether got is within frac of want.
func within(got, want uint64, frac float64) bool {
	d := float64(got) - float64(want)
	return d <= frac*float64(want) && -d <= frac*float64(want)
}
