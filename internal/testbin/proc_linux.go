//go:build linux

package testbin

import (
	"os/exec"
	"syscall"
)

// prepare puts cmd in its own process group and has the kernel SIGKILL it
// when the test binary dies. Pdeathsig fires when the OS thread that started
// the process exits; the Go runtime keeps its threads, except a thread
// locked by runtime.LockOSThread whose goroutine exits locked, which tests
// starting processes do not do.
func prepare(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
