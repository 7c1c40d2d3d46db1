package influxlocal

import "syscall"

// sysProcAttr puts influxd in its own process group, so a Ctrl-C in the
// terminal (sent to the foreground group) reaches our process, which then
// stops influxd cleanly, instead of killing both at once. Pdeathsig kills an
// orphaned influxd when we die without cleaning up (a test binary killed by
// -timeout, a SIGKILLed launcher), so it does not hold ports and directories;
// the WAL is fsynced on every write, so nothing acknowledged is lost. (Linux
// sends it when the thread that started influxd exits; Go ends threads only
// when a goroutine exits while locked to one, which our programs do not do.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
