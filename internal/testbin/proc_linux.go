//go:build linux

package testbin

import (
	"errors"
	"os"
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

// dieWithParent has the kernel SIGKILL this process when the process that
// started it (go test) dies: a killed `go test` takes its test binaries
// along, and with them (Pdeathsig above) every process they started, and
// their janitors clean up. Without it a test binary whose go test was
// SIGKILLed runs on, orphaned, to the end of its tests.
func dieWithParent() error {
	ppid := os.Getppid()
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); e != 0 {
		return e
	}
	if os.Getppid() != ppid { // it died before the prctl
		return errors.New("the parent process is gone")
	}
	return nil
}
