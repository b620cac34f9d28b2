//go:build unix

package s3test

import "syscall"

// Pause stops the server without closing its port (SIGSTOP to its process
// group): connections are accepted by the kernel and never answered, a
// slow or hung S3. Resume continues it.
func (s *Server) Pause() {
	s.t.Helper()
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(s.Resume) // the server dies with the test either way; Kill after Resume is plain
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT)
	}
}
