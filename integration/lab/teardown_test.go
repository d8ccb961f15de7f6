package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envInterruptHelper makes TestLabInterruptHelper bring a lab up and wait
// to be interrupted; TestLabInterrupted runs it in a child process.
const envInterruptHelper = "FLOODGATE_LAB_INTERRUPT_HELPER"

// TestLabInterruptHelper is not a test on its own: see TestLabInterrupted.
func TestLabInterruptHelper(t *testing.T) {
	if os.Getenv(envInterruptHelper) != "1" {
		t.Skip("helper of TestLabInterrupted")
	}
	l := Up(t, Topology{
		Nodes: []Node{{Name: "ctl", Kind: KindCtl, ASN: 65000}, {Name: "bird", Kind: KindBIRD, ASN: 65002}},
		Links: []Link{{A: "ctl", B: "bird"}},
	})
	var pids []string
	for _, p := range l.BIRD(t, "bird").pids() {
		pids = append(pids, strconv.Itoa(p))
	}
	fmt.Printf("READY %s %s %s %s\n", l.Netns("ctl"), l.Netns("bird"), strings.Join(pids, ","), l.Dir())
	// Wait, bounded, for the parent's SIGINT, whose default action ends
	// this process once the lab has been torn down.
	time.Sleep(30 * time.Second)
	t.Error("not interrupted")
}

// TestLabInterrupted interrupts a test process (SIGINT) while its lab is
// up, and checks that the daemons, namespaces and directory are gone.
func TestLabInterrupted(t *testing.T) {
	RequireRoot(t, "ip", "bird", "birdc")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLabInterruptHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), envInterruptHelper+"=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = daemonSysProcAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var fields []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 5 && f[0] == "READY" {
			fields = f[1:]
			break
		}
	}
	if fields == nil {
		t.Fatalf("helper did not bring its lab up: %v", sc.Err())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = bufio.NewReader(out).WriteTo(os.Stdout) }()
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
		t.Errorf("helper ended with %v, want killed by SIGINT", err)
	}
	for _, ns := range fields[:2] {
		if _, err := os.Stat(filepath.Join("/var/run/netns", ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left behind (%v)", ns, err)
		}
	}
	for _, p := range strings.Split(fields[2], ",") {
		pid, _ := strconv.Atoi(p)
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			// A zombie may linger until its parent (gone) is reaped by
			// init; check its state.
			if st, rerr := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); rerr == nil && !strings.Contains(string(st), ") Z ") {
				t.Errorf("daemon %d left running: %s", pid, st)
			}
		}
	}
	if _, err := os.Stat(fields[3]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab directory %s left behind (%v)", fields[3], err)
	}
}

// TestStartFloodgateIn runs a stand-in for the floodgate binary in a lab
// namespace and kills it.
func TestStartFloodgateIn(t *testing.T) {
	RequireRoot(t, "ip", "sh", "sleep")
	l := Up(t, Topology{Nodes: []Node{{Name: "ctl", Kind: KindCtl, ASN: 65000}}})
	bin := filepath.Join(t.TempDir(), "floodgate")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho \"$@\"\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := StartFloodgateIn(t, bin, l.Netns("ctl"), `log { level = "debug" }`)
	if err := f.WaitLog(t.Context(), "run --config"); err != nil {
		t.Fatal(err)
	}
	got, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", f.PID()))
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/var/run/netns", l.Netns("ctl")), &st); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("net:[%d]", st.Ino); got != want {
		t.Errorf("floodgate runs in %s, want %s (%s)", got, want, l.Netns("ctl"))
	}
	if err := f.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(f.PID(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("floodgate %d still exists after Kill: %v", f.PID(), err)
	}
}
