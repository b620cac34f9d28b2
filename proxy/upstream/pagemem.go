package upstream

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/pipgate/pipgate/pypi"
)

// ErrBusy is a project page that could not be parsed now: the memory for
// project pages ([PageMemory]) is taken by other large pages for longer
// than the request could wait. It is worth retrying.
var ErrBusy = errors.New("pipgate is busy with other large project pages")

// DefaultPageMemory is the default bound of a [PageMemory]: room for one
// project page at the parsers' limit ([pypi.MaxPageMemory]) besides the
// page cache's pages (64 MiB by default), so that the largest pages are
// parsed and served one at a time, and one always gets its turn.
const DefaultPageMemory = 256 << 20

// PageMemory bounds the memory of the project pages parsed from the
// upstreams and still in use, in bytes: a parse first reserves what its
// page may take (from the response's Content-Length, else the most a page
// may take), waiting its turn; once parsed, the reservation is cut down to
// what the page holds, and that is released when the page is no longer
// reachable (runtime.AddCleanup), wherever it was kept. So four different
// huge pages requested at once are parsed and served one after the other,
// not all at once. A page that would need more than it reserved gets the
// difference only if it is free at once (no parse holds memory while
// waiting for more, so two never wait for each other); otherwise it is
// refused with [ErrBusy], as is a request that cannot wait any longer.
// Safe for concurrent use; the zero value is not usable: see
// [NewPageMemory].
type PageMemory struct {
	capacity int64
	sem      *semaphore.Weighted

	mu      sync.Mutex
	held    int64 // reserved, for tests and the gauge
	waiters int
}

// NewPageMemory returns a bound of capacity bytes (0: [DefaultPageMemory]).
func NewPageMemory(capacity int64) *PageMemory {
	if capacity <= 0 {
		capacity = DefaultPageMemory
	}
	return &PageMemory{capacity: capacity, sem: semaphore.NewWeighted(capacity)}
}

// Capacity returns the bound in bytes.
func (m *PageMemory) Capacity() int64 { return m.capacity }

// Held returns the bytes reserved now.
func (m *PageMemory) Held() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held
}

// A page takes on the heap about 1.3 times what its MemorySize counts
// (allocation size classes, slice capacity): see heapBytes.

// heapBytes is what a page of MemorySize n takes on the heap.
func heapBytes(n int64) int64 { return n + n*3/10 }

// bodyFactor is what a page typically takes in memory per byte of its
// body (a 56 MiB page of 390k small entries: about 2.5).
const bodyFactor = 3

// reservation is one page's share of a PageMemory.
type reservation struct {
	m *PageMemory
	n int64
}

// estimate is what a page whose body is contentLength bytes (-1: unknown)
// reserves before it is parsed: about what such a page takes, at most
// what the parsers let a page hold (a page that takes more than its
// estimate asks for the rest once parsed).
func (m *PageMemory) estimate(contentLength int64) int64 {
	most := min(pypi.MaxPageMemory, m.capacity)
	if contentLength < 0 || contentLength > pypi.MaxPageBytes {
		return most
	}
	return min(max(bodyFactor*contentLength, 64<<10), most)
}

// reserve waits for n bytes, until ctx ends. While it waits, it runs the
// garbage collector now and then: pages nobody uses any more give their
// memory back only once collected.
func (m *PageMemory) reserve(ctx context.Context, n int64) (*reservation, error) {
	if m.sem.TryAcquire(n) {
		return m.add(n), nil
	}
	m.mu.Lock()
	m.waiters++
	first := m.waiters == 1
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.waiters--
		m.mu.Unlock()
	}()
	if first {
		go m.collectWhileWaiting()
	}
	if err := m.sem.Acquire(ctx, n); err != nil {
		return nil, fmt.Errorf("%w: waited for %d MiB of page memory (of %d MiB) until the request's time ran out: %w",
			ErrBusy, n>>20, m.capacity>>20, err)
	}
	return m.add(n), nil
}

// collectWhileWaiting collects garbage every 200ms while a reservation
// waits, so that the memory of pages no longer used is released.
func (m *PageMemory) collectWhileWaiting() {
	for {
		runtime.GC()
		time.Sleep(200 * time.Millisecond)
		m.mu.Lock()
		w := m.waiters
		m.mu.Unlock()
		if w == 0 {
			return
		}
	}
}

func (m *PageMemory) add(n int64) *reservation {
	m.mu.Lock()
	m.held += n
	m.mu.Unlock()
	return &reservation{m: m, n: n}
}

// resize makes the reservation n bytes: less is given back at once; more
// is taken only if free now (else ErrBusy).
func (r *reservation) resize(n int64) error {
	switch {
	case n < r.n:
		r.release(r.n - n)
	case n > r.n:
		if !r.m.sem.TryAcquire(n - r.n) {
			return fmt.Errorf("%w: this page takes %d MiB of page memory, more than its %d MiB share (of %d MiB) while others are in use",
				ErrBusy, n>>20, r.n>>20, r.m.capacity>>20)
		}
		r.m.add(n - r.n)
		r.n = n
	}
	return nil
}

func (r *reservation) release(n int64) {
	if n <= 0 {
		return
	}
	r.n -= n
	r.m.mu.Lock()
	r.m.held -= n
	r.m.mu.Unlock()
	r.m.sem.Release(n)
}

// smallPage is the heap size below which a parsed page gives its
// reservation back at once: small pages are bounded by the page cache and
// the requests in flight, and one that stayed reserved in the page cache
// would take room the largest pages need.
const smallPage = 4 << 20

// keepFor cuts the reservation to what p holds and ties it to p: it is
// released when p is collected (at once for a small page).
func (r *reservation) keepFor(p *pypi.ProjectPage) error {
	n := heapBytes(p.MemorySize())
	if n < smallPage {
		r.release(r.n)
		return nil
	}
	if err := r.resize(n); err != nil {
		return err
	}
	runtime.AddCleanup(p, func(r *reservation) { r.release(r.n) }, r)
	return nil
}
