package lab

import "syscall"

// daemonSysProcAttr makes the kernel kill a daemon if the test process dies
// without running its cleanups (a panic or a -timeout), so no router is left
// behind, and puts it in a process group of its own, so a Ctrl-C meant for
// `go test` reaches the test process (which tears its lab down) and not
// the daemons behind its back. Daemons that change their user ID (FRR)
// lose the parent-death signal; a Lab stops them on SIGINT and SIGTERM.
func daemonSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
