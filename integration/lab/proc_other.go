//go:build !linux

package lab

import "syscall"

// daemonSysProcAttr returns nil: outside Linux there is no parent-death
// signal, and a daemon outlives a test process that dies without cleanup.
func daemonSysProcAttr() *syscall.SysProcAttr {
	return nil
}
