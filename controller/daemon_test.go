package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/floodgate-ddos/floodgate/policies"
	"github.com/floodgate-ddos/floodgate/supervisor"
)

// daemonPolicyHCL is testPolicyHCL with a flow source on an ephemeral
// loopback port, so that the daemon has a source component. The bgp block
// has no neighbour and no listen address: the speaker listens on no port
// (ListenPort -1) and connects to nobody.
const daemonPolicyHCL = `
sources {
  netflow "exports" { listen = "127.0.0.1:0" }
}
`

// daemonPolicy returns a policy whose state file and API socket are in
// their own temporary directories.
func daemonPolicy(t *testing.T) *policies.Policy {
	t.Helper()
	src := strings.Replace(testPolicyHCL, "%DRY%", "false", 1) + daemonPolicyHCL
	pol, err := policies.Parse([]string{"test.hcl"}, map[string][]byte{"test.hcl": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	if pol.BGP.Listen.IsValid() || len(pol.BGP.Neighbors) != 0 {
		t.Fatalf("the test speaker must neither listen nor have neighbours: listen %v, %d neighbours", pol.BGP.Listen, len(pol.BGP.Neighbors))
	}
	pol.Mitigation.StateFile = filepath.Join(t.TempDir(), "state.db")
	pol.API.Socket = filepath.Join(t.TempDir(), "api.sock")
	return pol
}

var daemonComponents = []string{"hooks", "api", "speaker", "store", "mitigation", "neighbors", "detection", "source/exports"}

// wantComponents checks the daemon's components, in start order, and their
// states.
func wantComponents(t *testing.T, when string, d *Daemon, want map[string]supervisor.State) {
	t.Helper()
	got := d.Components()
	var names []string
	for _, c := range got {
		names = append(names, c.Name)
		if c.State != want[c.Name] {
			t.Errorf("%s: component %s is %q, want %q (last error %q)", when, c.Name, c.State, want[c.Name], c.LastError)
		}
	}
	if strings.Join(names, ",") != strings.Join(daemonComponents, ",") {
		t.Errorf("%s: components %v, want %v", when, names, daemonComponents)
	}
}

func allComponents(s supervisor.State) map[string]supervisor.State {
	m := map[string]supervisor.State{}
	for _, n := range daemonComponents {
		m[n] = s
	}
	return m
}

// getStatus asks the API on the unix socket for the daemon's status.
func getStatus(ctx context.Context, socket string) (Status, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://floodgate/v1/status", nil)
	if err != nil {
		return Status{}, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	var st Status
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return st, fmt.Errorf("GET /v1/status: %s: %s", resp.Status, b)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// wantSocketClosed checks that nothing accepts connections on socket.
func wantSocketClosed(t *testing.T, when, socket string) {
	t.Helper()
	if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
		c.Close()
		t.Errorf("%s: the API socket %s still accepts connections", when, socket)
	}
}

// TestDaemonFailedStartUnwinds: when the store cannot open its file the
// start fails naming it, the components started before it (hooks, api,
// speaker) are stopped again, the API socket is closed, and a second daemon
// on the same socket then starts and stops cleanly: nothing was left
// open.
func TestDaemonFailedStartUnwinds(t *testing.T) {
	tests := []struct {
		name      string
		stateFile func(dir string) string
	}{
		{"state file is a directory", func(dir string) string { return dir }},
		{"state file in a missing directory", func(dir string) string { return filepath.Join(dir, "missing", "state.db") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := daemonPolicy(t)
			pol.Mitigation.StateFile = tt.stateFile(t.TempDir())
			d, err := NewDaemon(pol, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = d.Start(ctx)
			if err == nil {
				d.Stop(ctx)
				t.Fatal("Start succeeded with a state file that cannot be opened")
			}
			if !strings.Contains(err.Error(), "start store") || !strings.Contains(err.Error(), pol.Mitigation.StateFile) {
				t.Errorf("Start error %q, want one containing %q and the state file's path", err, "start store")
			}
			want := allComponents(supervisor.StateStopped)
			want["store"] = supervisor.StateFailed
			wantComponents(t, "after the failed start", d, want)
			for _, c := range d.Components() {
				if c.Name == "store" && !strings.Contains(c.LastError, pol.Mitigation.StateFile) {
					t.Errorf("store's last error %q does not name the state file", c.LastError)
				}
			}
			wantSocketClosed(t, "after the failed start", pol.API.Socket)
			// Stop after a failed start is harmless.
			if err := d.Stop(ctx); err != nil {
				t.Errorf("Stop after a failed start: %v", err)
			}

			// A second daemon with a good state file on the same socket:
			// the first released everything.
			pol2 := daemonPolicy(t)
			pol2.API.Socket = pol.API.Socket
			d2, err := NewDaemon(pol2, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			if err := d2.Start(ctx); err != nil {
				t.Fatalf("second daemon on the same socket: Start: %v", err)
			}
			wantComponents(t, "second daemon started", d2, allComponents(supervisor.StateRunning))
			if _, err := getStatus(ctx, pol2.API.Socket); err != nil {
				t.Errorf("second daemon's API: %v", err)
			}
			if err := d2.Stop(ctx); err != nil {
				t.Fatalf("second daemon: Stop: %v", err)
			}
			wantComponents(t, "second daemon stopped", d2, allComponents(supervisor.StateStopped))
			wantSocketClosed(t, "second daemon stopped", pol2.API.Socket)
		})
	}
}

// TestDaemonStartStopTwice: a daemon can be started and stopped again:
// every component runs after each Start, the API answers, and every
// component is stopped, and the socket closed, after each Stop.
func TestDaemonStartStopTwice(t *testing.T) {
	pol := daemonPolicy(t)
	d, err := NewDaemon(pol, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	wantComponents(t, "before Start", d, allComponents(supervisor.StateStopped))
	for round := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.Start(ctx); err != nil {
			cancel()
			t.Fatalf("round %d: Start: %v", round, err)
		}
		wantComponents(t, "after Start", d, allComponents(supervisor.StateRunning))
		st, err := getStatus(ctx, pol.API.Socket)
		if err != nil {
			t.Errorf("round %d: API status: %v", round, err)
		} else if len(st.Components) != len(daemonComponents) {
			t.Errorf("round %d: API status lists %d components, want %d", round, len(st.Components), len(daemonComponents))
		}
		if err := d.Stop(ctx); err != nil {
			cancel()
			t.Fatalf("round %d: Stop: %v", round, err)
		}
		cancel()
		wantComponents(t, "after Stop", d, allComponents(supervisor.StateStopped))
		wantSocketClosed(t, "after Stop", pol.API.Socket)
	}
}
