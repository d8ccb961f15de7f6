package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/integration/lab"
)

// superviseConfig is a daemon with one NetFlow listener, no neighbour and
// the API on a unix socket.
func superviseConfig(t *testing.T, port int) (cfg, socket string) {
	dir := t.TempDir()
	socket = filepath.Join(dir, "api.sock")
	return fmt.Sprintf(`
daemon { shutdown_timeout = "20s" }
sources {
  netflow "routers" { listen = "127.0.0.1:%d" }
}
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
}
api { socket = %q }
mitigation { state_file = %q }
hostgroup "customers" { prefixes = ["203.0.113.0/24"] }
`, port, socket, filepath.Join(dir, "state.db")), socket
}

// sendV5 sends NetFlow v5 datagrams of 30 records to 127.0.0.1:port until
// stop is closed or n datagrams are sent, and returns how many it sent.
func sendV5(t *testing.T, port, n int, stop <-chan struct{}) int {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	enc := &flowgen.NetFlowV5{Boot: time.Now().Add(-time.Hour)}
	flows := make([]flowgen.Flow, flowgen.NetFlowV5MaxRecords)
	for i := range flows {
		flows[i] = flowgen.Flow{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Dst: netip.MustParseAddr("203.0.113.10"),
			SrcPort: 40000 + uint16(i), DstPort: 443, Proto: 6, TCPFlags: 0x18, Packets: 10, Bytes: 10 * 800}
	}
	var buf []byte
	for i := range n {
		select {
		case <-stop:
			return i
		default:
		}
		buf, err = enc.AppendData(buf[:0], time.Now(), flows)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(buf); err != nil {
			return i // the listener is being killed or stopped
		}
		if i%64 == 63 {
			time.Sleep(time.Millisecond) // leave the 2 cores to the daemon too
		}
	}
	return n
}

func componentStatus(t *testing.T, bin, socket, name string) (controller.Status, int) {
	t.Helper()
	out, err := exec.Command(bin, "status", "--socket", socket, "--json").Output()
	if err != nil {
		t.Fatalf("floodgate status: %v", err)
	}
	var st controller.Status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	for i, c := range st.Components {
		if c.Name == name {
			return st, i
		}
	}
	t.Fatalf("no component %q in status: %s", name, out)
	return st, -1
}

// TestSourceKilledIsRestarted kills the daemon's NetFlow socket from
// outside (ss -K: the kernel aborts the socket, its reader gets
// ECONNABORTED, as when a socket fails for real) and checks that the
// supervisor logs the failure with the component's name, counts it,
// restarts the listener with backoff, and that the restarted listener
// receives again.
func TestSourceKilledIsRestarted(t *testing.T) {
	lab.RequireRoot(t, "ss", "go")
	bin := lab.BuildFloodgate(t)
	port := lab.FreeUDPPort(t, "127.0.0.1")
	cfg, socket := superviseConfig(t, port)
	f := lab.StartFloodgate(t, bin, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := f.WaitLog(ctx, "floodgate running"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ss", "-K", "-u", "-a", "src", fmt.Sprintf("127.0.0.1:%d", port)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Skipf("this kernel cannot kill a UDP socket (ss -K needs CONFIG_INET_DIAG_DESTROY): %v\n%s", err, out)
	}
	for _, line := range []string{
		"component failed: component=source/routers",
		"restarting component: component=source/routers",
		"component restarted: component=source/routers",
	} {
		if err := f.WaitLog(ctx, line); err != nil {
			t.Fatal(err)
		}
	}
	st, i := componentStatus(t, bin, socket, "source/routers")
	c := st.Components[i]
	if c.State != "running" || c.Failures != 1 || c.Restarts != 1 || !strings.Contains(c.LastError, "connection abort") {
		t.Errorf("source/routers after the kill: %+v", c)
	}
	for _, o := range st.Components {
		if o.Name != c.Name && (o.Failures != 0 || o.State != "running") {
			t.Errorf("%s touched by the source's failure: %+v", o.Name, o)
		}
	}
	// The restarted listener receives.
	sent := sendV5(t, port, 10, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := componentStatus(t, bin, socket, "source/routers")
		if len(st.Sources) == 1 && st.Sources[0].Records >= uint64(sent*flowgen.NetFlowV5MaxRecords) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted listener: %d datagrams sent, status %+v", sent, st.Sources)
		}
		time.Sleep(100 * time.Millisecond)
	}
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := hc.Get("http://floodgate/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`floodgate_component_failures_total{component="source/routers"} 1`,
		`floodgate_component_restarts_total{component="source/routers"} 1`, `floodgate_component_up{component="source/routers"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(string(metrics), "floodgate_component"))
		}
	}
}

// TestSIGTERMDrainsInOrder sends SIGTERM while NetFlow datagrams pour in
// and checks, from the daemon's log, that the stages stopped in order
// (intake first, the speaker after the mitigation loop) and that every
// record the listener decoded was counted by detection: nothing read was
// dropped on the way out.
func TestSIGTERMDrainsInOrder(t *testing.T) {
	lab.Require(t, "go")
	bin := lab.BuildFloodgate(t)
	port := lab.FreeUDPPort(t, "127.0.0.1")
	cfg, _ := superviseConfig(t, port)
	f := lab.StartFloodgate(t, bin, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := f.WaitLog(ctx, "floodgate running"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent.Store(int64(sendV5(t, port, 200_000, stop)))
	}()
	time.Sleep(1500 * time.Millisecond) // under load
	if err := f.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, f.Log())
	}
	close(stop)
	wg.Wait()
	log := f.Log()
	var order []string
	for _, m := range regexp.MustCompile(`supervisor: stopped: component=(\S+) took=`).FindAllStringSubmatch(log, -1) {
		order = append(order, m[1])
	}
	want := []string{"config-watcher", "source/routers", "detection", "neighbors", "mitigation", "store", "speaker", "api", "hooks"}
	if !slices.Equal(order, want) {
		t.Errorf("stop order %q, want %q", order, want)
	}
	decoded := logCount(t, log, `flow: stopped; queues drained: records=(\d+)`)
	counted := logCount(t, log, `detect: tick stopped: records=(\d+)`)
	if decoded == 0 || counted != decoded {
		t.Errorf("records decoded by the listener %d, counted by detection %d: want equal and not 0", decoded, counted)
	}
	t.Logf("%d datagrams sent (%d records); %d records decoded and counted; stop took %v",
		sent.Load(), sent.Load()*flowgen.NetFlowV5MaxRecords, decoded, f.StopTook())
	if !strings.Contains(log, "all components stopped") {
		t.Errorf("no final shutdown line")
	}
}

func logCount(t *testing.T, log, re string) uint64 {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("log lacks %s", re)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
