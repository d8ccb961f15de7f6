package hooks

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// eventTime is the time of test events, in a zone that is not UTC.
var eventTime = time.Date(2026, 11, 24, 18, 0, 0, 500, time.FixedZone("CET", 3600))

func TestExecArgsAndJSON(t *testing.T) {
	type details struct {
		Protocol string  `json:"protocol"`
		Share    float64 `json:"share"`
	}
	for _, tc := range []struct {
		name     string
		ev       Event
		wantArgs []string
		wantJSON string
	}{
		{
			name: "attack started",
			ev: Event{Kind: AttackStarted, Time: eventTime, IP: "198.51.100.7", Direction: "incoming",
				PPS: 123456.7, Hostgroup: "acme", Details: details{Protocol: "udp", Share: 0.9}},
			wantArgs: []string{"198.51.100.7", "incoming", "123457", "attack_details"},
			wantJSON: `{"kind":"attack_started","time":"2026-11-24T17:00:00.0000005Z","ip":"198.51.100.7","direction":"incoming","pps":123456.7,"hostgroup":"acme","details":{"protocol":"udp","share":0.9}}`,
		},
		{
			name: "prefix mitigation announced",
			ev: Event{Kind: MitigationAnnounced, Time: eventTime, IP: "203.0.113.0/24", Direction: "outgoing",
				PPS: 0.4, Hostgroup: "acme", Details: map[string]any{"kind": "rtbh"}},
			wantArgs: []string{"203.0.113.0", "outgoing", "0", "ban"},
			wantJSON: `{"kind":"mitigation_announced","time":"2026-11-24T17:00:00.0000005Z","ip":"203.0.113.0/24","direction":"outgoing","pps":0.4,"hostgroup":"acme","details":{"kind":"rtbh"}}`,
		},
		{
			name:     "IPv6 mitigation withdrawn without details",
			ev:       Event{Kind: MitigationWithdrawn, Time: eventTime, IP: "2001:db8::1/128", Direction: "incoming", PPS: 1e6},
			wantArgs: []string{"2001:db8::1", "incoming", "1000000", "unban"},
			wantJSON: `{"kind":"mitigation_withdrawn","time":"2026-11-24T17:00:00.0000005Z","ip":"2001:db8::1/128","direction":"incoming","pps":1000000,"hostgroup":"","details":null}`,
		},
		{
			name:     "NaN rate and details that do not marshal",
			ev:       Event{Kind: MitigationWithdrawn, Time: eventTime, IP: "192.0.2.1", Direction: "incoming", PPS: math.NaN(), Details: make(chan int)},
			wantArgs: []string{"192.0.2.1", "incoming", "0", "unban"},
			wantJSON: `{"kind":"mitigation_withdrawn","time":"2026-11-24T17:00:00.0000005Z","ip":"192.0.2.1","direction":"incoming","pps":0,"hostgroup":"","details":null}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, dir := script(t, `printf '%s\n' "$@" > "$OUT/args"; cat > "$OUT/stdin"`)
			d := start(t, Config{Exec: []ExecConfig{{Name: "fastnetmon", Path: path}}}, nil)
			d.Notify(tc.ev)
			if s := waitDone(t, d, 0, 1); s.Sent != 1 {
				t.Fatalf("stats %+v, want 1 sent", s)
			}
			args, err := os.ReadFile(filepath.Join(dir, "args"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(strings.Split(strings.TrimSuffix(string(args), "\n"), "\n"), tc.wantArgs); diff != "" {
				t.Errorf("args (-got +want):\n%s", diff)
			}
			stdin, err := os.ReadFile(filepath.Join(dir, "stdin"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(stdin), tc.wantJSON); diff != "" {
				t.Errorf("stdin (-got +want):\n%s", diff)
			}
		})
	}
}

func TestExecResults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		details any
		sent    bool
		wantLog []string // in the "hook failed" line
	}{
		{name: "exit 0", body: "exit 0", sent: true},
		{name: "exit 1", body: "echo boom >&2; exit 1", wantLog: []string{"exit status 1", "output:", "boom"}},
		{name: "chatty failure", body: `head -c 100000 /dev/zero | tr '\0' x; exit 3`, wantLog: []string{"exit status 3", "truncated"}},
		{name: "does not read its input", body: "exit 0", details: strings.Repeat("x", 1<<20), sent: true},
		{
			// The run ends waitDelay after the script exits, even though
			// its child keeps the output open; the child lives on.
			name: "child keeps output open", body: `sleep 3 & echo $! > "$OUT/child"; exit 0`, sent: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, dir := script(t, tc.body)
			t.Cleanup(func() { killPIDFile(t, filepath.Join(dir, "child")) })
			logger, logs := testLogger()
			d := start(t, Config{Exec: []ExecConfig{{Name: "x", Path: path, Timeout: 5 * time.Second}}}, logger)
			d.Notify(Event{Kind: AttackStarted, IP: "192.0.2.1", Direction: "incoming", PPS: 1, Details: tc.details})
			s := waitDone(t, d, 0, 1)
			if tc.sent != (s.Sent == 1) {
				t.Fatalf("stats %+v, want sent %v; log:\n%s", s, tc.sent, logs)
			}
			failed := logs.lines("hook failed")
			if tc.sent != (len(failed) == 0) {
				t.Fatalf("log has %d failure lines, want them only on failure:\n%s", len(failed), logs)
			}
			for _, want := range tc.wantLog {
				if !strings.Contains(failed[0], want) {
					t.Errorf("failure line %q does not contain %q", failed[0], want)
				}
			}
		})
	}
}

func TestExecNotExecutableFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "garbage")
	if err := os.WriteFile(path, []byte{0, 1, 2, 3}, 0o755); err != nil {
		t.Fatal(err)
	}
	d := start(t, Config{Exec: []ExecConfig{{Path: path}}}, nil)
	d.Notify(Event{Kind: AttackStarted})
	if s := waitDone(t, d, 0, 1); s.Failed != 1 {
		t.Errorf("stats %+v, want 1 failed", s)
	}
}

// TestExecTimeoutKillsProcessGroup runs a script that starts a child and
// waits for it past the timeout: both must be killed and the run counted
// as failed.
func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	path, dir := script(t, `sleep 30 & echo $! > "$OUT/child"; echo $$ > "$OUT/pid"; echo started; wait`)
	t.Cleanup(func() { killPIDFile(t, filepath.Join(dir, "child")) })
	logger, logs := testLogger()
	const timeout = 300 * time.Millisecond
	d := start(t, Config{Exec: []ExecConfig{{Name: "slow", Path: path, Timeout: timeout}}}, logger)
	begin := time.Now()
	d.Notify(Event{Kind: MitigationAnnounced, IP: "192.0.2.1"})
	if took := time.Since(begin); took > 100*time.Millisecond {
		t.Errorf("Notify took %s", took)
	}
	s := waitDone(t, d, 0, 1)
	took := time.Since(begin)
	if s.Failed != 1 || s.Sent != 0 {
		t.Errorf("stats %+v, want 1 failed", s)
	}
	if took < timeout {
		t.Errorf("run ended after %s, before the timeout", took)
	}
	for _, f := range []string{"pid", "child"} {
		pid := readPID(t, filepath.Join(dir, f))
		waitFor(t, f+" to die", func() bool { return processGone(pid) })
	}
	line := logs.lines("hook failed")
	if len(line) != 1 || !strings.Contains(line[0], "timed out after 300ms") || !strings.Contains(line[0], "started") {
		t.Errorf("failure lines %q, want one saying it timed out, with the output", line)
	}
}

func TestFailureLogRateLimited(t *testing.T) {
	path, _ := script(t, "exit 1")
	logger, logs := testLogger()
	clock := &fakeClock{t: eventTime}
	d := start(t, Config{Exec: []ExecConfig{{Name: "failing", Path: path}}}, logger,
		func(d *Dispatcher) { d.now = clock.Now })
	for range 3 {
		d.Notify(Event{Kind: AttackStarted})
	}
	waitDone(t, d, 0, 3)
	if n := len(logs.lines("hook failed")); n != 1 {
		t.Fatalf("%d failure lines for 3 failures within 10s, want 1:\n%s", n, logs)
	}
	clock.Advance(failureLogEvery)
	d.Notify(Event{Kind: AttackStarted})
	if s := waitDone(t, d, 0, 4); s.Failed != 4 {
		t.Errorf("stats %+v, want 4 failed", s)
	}
	lines := logs.lines("hook failed")
	if len(lines) != 2 || !strings.Contains(lines[1], "suppressed_since_last=2") || !strings.Contains(lines[1], "hook=failing") {
		t.Errorf("failure lines %q, want a second one with suppressed_since_last=2", lines)
	}
}

func TestFormatPPS(t *testing.T) {
	for _, tc := range []struct {
		pps  float64
		want string
	}{
		{0, "0"}, {-5, "0"}, {math.NaN(), "0"}, {0.5, "1"}, {1.4, "1"},
		{123456.7, "123457"}, {math.Inf(1), "18446744073709551615"}, {1e30, "18446744073709551615"},
	} {
		if got := formatPPS(tc.pps); got != tc.want {
			t.Errorf("formatPPS(%v) = %q, want %q", tc.pps, got, tc.want)
		}
	}
}

func TestHeadBuffer(t *testing.T) {
	b := &headBuffer{max: 4}
	for _, s := range []string{"ab", "cde", "f"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got, want := b.String(), "abcd…(truncated)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func readPID(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return int(pid)
}

// processGone reports whether pid has exited (a zombie counts: nothing
// may reap orphans in a container).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may contain spaces, the state follows
	// the last parenthesis.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// killPIDFile kills the process whose pid is in path, if the file exists.
func killPIDFile(t testing.TB, path string) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	_ = syscall.Kill(readPID(t, path), syscall.SIGKILL)
}
