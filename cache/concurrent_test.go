package cache_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

func TestConcurrentFactsAndBlobs(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	const workers, perWorker = 24, 20
	key := func(w, i int) cache.FactKey {
		return cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sha([]byte(fmt.Sprint(w, "/", i))), TrustRootSHA256: sumC}
	}
	blob := bytes.Repeat([]byte("shared wheel "), 50000)

	var wg sync.WaitGroup
	errs := make(chan error, workers*(perWorker+2))
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				k := key(w, i)
				f := pypi.Facts{Verdict: pypi.VerdictInvalid, Detail: fmt.Sprint(w, "/", i)}
				if err := s.PutFacts(k, f); err != nil {
					errs <- err
					return
				}
				// Read our own write and a neighbour's, which may not exist yet.
				got, _, err := s.Facts(k)
				if err != nil || got.Detail != f.Detail {
					errs <- fmt.Errorf("Facts(%d/%d): got %q, err %s; want %q", w, i, got.Detail, fmt.Sprint(err), f.Detail)
				}
				if _, _, err := s.Facts(key((w+1)%workers, i)); err != nil && !errors.Is(err, cache.ErrNotFound) {
					errs <- err
				}
			}
		})
		wg.Go(func() {
			bw, err := s.NewBlob()
			if err != nil {
				errs <- err
				return
			}
			defer bw.Abort()
			// Small writes, so that the writers interleave.
			if _, err := io.CopyBuffer(bw, bytes.NewReader(blob), make([]byte, 4096)); err != nil {
				errs <- err
				return
			}
			if got, err := bw.Commit(sha(blob)); err != nil || got != sha(blob) {
				errs <- fmt.Errorf("Commit: got %q, err %s", got, fmt.Sprint(err))
			}
		})
		wg.Go(func() {
			if err := s.UpdateHistory("demo", func(h *cache.History) { h.ObserveVerified("github:o/r", fmt.Sprint(w), h.FirstSeen) }); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Facts != workers*perWorker || st.Blobs != 1 || st.BlobBytes != int64(len(blob)) || st.TempFiles != 0 {
		t.Errorf("Stats: got %+v; want %d facts, 1 blob of %d bytes, no temp files", st, workers*perWorker, len(blob))
	}
	h, err := s.History("demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Publishers) != 1 || len(h.Publishers[0].Versions) != workers {
		t.Errorf("History after %d concurrent updates: got %+v; want one publisher with %d versions", workers, h, workers)
	}
	if got, want := s.SizeBytes(), st.DBBytes+int64(len(blob)); got != want {
		t.Errorf("SizeBytes after %d concurrent writes of one blob: got %d; want %d", workers, got, want)
	}
	if got := files(t, filepath.Join(dir, "blobs")); len(got) != 1 {
		t.Errorf("blob files: got %q; want one", got)
	}
}
