package cache

import (
	"testing"
	"time"
)

// CloseUnderlying closes w's temporary file behind its back, so the next
// Write fails as on a broken disk.
func CloseUnderlying(t testing.TB, w *BlobWriter) {
	t.Helper()
	if err := w.f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Sweep runs the stale temp sweep as if at time now, however recent the
// last one was.
func Sweep(s *Store, now time.Time) {
	s.lastSweep.Store(0)
	s.maybeSweep(now)
}

// Rehashes returns how many times OpenBlob hashed a blob again.
func Rehashes(s *Store) int64 { return s.rehashes.Load() }

// HoldRecovery makes the next replacement of a faulty database wait until
// the returned func is called.
func HoldRecovery(s *Store) (release func()) {
	ch := make(chan struct{})
	s.beforeRecover = func() { <-ch }
	return func() { close(ch) }
}
