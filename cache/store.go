// Package cache is pipgate's memory: verification facts, provenance bodies,
// index snapshots, named references and per-project history in one bbolt
// database (Dir/pipgate.db), and the distribution files and .metadata files
// in a content-addressed blob store beside it (Dir/blobs/sha256/ab/<sha256>).
//
// It is the only importer of go.etcd.io/bbolt. Every value is a versioned JSON
// record, so the schema can evolve; the database carries a schema version in
// its meta bucket. A database that is damaged (see damage.go: checked before
// bbolt maps it, and on every transaction while serving), or one written by
// a newer pipgate, is moved aside (never wiped, never a crash) and a fresh
// one is created. Blobs are written to a temporary file, hashed on the way, and
// moved into place only once their digest checks out, so a crash or a digest
// mismatch never leaves a partial file under blobs/sha256.
//
// A [Store] is safe for concurrent use. Writers that many goroutines call at
// once (PutFacts, PutProvenance, PutRef, UpdateHistory) go through bbolt's
// batching whenever more than one is in flight.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the database schema this code writes and reads.
//
//   - 1: the first.
//   - 2: facts keys carry the filename (see [FactKey]); the facts of schema 1,
//     keyed by digests alone, are dropped by the migration and recomputed on
//     demand, because a verdict is not valid for another filename.
//   - 3: page snapshots, provenance bodies and metadata refs are keyed by the
//     upstream they came from ("<upstream>/<project>", "<upstream>/<url>",
//     "metadata:<upstream>:<sha256>"); the migration files the unscoped
//     records of schema 2 under [LegacyUpstream], the one upstream there was.
//
// The decisions bucket (the decision history) was added within schema 3: an
// older pipgate of schema 3 leaves it alone, so it needs no version.
const SchemaVersion = 3

// File and folder names inside Options.Dir.
const (
	dbName   = "pipgate.db"
	blobsDir = "blobs"
	shaDir   = "sha256"
	tmpDir   = "tmp"
)

// Buckets. The meta bucket holds the schema version; every other bucket holds
// one kind of versioned JSON record.
const (
	bucketMeta       = "meta"
	bucketFacts      = "facts"
	bucketProvenance = "provenance"
	bucketPages      = "pages"
	bucketLists      = "lists"
	bucketRefs       = "refs"
	bucketHistory    = "history"
	bucketBlobs      = "blobs"
	bucketDecisions  = "decisions" // the decision history (decisions.go); added within schema 3

	keySchema = "schema_version"
	keyList   = "simple"
)

// dataBuckets returns every bucket except meta, in a fixed order.
func dataBuckets() []string {
	return []string{bucketFacts, bucketProvenance, bucketPages, bucketLists, bucketRefs, bucketHistory, bucketBlobs, bucketDecisions}
}

// batchDelay replaces bbolt's 10 ms MaxBatchDelay: a lone writer should not
// wait 10 ms for company, and 2 ms still gathers a burst of concurrent writes
// into one fsync.
const batchDelay = 2 * time.Millisecond

// Errors.
var (
	// ErrNotFound is returned when a record, a blob or the database itself
	// (read-only open) does not exist.
	ErrNotFound = errors.New("cache: not found")
	// ErrLocked is returned by [Open] when another process (a running
	// pipgate) holds the database lock past Options.Timeout.
	ErrLocked = errors.New("cache: database in use by another process")
	// ErrCorrupt is returned by a read-only [Open] of a database that bbolt
	// cannot open; a read-write Open moves such a file aside instead.
	ErrCorrupt = errors.New("cache: database corrupt")
	// ErrSchema is returned by a read-only [Open] of a database written with
	// a schema this code does not know; a read-write Open moves it aside.
	ErrSchema = errors.New("cache: unknown schema version")
	// ErrBadRecord is returned when a stored value does not decode (garbled,
	// or a record version newer than this code). Callers treat it as a miss.
	ErrBadRecord = errors.New("cache: undecodable record")
	// ErrInvalidKey is returned for an empty, oversized or malformed key,
	// such as a digest that is not 64 lower-case hex characters.
	ErrInvalidKey = errors.New("cache: invalid key")
	// ErrNotCacheable is returned by [Store.PutFacts] for facts that must
	// never be cached (verdict error) or are not verification facts.
	ErrNotCacheable = errors.New("cache: facts not cacheable")
	// ErrClosed is returned when a [BlobWriter] is used after Commit or Abort.
	ErrClosed = errors.New("cache: blob writer finished")
)

