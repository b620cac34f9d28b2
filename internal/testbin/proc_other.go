//go:build !unix

package testbin

import (
	"errors"
	"os/exec"
)

func prepare(*exec.Cmd) {}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}

// lockFile does not lock: parallel test binaries may build twice.
func lockFile(string) (func(), error) { return func() {}, nil }

func detach(*exec.Cmd) {}

func ignoreSignals() {}

func dieWithParent() error { return nil }

func execSelf([]string) error { return errors.ErrUnsupported }
