//go:build !linux

package influxlocal

import "syscall"

// sysProcAttr puts influxd in its own process group, so a Ctrl-C in the
// terminal reaches our process, which then stops influxd cleanly, instead of
// killing both at once. (Pdeathsig, used on Linux, does not exist here.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
