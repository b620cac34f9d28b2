//go:build unix && !linux

package testbin

import (
	"os/exec"
	"syscall"
)

// prepare puts cmd in its own process group (no parent-death signal
// outside Linux: a killed test binary can leave it running).
func prepare(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// dieWithParent does nothing outside Linux: a test binary whose go test was
// killed runs on to the end of its tests.
func dieWithParent() error { return nil }
