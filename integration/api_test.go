package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/floodgate-ddos/floodgate/controller"
	"github.com/floodgate-ddos/floodgate/integration/flowgen"
	"github.com/floodgate-ddos/floodgate/integration/lab"
)

const apiToken = "test-token-0123456789abcdef"

// apiLab is a floodgate daemon with its API on a unix socket and on TCP,
// metrics on a third listener, and no BGP neighbour.
type apiLab struct {
	bin, dir, config, socket string
	tcp, metrics             string
	flowTo                   netip.AddrPort
	hookScript, hookLog      string
	webhook                  string
	webhookBodies            chan string
}

// startDaemon runs `floodgate run` on a configuration file the test keeps
// editing, and stops exactly that process at the end.
func startDaemon(t *testing.T, bin, config string) {
	t.Helper()
	var log bytes.Buffer
	cmd := exec.Command(bin, "run", "--config", config)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("floodgate exited: %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("floodgate did not stop on SIGINT")
		}
		if t.Failed() {
			t.Logf("floodgate log:\n%s", log.String())
		}
	})
}

func apiConfig(l *apiLab, threshold string) string {
	return fmt.Sprintf(`
sources {
  netflow "test" { listen = "%s" }
}
bgp {
  asn       = 65000
  router_id = "192.0.2.254"
  # A router that never comes: its metrics show the session down.
  neighbor "absent" {
    address = "127.0.0.9"
    asn     = 65001
    passive = true
  }
}
api {
  socket = "%s"
  listen = "%s"
  token  = "%s"
}
metrics { listen = "%s" }
mitigation { state_file = "%s" }
hooks {
  exec "record" {
    path = "%s"
  }
  webhook "collect" {
    url = "%s"
  }
}
hostgroup "customers" {
  prefixes = ["203.0.113.0/24", "2001:db8::/32"]
  threshold "incoming" { pps = %s }
  response "blackhole" {
    rtbh {}
    duration = "10m"
  }
}
`, l.flowTo, l.socket, l.tcp, apiToken, l.metrics, filepath.Join(l.dir, "state.db"), l.hookScript, l.webhook, threshold)
}

