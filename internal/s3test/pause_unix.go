//go:build unix

package s3test

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Pause stops the server without closing its port (SIGSTOP to its process
// group): connections are accepted by the kernel and never answered, a
// slow or hung S3. It returns once the process is stopped (Linux: its
// /proc state says so). Resume continues it.
func (s *Server) Pause() {
	s.t.Helper()
	pid := s.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(s.Resume) // tidy: the server dies with the test either way
	stat := fmt.Sprintf("/proc/%d/stat", pid)
	for {
		b, err := os.ReadFile(stat)
		if err != nil { // no /proc: trust the signal
			return
		}
		// pid (comm) STATE ...: the state follows the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT)
	}
}
