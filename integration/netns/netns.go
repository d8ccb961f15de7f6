// Package netns owns entering a named network namespace (one made with
// `ip netns add`, under /run/netns) for the length of a function, so that
// the sockets the function opens live in that namespace. The lab, the
// traffic generator and the tests share it.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrName reports a namespace name that is not a plain file name.
var ErrName = errors.New("invalid network namespace name")

// Do runs fn on an OS thread switched into network namespace ns; an empty
// ns runs fn where the caller is. A socket keeps its namespace for life,
// so what fn opens stays in ns. The thread is switched back afterwards; if
// that fails it stays locked and the runtime discards it with its
// goroutine, so no other goroutine ever runs in the wrong namespace.
func Do(ns string, fn func() error) error {
	if ns != "" && (ns != filepath.Base(ns) || ns == "." || ns == "..") {
		return fmt.Errorf("netns %q: %w", ns, ErrName)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if ns == "" {
			defer runtime.UnlockOSThread()
			errc <- fn()
			return
		}
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", ns, err))
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
