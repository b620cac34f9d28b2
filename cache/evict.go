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

// add records a new blob as the most recently used.
func (l *lru) add(sha string, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m[sha]; ok {
		l.ll.MoveToFront(e.el)
		return
	}
	e := &lruEntry{sha: sha, size: size}
	e.el = l.ll.PushFront(e)
	l.m[sha] = e
}

// victim removes and returns the least recently used blob that is not
// pinned and not the most recently used one (which is kept even when it
// alone exceeds the limit, so the file just stored can still be opened by
// the requests waiting for it). ok is false when there is none.
func (l *lru) victim() (sha string, size int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for el := l.ll.Back(); el != nil && el != l.ll.Front(); el = el.Prev() {
		e := el.Value.(*lruEntry)
		if e.pins > 0 {
			continue
		}
		l.ll.Remove(el)
		delete(l.m, e.sha)
		return e.sha, e.size, true
	}
	return "", 0, false
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
		Help: "Bytes held in the data directory (file blobs and database).",
	}, size)
	for _, c := range []prometheus.Collector{m.evictions, m.bytes, limitGauge, sizeGauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cache: registering metrics: %w", err)
		}
	}
	return m, nil
}

// stored records a newly committed blob as the most recently used and
// makes room for it.
func (s *Store) stored(sha string, size int64) {
	if s.maxBlobBytes <= 0 {
		return
	}
	s.lru.add(sha, size)
	s.maybeEvict()
}

// maybeEvict removes least recently used blobs until the blob bytes are
// within Options.MaxBlobBytes, skipping every blob that is open and the
// most recently used one. One eviction runs at a time; files are removed
// outside every lock, and the references to them after, in one
// transaction.
func (s *Store) maybeEvict() {
	if s.maxBlobBytes <= 0 || s.blobBytes.Load() <= s.maxBlobBytes {
		return
	}
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	var gone []string
	for s.blobBytes.Load() > s.maxBlobBytes {
		sha, size, ok := s.lru.victim()
		if !ok {
			s.log.Warn("blob store above cache.max_size, but every other blob is in use",
				"blob_bytes", s.blobBytes.Load(), "max_size_bytes", s.maxBlobBytes)
			break
		}
		p, _ := s.blobPath(sha)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("evicting a blob", "sha256", sha, "err", err)
			continue
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
	return s.db.Update(func(tx *bolt.Tx) error {
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
