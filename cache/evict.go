package cache

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

// Blob is an open blob from [Store.OpenBlob]: the file, held in the store
// until Close, so the size limit never evicts a blob while it is read.
type Blob struct {
	*os.File
	release func()
	once    sync.Once
}

// Close closes the file and lets the blob be evicted again.
func (b *Blob) Close() error {
	err := b.File.Close()
	b.once.Do(b.release)
	return err
}

// lru orders the blobs by last use for Options.MaxBlobBytes. It lives in
// memory only: a hit moves an entry under a mutex and writes nothing to
// disk. At Open it is seeded from each blob's access or modification time,
// whichever is later, so the order survives a restart approximately (with
// relatime mounts, atime moves at most once a day).
type lru struct {
	mu sync.Mutex
	ll *list.List // of *lruEntry; front: most recently used
	m  map[string]*lruEntry
}

type lruEntry struct {
	sha  string
	size int64
	pins int // open Blobs
	el   *list.Element
}

func newLRU() *lru { return &lru{ll: list.New(), m: map[string]*lruEntry{}} }

// acquire marks sha used and pins it; the returned func unpins it. A blob
// the lru does not know (evicted a moment ago, or no limit set) gets a no-op.
func (l *lru) acquire(sha string) (release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[sha]
	if !ok {
		return func() {}
	}
	e.pins++
	l.ll.MoveToFront(e.el)
	return func() {
		l.mu.Lock()
		e.pins--
		l.mu.Unlock()
	}
}

// pin marks sha used and pins it before its file is known to exist (a
// commit about to link it, or one that found it already stored): an entry
// the lru does not know is created, with size 0 until [lru.setSize]. While
// pinned, evict never removes the file. The returned func unpins it.
func (l *lru) pin(sha string) (release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[sha]
	if !ok {
		e = &lruEntry{sha: sha}
		e.el = l.ll.PushFront(e)
		l.m[sha] = e
	}
	e.pins++
	l.ll.MoveToFront(e.el)
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			e.pins--
			l.mu.Unlock()
		})
	}
}

// setSize records the size of a pinned blob once its file is in place.
func (l *lru) setSize(sha string, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m[sha]; ok {
		e.size = size
	}
}

// setSizeIfUnknown sets the size of an entry created by a pin of a blob
// that was found in place (not one the lru already knew).
func (l *lru) setSizeIfUnknown(sha string, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m[sha]; ok && e.size == 0 {
		e.size = size
	}
}

// evict removes the least recently used blob that is not pinned and not the
// most recently used one (which is kept even when it alone exceeds the
// limit). remove deletes its file; it runs under the lru's lock, so a pin
// taken concurrently either comes first (and the blob is skipped) or finds
// the entry and the file gone. ok is false when no blob can be evicted; err
// is remove's error (the entry is then kept).
func (l *lru) evict(remove func(sha string) error) (sha string, size int64, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for el := l.ll.Back(); el != nil && el != l.ll.Front(); el = el.Prev() {
		e := el.Value.(*lruEntry)
		if e.pins > 0 {
			continue
		}
		if err := remove(e.sha); err != nil {
			return e.sha, 0, true, err
		}
		l.ll.Remove(el)
		delete(l.m, e.sha)
		return e.sha, e.size, true, nil
	}
	return "", 0, false, nil
}

// reset replaces the entries with blobs, oldest first.
func (l *lru) reset(blobs []lruSeed) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ll.Init()
	clear(l.m)
	for _, b := range blobs {
		e := &lruEntry{sha: b.sha, size: b.size}
		e.el = l.ll.PushFront(e)
		l.m[b.sha] = e
	}
}

type lruSeed struct {
	sha  string
	size int64
	used time.Time
}

// lastUse is the later of a file's access and modification times.
func lastUse(fi fs.FileInfo) time.Time {
	t := fi.ModTime()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if a := time.Unix(st.Atim.Sec, st.Atim.Nsec); a.After(t) {
			t = a
		}
	}
	return t
}

// evictMetrics are the size limit's counters. newEvictMetrics also
// registers the store's size and limit gauges.
type evictMetrics struct {
	evictions prometheus.Counter
	bytes     prometheus.Counter
	overLimit prometheus.Counter
}

