//go:build unix && !linux

package crashtest

import "syscall"

// procAttr puts a node in its own process group, so that the harness can
// signal the group.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
