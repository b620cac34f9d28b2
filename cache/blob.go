package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DigestError reports content whose sha256 is not the one expected.
type DigestError struct {
	Want, Got string // lower-case hex
}

// Error names both digests.
func (e *DigestError) Error() string {
	return fmt.Sprintf("cache: sha256 mismatch: want %s, got %s", e.Want, e.Got)
}

func (s *Store) blobRoot() string { return filepath.Join(s.dir, blobsDir, shaDir) }

// blobDirOf is the blob root of the store in dir, with a trailing separator.
func blobDirOf(dir string) string {
	return filepath.Join(dir, blobsDir, shaDir) + string(filepath.Separator)
}

func (s *Store) tmpRoot() string { return filepath.Join(s.dir, blobsDir, tmpDir) }

// blobPath returns Dir/blobs/sha256/ab/<sum> for a valid digest. The name is
// checked to be 64 lower-case hex characters, so no path tricks get through.
func (s *Store) blobPath(sum string) (string, error) {
	if !isHex64(sum) {
		return "", fmt.Errorf("%w: blob sha256 %q", ErrInvalidKey, sum)
	}
	// blobDir is clean and ends in a separator, and sum is hex: nothing
	// to clean (filepath.Join cost a fifth of a hit's OpenBlob).
	return s.blobDir + sum[:2] + string(filepath.Separator) + sum, nil
}

// OpenBlob opens the blob with the given sha256 for reading, or returns
// [ErrNotFound]. It counts as a use for the size limit (in memory only),
// and the blob is not evicted until the caller closes it. The file returned
// is the one Commit stored: one whose size, times or inode changed since is
// hashed again, and when its content no longer matches it is quarantined
// and OpenBlob returns [ErrBlobChanged] (which also matches ErrNotFound).
func (s *Store) OpenBlob(sha256 string) (*Blob, error) {
	p, err := s.blobPath(sha256)
	if err != nil {
		return nil, err
	}
	release := s.lru.acquire(sha256) // before the open: eviction skips it from here
	// O_NONBLOCK changes nothing for a regular file, but spares os.Open
	// four fcntl calls per hit: it sets and clears non-blocking mode around
	// its (failing) attempt to put the file in the poller.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		release()
		return nil, fmt.Errorf("blob %s: %w", sha256, ErrNotFound)
	}
	if err != nil {
		release()
		return nil, fmt.Errorf("cache: opening blob: %w", err)
	}
	if err := s.checkOpenBlob(sha256, p, f); err != nil {
		f.Close()
		release()
		return nil, err
	}
	// Closing it may bring the store back within the limit: a blob that
	// was open when the last Commit looked is evictable now.
	return &Blob{File: f, release: func() { release(); s.maybeEvict() }}, nil
}

// HasBlob reports whether the blob with the given sha256 exists. An invalid
// digest has no blob.
func (s *Store) HasBlob(sha256 string) bool {
	p, err := s.blobPath(sha256)
	if err != nil {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// BlobWriter writes one blob: a temporary file under Dir/blobs/tmp, hashed
// while written, moved into place by Commit. A BlobWriter is not safe for
// concurrent use; end it with Commit or Abort (a deferred Abort after Commit
// is harmless).
type BlobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	werr error
	done bool
}

// NewBlob starts a blob in a new temporary file.
func (s *Store) NewBlob() (*BlobWriter, error) {
	if s.readOnly {
		return nil, errors.New("cache: NewBlob on a read-only store")
	}
	s.maybeSweep(time.Now())
	f, err := os.CreateTemp(s.tmpRoot(), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("cache: creating temp blob: %w", err)
	}
	s.mu.Lock()
	s.active[f.Name()] = struct{}{}
	s.mu.Unlock()
	return &BlobWriter{s: s, f: f, h: sha256.New()}, nil
}

// Write writes p to the temporary file and hashes what was written.
func (w *BlobWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, ErrClosed
	}
	if w.werr != nil {
		return 0, w.werr
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.werr = fmt.Errorf("cache: writing temp blob: %w", err)
		return n, w.werr
	}
	return n, nil
}

