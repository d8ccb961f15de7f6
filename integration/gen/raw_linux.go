//go:build linux

package gen

import (
	"errors"
	"fmt"
	"net"

	"github.com/floodgate-ddos/floodgate/integration/netns"

	"golang.org/x/sys/unix"
)

// rawSocket is an AF_PACKET socket bound to one interface, for sending
// only (protocol 0: it receives nothing).
type rawSocket struct {
	fd int
	ok bool // fd is open
}

// errNoBuffer reports a frame the kernel dropped for lack of buffer space.
var errNoBuffer = errors.New("no buffer space")

func (s *rawSocket) isOpen() bool { return s.ok }

// open opens the socket on ifname, in network namespace ns if not empty,
// after checking that ifname is a veth outside the initial namespace.
func (s *rawSocket) open(ifname, ns string) error {
	if s.ok {
		return fmt.Errorf("socket already open: %w", ErrInvalidEmitter)
	}
	return inNetns(ns, func() error {
		if err := checkNotInitialNetns(); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("interface %s: %w", ifname, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open AF_PACKET socket: %w", err)
		}
		fail := func(err error) error {
			unix.Close(fd)
			return err
		}
		info, err := unix.IoctlGetEthtoolDrvinfo(fd, ifname)
		if err != nil {
			return fail(fmt.Errorf("read driver of %s: %w (%w)", ifname, err, ErrUnsafeInterface))
		}
		if drv := unix.ByteSliceToString(info.Driver[:]); drv != "veth" {
			return fail(fmt.Errorf("interface %s has driver %q, not veth: %w", ifname, drv, ErrUnsafeInterface))
		}
		if ifi.Flags&net.FlagUp == 0 {
			return fail(fmt.Errorf("interface %s is down: %w", ifname, ErrInvalidEmitter))
		}
		if ifi.MTU < maxFrameLen-ethHeaderLen {
			return fail(fmt.Errorf("interface %s has MTU %d, frames need 1500: %w", ifname, ifi.MTU, ErrInvalidEmitter))
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			return fail(fmt.Errorf("bind to %s: %w", ifname, err))
		}
		// A larger send buffer absorbs the batches of the pacing; the
		// kernel caps it at net.core.wmem_max.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		s.fd, s.ok = fd, true
		return nil
	})
}

// send writes one frame. A frame the kernel drops for lack of buffer
// space (the peer's backlog is full) returns errNoBuffer.
func (s *rawSocket) send(frame []byte) error {
	for {
		_, err := unix.Write(s.fd, frame)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.EAGAIN):
			return errNoBuffer
		}
		return err
	}
}

func (s *rawSocket) close() error {
	if !s.ok {
		return nil
	}
	s.ok = false
	return unix.Close(s.fd)
}

// checkNotInitialNetns fails with ErrUnsafeInterface if the calling thread
// is in the host's initial network namespace. It compares the thread's
// namespace with PID 1's when /proc/1 can be read (it cannot without
// CAP_SYS_PTRACE, as in some containers), and in any case looks for
// /proc/sys/net/core/netdev_max_backlog, a sysctl that the kernel
// registers in the initial namespace only (and /proc/sys/net shows the
// namespace of the thread that reads it).
func checkNotInitialNetns() error {
	refuse := fmt.Errorf("this is the host's initial network namespace; run in a namespace of your own (ip netns exec, or RawEmitter.Netns): %w", ErrUnsafeInterface)
	var self, init unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		return fmt.Errorf("read own network namespace: %w (%w)", err, ErrUnsafeInterface)
	}
	if err := unix.Stat("/proc/1/ns/net", &init); err == nil && self.Dev == init.Dev && self.Ino == init.Ino {
		return refuse
	}
	var st unix.Stat_t
	switch err := unix.Stat("/proc/sys/net/core/netdev_max_backlog", &st); {
	case err == nil:
		return refuse
	case !errors.Is(err, unix.ENOENT):
		return fmt.Errorf("tell the network namespace: %w (%w)", err, ErrUnsafeInterface)
	}
	return nil
}

// inNetns runs fn on an OS thread switched into the network namespace
// named ns (under /run/netns), so that the sockets fn opens live there; with
// an empty ns it runs fn on a locked thread where it is. The thread is
// switched back afterwards; if that fails it stays locked, so the runtime
// discards it with its goroutine.
func inNetns(ns string, fn func() error) error {
	if err := netns.Do(ns, fn); err != nil {
		if errors.Is(err, netns.ErrName) {
			return fmt.Errorf("%w: %w", ErrInvalidEmitter, err)
		}
		return err
	}
	return nil
}
