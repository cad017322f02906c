//go:build linux

package crashtest

import "syscall"

// procAttr puts a node in its own process group (so that the harness can
// signal the group) and kills it if the test process dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