// Options configures [Open].
type Options struct {
	// Dir is the data directory (required). It is created with mode 0700 if
	// missing and holds pipgate.db and blobs/.
	Dir string
	// Logger receives the Warn line when a database is moved aside; the
	// caller adds the component attribute. Nil discards.
	Logger *slog.Logger
	// Timeout is how long Open waits for the bbolt file lock held by another
	// process before it returns [ErrLocked]. Zero means one second.
	Timeout time.Duration
	// ReadOnly opens the database for inspection only: shared lock, no
	// writes, nothing moved aside or created, temporary files left alone.
	ReadOnly bool
	// MaxBlobBytes bounds the bytes of blobs/sha256: above it, Commit evicts
	// the least recently used blobs, never one that is open (a [Blob] not
	// yet closed) and never the most recently used one. 0: no limit.
	MaxBlobBytes int64
	// Check, when set, checks the database file thoroughly before a
	// read-write Open maps it: [ChildCheck] runs [CheckDB] in a child
	// process, so that a fault inside bbolt cannot crash the caller. An
	// error matching ErrCorrupt moves the file aside; ErrLocked fails the
	// Open; any other error (no answer within CheckTimeout) is logged and
	// the file is opened unchecked. Nil: only the cheap checks of the file's
	// meta, root and freelist pages.
	Check func(ctx context.Context, path string) error
	// CheckTimeout bounds Check. Zero means one minute.
	CheckTimeout time.Duration
	// Registerer receives the store's metrics: the blob bytes
	// (pipgate_cache_blob_bytes, read at each scrape), their limit, the
	// database size (pipgate_cache_db_bytes), the eviction counters, and the
	// deprecated total pipgate_cache_size_bytes. Nil registers nothing.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	return o
}

// Store is an open data directory: the bbolt database and the blob store.
type Store struct {
	dbMu     sync.RWMutex // held shared by every transaction, exclusively to replace db after a fault
	db       *bolt.DB     // nil after a fault until a fresh one is open
	dir      string
	dbPath   string
	blobDir  string // Dir/blobs/sha256/, with the trailing separator
	readOnly bool
	log      *slog.Logger

	writers   atomic.Int32 // write calls in flight, see update
	blobBytes atomic.Int64 // size of blobs/sha256, kept up to date by Commit, eviction and Purge

	maxBlobBytes int64         // Options.MaxBlobBytes
	lru          *lru          // blob use order, with a size limit only
	evictMu      sync.Mutex    // one eviction at a time
	evictions    *evictMetrics // never nil
	lastSweep    atomic.Int64  // unix nanoseconds of the last stale temp sweep

	stamps      sync.Map     // sha256 -> blobStamp, a memory of the blobs bucket
	quarantined atomic.Int64 // blobs moved aside by OpenBlob
	rehashes    atomic.Int64 // blobs hashed again by OpenBlob (tests read it)
	commitMu    sync.Mutex   // orders Commit's link against quarantine's rename

	damage        *damageMetrics
	health        atomic.Pointer[health] // nil: healthy
	recovering    atomic.Bool            // a replaceDB is under way
	bg            sync.WaitGroup         // replaceDB
	beforeRecover func()                 // tests: runs before replaceDB

	mu     sync.Mutex
	active map[string]struct{} // temp files of unfinished BlobWriters
	closed bool
}

// Open opens (and, unless read-only, creates) the data directory opts.Dir.
// See the package documentation for what happens to a corrupt database or
// one with a newer schema.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("cache: Options.Dir is required")
	}
	opts = opts.withDefaults()
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("cache: data dir: %w", err)
	}
	s := &Store{
		dir:      dir,
		dbPath:   filepath.Join(dir, dbName),
		blobDir:  blobDirOf(dir),
		readOnly: opts.ReadOnly,
		log:      opts.Logger,
		active:   make(map[string]struct{}),
		lru:      newLRU(),
	}
	if opts.MaxBlobBytes > 0 && !opts.ReadOnly {
		s.maxBlobBytes = opts.MaxBlobBytes
	}
	if s.evictions, err = newEvictMetrics(opts.Registerer, s.maxBlobBytes, func() float64 { return float64(s.SizeBytes()) }); err != nil {
		return nil, err
	}
	if err := s.registerStampMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	if err := s.registerSizeMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	if s.damage, err = newDamageMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		if _, err := os.Stat(s.dbPath); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("opening %s: %w", s.dbPath, ErrNotFound)
		}
	} else {
		for _, d := range []string{dir, s.blobRoot(), s.tmpRoot()} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, fmt.Errorf("cache: creating %s: %w", d, err)
			}
		}
	}
	// Two rounds at most: the second one opens the fresh file created after
	// the first was moved aside.
	for range 2 {
		db, reason, err := s.openDB(opts)
		if err != nil {
			return nil, err
		}
		if reason == "" {
			s.db = db
			break
		}
		if err := s.moveAside(db, reason); err != nil {
			return nil, err
		}
	}
	if s.db == nil {
		return nil, fmt.Errorf("%w: %s still unusable after moving it aside", ErrCorrupt, s.dbPath)
	}
	if err := s.seedBlobs(); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	if !opts.ReadOnly {
		s.db.MaxBatchDelay = batchDelay
		// Holding the exclusive lock, no other process writes blobs here:
		// every temporary file is left over from a crash.
		if err := s.removeTemps(); err != nil {
			_ = s.db.Close()
			return nil, err
		}
		s.lastSweep.Store(time.Now().UnixNano())
		s.maybeEvict() // the limit may have been lowered since the last run
	}
	return s, nil
}