// Size returns the number of bytes written so far.
func (w *BlobWriter) Size() int64 { return w.n }

// Commit ends the write and returns the blob's sha256. When wantSHA256 is
// not "" and differs from the content's digest, Commit removes the temporary
// file and returns a [*DigestError]. Otherwise it syncs the file and moves
// it into place (mode 0400; a hard link, so an existing blob is never
// replaced); if the blob already exists (another writer got there first),
// the temporary file is dropped and Commit succeeds. After a
// failed Write, Commit removes the file and returns that error.
//
// Under a size limit the blob may be evicted as soon as Commit returns;
// a caller that will open it should use [BlobWriter.CommitPinned].
func (w *BlobWriter) Commit(wantSHA256 string) (string, error) {
	sha, unpin, err := w.CommitPinned(wantSHA256)
	if err != nil {
		return "", err
	}
	unpin()
	return sha, nil
}

// CommitPinned is [BlobWriter.Commit], with the blob pinned on success: the
// size limit does not evict it until unpin is called (once; later calls do
// nothing). A fill holds the pin until every request that waited for it has
// opened the blob, so none of them finds it evicted.
func (w *BlobWriter) CommitPinned(wantSHA256 string) (sha string, unpin func(), err error) {
	if w.done {
		return "", nil, ErrClosed
	}
	w.done = true
	tmp := w.f.Name()
	defer w.s.forget(tmp)
	fail := func(err error) (string, func(), error) {
		_ = w.f.Close()
		_ = os.Remove(tmp)
		return "", nil, err
	}
	if w.werr != nil {
		return fail(w.werr)
	}
	got := hex.EncodeToString(w.h.Sum(nil))
	if wantSHA256 != "" {
		if !isHex64(wantSHA256) {
			return fail(fmt.Errorf("%w: want sha256 %q", ErrInvalidKey, wantSHA256))
		}
		if wantSHA256 != got {
			return fail(&DigestError{Want: wantSHA256, Got: got})
		}
	}
	dest, _ := w.s.blobPath(got)
	// Pinned before looking: a blob found in place stays there, and one
	// linked below cannot be evicted before the caller is done with it.
	release := w.s.pinBlob(got)
	pinned := func() {
		release()
		w.s.maybeEvict() // the store may be over its limit because of this pin
	}
	unpin = pinned
	ok := false
	defer func() {
		if !ok {
			pinned()
		}
	}()
	if _, err := os.Stat(dest); err == nil {
		// Already stored, and content-addressed, so identical (OpenBlob
		// checks that before serving it): drop ours.
		_ = w.f.Close()
		_ = os.Remove(tmp)
		if fi, err := os.Stat(dest); err == nil {
			w.s.lru.setSizeIfUnknown(got, fi.Size())
		}
		ok = true
		return got, unpin, nil
	}
	if err := w.f.Chmod(0o400); err != nil {
		return fail(fmt.Errorf("cache: temp blob: %w", err))
	}
	if err := w.f.Sync(); err != nil {
		return fail(fmt.Errorf("cache: syncing temp blob: %w", err))
	}
	if err := w.f.Close(); err != nil {
		_ = os.Remove(tmp)
		return "", nil, fmt.Errorf("cache: closing temp blob: %w", err)
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		_ = os.Remove(tmp)
		return "", nil, fmt.Errorf("cache: blob folder: %w", err)
	}
	// A hard link never replaces an existing blob, so exactly one of several
	// concurrent writers of the same content stores it (and counts its size).
	stored, err := w.link(tmp, dest, got)
	if err != nil {
		return "", nil, err
	}
	if !stored {
		ok = true
		return got, unpin, nil
	}
	if err := syncDir(parent); err != nil {
		ok = true // stored and counted: the entry must keep its size
		w.s.stored(got, w.n)
		unpin()
		return "", nil, fmt.Errorf("cache: syncing blob folder: %w", err)
	}
	// The stamp is taken after the last link change (which moves the
	// change time), so the first OpenBlob does not rehash.
	fi, err := os.Stat(dest)
	if err == nil {
		err = w.s.recordStamp(got, fi)
	}
	ok = true
	w.s.stored(got, w.n)
	if err != nil {
		unpin()
		return "", nil, fmt.Errorf("cache: recording blob %s: %w", got, err)
	}
	return got, unpin, nil
}

