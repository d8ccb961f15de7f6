//go:build linux

package gen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/floodgate-ddos/floodgate/integration/lab"
	"github.com/floodgate-ddos/floodgate/sources/header"
)

// ipCmd runs an ip(8) command and fails the test on error.
func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// vethNetns makes a network namespace of this test's own holding a veth
// pair tx -- rx, both up, with IPv6 off so that the kernel sends nothing by
// itself. Cleanup deletes the namespace and with it the pair. Nothing is
// created in the host's namespace.
func vethNetns(t testing.TB) (ns, tx, rx string) {
	t.Helper()
	lab.RequireRoot(t, "ip")
	suffix := fmt.Sprintf("%d%04x", os.Getpid()%100000, rand.N(1<<16))
	ns, tx, rx = "fggen"+suffix, "fgt"+suffix, "fgr"+suffix
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	for _, k := range []string{"all", "default"} {
		ipCmd(t, "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+k+".disable_ipv6=1")
	}
	ipCmd(t, "-n", ns, "link", "add", tx, "type", "veth", "peer", "name", rx)
	for _, l := range []string{"lo", tx, rx} {
		ipCmd(t, "-n", ns, "link", "set", l, "up")
	}
	return ns, tx, rx
}

// frameKey is what a test compares of a frame.
type frameKey struct {
	src, dst         netip.Addr
	srcPort, dstPort uint16
	proto, flags     uint8
	fragment         bool
	length           uint16
}

// keyOf returns the key a frame of f parses to, ICMP type and code in
// dstPort.
func keyOf(f *Flow) frameKey {
	return frameKey{f.Src, f.Dst, f.SrcPort, f.DstPort, f.Proto, f.TCPFlags, f.Fragment(), f.Size}
}

// capture reads the frames arriving on ifname in ns with an AF_PACKET
// socket, parses them with sources/header and counts them by key.
type capture struct {
	fd   int
	done chan struct{}

	mu     sync.Mutex
	frames map[frameKey]uint64
	total  uint64
	bad    []string
}

// startCapture opens the socket in ns and starts reading; the test's
// cleanup stops it.
func startCapture(t testing.TB, ns, ifname string) *capture {
	t.Helper()
	c := &capture{done: make(chan struct{}), frames: map[frameKey]uint64{}}
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		c.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", ifname, ns, err)
	}
	stop := make(chan struct{})
	go c.read(stop)
	t.Cleanup(func() {
		close(stop)
		<-c.done
		unix.Close(c.fd)
	})
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *capture) read(stop chan struct{}) {
	defer close(c.done)
	buf := make([]byte, 65536)
	var p header.Packet
	macs := DefaultMACs()
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue // timeout: look at stop again
		}
		fr := buf[:n]
		if n < 14 || [6]byte(fr[6:12]) != macs.Src {
			continue // not ours
		}
		c.mu.Lock()
		c.total++
		if err := header.Parse(fr, header.LinkEthernet, &p); err != nil {
			c.bad = append(c.bad, fmt.Sprintf("%v: % x", err, fr[:min(n, 64)]))
		} else {
			k := frameKey{p.Src, p.Dst, p.SrcPort, p.DstPort, p.Proto, p.TCPFlags, p.Fragment, p.IPLength}
			if p.Proto == protoICMP || p.Proto == protoICMPv6 {
				k.dstPort = uint16(p.ICMPType)<<8 | uint16(p.ICMPCode)
			}
			c.frames[k]++
		}
		c.mu.Unlock()
	}
}

// wait waits until n frames arrived, at most 5 s, and returns the counts
// by key.
func (c *capture) wait(t testing.TB, n uint64) map[frameKey]uint64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		total := c.total
		c.mu.Unlock()
		if total >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // a frame too many would show
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total != n {
		t.Errorf("captured %d frames, %d sent", c.total, n)
	}
	if len(c.bad) > 0 {
		t.Errorf("%d frames do not parse, first: %s", len(c.bad), c.bad[0])
	}
	out := c.frames
	c.frames, c.total, c.bad = map[frameKey]uint64{}, 0, nil
	return out
}

