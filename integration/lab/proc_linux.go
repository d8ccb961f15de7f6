package lab

import "syscall"

// daemonSysProcAttr makes the kernel kill a daemon if the test process dies
// without running its cleanups (a panic or a -timeout), so no router is left
// behind.
func daemonSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
