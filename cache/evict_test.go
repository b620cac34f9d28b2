package cache_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/cache"
)

const mib = 1 << 20

func putBlob(t *testing.T, s *cache.Store, content []byte) string {
	t.Helper()
	w, err := s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	sum, err := w.Commit("")
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func blobContent(i int, size int) []byte {
	return bytes.Repeat([]byte{byte('a' + i)}, size)
}

// blobDirBytes sums the sizes of the files under blobs/sha256 on disk.
func blobDirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(filepath.Join(dir, "blobs", "sha256"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEvictLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s, err := cache.Open(cache.Options{Dir: dir, MaxBlobBytes: 8 * mib, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	a := putBlob(t, s, blobContent(0, 3*mib))
	b := putBlob(t, s, blobContent(1, 3*mib))
	// A hit on a makes b the least recently used.
	f, err := s.OpenBlob(a)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	c := putBlob(t, s, blobContent(2, 3*mib)) // 9 MiB: b goes
	for sha, want := range map[string]bool{a: true, b: false, c: true} {
		if got := s.HasBlob(sha); got != want {
			t.Errorf("HasBlob(%s…) = %v; want %v", sha[:8], got, want)
		}
	}
	if got := blobDirBytes(t, dir); got != 6*mib {
		t.Errorf("blobs on disk: %d bytes; want %d", got, 6*mib)
	}
	if got := counterValue(t, reg, "pipgate_cache_evictions_total"); got != 1 {
		t.Errorf("evictions = %v; want 1", got)
	}
	if got := counterValue(t, reg, "pipgate_cache_evicted_bytes_total"); got != 3*mib {
		t.Errorf("evicted bytes = %v; want %d", got, 3*mib)
	}
	if s.SizeBytes() < 6*mib || s.SizeBytes() > 7*mib {
		t.Errorf("SizeBytes = %d; want 6 MiB plus the database", s.SizeBytes())
	}
	// The store's own size gauge, read at scrape time, is the same figure.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var size float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "pipgate_cache_size_bytes" {
			size = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if size != float64(s.SizeBytes()) {
		t.Errorf("pipgate_cache_size_bytes = %v; want SizeBytes %d", size, s.SizeBytes())
	}
}

// counterValue returns the value of the counter name in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestEvictNeverAnOpenBlob(t *testing.T) {
	dir := t.TempDir()
	s, err := cache.Open(cache.Options{Dir: dir, MaxBlobBytes: 4 * mib})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := putBlob(t, s, blobContent(0, 3*mib))
	open, err := s.OpenBlob(a)
	if err != nil {
		t.Fatal(err)
	}
	b := putBlob(t, s, blobContent(1, 3*mib)) // over, but a is open and b the newest
	if !s.HasBlob(a) || !s.HasBlob(b) {
		t.Fatalf("a blob was evicted while open or just stored: a %v, b %v", s.HasBlob(a), s.HasBlob(b))
	}
	// The reader gets every byte.
	got, err := io.ReadAll(open)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, blobContent(0, 3*mib)) {
		t.Error("the open blob's content changed")
	}
	open.Close()
	c := putBlob(t, s, blobContent(2, 3*mib)) // now a (least recent, closed) and b go
	if s.HasBlob(a) || s.HasBlob(b) || !s.HasBlob(c) {
		t.Errorf("after close: a %v, b %v, c %v; want false, false, true", s.HasBlob(a), s.HasBlob(b), s.HasBlob(c))
	}
	if got := blobDirBytes(t, dir); got != 3*mib {
		t.Errorf("blobs on disk: %d; want %d", got, 3*mib)
	}
}

func TestEvictDropsReferencesAndVerifyStaysClean(t *testing.T) {
	dir := t.TempDir()
	s, err := cache.Open(cache.Options{Dir: dir, MaxBlobBytes: 5 * mib})
	if err != nil {
		t.Fatal(err)
	}
	a := putBlob(t, s, blobContent(0, 3*mib))
	if err := s.PutRef("metadata:"+strings.Repeat("0", 64), a); err != nil {
		t.Fatal(err)
	}
	putBlob(t, s, blobContent(1, 3*mib))
	if _, err := s.Ref("metadata:" + strings.Repeat("0", 64)); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("the reference to the evicted blob: err %v; want ErrNotFound", err)
	}
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("verify after eviction: %v", rep.Problems)
	}
	s.Close()
}

func TestEvictOrderSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var shas []string
	for i := range 3 {
		shas = append(shas, putBlob(t, s, blobContent(i, mib)))
	}
	s.Close()
	// Last used: blob 1 long ago, blob 0 a while ago, blob 2 recently.
	now := time.Now()
	for i, age := range []time.Duration{2 * time.Hour, 3 * time.Hour, time.Hour} {
		sum := sha256.Sum256(blobContent(i, mib))
		p := filepath.Join(dir, "blobs", "sha256", hex.EncodeToString(sum[:])[:2], hex.EncodeToString(sum[:]))
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	// A lower limit at Open evicts the least recently used right away.
	s, err = cache.Open(cache.Options{Dir: dir, MaxBlobBytes: 2 * mib})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, want := range []bool{true, false, true} {
		if got := s.HasBlob(shas[i]); got != want {
			t.Errorf("blob %d present = %v; want %v", i, got, want)
		}
	}
}