// TestRawEmitter writes every attack of both families, with background,
// onto a veth and checks, frame by frame, what arrives on its peer.
func TestRawEmitter(t *testing.T) {
	ns, tx, rx := vethNetns(t)
	c := startCapture(t, ns, rx)
	e := &RawEmitter{Interface: tx, Netns: ns}
	for _, a := range Attacks() {
		for _, fam := range families {
			t.Run(fmt.Sprintf("%s/%s", a, fam.name), func(t *testing.T) {
				s := testScenario(a, fam.v6, 3000, 0, 100*time.Millisecond)
				m, err := NewModel(s)
				if err != nil {
					t.Fatal(err)
				}
				want := map[frameKey]uint64{}
				var iv Interval
				m.Fill(0, &iv)
				for i := range iv.Flows {
					want[keyOf(&iv.Flows[i])] += iv.Flows[i].Packets
				}
				counts := emitAll(t, m, e)
				if counts.Datagrams != 500 || counts.AttackPackets != 300 {
					t.Errorf("counts %+v, want 500 frames, 300 of the attack", counts)
				}
				got := c.wait(t, counts.Datagrams)
				for k, n := range want {
					if got[k] != n {
						t.Errorf("%+v: %d frames, want %d", k, got[k], n)
					}
				}
				for k, n := range got {
					if _, ok := want[k]; !ok {
						t.Errorf("%d unexpected frames %+v", n, k)
					}
				}
			})
		}
	}
}

// TestRawEmitterRun plays a SYN flood onto a veth in real time and checks
// that every frame arrives and the start line is right.
func TestRawEmitterRun(t *testing.T) {
	ns, tx, rx := vethNetns(t)
	c := startCapture(t, ns, rx)
	s := testScenario(AttackSYN, false, 20_000, 300*time.Millisecond, time.Second)
	var out strings.Builder
	res, err := Run(context.Background(), s, &out, &RawEmitter{Interface: tx, Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	got := c.wait(t, res.Total.Datagrams)
	var attack uint64
	for k, n := range got {
		if k.dst == s.Victim {
			attack += n
		}
	}
	if attack != res.Total.AttackPackets || !within(attack, 14_000, 0.02) {
		t.Errorf("%d attack frames captured, want 14000 (2%% late at most); counts %+v", attack, res.Total)
	}
	_, at, err := ParseStartLine(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if d := at.Sub(res.Started); d < s.Start || d > s.Start+DefaultInterval {
		t.Errorf("attack started %v after the start, want %v", d, s.Start)
	}
}

// TestRawEmitterCapped checks MaxPackets.
func TestRawEmitterCapped(t *testing.T) {
	ns, tx, rx := vethNetns(t)
	c := startCapture(t, ns, rx)
	m, _ := NewModel(testScenario(AttackICMP, false, 3000, 0, 200*time.Millisecond))
	e := &RawEmitter{Interface: tx, Netns: ns, MaxPackets: 700}
	if err := e.Open(m.Scenario()); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var total Counts
	var iv Interval
	for k := range m.Intervals() {
		m.Fill(k, &iv)
		cn, err := e.Emit(context.Background(), &iv)
		if err != nil {
			t.Fatal(err)
		}
		total.Add(cn)
	}
	if total.Datagrams != 700 || total.Capped != 300 {
		t.Errorf("counts %+v, want 700 sent and 300 capped", total)
	}
	c.wait(t, 700)
}

// TestRawEmitterRefuses checks that the raw emitter writes only onto a
// veth outside the host's namespace.
func TestRawEmitterRefuses(t *testing.T) {
	s := testScenario(AttackNTP, false, 1000, 0, time.Second).withDefaults()
	// In the host's namespace, whatever the interface: refused before a
	// socket is opened (no root needed).
	for _, ifname := range []string{"lo", "eth0"} {
		e := &RawEmitter{Interface: ifname}
		if err := e.Open(s); !errors.Is(err, ErrUnsafeInterface) {
			e.Close()
			t.Errorf("%s in the host namespace: %v, want ErrUnsafeInterface", ifname, err)
		}
	}
	if err := (&RawEmitter{}).Open(s); !errors.Is(err, ErrInvalidEmitter) {
		t.Errorf("no interface: %v", err)
	}
	if err := (&RawEmitter{Interface: "x", Netns: "../x"}).Open(s); !errors.Is(err, ErrInvalidEmitter) {
		t.Errorf("netns path: %v", err)
	}

	ns, _, _ := vethNetns(t)
	e := &RawEmitter{Interface: "lo", Netns: ns}
	if err := e.Open(s); !errors.Is(err, ErrUnsafeInterface) {
		e.Close()
		t.Errorf("loopback in a namespace: %v, want ErrUnsafeInterface", err)
	}
	if err := (&RawEmitter{Interface: "nosuch0", Netns: ns}).Open(s); err == nil {
		t.Error("missing interface accepted")
	}
}

// BenchmarkRawEmit measures the highest rate of the raw emitter onto a
// veth (frames counted by the peer's capture are not checked here): one op
// is one 100 ms interval, sent unpaced.
func BenchmarkRawEmit(b *testing.B) {
	ns, tx, _ := vethNetns(b)
	for _, s := range benchScenarios() {
		b.Run(string(s.Attack), func(b *testing.B) {
			benchEmit(b, s, &RawEmitter{Interface: tx, Netns: ns, MaxPackets: 1 << 40})
		})
	}
}
