package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// BuildKfake builds the kfake command (an in-memory Kafka cluster,
// integration/kfake) once per test binary.
func BuildKfake(t testing.TB) string { return buildCommand(t, "kfake", "./integration/kfake") }

// BuildGoFlow2 installs goflow2 at the version the module requires (its
// own command, built from its module: a Kafka client no one here wrote)
// into a cache directory, once per machine, and returns its path.
func BuildGoFlow2(t testing.TB) string {
	t.Helper()
	goflow2.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		out, err := exec.Command("go", "list", "-C", root, "-m", "-f", "{{.Version}}", "github.com/netsampler/goflow2/v2").Output()
		if err != nil {
			goflow2.err = fmt.Errorf("goflow2 version: %w", err)
			return
		}
		version := strings.TrimSpace(string(out))
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "floodgate-test", "goflow2-"+version)
		bin := filepath.Join(dir, "goflow2")
		if _, err := os.Stat(bin); err == nil {
			goflow2.path = bin
			return
		}
		cmd := exec.Command("go", "install", "github.com/netsampler/goflow2/v2/cmd/goflow2@"+version)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			goflow2.err = fmt.Errorf("go install goflow2@%s: %v\n%s", version, err, out)
			return
		}
		goflow2.path = bin
	})
	if goflow2.err != nil {
		t.Fatal(goflow2.err)
	}
	return goflow2.path
}

var goflow2 struct {
	once sync.Once
	path string
	err  error
}

// Proc is a helper process a test started (kfake, goflow2): owned by its
// PID, stopped at the end of the test, its output in a log file that the
// test prints when it fails.
type Proc struct {
	p *process
}

// StartProc starts argv in node's namespace (the test's own when node is
// empty) and stops it at the end of the test.
func (l *Lab) StartProc(t testing.TB, name, node string, argv ...string) *Proc {
	t.Helper()
	ns := ""
	if node != "" {
		ns = l.Netns(node)
	}
	log := filepath.Join(t.TempDir(), name+".log")
	p, err := startProcess(name, ns, log, nil, argv...)
	if err != nil {
		t.Fatal(err)
	}
	pr := &Proc{p: p}
	t.Cleanup(func() {
		_ = p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("%s (pid %d) log:\n%s", name, p.PID(), b)
		}
	})
	return pr
}

// Log returns what the process has printed so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.p.logPath)
	return string(b)
}

// WaitLog waits until the process has printed s.
func (p *Proc) WaitLog(ctx context.Context, s string) error {
	for !strings.Contains(p.Log(), s) {
		if err := p.p.alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q from %s: %w", s, p.p.name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill() error {
	p.p.stopOnce.Do(func() { p.p.stopErr = p.p.signalAndWait(9, 0) })
	return p.p.stopErr
}

// PID is the process id.
func (p *Proc) PID() int { return p.p.PID() }
