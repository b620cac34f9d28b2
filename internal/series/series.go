// Package series resolves the child of a Prometheus metric vector once per
// label tuple: WithLabelValues hashes every label value and takes the
// vector's lock on each call, which a download paid for several series.
// Callers fold their label values into closed sets first (as they did for
// WithLabelValues); a Cache also stops remembering past a bound, so a bug
// that mints label values costs lookups, never memory.
package series

import "sync"

// maxEntries bounds a Cache; past it, new tuples are resolved every time.
const maxEntries = 4096

// Cache maps a comparable label tuple K to its resolved series M.
type Cache[K comparable, M any] struct {
	mu      sync.RWMutex
	m       map[K]M
	resolve func(K) M
}

// New returns a Cache that calls resolve (typically a vector's
// WithLabelValues) the first time it sees a tuple.
func New[K comparable, M any](resolve func(K) M) *Cache[K, M] {
	return &Cache[K, M]{m: make(map[K]M), resolve: resolve}
}

// Get returns k's series.
func (c *Cache[K, M]) Get(k K) M {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = c.resolve(k)
	c.mu.Lock()
	if len(c.m) < maxEntries {
		c.m[k] = v
	}
	c.mu.Unlock()
	return v
}
