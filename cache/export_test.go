package cache

import "testing"

// CloseUnderlying closes w's temporary file behind its back, so the next
// Write fails as on a broken disk.
func CloseUnderlying(t testing.TB, w *BlobWriter) {
	t.Helper()
	if err := w.f.Close(); err != nil {
		t.Fatal(err)
	}
}