// link moves the temporary file to dest; stored is false when the blob was
// there already. It holds commitMu, so a quarantine never moves a blob
// linked in the meantime.
func (w *BlobWriter) link(tmp, dest, got string) (stored bool, err error) {
	w.s.commitMu.Lock()
	defer w.s.commitMu.Unlock()
	switch err := os.Link(tmp, dest); {
	case err == nil:
		_ = os.Remove(tmp)
	case errors.Is(err, fs.ErrExist):
		_ = os.Remove(tmp)
		return false, nil
	default:
		// No hard links on this file system: rename, which may replace an
		// identical blob written at the same moment.
		if err := os.Rename(tmp, dest); err != nil {
			_ = os.Remove(tmp)
			return false, fmt.Errorf("cache: storing blob %s: %w", got, err)
		}
	}
	w.s.blobBytes.Add(w.n)
	return true, nil
}

// Path returns the temporary file being written. Readers may open it to
// stream the blob while it grows; an open file stays readable after Commit
// or Abort, which remove the name.
func (w *BlobWriter) Path() string { return w.f.Name() }

// Abort ends the write and removes the temporary file. It is safe to call
// after Commit (and then does nothing).
func (w *BlobWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	tmp := w.f.Name()
	defer w.s.forget(tmp)
	_ = w.f.Close()
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: removing temp blob: %w", err)
	}
	return nil
}

func (s *Store) forget(tmp string) {
	s.mu.Lock()
	delete(s.active, tmp)
	s.mu.Unlock()
}

// syncDir fsyncs a folder so that a rename into it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTemps removes every temporary file not owned by a live BlobWriter.
func (s *Store) removeTemps() error {
	orphans, err := s.orphanTemps()
	if err != nil {
		return err
	}
	for _, p := range orphans {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cache: removing temp file: %w", err)
		}
	}
	if len(orphans) > 0 {
		s.log.Info("removed leftover temp files", "count", len(orphans), "path", s.tmpRoot())
	}
	return nil
}

// Temporary files untouched for staleTemp are removed by a sweep that runs
// at most every sweepEvery, from NewBlob: a writer that was never ended (a
// missing Abort) or one stalled that long. A stalled writer's Commit then
// fails; nothing partial is ever stored.
const (
	staleTemp  = time.Hour
	sweepEvery = 10 * time.Minute
)

// maybeSweep removes stale temporary files if the last sweep is old enough.
func (s *Store) maybeSweep(now time.Time) {
	last := s.lastSweep.Load()
	if now.UnixNano()-last < int64(sweepEvery) || !s.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	entries, err := os.ReadDir(s.tmpRoot())
	if err != nil {
		return
	}
	removed := 0
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < staleTemp {
			continue
		}
		p := filepath.Join(s.tmpRoot(), e.Name())
		if os.Remove(p) == nil {
			s.forget(p)
			removed++
		}
	}
	if removed > 0 {
		s.log.Warn("removed stale temp files", "count", removed, "path", s.tmpRoot())
	}
}

// orphanTemps lists the files under blobs/tmp that no live BlobWriter of
// this Store owns. Only one read-write Store opens a data directory at a
// time, so those are left over from a crash or a failed cleanup.
func (s *Store) orphanTemps() ([]string, error) {
	entries, err := os.ReadDir(s.tmpRoot())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache: listing temp files: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range entries {
		p := filepath.Join(s.tmpRoot(), e.Name())
		if _, ok := s.active[p]; !ok {
			out = append(out, p)
		}
	}
	return out, nil
}
