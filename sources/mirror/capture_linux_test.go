//go:build linux && cgo

package mirror

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/floodgate-ddos/floodgate/integration/prereq"
	"github.com/floodgate-ddos/floodgate/sources"
	"github.com/floodgate-ddos/floodgate/sources/internal/sourcetest"
)

// EnvPerf opts in to the capture rate measurement (TestCaptureRate), too
// long and too heavy for every run.
const EnvPerf = "FLOODGATE_SOURCES_PERF"

// collector keeps copies of the records it is given.
type collector struct {
	mu      sync.Mutex
	records []sources.Record
	n       int
}

func (c *collector) Ingest(batch []sources.Record) {
	c.mu.Lock()
	c.records = append(c.records, batch...)
	c.n += len(batch)
	c.mu.Unlock()
}

func (c *collector) all() []sources.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sources.Record(nil), c.records...)
}

// counter counts records without keeping them.
type counter struct {
	mu sync.Mutex
	n  uint64
}

func (c *counter) Ingest(batch []sources.Record) {
	c.mu.Lock()
	c.n += uint64(len(batch))
	c.mu.Unlock()
}

// ip runs an ip(8) command and fails the test on error.
func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// vethPair makes two network namespaces of this test's own, tx and rx,
// joined by a veth pair tx0 -- rx0, both up, with IPv6 off so that the
// kernel sends nothing by itself. Cleanup deletes them (and the veth).
func vethPair(t testing.TB) (tx, rx string) {
	t.Helper()
	tx, rx = fmt.Sprintf("fgm%dtx", os.Getpid()), fmt.Sprintf("fgm%drx", os.Getpid())
	for _, ns := range []string{tx, rx} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		for _, k := range []string{"all", "default"} {
			ip(t, "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+k+".disable_ipv6=1")
		}
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}
	ip(t, "link", "add", "tx0", "netns", tx, "type", "veth", "peer", "name", "rx0", "netns", rx)
	ip(t, "-n", tx, "link", "set", "tx0", "up")
	ip(t, "-n", rx, "link", "set", "rx0", "up")
	return tx, rx
}

// inNetns runs fn on a thread that has entered network namespace ns (so
// the sockets fn opens live there), then returns the thread to where it
// was.
func inNetns(t testing.TB, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns, err)
	}
	fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: Go discards it when the goroutine ends.
		t.Fatalf("setns back: %v", err)
	}
	runtime.UnlockOSThread()
}

