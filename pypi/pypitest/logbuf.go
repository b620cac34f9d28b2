package pypitest

import (
	"bytes"
	"sync"
	"time"
)

// LogBuffer is a log sink that several goroutines may write to and a test
// may wait on: every Write wakes [LogBuffer.WaitFor], so a test waits for
// the log line that says something happened instead of sleeping. The zero
// value is ready to use.
type LogBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed by the next Write; nil when nobody waits
}

// Write appends p and wakes the waiters.
func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written != nil {
		close(s.written)
		s.written = nil
	}
	return s.b.Write(p)
}

// WaitFor returns true once cond holds for the contents, checking now and
// after each Write, or false when timeout passes first.
func (s *LogBuffer) WaitFor(timeout time.Duration, cond func(string) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if cond(s.b.String()) {
			s.mu.Unlock()
			return true
		}
		if s.written == nil {
			s.written = make(chan struct{})
		}
		written := s.written
		s.mu.Unlock()
		select {
		case <-written:
		case <-deadline.C:
			return false
		}
	}
}

// String returns the contents so far.
func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
