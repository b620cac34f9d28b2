package upstream

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/pipgate/pipgate/pypi"
)

// TestPageMemory: a reservation waits while others hold the memory and
// fails with ErrBusy when its request cannot wait; a parsed page keeps
// what it holds until it is collected (a small one gives it back at once);
// a page that needs more than its share gets it only if free.
func TestPageMemory(t *testing.T) {
	m := NewPageMemory(100 << 20)
	r1, err := m.reserve(context.Background(), 80<<20)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := m.reserve(ctx, 80<<20); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second 80 MiB of 100: %v; want ErrBusy", err)
	}
	if err := r1.resize(110 << 20); !errors.Is(err, ErrBusy) {
		t.Errorf("growing past the bound: %v; want ErrBusy", err)
	}

	// A big page keeps its share until it is collected, and a waiter then
	// gets its turn.
	big := &pypi.ProjectPage{Files: make([]pypi.File, 100_000)} // about 16 MiB
	if err := r1.keepFor(big); err != nil {
		t.Fatal(err)
	}
	if h := m.Held(); h < 16<<20 || h > 30<<20 {
		t.Errorf("held %d bytes for a page of MemorySize %d", h, big.MemorySize())
	}
	r2, err := m.reserve(context.Background(), 30<<20)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		r, err := m.reserve(context.Background(), 60<<20) // 21 + 30 + 60 > 100: waits for big to be collected
		if err == nil {
			r.release(r.n)
		}
		done <- err
	}()
	runtime.KeepAlive(big)
	big = nil //nolint:ineffassign,wastedassign // the page is no longer reachable
	if err := <-done; err != nil {
		t.Fatalf("waiting for a collected page's memory: %v", err)
	}
	r2.release(r2.n)

	// A small page gives its reservation back at once.
	r3, err := m.reserve(context.Background(), 10<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := r3.keepFor(&pypi.ProjectPage{Files: make([]pypi.File, 10)}); err != nil {
		t.Fatal(err)
	}
	if h := m.Held(); h != 0 {
		t.Errorf("held %d bytes after a small page; want 0", h)
	}
}
