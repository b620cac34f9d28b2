package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Stats counts what a data directory holds.
type Stats struct {
	// SchemaVersion is the database schema version.
	SchemaVersion int `json:"schema_version"`
	// Facts, Provenance, Pages, Refs and Projects count records: cached
	// verification facts, provenance entries, project page snapshots, blob
	// references and projects with a history.
	Facts      int `json:"facts"`
	Provenance int `json:"provenance"`
	Pages      int `json:"pages"`
	Refs       int `json:"refs"`
	Projects   int `json:"projects"`
	// Decisions counts the rows of the decision history.
	Decisions int `json:"decisions"`
	// ProjectList reports whether a project list snapshot is stored.
	ProjectList bool `json:"project_list"`
	// Blobs and BlobBytes count the files under blobs/sha256 and their size.
	Blobs     int   `json:"blobs"`
	BlobBytes int64 `json:"blob_bytes"`
	// TempFiles counts the files under blobs/tmp (writes in progress, or
	// leftovers from a crash).
	TempFiles int `json:"temp_files"`
	// DBBytes is the size of the bbolt file on disk (bbolt grows it ahead
	// of need and never shrinks it).
	DBBytes int64 `json:"db_bytes"`
}

// Stats counts the records in the database and walks the blob store (after
// the read transaction has ended).
func (s *Store) Stats() (Stats, error) {
	st := Stats{SchemaVersion: SchemaVersion}
	err := s.view(func(tx *bolt.Tx) error {
		count := func(name string) int {
			if b := tx.Bucket([]byte(name)); b != nil {
				return b.Stats().KeyN
			}
			return 0
		}
		st.Facts = count(bucketFacts)
		st.Provenance = count(bucketProvenance)
		st.Pages = count(bucketPages)
		st.Refs = count(bucketRefs)
		st.Projects = count(bucketHistory)
		st.Decisions = count(bucketDecisions)
		st.ProjectList = count(bucketLists) > 0
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("cache: stats: %w", err)
	}
	err = walkBlobs(s.blobRoot(), func(_ string, d fs.DirEntry) error {
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st.Blobs++
		st.BlobBytes += fi.Size()
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("cache: stats: %w", err)
	}
	if fi, err := os.Stat(s.dbPath); err == nil {
		st.DBBytes = fi.Size()
	}
	if entries, err := os.ReadDir(s.tmpRoot()); err == nil {
		st.TempFiles = len(entries)
	}
	return st, nil
}

// walkBlobs calls fn for every regular file under root (missing root: none).
func walkBlobs(root string, fn func(path string, d fs.DirEntry) error) error {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		return fn(p, d)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// PurgeTargets returns what [Store.Purge] accepts:
//   - "index": project page snapshots and the project list;
//   - "facts": cached verification facts;
//   - "provenance": cached provenance bodies;
//   - "history": per-project history;
//   - "decisions": the decision history (what was served or refused);
//   - "blobs": every blob, the references to them, and orphan temp files;
//   - "all": all of the above.
func PurgeTargets() []string {
	return []string{"all", "index", "facts", "provenance", "history", "decisions", "blobs"}
}

// Purge deletes one class of cached data (see [PurgeTargets]). The database
// file keeps its size; bbolt reuses the freed pages.
func (s *Store) Purge(what string) error {
	var buckets []string
	blobs := false
	switch what {
	case "all":
		buckets, blobs = dataBuckets(), true
	case "index":
		buckets = []string{bucketPages, bucketLists}
	case "facts":
		buckets = []string{bucketFacts}
	case "provenance":
		buckets = []string{bucketProvenance}
	case "history":
		buckets = []string{bucketHistory}
	case "decisions":
		buckets = []string{bucketDecisions}
	case "blobs":
		buckets, blobs = []string{bucketRefs, bucketBlobs}, true
	default:
		return fmt.Errorf("cache: cannot purge %q (one of %s)", what, strings.Join(PurgeTargets(), ", "))
	}
	err := s.updateNow(func(tx *bolt.Tx) error {
		for _, name := range buckets {
			if err := tx.DeleteBucket([]byte(name)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: purging %s: %w", what, err)
	}
	if !blobs {
		return nil
	}
	s.stamps.Clear()
	// Files are removed after the transaction: no file I/O while holding it.
	entries, err := os.ReadDir(s.blobRoot())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: purging blobs: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.blobRoot(), e.Name())); err != nil {
			_ = s.seedBlobs()
			return fmt.Errorf("cache: purging blobs: %w", err)
		}
	}
	if err := s.seedBlobs(); err != nil {
		return err
	}
	return s.removeTemps()
}

// Problem is one inconsistency found by [Store.Verify].
type Problem struct {
	// Kind is "db" (bbolt consistency check), "record" (a value that does
	// not decode, or a malformed key), "ref" (a reference to a missing blob),
	// "blob" (content that does not match its name, or a stray file) or
	// "temp" (an orphan temporary file).
	Kind string `json:"kind"`
	// Where names the bucket and key, or the file path.
	Where string `json:"where"`
	// Detail says what is wrong.
	Detail string `json:"detail"`
}

// String renders p as one line: "kind: where: detail".
func (p Problem) String() string { return p.Kind + ": " + p.Where + ": " + p.Detail }

// Report is the result of [Store.Verify].
type Report struct {
	// Records and Blobs count what was checked.
	Records int `json:"records"`
	Blobs   int `json:"blobs"`
	// Problems lists what is wrong; empty when all is well.
	Problems []Problem `json:"problems"`
}

// OK reports whether Verify found no problem.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Verify checks the whole data directory: bbolt's own consistency check
// (tx.Check), every record decodes, every reference names an existing blob,
// every blob's content hashes to its name, and no orphan temporary file is
// left. It returns an error only when it could not check; what it finds is
// in the Report.
func (s *Store) Verify() (Report, error) {
	var rep Report
	refs := map[string]string{} // ref name -> sha256
	check := func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			rep.Problems = append(rep.Problems, Problem{Kind: "db", Where: s.dbPath, Detail: err.Error()})
		}
		for _, name := range dataBuckets() {
			b := tx.Bucket([]byte(name))
			if b == nil {
				continue
			}
			err := b.ForEach(func(k, v []byte) error {
				rep.Records++
				sha, err := checkRecord(name, k, v)
				if err != nil {
					rep.Problems = append(rep.Problems, Problem{Kind: "record", Where: name + "/" + string(k), Detail: err.Error()})
				}
				if name == bucketRefs && sha != "" {
					refs[string(k)] = sha
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	err := s.guard(func(db *bolt.DB) error {
		if s.readOnly {
			// No writer can run: the shared lock keeps read-write opens out.
			return db.View(check)
		}
		// tx.Check is safe next to concurrent writers only on a write
		// transaction; roll it back, nothing is changed.
		tx, err := db.Begin(true)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		return check(tx)
	})
	if err != nil {
		return rep, fmt.Errorf("cache: verifying %s: %w", s.dbPath, err)
	}
	// Blob checks run outside any transaction.
	for _, n := range slices.Sorted(maps.Keys(refs)) {
		if !s.HasBlob(refs[n]) {
			rep.Problems = append(rep.Problems, Problem{Kind: "ref", Where: bucketRefs + "/" + n, Detail: "blob " + refs[n] + " is missing"})
		}
	}
	err = walkBlobs(s.blobRoot(), func(p string, _ fs.DirEntry) error {
		rep.Blobs++
		if detail := checkBlob(s.blobRoot(), p); detail != "" {
			rep.Problems = append(rep.Problems, Problem{Kind: "blob", Where: p, Detail: detail})
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("cache: verifying blobs: %w", err)
	}
	orphans, err := s.orphanTemps()
	if err != nil {
		return rep, err
	}
	for _, p := range orphans {
		rep.Problems = append(rep.Problems, Problem{Kind: "temp", Where: p, Detail: "orphan temporary file"})
	}
	return rep, nil
}

// checkRecord decodes the value v under key k of bucket and returns, for a
// reference, the blob it names.
func checkRecord(bucket string, k, v []byte) (sha string, err error) {
	switch bucket {
	case bucketFacts:
		if _, ok := parseFactKey(k); !ok {
			return "", errors.New("malformed facts key")
		}
		var r factsRecord
		if err := decode(v, &r); err != nil {
			return "", err
		}
		if !cacheableVerdict(r.Facts.Verdict) {
			return "", fmt.Errorf("verdict %q is not cacheable", r.Facts.Verdict)
		}
	case bucketProvenance:
		if _, u, ok := splitScopedKey(k); !ok || u == "" {
			return "", errors.New("provenance key is not <upstream>/<url>")
		}
		var r provenanceRecord
		if err := decode(v, &r); err != nil {
			return "", err
		}
		if !r.Absent {
			sum := sha256.Sum256(r.Body)
			if got := hex.EncodeToString(sum[:]); got != r.SHA256 {
				return "", &DigestError{Want: r.SHA256, Got: got}
			}
		}
	case bucketPages:
		if _, p, ok := splitScopedKey(k); !ok || !isNormalized(p) {
			return "", errors.New("page key is not <upstream>/<normalised project name>")
		}
		var r pageRecord
		if err := decode(v, &r); err != nil {
			return "", err
		}
		if r.Page == nil {
			return "", errors.New("no page")
		}
	case bucketLists:
		var r listRecord
		if err := decode(v, &r); err != nil {
			return "", err
		}
		if r.List == nil {
			return "", errors.New("no list")
		}
	case bucketRefs:
		var r refRecord
		if err := decode(v, &r); err != nil {
			return "", err
		}
		if !isHex64(r.SHA256) {
			return "", fmt.Errorf("sha256 %q", r.SHA256)
		}
		return r.SHA256, nil
	case bucketBlobs:
		if !isHex64(string(k)) {
			return "", errors.New("malformed blob key")
		}
		var r blobRecord
		return "", decode(v, &r)
	case bucketDecisions:
		return "", checkDecisionRecord(k, v)
	case bucketHistory:
		if !isNormalized(string(k)) {
			return "", errors.New("project name not normalised")
		}
		var r historyRecord
		return "", decode(v, &r)
	}
	return "", nil
}

// checkBlob rehashes the file at p and returns what is wrong with it, or "".
func checkBlob(root, p string) string {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return err.Error()
	}
	dir, name := filepath.Split(rel)
	if !isHex64(name) || filepath.Clean(dir) != name[:2] {
		return "stray file (not <ab>/<sha256>)"
	}
	f, err := os.Open(p)
	if err != nil {
		return err.Error()
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "reading: " + err.Error()
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != name {
		return "content hashes to " + got
	}
	return ""
}