// A blob skipped because it was open goes when it is closed, if the store
// is still above the limit: no later Commit is needed.
func TestEvictOnClose(t *testing.T) {
	dir := t.TempDir()
	s, err := cache.Open(cache.Options{Dir: dir, MaxBlobBytes: 4 * mib})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := putBlob(t, s, blobContent(0, 3*mib))
	open, err := s.OpenBlob(a)
	if err != nil {
		t.Fatal(err)
	}
	b := putBlob(t, s, blobContent(1, 3*mib))
	if got := blobDirBytes(t, dir); got != 6*mib {
		t.Fatalf("with a open: %d bytes on disk; want both blobs (%d)", got, 6*mib)
	}
	open.Close()
	if s.HasBlob(a) || !s.HasBlob(b) {
		t.Errorf("after closing a: a %v, b %v; want a evicted, b kept", s.HasBlob(a), s.HasBlob(b))
	}
	if got := blobDirBytes(t, dir); got != 3*mib {
		t.Errorf("blobs on disk: %d; want %d", got, 3*mib)
	}
}

// BenchmarkOpenBlobHit is the hit path with and without a size limit: the
// limit adds a mutex and a list move, no disk write.
func BenchmarkOpenBlobHit(b *testing.B) {
	for _, limit := range []int64{0, 1 << 30} {
		b.Run(fmt.Sprintf("max_size=%d", limit), func(b *testing.B) {
			s, err := cache.Open(cache.Options{Dir: b.TempDir(), MaxBlobBytes: limit})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var shas []string
			for i := range 64 {
				w, _ := s.NewBlob()
				fmt.Fprintf(w, "blob %d", i)
				sum, err := w.Commit("")
				if err != nil {
					b.Fatal(err)
				}
				shas = append(shas, sum)
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					f, err := s.OpenBlob(shas[i%len(shas)])
					if err != nil {
						b.Error(err)
						return
					}
					f.Close()
					i++
				}
			})
		})
	}
}

// TestEvictNeverPinnedCommit: a blob committed with CommitPinned survives
// any number of later commits under the limit, also when it found its blob
// already in place, until it is unpinned; meanwhile the store goes over the
// limit and counts it, and it comes back under the limit after.
func TestEvictNeverPinnedCommit(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s, err := cache.Open(cache.Options{Dir: dir, MaxBlobBytes: 8 * mib, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commitPinned := func(content []byte) (string, func()) {
		t.Helper()
		w, err := s.NewBlob()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		if _, err := w.Write(content); err != nil {
			t.Fatal(err)
		}
		sum, unpin, err := w.CommitPinned("")
		if err != nil {
			t.Fatal(err)
		}
		return sum, unpin
	}
	a, unpinA := commitPinned(blobContent(0, 5*mib))
	b, unpinB := commitPinned(blobContent(1, 5*mib))
	// Stored already: the second commit of a pins it too.
	a2, unpinA2 := commitPinned(blobContent(0, 5*mib))
	c := putBlob(t, s, blobContent(2, 5*mib)) // most recent, kept
	if a2 != a {
		t.Fatalf("same content, sha256 %s then %s", a, a2)
	}
	for _, sha := range []string{a, b, c} {
		if !s.HasBlob(sha) {
			t.Errorf("blob %s… evicted while pinned (or most recent)", sha[:8])
		}
	}
	if got := gatherValue(t, reg, "pipgate_cache_over_limit_total"); got == 0 {
		t.Error("pipgate_cache_over_limit_total = 0 while 15 MiB are pinned under an 8 MiB limit")
	}
	unpinA()
	unpinA() // a second call changes nothing
	if !s.HasBlob(a) {
		t.Error("blob a evicted while the second commit still pins it")
	}
	unpinB()
	if s.HasBlob(b) {
		t.Error("blob b kept after its pin was released above the limit")
	}
	unpinA2()
	if s.HasBlob(a) || !s.HasBlob(c) {
		t.Errorf("after every pin is released: a kept %v (want false), c kept %v (want true)", s.HasBlob(a), s.HasBlob(c))
	}
	if n := blobDirBytes(t, dir); n > 8*mib {
		t.Errorf("blob store holds %d bytes after the pins are gone; limit %d", n, 8*mib)
	}
}

func gatherValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			if c := mf.GetMetric()[0].GetCounter(); c != nil {
				return c.GetValue()
			}
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not gathered", name)
	return 0
}
