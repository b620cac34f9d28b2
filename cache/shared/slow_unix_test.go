//go:build unix

package shared

import (
	"errors"
	"testing"
	"time"

	"github.com/pipgate/pipgate/internal/s3test"
)

// TestSlowServer: a real S3 server that stops answering (SIGSTOP: the
// port still accepts connections) makes each lookup fail after Timeout,
// not hang; after Failures of them the bucket is skipped, and once the
// server answers again the prober puts it back in use.
func TestSlowServer(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	f := newFixture(t, srv, func(o *Options) { o.Timeout, o.Failures, o.Cooldown = 300*time.Millisecond, 2, 50*time.Millisecond })
	sha := f.local.add([]byte("slow"))
	srv.Pause()
	for i := range 2 {
		start := time.Now()
		_, err := f.get(t, sha)
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrSkipped) {
			t.Fatalf("Get %d from a hung server: %v, want a timeout", i, err)
		}
		if d := time.Since(start); d > time.Minute {
			t.Fatalf("Get %d took %v: the timeout did not bound it", i, d)
		}
	}
	if _, err := f.get(t, sha); !errors.Is(err, ErrSkipped) {
		t.Fatalf("Get after 2 timeouts: %v, want ErrSkipped", err)
	}
	if got := counter(t, f.store.m.errors, "get"); got != 2 {
		t.Errorf("errors{op=get} = %v; want 2 (a skipped lookup sends nothing)", got)
	}
	if up, _ := f.store.Health(); up {
		t.Error("Health says up while the breaker is open")
	}
	srv.Resume()
	for !f.store.breaker.allow() {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := f.get(t, sha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after the server resumed: %v, want ErrNotFound", err)
	}
}