// openDB opens the bbolt file and checks its schema. A non-empty reason means
// the file must be moved aside (db may then be nil, or open and locked).
func (s *Store) openDB(opts Options) (db *bolt.DB, reason string, err error) {
	if reason, err := s.precheck(opts); reason != "" || err != nil {
		return nil, reason, err
	}
	db, err = boltOpen(s.dbPath, opts)
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, "", fmt.Errorf("%w: %s is locked (is pipgate serve running?)", ErrLocked, s.dbPath)
	case isOSError(err):
		return nil, "", fmt.Errorf("cache: opening %s: %w", s.dbPath, err)
	default:
		if opts.ReadOnly {
			return nil, "", fmt.Errorf("%w: %s: %w", ErrCorrupt, s.dbPath, err)
		}
		s.log.Error("database damaged", "path", s.dbPath, "err", err)
		return nil, "corrupt", nil
	}
	v, err := readSchema(db)
	if err != nil {
		if opts.ReadOnly {
			closeQuietly(db)
			return nil, "", fmt.Errorf("%w: %s: %w", ErrCorrupt, s.dbPath, err)
		}
		s.log.Error("database damaged", "path", s.dbPath, "err", err)
		closeQuietly(db)
		return nil, "corrupt", nil
	}
	switch {
	case v > SchemaVersion:
		if opts.ReadOnly {
			_ = db.Close()
			return nil, "", fmt.Errorf("%w: %s has schema %d, this pipgate knows %d", ErrSchema, s.dbPath, v, SchemaVersion)
		}
		return db, "schema" + strconv.Itoa(v), nil
	case opts.ReadOnly:
		if v < SchemaVersion {
			_ = db.Close()
			return nil, "", fmt.Errorf("%w: %s has schema %d; open it read-write once to migrate", ErrSchema, s.dbPath, v)
		}
		return db, "", nil
	}
	if err := migrateGuarded(db, v); err != nil {
		closeQuietly(db)
		if _, ok := errors.AsType[*FaultError](err); ok {
			s.log.Error("database damaged", "path", s.dbPath, "err", err)
			return nil, "corrupt", nil
		}
		return nil, "", fmt.Errorf("cache: migrating %s from schema %d: %w", s.dbPath, v, err)
	}
	return db, "", nil
}

// boltOpen is bolt.Open with faults turned into panics, and a recover: a
// garbled file must not crash us.
func boltOpen(path string, opts Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("bbolt panicked: %v", r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, ReadOnly: opts.ReadOnly})
}

// isOSError reports whether err came from the file system (permissions, a
// missing folder) rather than from the file's content.
func isOSError(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe)
}

// readSchema returns the schema version: 0 for a brand-new, empty database.
// A database with data buckets but no (or a garbled) version is an error.
func readSchema(db *bolt.DB) (v int, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt panicked: %v", r)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucketMeta)); b != nil {
			raw := b.Get([]byte(keySchema))
			n, perr := strconv.Atoi(string(raw))
			if perr != nil || n < 1 {
				return fmt.Errorf("schema version %q", raw)
			}
			v = n
			return nil
		}
		// No meta bucket: fine only if the file holds nothing at all.
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			return fmt.Errorf("bucket %q without a schema version (not a pipgate database?)", name)
		})
	})
	return v, err
}

// migration returns the step that upgrades a database from schema v to v+1
// inside one write transaction, or nil.
func migration(v int) func(*bolt.Tx) error {
	switch v {
	case 1:
		return dropFacts
	case 2:
		return scopeLegacyKeys
	default:
		return nil
	}
}

// dropFacts is the step from schema 1 to 2: schema 1 keyed verdicts by
// (file, provenance, trust root) digests without the filename, so a verdict
// computed for one name would be served for another. None of them can be
// trusted; they are dropped and recomputed when next needed (migrate creates
// the empty bucket again). Everything else carries over.
func dropFacts(tx *bolt.Tx) error {
	if tx.Bucket([]byte(bucketFacts)) == nil {
		return nil
	}
	return tx.DeleteBucket([]byte(bucketFacts))
}

