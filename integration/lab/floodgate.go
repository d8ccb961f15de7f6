package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildFloodgate builds the floodgate binary into a temporary directory
// that lives as long as the test binary, and returns its path. Concurrent
// and repeated calls build once.
func BuildFloodgate(t testing.TB) string { return buildCommand(t, "floodgate", "./cmd/floodgate") }

// BuildGen builds the traffic generator, floodgate-gen, as BuildFloodgate
// builds the daemon. A test that needs a high packet rate runs it as its
// own process: built without -race, it keeps the rate a race-instrumented
// test binary cannot.
func BuildGen(t testing.TB) string { return buildCommand(t, "floodgate-gen", "./cmd/floodgate-gen") }

// buildCommand builds the command in pkg (a path from the module's root)
// as name, once per test binary (without the test's -race
// instrumentation), and returns the binary's path.
func buildCommand(t testing.TB, name, pkg string) string {
	t.Helper()
	builds.mu.Lock()
	b, ok := builds.m[name]
	if !ok {
		b = &build{}
		if builds.m == nil {
			builds.m = map[string]*build{}
		}
		builds.m[name] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", name+"-bin-")
		if err != nil {
			b.err = err
			return
		}
		bin := filepath.Join(dir, name)
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		b.path = bin
	})
	if b.err != nil {
		t.Fatalf("build %s: %v", name, b.err)
	}
	return b.path
}

type build struct {
	once sync.Once
	path string
	err  error
}

var builds struct {
	mu sync.Mutex
	m  map[string]*build
}

// FreeUDPPort returns a UDP port that was free on host a moment ago.
func FreeUDPPort(t testing.TB, host string) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("find a free udp port on %s: %v", host, err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// Floodgate is a floodgate daemon run by a test.
type Floodgate struct {
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{}
	waitErr error

	stopOnce sync.Once
	stopErr  error
	stopTook time.Duration
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec and
// the test's readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartFloodgate writes config to a file and runs `floodgate run` on it.
// The test's cleanup stops exactly that process (SIGTERM, then SIGKILL) and
// prints its log if the test failed.
func StartFloodgate(t testing.TB, bin, config string) *Floodgate {
	t.Helper()
	return StartFloodgateIn(t, bin, "", config)
}

// StartFloodgateIn is StartFloodgate in network namespace ns (a Lab's
// Netns, typically its ctl node); an empty ns means the test's own. The
// daemon gets the lab's parent-death signal, so it dies with the test
// process. Start it again after Kill to test a restart; the config file is
// written anew each time.
func StartFloodgateIn(t testing.TB, bin, ns, config string) *Floodgate {
	t.Helper()
	path := filepath.Join(t.TempDir(), "floodgate.hcl")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &Floodgate{log: &syncBuffer{}, exited: make(chan struct{})}
	f.cmd = netnsCommand(ns, bin, "run", "--config", path)
	f.cmd.Stdout = f.log
	f.cmd.Stderr = f.log
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("start floodgate: %v", err)
	}
	go func() {
		f.waitErr = f.cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() {
		if err := f.Stop(); err != nil {
			t.Errorf("stop floodgate: %v", err)
		}
		if t.Failed() {
			t.Logf("floodgate (pid %d) log:\n%s", f.cmd.Process.Pid, f.Log())
		}
	})
	return f
}

// Log returns everything the daemon has printed so far.
func (f *Floodgate) Log() string { return f.log.String() }

// WaitLog waits until the log contains s, or the daemon exits, or ctx ends.
func (f *Floodgate) WaitLog(ctx context.Context, s string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(f.Log(), s) {
			return nil
		}
		select {
		case <-f.exited:
			return fmt.Errorf("floodgate exited (%v) before logging %q", f.waitErr, s)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q in the floodgate log: %w", s, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM and waits; after 10 s it kills the process. It returns
// an error if the daemon did not exit with status 0, and remembers how long
// the stop took (StopTook).
func (f *Floodgate) Stop() error {
	f.stopOnce.Do(func() {
		select {
		case <-f.exited:
			f.stopErr = fmt.Errorf("floodgate exited before stop: %v", f.waitErr)
			return
		default:
		}
		start := time.Now()
		if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			f.stopErr = err
			return
		}
		select {
		case <-f.exited:
			f.stopTook = time.Since(start)
			f.stopErr = f.waitErr
		case <-time.After(10 * time.Second):
			_ = f.cmd.Process.Kill()
			<-f.exited
			f.stopErr = fmt.Errorf("floodgate did not stop within 10s of SIGTERM; killed")
		}
	})
	return f.stopErr
}

// PID returns the daemon's process id.
func (f *Floodgate) PID() int { return f.cmd.Process.Pid }

// Kill ends the daemon with SIGKILL, as a crash would (no withdrawal, no
// state saved on the way out), and waits for it. It is idempotent with
// Stop; a Stop afterwards returns Kill's result.
func (f *Floodgate) Kill() error {
	f.stopOnce.Do(func() {
		select {
		case <-f.exited:
			f.stopErr = fmt.Errorf("floodgate exited before kill: %v", f.waitErr)
			return
		default:
		}
		if err := f.cmd.Process.Kill(); err != nil {
			f.stopErr = fmt.Errorf("kill floodgate (pid %d): %w", f.PID(), err)
			return
		}
		<-f.exited
	})
	return f.stopErr
}

// StopTook is how long the last Stop waited for the process to exit.
func (f *Floodgate) StopTook() time.Duration { return f.stopTook }
