package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/floodgate-ddos/floodgate/integration/gen"
)

// TestUsageErrors checks that bad command lines, a non-loopback --to
// first, fail with the usage exit code and a message that says why.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"non-loopback", []string{"--to", "192.0.2.1:2055"}, "refusing to send to 192.0.2.1:2055: destination is not a loopback address"},
		{"non-loopback v6", []string{"--format", "sflow", "--to", "[2001:db8::1]:6343"}, "not a loopback address"},
		{"any address", []string{"--to", "0.0.0.0:2055"}, "not a loopback address"},
		{"host name", []string{"--to", "localhost:2055"}, "write a loopback address and port"},
		{"format", []string{"--format", "netflow7"}, `--format "netflow7"`},
		{"attack", []string{"--attack", "smurf"}, `unknown attack "smurf"`},
		{"victim", []string{"--victim", "example.com"}, "--victim"},
		{"pps", []string{"--attack-pps", "-5"}, "attack-pps"},
		{"sampling bits", []string{"--sampling", "4294967296"}, "sampling"},
		{"raw without interface", []string{"--format", "raw"}, "needs --interface"},
		{"raw with to", []string{"--format", "raw", "--interface", "veth0", "--to", "127.0.0.1:1"}, "--to is for flow exports"},
		{"interface without raw", []string{"--interface", "veth0"}, "for --format raw"},
		{"duration", []string{"--to", "127.0.0.1:9", "--duration", "2h"}, "scenario duration"},
		{"argument", []string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := realMain(context.Background(), tt.args, &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}

// TestRawRefusesHostNamespace checks that raw frames are refused in the
// host's namespace.
func TestRawRefusesHostNamespace(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := realMain(context.Background(), []string{"--format", "raw", "--interface", "lo", "--start", "0s", "--duration", "1s"}, &stdout, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "not a veth in a separate network namespace") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestHelp checks --help.
func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := realMain(context.Background(), []string{"--help"}, &stdout, &stderr); code != exitOK || !strings.Contains(stderr.String(), "--attack-pps N") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestRun runs a short scenario to a UDP socket and checks the start line
// and the summary.
func TestRun(t *testing.T) {
	for _, format := range []string{"sflow", "netflow5", "netflow9", "ipfix"} {
		t.Run(format, func(t *testing.T) {
			conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			got := make(chan int)
			go func() {
				n := 0
				buf := make([]byte, 65536)
				for {
					conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
					if _, _, err := conn.ReadFrom(buf); err != nil {
						got <- n
						return
					}
					n++
				}
			}()
			var stdout, stderr bytes.Buffer
			args := []string{"--format", format, "--to", conn.LocalAddr().String(), "--attack", "syn",
				"--attack-pps", "5000", "--background-pps", "1000", "--start", "200ms", "--duration", "500ms", "--sampling", "10"}
			start := time.Now()
			if code := realMain(context.Background(), args, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			a, at, err := gen.ParseStartLine(lines[0])
			if err != nil || a != gen.AttackSYN {
				t.Fatalf("first line %q: %v", lines[0], err)
			}
			if d := at.Sub(start); d < 200*time.Millisecond || d > 600*time.Millisecond {
				t.Errorf("attack started %v after the command", d)
			}
			if len(lines) < 4 || !strings.HasPrefix(lines[1], "sent ") || !strings.Contains(lines[3], "attack syn: ") {
				t.Errorf("summary %q", lines[1:])
			}
			if n := <-got; n == 0 {
				t.Error("no datagram received")
			}
		})
	}
}
