package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// daemonStopGrace is how long a daemon may take to exit after SIGTERM
// before it is killed.
const daemonStopGrace = 3 * time.Second

// process is one daemon started by the lab, owned by PID: it is signalled
// and waited for by this value only, never looked up by name.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd

	// exited is closed once the process has been waited for; waitErr is
	// set before.
	exited  chan struct{}
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// netnsCommand returns a command that runs argv in network namespace ns
// (through `ip netns exec`, which execs argv in place, so the PID is the
// daemon's), or directly when ns is empty. The command gets the lab's
// parent-death signal.
func netnsCommand(ns string, argv ...string) *exec.Cmd {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = daemonSysProcAttr()
	return cmd
}

// startProcess starts argv in namespace ns with its output appended to
// logPath and extra environment variables env.
func startProcess(name, ns, logPath string, env []string, argv ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", name, err)
	}
	cmd := netnsCommand(ns, argv...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	startErr := cmd.Start()
	// The child holds its own descriptor of the log file.
	closeErr := logFile.Close()
	if startErr != nil {
		return nil, fmt.Errorf("start %s: %w", name, startErr)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if closeErr != nil {
		return p, fmt.Errorf("start %s: close log: %w", name, closeErr)
	}
	return p, nil
}

// PID returns the process id.
func (p *process) PID() int { return p.cmd.Process.Pid }

// exitErr describes how the process ended; call it only after exited is
// closed.
func (p *process) exitErr() error {
	if p.waitErr != nil {
		return p.waitErr
	}
	return errors.New("exit status 0")
}

// alive returns an error if the process has exited.
func (p *process) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s (pid %d) has exited: %w", p.name, p.PID(), p.exitErr())
	default:
		return nil
	}
}

// stop ends the process: SIGTERM, then SIGKILL after daemonStopGrace, then
// waits for it. It is idempotent. It returns an error if the process had
// already exited on its own (a crash), or could not be signalled.
func (p *process) stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.signalAndWait(syscall.SIGTERM, daemonStopGrace) })
	return p.stopErr
}

func (p *process) signalAndWait(sig syscall.Signal, grace time.Duration) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s (pid %d) exited before stop: %w", p.name, p.PID(), p.exitErr())
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s (pid %d): %w", p.name, p.PID(), err)
	}
	if grace == 0 {
		<-p.exited
		return nil
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.exited:
		return nil
	case <-timer.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", p.name, p.PID(), err)
	}
	<-p.exited
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v; killed", p.name, p.PID(), grace)
}

// stopAll stops processes in order and joins their errors.
func stopAll(procs ...*process) error {
	var errs []error
	for _, p := range procs {
		if p != nil {
			errs = append(errs, p.stop())
		}
	}
	return errors.Join(errs...)
}