// startIn starts c in namespace ns.
func startIn(t testing.TB, ns string, c *Capture) {
	t.Helper()
	var err error
	inNetns(t, ns, func() { err = c.Start(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
}

// tcpreplay replays the traffic capture from tx0, bounded by its own end
// (and a timeout), and returns its report.
func tcpreplay(t testing.TB, tx string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := append([]string{"netns", "exec", tx, "tcpreplay", "-i", "tx0"}, args...)
	argv = append(argv, sourcetest.TrafficPcap())
	out, err := exec.CommandContext(ctx, "ip", argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpreplay: %v\n%s", err, out)
	}
	return string(out)
}

func waitPackets(t testing.TB, c *Capture, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got uint64
		for _, s := range c.Stats() {
			got += s.Packets
		}
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("captured %d packets, want %d: %+v", got, want, c.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCaptureVethMatchesCapture replays the capture onto a veth pair and
// checks that the records captured from the other end, spread over two
// workers by a fanout group, add up per host to the capture's packets.
func TestCaptureVethMatchesCapture(t *testing.T) {
	prereq.RequireRoot(t, "ip", "tcpreplay", "sysctl")
	tx, rx := vethPair(t)
	sink := &collector{}
	cfg := DefaultConfig()
	cfg.Interfaces, cfg.Workers = []string{"rx0"}, 2
	c, err := New(cfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, rx, c)
	tcpreplay(t, tx, "--topspeed")
	pkts := sourcetest.ReadTraffic(t)
	waitPackets(t, c, uint64(len(pkts)+2)) // and two ARP frames
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := sink.all()
	sourcetest.Compare(t, sourcetest.TotalsOfRecords(recs), sourcetest.TotalsOfPackets(pkts, sourcetest.Packets))
	st := c.Stats()[0]
	if st.Skipped != 2 || st.Records != uint64(len(pkts)) || st.KernelDrops != 0 || st.KernelPackets != st.Packets {
		t.Errorf("stats %+v, want 2 skipped (ARP), %d records, no drops", st, len(pkts))
	}
	for _, r := range recs {
		if r.Sampling != 1 || r.Packets != 1 || r.Start != r.End || r.Start == 0 {
			t.Fatalf("record %+v", r)
		}
	}
}

func TestCaptureStartStopStart(t *testing.T) {
	prereq.RequireRoot(t, "ip", "sysctl")
	_, rx := vethPair(t)
	goroutines := runtime.NumGoroutine()
	cfg := DefaultConfig()
	cfg.Interfaces, cfg.Workers = []string{"rx0", "lo"}, 2
	c, err := New(cfg, nullSink{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A membership raises the device's promiscuity count (shown by
	// ip -d), not the IFF_PROMISC flag an administrator sets.
	promisc := func() bool {
		out, err := exec.Command("ip", "-d", "-n", rx, "link", "show", "rx0").CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		return !strings.Contains(string(out), "promiscuity 0 ")
	}
	for round := range 2 {
		startIn(t, rx, c)
		if !promisc() {
			t.Errorf("round %d: rx0 not promiscuous while capturing", round)
		}
		if err := c.Start(context.Background()); err == nil {
			t.Fatalf("round %d: second Start succeeded", round)
		}
		if err := c.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if promisc() {
			t.Errorf("round %d: rx0 still promiscuous after Stop", round)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, %d before", runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// An interface that does not exist fails Start, leaving nothing open.
	cfg.Interfaces = []string{"rx0", "nosuch0"}
	bad, err := New(cfg, nullSink{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	inNetns(t, rx, func() { err = bad.Start(context.Background()) })
	if err == nil {
		bad.Stop(context.Background())
		t.Fatal("Start succeeded on a missing interface")
	}
	if promisc() {
		t.Error("rx0 left promiscuous by a failed Start")
	}
}

var ratedRe = regexp.MustCompile(`Rated: [0-9.]+ Bps, [0-9.]+ Mbps, ([0-9.]+) pps`)
var actualRe = regexp.MustCompile(`Actual: ([0-9]+) packets`)

// TestCaptureRate measures what the capture keeps up with: tcpreplay
// --topspeed on a veth pair, 1,000 loops of the capture (384,000 packets),
// once per worker count. Opt in with FLOODGATE_SOURCES_PERF=1 (root,
// tcpreplay); it reports the rate and any loss, and fails on loss.
func TestCaptureRate(t *testing.T) {
	if os.Getenv(EnvPerf) != "1" {
		t.Skip("set " + EnvPerf + "=1 to measure the capture rate")
	}
	prereq.RequireRoot(t, "ip", "tcpreplay", "sysctl")
	tx, rx := vethPair(t)
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			sink := &counter{}
			cfg := DefaultConfig()
			cfg.Interfaces, cfg.Workers = []string{"rx0"}, workers
			c, err := New(cfg, sink, nil)
			if err != nil {
				t.Fatal(err)
			}
			startIn(t, rx, c)
			out := tcpreplay(t, tx, "--topspeed", "--loop=1000")
			m, a := ratedRe.FindStringSubmatch(out), actualRe.FindStringSubmatch(out)
			if m == nil || a == nil {
				t.Fatalf("tcpreplay report not understood:\n%s", out)
			}
			sent, _ := strconv.ParseUint(a[1], 10, 64)
			pps, _ := strconv.ParseFloat(m[1], 64)
			deadline := time.Now().Add(10 * time.Second)
			for c.Stats()[0].Packets < sent && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if err := c.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := c.Stats()[0]
			t.Logf("workers=%d: tcpreplay sent %d packets at %.0f pps; captured %d (%d records), kernel drops %d",
				workers, sent, pps, st.Packets, st.Records, st.KernelDrops)
			if st.Packets != sent || st.KernelDrops != 0 {
				t.Errorf("lost %d of %d packets (kernel drops %d)", sent-st.Packets, sent, st.KernelDrops)
			}
		})
	}
}

// TestCaptureInterfaceLost deletes the captured interface: the capture
// reports itself failed (a socket bound to a deleted interface never
// recovers), cannot start while the interface is missing, and captures
// again once it is back and the capture is restarted, as the supervisor
// does.
func TestCaptureInterfaceLost(t *testing.T) {
	prereq.RequireRoot(t, "ip", "sysctl", "tcpreplay")
	tx, rx := vethPair(t)
	cfg := DefaultConfig()
	cfg.Interfaces = []string{"rx0"}
	c, err := New(cfg, nullSink{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Failed() != nil {
		t.Fatal("Failed is not nil before Start")
	}
	startIn(t, rx, c)
	failed := c.Failed()
	ip(t, "-n", tx, "link", "del", "tx0") // deletes rx0 too
	select {
	case err := <-failed:
		if !strings.Contains(err.Error(), "rx0") {
			t.Errorf("failure does not name the interface: %v", err)
		}
		t.Logf("failure: %v", err)
	case <-time.After(failAfter + 20*time.Second):
		t.Fatalf("no failure reported %s after the interface was deleted", failAfter+20*time.Second)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	inNetns(t, rx, func() { err = c.Start(context.Background()) })
	if err == nil {
		t.Fatal("Start succeeded without the interface")
	}
	ip(t, "link", "add", "tx0", "netns", tx, "type", "veth", "peer", "name", "rx0", "netns", rx)
	ip(t, "-n", tx, "link", "set", "tx0", "up")
	ip(t, "-n", rx, "link", "set", "rx0", "up")
	startIn(t, rx, c)
	tcpreplay(t, tx, "--pps=20000")
	waitPackets(t, c, 300)
	select {
	case err := <-c.Failed():
		t.Fatalf("the restarted capture failed: %v", err)
	default:
	}
}
