package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// waitDelay bounds how long a run waits, once its executable has exited or
// been killed, for processes it left behind to close its output.
const waitDelay = time.Second

// execRunner runs an executable.
type execRunner struct {
	path    string
	timeout time.Duration
}

// args returns the FastNetMon-compatible arguments for ev: the address,
// the direction, the rate as an integer and the action.
func args(ev *Event) []string {
	ip, _, _ := strings.Cut(ev.IP, "/")
	return []string{ip, ev.Direction, formatPPS(ev.PPS), ev.Kind.action()}
}

// formatPPS rounds pps to a non-negative integer.
func formatPPS(pps float64) string {
	switch {
	case !(pps > 0): // negative, zero or NaN
		return "0"
	case pps >= math.MaxUint64:
		return strconv.FormatUint(math.MaxUint64, 10)
	}
	return strconv.FormatUint(uint64(math.Round(pps)), 10)
}

// deliver runs the executable with the event's arguments and its JSON on
// standard input, in a process group of its own that is killed when the
// timeout passes or ctx is done. A status other than 0 is an error, which
// carries the start of the executable's output.
func (r *execRunner) deliver(ctx context.Context, it *item) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.path, args(&it.ev)...)
	cmd.Stdin = bytes.NewReader(it.body)
	out := &headBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = waitDelay

	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited with status 0 but left a process holding its
		// output; that process keeps running.
		err = nil
	}
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("timed out after %s, process group killed: %w", r.timeout, err)
	case ctx.Err() != nil:
		err = fmt.Errorf("cancelled, process group killed: %w", err)
	}
	if out.Len() > 0 {
		return &outputError{err: err, output: out.String()}
	}
	return err
}

// outputError is a failed run with the start of its output.
type outputError struct {
	err    error
	output string
}

func (e *outputError) Error() string { return fmt.Sprintf("%v; output: %q", e.err, e.output) }
func (e *outputError) Unwrap() error { return e.err }

// headBuffer keeps the first max bytes written to it and discards the
// rest, so that a chatty hook cannot fill memory nor block on its output.
type headBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

// Write keeps what fits and reports everything written.
func (b *headBuffer) Write(p []byte) (int, error) {
	n := min(b.max-len(b.buf), len(p))
	b.buf = append(b.buf, p[:n]...)
	if n < len(p) {
		b.truncated = true
	}
	return len(p), nil
}

// Len is the number of bytes kept.
func (b *headBuffer) Len() int { return len(b.buf) }

// String returns what was kept, marked if more was written.
func (b *headBuffer) String() string {
	if b.truncated {
		return string(b.buf) + "…(truncated)"
	}
	return string(b.buf)
}