func startAPILab(t *testing.T) *apiLab {
	t.Helper()
	lab.Require(t, "go")
	l := &apiLab{bin: lab.BuildFloodgate(t), dir: t.TempDir()}
	l.socket = filepath.Join(l.dir, "api.sock")
	l.tcp = fmt.Sprintf("127.0.0.1:%d", lab.FreePort(t, "127.0.0.1"))
	l.metrics = fmt.Sprintf("127.0.0.1:%d", lab.FreePort(t, "127.0.0.1"))
	l.flowTo = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(lab.FreeUDPPort(t, "127.0.0.1")))
	l.hookScript, l.hookLog = filepath.Join(l.dir, "hook.sh"), filepath.Join(l.dir, "hook.log")
	script := "#!/bin/sh\necho \"$@\" >> " + l.hookLog + "\n"
	if err := os.WriteFile(l.hookScript, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	l.webhookBodies = make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case l.webhookBodies <- string(b):
		default:
		}
	}))
	t.Cleanup(srv.Close)
	l.webhook = srv.URL
	cfg := apiConfig(l, `"1Mpps"`)
	l.config = filepath.Join(l.dir, "floodgate.hcl")
	if err := os.WriteFile(l.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, l.bin, l.config)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := controller.NewClient(l.socket, "")
	for {
		if _, err := c.Status(ctx); err == nil {
			return l
		}
		select {
		case <-ctx.Done():
			t.Fatalf("API never answered on %s", l.socket)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (l *apiLab) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(l.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

func httpDo(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	l := startAPILab(t)
	st, err := os.Stat(l.socket)
	if err != nil || st.Mode().Perm() != 0o660 || st.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket %v mode %v", err, st.Mode())
	}
	base := "http://" + l.tcp
	t.Run("tcp needs the token", func(t *testing.T) {
		for _, tok := range []string{"", "wrong-token-0123456789"} {
			if code, body := httpDo(t, "GET", base+"/v1/status", tok, ""); code != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
				t.Errorf("token %q: %d %s", tok, code, body)
			}
		}
		code, body := httpDo(t, "GET", base+"/v1/status", apiToken, "")
		var s controller.Status
		if code != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil || s.GoBGP == "" || len(s.Sources) != 1 || s.Hostgroups[0].Name != "customers" {
			t.Errorf("status %d %s", code, body)
		}
	})
	t.Run("ban and unban", func(t *testing.T) {
		tests := []struct {
			name, body string
			code       int
			want       string
		}{
			{"rtbh", `{"kind":"rtbh","prefix":"203.0.113.9","duration":"5m","reason":"test"}`, 201, `"Key": "rtbh:203.0.113.9/32"`},
			{"flowspec", `{"kind":"flowspec","rule":"dst 203.0.113.10/32 proto udp sport 123","action":"rate-limit","rate":"8Mbps","duration":"5m"}`,
				201, `"RateBytes": 1000000`},
			{"outside", `{"kind":"rtbh","prefix":"192.0.2.1","duration":"5m"}`, 422, "outside every monitored network"},
			{"default route", `{"kind":"rtbh","prefix":"0.0.0.0/0","duration":"5m"}`, 422, "outside"},
			{"flowspec broader than hostgroup", `{"kind":"flowspec","rule":"dst 203.0.112.0/23","duration":"5m"}`, 422, "outside"},
			{"bad rule", `{"kind":"flowspec","rule":"proto udp","duration":"5m"}`, 400, "destination"},
			{"bad duration", `{"kind":"rtbh","prefix":"203.0.113.9","duration":"ever"}`, 400, "duration"},
			{"unknown field", `{"kind":"rtbh","prefix":"203.0.113.9","duration":"5m","bogus":1}`, 400, "unknown field"},
			{"not json", `ban 203.0.113.9`, 400, "bad request body"},
			{"two values", `{"kind":"rtbh","prefix":"203.0.113.9","duration":"5m"} {}`, 400, "more than one"},
			{"too large", `{"reason":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "body over"},
		}
		for _, tc := range tests {
			code, body := httpDo(t, "POST", base+"/v1/mitigations", apiToken, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%s: %d %s; want %d and %q", tc.name, code, body, tc.code, tc.want)
			}
		}
		code, body := httpDo(t, "GET", base+"/v1/mitigations", apiToken, "")
		if code != 200 || strings.Count(body, `"Key"`) != 2 {
			t.Errorf("mitigations %d %s", code, body)
		}
		if code, body := httpDo(t, "DELETE", base+"/v1/mitigations?prefix=203.0.113.9", apiToken, ""); code != 200 || !strings.Contains(body, "rtbh:203.0.113.9/32") {
			t.Errorf("unban %d %s", code, body)
		}
		if code, _ := httpDo(t, "DELETE", base+"/v1/mitigations?prefix=203.0.113.9", apiToken, ""); code != 404 {
			t.Errorf("second unban %d", code)
		}
		if code, _ := httpDo(t, "GET", base+"/v1/nothing", apiToken, ""); code != 404 {
			t.Errorf("unknown path %d", code)
		}
		// The hooks heard about the ban and the unban.
		deadline := time.Now().Add(10 * time.Second)
		var log []byte
		for time.Now().Before(deadline) {
			log, _ = os.ReadFile(l.hookLog)
			if strings.Contains(string(log), "203.0.113.9 incoming 0 unban") {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, want := range []string{"203.0.113.9 incoming 0 ban", "203.0.113.9 incoming 0 unban", "203.0.113.10 incoming 0 ban"} {
			if !strings.Contains(string(log), want) {
				t.Errorf("exec hook log lacks %q:\n%s", want, log)
			}
		}
		select {
		case body := <-l.webhookBodies:
			if !strings.Contains(body, `"kind":"mitigation_announced"`) || !strings.Contains(body, `"ip":"203.0.113.9"`) {
				t.Errorf("webhook body %s", body)
			}
		case <-time.After(10 * time.Second):
			t.Error("webhook never called")
		}
	})
	t.Run("metrics after known traffic", func(t *testing.T) {
		conn, err := net.Dial("udp", l.flowTo.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		enc := flowgen.NetFlowV9{SourceID: 1}
		now := time.Now()
		conn.Write(enc.AppendTemplates(nil, now))
		for i := range 10 {
			var flows []flowgen.Flow
			for j := range 10 {
				flows = append(flows, flowgen.Flow{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)}),
					SrcPort: uint16(1000 + j), DstPort: 80, Proto: 6, Packets: 10, Bytes: 1000, Start: now, End: now})
			}
			b, _ := enc.AppendData(nil, now, flows)
			conn.Write(b)
		}
		conn.Write([]byte("garbage"))
		wants := []string{
			`floodgate_flow_datagrams_total{listener="test",protocol="netflow"} 12`,
			`floodgate_flow_records_total{listener="test",protocol="netflow"} 100`,
			`floodgate_flow_malformed_datagrams_total{listener="test",protocol="netflow"} 1`,
			`floodgate_detect_records_total 100`,
			`floodgate_flow_exporter_records_total{exporter="127.0.0.1",listener="test"} 100`,
			`floodgate_flow_exporter_malformed_datagrams_total{exporter="127.0.0.1",listener="test"} 1`,
			`floodgate_mitigation_active{hostgroup="customers",kind="flowspec"} 1`,
			`floodgate_mitigation_refusals_total{reason="outside_monitored"} 3`,
		}
		// The listener counts a record before detection does: wait for
		// every counter, not only the first.
		var text string
		var missing []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			_, text = httpDo(t, "GET", "http://"+l.metrics+"/metrics", "", "")
			missing = missing[:0]
			for _, want := range wants {
				if !strings.Contains(text, want) {
					missing = append(missing, want)
				}
			}
			if len(missing) == 0 || time.Now().After(deadline) {
				break
			}
		}
		for _, want := range missing {
			t.Errorf("metrics lack %q", want)
		}
		problems, err := promlint.New(strings.NewReader(text)).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			if strings.HasPrefix(p.Metric, "floodgate_") && !strings.HasPrefix(p.Metric, "floodgate_process_") {
				t.Errorf("promlint: %s: %s", p.Metric, p.Text)
			}
		}
		// Every metric the Grafana dashboard uses exists.
		dash, err := os.ReadFile("../examples/grafana/floodgate.json")
		if err != nil {
			t.Fatal(err)
		}
		names := regexp.MustCompile(`floodgate_[a-z_]+`).FindAllString(string(dash), -1)
		if len(names) < 10 {
			t.Fatalf("dashboard uses %d metrics", len(names))
		}
		for _, n := range names {
			if !strings.Contains(text, "\n"+n) && !strings.Contains(text, "# TYPE "+n+" ") {
				t.Errorf("dashboard metric %s is not exported", n)
			}
		}
		// The same metrics are on the API.
		if code, body := httpDo(t, "GET", base+"/metrics", apiToken, ""); code != 200 || !strings.Contains(body, "floodgate_detect_hosts") {
			t.Errorf("metrics on the API: %d", code)
		}
		// The hosts endpoint sees the traffic.
		c := controller.NewClient(l.socket, "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			h, err := c.Hosts(ctx, "pps", "incoming", 5)
			if err == nil && len(h.Hosts) == 5 && h.Hosts[0].PPS > 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("hosts: %+v %v", h, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("reload", func(t *testing.T) {
		if code, body := httpDo(t, "POST", base+"/v1/reload", apiToken, ""); code != 200 {
			t.Errorf("reload %d %s", code, body)
		}
		if err := os.WriteFile(l.config, []byte(apiConfig(l, `"lots"`)), 0o600); err != nil {
			t.Fatal(err)
		}
		code, body := httpDo(t, "POST", base+"/v1/reload", apiToken, "")
		if code != 422 || !strings.Contains(body, "floodgate.hcl:") || !strings.Contains(body, "Invalid rate") {
			t.Errorf("bad reload %d %s", code, body)
		}
		if code, _ := httpDo(t, "GET", base+"/v1/status", apiToken, ""); code != 200 {
			t.Errorf("status after bad reload %d", code)
		}
	})
}

// TestCLI runs the built binary's API commands against a daemon.
func TestCLI(t *testing.T) {
	l := startAPILab(t)
	sock := "--socket=" + l.socket
	if out, code := l.cli(t, "status", sock); code != 0 || !strings.Contains(out, "SOURCE") || !strings.Contains(out, "customers") {
		t.Errorf("status: %d\n%s", code, out)
	}
	if out, code := l.cli(t, "ban", "203.0.113.20", "--duration", "2m", "--reason", "cli test", sock); code != 0 || !strings.Contains(out, "announced rtbh 203.0.113.20/32") {
		t.Errorf("ban: %d\n%s", code, out)
	}
	if out, code := l.cli(t, "ban", sock, "--flowspec", "dst 203.0.113.21/32 proto tcp tcp-flags syn,!ack", "--action", "discard"); code != 0 {
		t.Errorf("ban flowspec: %d\n%s", code, out)
	}
	if out, code := l.cli(t, "ban", "198.51.100.1", sock); code != 1 || !strings.Contains(out, "outside every monitored network") {
		t.Errorf("ban outside: %d\n%s", code, out)
	}
	out, code := l.cli(t, "mitigations", "--json", sock)
	var m controller.Mitigations
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || len(m.Mitigations) != 2 {
		t.Errorf("mitigations --json: %d\n%s", code, out)
	}
	if out, code := l.cli(t, "mitigations", sock); code != 0 || !strings.Contains(out, "cli test") || !strings.Contains(out, "tcp-flags") {
		t.Errorf("mitigations: %d\n%s", code, out)
	}
	if out, code := l.cli(t, "unban", "203.0.113.20", sock); code != 0 || !strings.Contains(out, "withdrawn rtbh:203.0.113.20/32") {
		t.Errorf("unban: %d\n%s", code, out)
	}
	if out, code := l.cli(t, "attacks", sock); code != 0 || !strings.Contains(out, "no attacks") {
		t.Errorf("attacks: %d\n%s", code, out)
	}
	if out, code := l.cli(t, "reload", "--api=http://"+l.tcp, "--token="+apiToken); code != 0 || !strings.Contains(out, "reloaded") {
		t.Errorf("reload over TCP: %d\n%s", code, out)
	}
	if out, code := l.cli(t, "status", "--api=http://"+l.tcp); code != 1 || !strings.Contains(out, "401") {
		t.Errorf("status without token: %d\n%s", code, out)
	}
	if out, code := l.cli(t, "status", "--socket="+filepath.Join(l.dir, "nope.sock")); code != 4 || !strings.Contains(out, "not running") {
		t.Errorf("status without daemon: %d\n%s", code, out)
	}
}

// TestTop drives `floodgate top` in a terminal (tmux) and reads the screen.
func TestTop(t *testing.T) {
	lab.Require(t, "tmux")
	l := startAPILab(t)
	c := controller.NewClient(l.socket, "")
	if _, err := c.Ban(context.Background(), controller.BanRequest{Kind: "rtbh", Prefix: "203.0.113.30", Duration: "5m"}); err != nil {
		t.Fatal(err)
	}
	session := fmt.Sprintf("fgtop%d", os.Getpid())
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", append([]string{"-L", session}, args...)...).CombinedOutput()
		if err != nil && args[0] != "kill-server" {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-x", "140", "-y", "30", l.bin+" top --interval 200ms --socket "+l.socket)
	t.Cleanup(func() { tmux("kill-server") })
	screen := func(want string) string {
		deadline := time.Now().Add(10 * time.Second)
		var s string
		for time.Now().Before(deadline) {
			s = tmux("capture-pane", "-p")
			if strings.Contains(s, want) {
				return s
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("screen never showed %q:\n%s", want, s)
		return s
	}
	s := screen("incoming hosts by pps")
	if !strings.Contains(s, "1 mitigations") || !strings.Contains(s, "HOST") {
		t.Errorf("screen:\n%s", s)
	}
	tmux("send-keys", "b")
	screen("incoming hosts by bps")
	tmux("send-keys", "o")
	screen("outgoing hosts by bps")
	tmux("send-keys", "q")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out, err := exec.Command("tmux", "-L", session, "list-panes", "-F", "#{pane_dead}").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) == "1" {
			return // the pane's process exited, and the session with it
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("top did not quit on q")
}