// LegacyUpstream is the name of the single "upstream:" of the config
// (upstream.DefaultName): records written before upstreams had names came
// from it.
const LegacyUpstream = "default"

// scopeLegacyKeys is the step from schema 2 to 3: page, provenance and
// metadata-ref keys gain the name of the upstream they came from, which
// before schema 3 was always the single configured upstream.
func scopeLegacyKeys(tx *bolt.Tx) error {
	rename := func(bucket string, newKey func(k []byte) ([]byte, bool)) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		type kv struct{ old, new, val []byte }
		var moves []kv
		err := b.ForEach(func(k, v []byte) error {
			if nk, ok := newKey(k); ok {
				moves = append(moves, kv{append([]byte(nil), k...), nk, append([]byte(nil), v...)})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, m := range moves {
			if err := b.Put(m.new, m.val); err != nil {
				return err
			}
			if err := b.Delete(m.old); err != nil {
				return err
			}
		}
		return nil
	}
	unscoped := func(k []byte) ([]byte, bool) {
		if _, _, ok := splitScopedKey(k); ok {
			return nil, false
		}
		return scopedKey(LegacyUpstream, string(k)), true
	}
	if err := rename(bucketPages, unscoped); err != nil {
		return err
	}
	if err := rename(bucketProvenance, unscoped); err != nil {
		return err
	}
	return rename(bucketRefs, func(k []byte) ([]byte, bool) {
		sha, ok := strings.CutPrefix(string(k), "metadata:")
		if !ok || !isHex64(sha) {
			return nil, false
		}
		return []byte("metadata:" + LegacyUpstream + ":" + sha), true
	})
}

// migrate brings db from schema v (0: empty) to SchemaVersion and makes sure
// every bucket exists.
func migrate(db *bolt.DB, v int) error {
	return db.Update(func(tx *bolt.Tx) error {
		for ; v >= 1 && v < SchemaVersion; v++ {
			m := migration(v)
			if m == nil {
				return fmt.Errorf("no migration from schema %d", v)
			}
			if err := m(tx); err != nil {
				return fmt.Errorf("schema %d to %d: %w", v, v+1, err)
			}
		}
		meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
		if err != nil {
			return err
		}
		for _, name := range dataBuckets() {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		if string(meta.Get([]byte(keySchema))) == strconv.Itoa(SchemaVersion) {
			return nil
		}
		return meta.Put([]byte(keySchema), []byte(strconv.Itoa(SchemaVersion)))
	})
}

// moveAside renames the database to pipgate.db.<reason>-<timestamp> (while
// still holding its lock, when db is open) and logs both paths.
func (s *Store) moveAside(db *bolt.DB, reason string) error {
	stamp := time.Now().UTC().Format("20060102T150405Z")
	target := fmt.Sprintf("%s.%s-%s", s.dbPath, reason, stamp)
	for i := 1; ; i++ {
		if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			break
		}
		target = fmt.Sprintf("%s.%s-%s.%d", s.dbPath, reason, stamp, i)
	}
	err := os.Rename(s.dbPath, target)
	if db != nil {
		_ = db.Close()
	}
	if err != nil {
		return fmt.Errorf("cache: moving %s aside: %w", s.dbPath, err)
	}
	label := reason
	if strings.HasPrefix(reason, "schema") {
		label = "schema"
		s.log.Warn("database moved aside, starting a fresh one", "path", s.dbPath, "moved_to", target, "reason", reason)
	} else {
		s.log.Error("database moved aside, starting a fresh one; cached verdicts and pages are recomputed, files re-adopted",
			"path", s.dbPath, "moved_to", target, "reason", reason)
	}
	s.damage.movedAside.WithLabelValues(label).Inc()
	return nil
}

// Close closes the database. Unfinished BlobWriters keep their temporary
// files, which the next read-write Open removes. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.bg.Wait() // a replaceDB under way
	s.dbMu.Lock()
	db := s.db
	s.db = nil
	s.dbMu.Unlock()
	if db == nil {
		return nil
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("cache: closing %s: %w", s.dbPath, err)
	}
	return nil
}

// SizeBytes returns the bytes the data directory holds: the database file
// plus every blob ([Store.DBBytes] + [Store.BlobBytes]; compare BlobBytes,
// not this, with the limit).
func (s *Store) SizeBytes() int64 { return s.BlobBytes() + s.DBBytes() }

// Dir returns the absolute data directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the absolute path of the bbolt database file.
func (s *Store) Path() string { return s.dbPath }
