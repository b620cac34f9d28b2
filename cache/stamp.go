package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A blob is served only while it is still the file that was committed.
// Commit records the blob's stamp (size, modification time, change time,
// inode) in the blobs bucket; OpenBlob compares the open file's stamp with
// the record, which costs one fstat and a map lookup per hit. On any
// difference, or when no record exists (a blob stored by an older pipgate),
// the file is hashed again: content that still matches its name gets a new
// record and is served; anything else is moved to blobs/quarantine and
// OpenBlob returns [ErrBlobChanged], so the caller fetches the file again.
// The change time cannot be set from user space, so an edit that restores
// the modification time is caught too. Nothing in pipgate changes a
// committed blob's inode after Commit (no chmod, no touch): a use-recency
// record for eviction must live elsewhere.

// ErrBlobChanged is returned by [Store.OpenBlob] for a blob whose content no
// longer matches its name. The blob has been quarantined (moved aside); the
// error also matches [ErrNotFound], so callers that refetch on a miss do so.
var ErrBlobChanged = errors.New("cache: blob changed on disk")

const quarantineDir = "quarantine"

// blobStamp identifies one committed version of a blob file.
type blobStamp struct {
	Size     int64  `json:"size"`
	ModNS    int64  `json:"mtime_ns"`
	ChangeNS int64  `json:"ctime_ns,omitempty"`
	Inode    uint64 `json:"inode,omitempty"`
}

type blobRecord struct {
	header
	Stamp     blobStamp `json:"stamp"`
	CheckedAt time.Time `json:"checked_at"`
}

func stampOf(fi fs.FileInfo) blobStamp {
	st := blobStamp{Size: fi.Size(), ModNS: fi.ModTime().UnixNano()}
	st.ChangeNS, st.Inode = sysStamp(fi)
	return st
}

func (s *Store) quarantineRoot() string { return filepath.Join(s.dir, blobsDir, quarantineDir) }

// stamp returns the recorded stamp of blob sum: from memory, else from the
// database (then remembered).
func (s *Store) stamp(sum string) (blobStamp, bool) {
	if v, ok := s.stamps.Load(sum); ok {
		return v.(blobStamp), true
	}
	var r blobRecord
	if err := s.get(bucketBlobs, []byte(sum), &r); err != nil {
		return blobStamp{}, false
	}
	s.stamps.Store(sum, r.Stamp)
	return r.Stamp, true
}

// recordStamp stores the stamp of the blob file at p (or of fi).
func (s *Store) recordStamp(sum string, fi fs.FileInfo) error {
	st := stampOf(fi)
	s.stamps.Store(sum, st)
	if s.readOnly {
		return nil
	}
	return s.put(bucketBlobs, []byte(sum), blobRecord{header: header{V: recordVersion}, Stamp: st, CheckedAt: time.Now().UTC()})
}

// checkOpenBlob makes sure f (the open blob sum) is still the committed
// file. It returns nil when it is (re-recording the stamp after a rehash that
// matched), or an error wrapping ErrBlobChanged after quarantining it.
func (s *Store) checkOpenBlob(sum, p string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cache: stat blob: %w", err)
	}
	if rec, ok := s.stamp(sum); ok && rec == stampOf(fi) {
		return nil
	}
	s.rehashes.Add(1)
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
		return fmt.Errorf("cache: rehashing blob: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		s.stamps.Delete(sum)
		where := s.quarantine(sum, p, fi)
		s.log.Warn("blob changed on disk; quarantined", "sha256", sum, "content_sha256", got, "moved_to", where)
		return fmt.Errorf("blob %s hashes to %s: %w", sum, got, errBlobChanged)
	}
	// Same content, new stamp (a copy, a restore): remember the new one.
	if err := s.recordStamp(sum, fi); err != nil {
		s.log.Warn("recording blob stamp", "sha256", sum, "err", err)
	}
	return nil
}

// errBlobChanged matches both ErrBlobChanged and ErrNotFound.
var errBlobChanged = fmt.Errorf("%w (%w)", ErrBlobChanged, ErrNotFound)

// quarantine moves the blob file at p aside, if p still names the file
// described by fi (a fresh blob committed meanwhile is left alone), and
// returns where it went ("" when it was not moved).
func (s *Store) quarantine(sum, p string, fi fs.FileInfo) string {
	if s.readOnly {
		return ""
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	cur, err := os.Lstat(p)
	if err != nil || !os.SameFile(cur, fi) {
		return ""
	}
	if err := os.MkdirAll(s.quarantineRoot(), 0o700); err != nil {
		s.log.Error("creating quarantine folder", "err", err)
		if os.Remove(p) == nil {
			s.blobBytes.Add(-fi.Size())
			s.lru.remove(sum)
		}
		return ""
	}
	dest := filepath.Join(s.quarantineRoot(), fmt.Sprintf("%s.%d", sum, time.Now().UnixNano()))
	if err := os.Rename(p, dest); err != nil {
		s.log.Error("quarantining blob", "sha256", sum, "err", err)
		if err := os.Remove(p); err != nil {
			return ""
		}
		dest = ""
	}
	s.blobBytes.Add(-fi.Size())
	s.lru.remove(sum)
	s.quarantined.Add(1)
	return dest
}

// remove forgets sha (a blob quarantined): eviction must not count it again.
func (l *lru) remove(sha string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m[sha]; ok {
		l.ll.Remove(e.el)
		delete(l.m, sha)
	}
}

// QuarantinedBlobs returns how many blobs this Store moved aside because
// their content had changed on disk.
func (s *Store) QuarantinedBlobs() int64 { return s.quarantined.Load() }

// registerStampMetrics exports pipgate_cache_blobs_quarantined_total.
func (s *Store) registerStampMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	c := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pipgate_cache_blobs_quarantined_total",
		Help: "Cached files found changed on disk and moved to blobs/quarantine (then fetched again).",
	}, func() float64 { return float64(s.quarantined.Load()) })
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("cache: registering metrics: %w", err)
	}
	return nil
}