func newEvictMetrics(reg prometheus.Registerer, limit int64, size func() float64) (*evictMetrics, error) {
	m := &evictMetrics{
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipgate_cache_evictions_total",
			Help: "File blobs removed because the blob store was above cache.max_size.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipgate_cache_evicted_bytes_total",
			Help: "Bytes of file blobs removed because the blob store was above cache.max_size.",
		}),
		overLimit: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipgate_cache_over_limit_total",
			Help: "Times the blob store stayed above cache.max_size because every other blob was in use (open, or committed for waiting requests).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	limitGauge := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pipgate_cache_max_size_bytes",
		Help: "The blob store's size limit (cache.max_size); 0: no limit.",
	})
	limitGauge.Set(float64(limit))
	sizeGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pipgate_cache_size_bytes",
		Help: "Deprecated: compare pipgate_cache_blob_bytes with pipgate_cache_max_size_bytes, and see pipgate_cache_db_bytes. Bytes held in the data directory (file blobs plus database).",
	}, size)
	for _, c := range []prometheus.Collector{m.evictions, m.bytes, m.overLimit, limitGauge, sizeGauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cache: registering metrics: %w", err)
		}
	}
	return m, nil
}

// pinBlob pins sha for a commit (see [lru.pin]); without a size limit
// nothing is ever evicted and the pin is a no-op.
func (s *Store) pinBlob(sha string) (release func()) {
	if s.maxBlobBytes <= 0 {
		return func() {}
	}
	return s.lru.pin(sha)
}

// stored records the size of a newly committed (and pinned) blob and makes
// room for it.
func (s *Store) stored(sha string, size int64) {
	if s.maxBlobBytes <= 0 {
		return
	}
	s.lru.setSize(sha, size)
	s.maybeEvict()
}

// maybeEvict removes least recently used blobs until the blob bytes are
// within Options.MaxBlobBytes, skipping every blob that is pinned (open, or
// committed for requests that have not opened it yet) and the most recently
// used one. When only pinned blobs are left, the store stays above the limit
// until they are released (pipgate_cache_over_limit_total counts those
// times): a request is never refused for want of room. One eviction runs at
// a time; the references to the evicted blobs are dropped after, in one
// transaction.
func (s *Store) maybeEvict() {
	if s.maxBlobBytes <= 0 || s.blobBytes.Load() <= s.maxBlobBytes {
		return
	}
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	var gone []string
	remove := func(sha string) error {
		p, _ := s.blobPath(sha)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	for s.blobBytes.Load() > s.maxBlobBytes {
		sha, size, ok, err := s.lru.evict(remove)
		if !ok {
			s.evictions.overLimit.Inc()
			s.log.Warn("blob store above cache.max_size, but every other blob is in use; over the limit until they are released",
				"blob_bytes", s.blobBytes.Load(), "max_size_bytes", s.maxBlobBytes)
			break
		}
		if err != nil {
			s.log.Error("evicting a blob", "sha256", sha, "err", err)
			break
		}
		s.blobBytes.Add(-size)
		s.evictions.evictions.Inc()
		s.evictions.bytes.Add(float64(size))
		gone = append(gone, sha)
	}
	if len(gone) == 0 {
		return
	}
	s.log.Info("evicted least recently used blobs", "count", len(gone), "blob_bytes", s.blobBytes.Load(),
		"max_size_bytes", s.maxBlobBytes)
	if err := s.dropRefsTo(gone); err != nil {
		s.log.Error("removing references to evicted blobs", "err", err)
	}
}

// dropRefsTo deletes the references that name one of the blobs: they would
// point at nothing (a miss either way, but `cache verify` reports them). The
// blobs' stamps go too.
func (s *Store) dropRefsTo(shas []string) error {
	slices.Sort(shas)
	for _, sha := range shas {
		s.stamps.Delete(sha)
	}
	return s.updateNow(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucketBlobs)); b != nil {
			for _, sha := range shas {
				if err := b.Delete([]byte(sha)); err != nil {
					return err
				}
			}
		}
		b := tx.Bucket([]byte(bucketRefs))
		if b == nil {
			return nil
		}
		var del [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var r refRecord
			if decode(v, &r) == nil {
				if _, found := slices.BinarySearch(shas, r.SHA256); found {
					del = append(del, slices.Clone(k))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// seedBlobs walks blobs/sha256, sets the blob total and, with a size limit,
// seeds the lru from the files' last use.
func (s *Store) seedBlobs() error {
	var n int64
	var seeds []lruSeed
	err := walkBlobs(s.blobRoot(), func(p string, d fs.DirEntry) error {
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		if s.maxBlobBytes > 0 {
			seeds = append(seeds, lruSeed{sha: filepath.Base(p), size: fi.Size(), used: lastUse(fi)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: sizing blobs: %w", err)
	}
	s.blobBytes.Store(n)
	if s.maxBlobBytes > 0 {
		slices.SortFunc(seeds, func(a, b lruSeed) int { return a.used.Compare(b.used) })
		s.lru.reset(seeds)
	}
	return nil
}
