package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// A damaged pipgate.db must cost its contents, never the service: every
// record in it can be recomputed (verdicts, provenance, pages and history on
// demand; blobs are re-adopted from blobs/sha256 by their stamp or a rehash).
// Three defences:
//
//   - before bbolt maps the file, checkFile reads its meta pages, root and
//     freelist with ordinary reads: a truncated file (bbolt would fault on
//     the pages past its end), one with no valid meta page, or one whose
//     pointers leave the file is moved aside at once;
//   - Options.Check, when set, runs a thorough check ([CheckDB], bbolt's
//     tx.Check and a read of every record) in a child process with a time
//     limit, so a fault inside bbolt kills the child, not the server;
//   - every transaction runs with debug.SetPanicOnFault and a recover, so a
//     damaged page found while serving is a [*FaultError] for that request,
//     not a crash or an empty reply: the store then reports itself
//     unhealthy ([Store.Health]), moves the file aside and opens a fresh
//     one in the background.

// FaultError reports a panic or a memory fault inside bbolt: the database
// file is damaged. It matches [ErrCorrupt].
type FaultError struct {
	Detail string
}

// Error says what bbolt hit.
func (e *FaultError) Error() string { return "cache: database fault: " + e.Detail }

// Is makes a FaultError match ErrCorrupt.
func (e *FaultError) Is(target error) bool { return target == ErrCorrupt }

// ErrUnavailable is returned while the database is being replaced after a
// fault, or when no fresh one could be opened.
var ErrUnavailable = fmt.Errorf("%w: database unavailable", ErrCorrupt)

// Check exit codes of a child process running [CheckDB] (see
// [ChildCheck]): anything else but 0 means the check itself crashed, which
// on a database is damage too.
const (
	CheckExitDamaged = 3
	CheckExitLocked  = 4
)

// checkTimeoutDefault bounds Options.Check.
const checkTimeoutDefault = time.Minute

// errCheckIncomplete is returned by a Check that could not finish.
var errCheckIncomplete = errors.New("cache: database check incomplete")

// damageMetrics counts databases moved aside.
type damageMetrics struct {
	movedAside *prometheus.CounterVec
}

func newDamageMetrics(reg prometheus.Registerer) (*damageMetrics, error) {
	m := &damageMetrics{movedAside: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pipgate_cache_db_moved_aside_total",
		Help: "Databases moved aside and replaced by a fresh one, by reason: corrupt (found at start), fault (found while serving), schema (newer than this pipgate), empty (a zero-length file, started afresh).",
	}, []string{"reason"})}
	for _, r := range []string{"corrupt", "fault", "schema", "empty"} {
		m.movedAside.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(m.movedAside); err != nil {
			return nil, fmt.Errorf("cache: registering metrics: %w", err)
		}
	}
	return m, nil
}

// Meta page layout (bbolt's internal/common: page header, then meta), read
// without mapping the file.
const (
	pageHeaderSize   = 16
	metaMagic        = 0xED0CDAED
	metaVersion      = 2
	metaChecksumOff  = 56 // fnv64a of the meta's first 56 bytes
	metaSize         = 64
	pgidNoFreelist   = ^uint64(0)
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
)

type metaPage struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

// readMeta decodes the meta at off; ok is false when it does not validate.
func readMeta(f io.ReaderAt, off int64) (m metaPage, ok bool) {
	buf := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return m, false
	}
	b := buf[pageHeaderSize:]
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(b[:metaChecksumOff])
	if le.Uint32(b[0:]) != metaMagic || le.Uint32(b[4:]) != metaVersion || le.Uint64(b[metaChecksumOff:]) != h.Sum64() {
		return m, false
	}
	return metaPage{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]),
		pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}, true
}

// checkFile checks, with ordinary reads, what bbolt touches when it opens a
// file: a valid meta page, a sane page size, a file long enough for every
// page the meta counts, and root and freelist pages of the right kind inside
// it (the freelist's page ids too). It returns nil for a file bbolt can map
// without faulting.
func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	m0, ok0 := readMeta(f, 0)
	ps := int64(os.Getpagesize())
	if ok0 {
		ps = int64(m0.pageSize)
	}
	m1, ok1 := readMeta(f, ps)
	var m metaPage
	switch {
	case ok0 && ok1:
		m = m0
		if m1.txid > m0.txid {
			m = m1
		}
	case ok0:
		m = m0
	case ok1:
		m = m1
	default:
		return fmt.Errorf("no valid meta page (%d bytes; not a bbolt file, or its first pages are damaged)", size)
	}
	ps = int64(m.pageSize)
	if ps < 512 || ps > 1<<20 || ps&(ps-1) != 0 {
		return fmt.Errorf("page size %d", ps)
	}
	if m.pgid < 4 || m.pgid > uint64(size/ps) {
		return fmt.Errorf("truncated: the meta page counts %d pages of %d bytes, the file has %d bytes", m.pgid, ps, size)
	}
	page := func(id uint64, flags uint16, what string) (overflow uint32, count uint16, err error) {
		if id < 2 || id >= m.pgid {
			return 0, 0, fmt.Errorf("%s page %d outside the file's %d pages", what, id, m.pgid)
		}
		hdr := make([]byte, pageHeaderSize)
		if _, err := f.ReadAt(hdr, int64(id)*ps); err != nil {
			return 0, 0, fmt.Errorf("%s page %d: %w", what, id, err)
		}
		le := binary.LittleEndian
		gotID, gotFlags := le.Uint64(hdr), le.Uint16(hdr[8:])
		count, overflow = le.Uint16(hdr[10:]), le.Uint32(hdr[12:])
		if gotID != id || gotFlags&flags == 0 {
			return 0, 0, fmt.Errorf("%s page %d reads as page %d with flags %#x", what, id, gotID, gotFlags)
		}
		if id+uint64(overflow) >= m.pgid {
			return 0, 0, fmt.Errorf("%s page %d overflows past the file's %d pages", what, id, m.pgid)
		}
		return overflow, count, nil
	}
	if _, _, err := page(m.root, branchPageFlag|leafPageFlag, "root"); err != nil {
		return err
	}
	if m.freelist == pgidNoFreelist {
		return nil
	}
	overflow, count, err := page(m.freelist, freelistPageFlag, "freelist")
	if err != nil {
		return err
	}
	// The freelist's ids follow its header; a count of 0xFFFF means the
	// real count is the first id slot.
	body := make([]byte, (int64(overflow)+1)*ps-pageHeaderSize)
	if _, err := f.ReadAt(body, int64(m.freelist)*ps+pageHeaderSize); err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	n, ids := uint64(count), body
	if count == 0xFFFF {
		n, ids = binary.LittleEndian.Uint64(body), body[8:]
	}
	if n > uint64(len(ids)/8) {
		return fmt.Errorf("freelist counts %d pages, its pages hold %d", n, len(ids)/8)
	}
	for i := range n {
		if id := binary.LittleEndian.Uint64(ids[i*8:]); id < 2 || id >= m.pgid {
			return fmt.Errorf("freelist names page %d, outside the file's %d pages", id, m.pgid)
		}
	}
	return nil
}

// CheckDB checks the database file at path thoroughly: [checkFile], then a
// read-only open, bbolt's consistency check (tx.Check) and a read of every
// key and value of every bucket. It returns nil, an error matching
// [ErrCorrupt] for a damaged file, [ErrLocked] when a read-write pipgate
// holds it, or another error when it could not check.
//
// On a damaged file bbolt may fault in a goroutine of its own, which no
// recover can catch: run CheckDB in a child process ([ChildCheck]), whose
// crash is then the answer.
func CheckDB(path string) (err error) {
	if err := checkFile(path); err != nil {
		if isOSError(err) {
			return err
		}
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%w: %s", ErrLocked, path)
	case isOSError(err):
		return err
	default:
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
		}
		var walk func(b *bolt.Bucket) error
		walk = func(b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if v != nil {
					return nil
				}
				if c := b.Bucket(k); c != nil {
					return walk(c)
				}
				return nil
			})
		}
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
	})
}

// ChildCheck returns an Options.Check that runs command (the same binary,
// with arguments that make it run [CheckDB] on the path appended last and
// exit with 0, [CheckExitDamaged] or [CheckExitLocked]) and reads its exit.
// A child killed by a fault, or one that exits otherwise, found damage; one
// that could not start or did not finish in time leaves the answer open.
func ChildCheck(command string, args ...string) func(ctx context.Context, path string) error {
	return func(ctx context.Context, path string) error {
		return runChildCheck(ctx, command, append(append([]string(nil), args...), path))
	}
}

func runChildCheck(ctx context.Context, command string, args []string) error {
	cmd := exec.CommandContext(ctx, command, args...)
	var out headBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: no answer within the time limit", errCheckIncomplete)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%w: %w", errCheckIncomplete, err)
	}
	detail := out.firstLine()
	switch ee.ExitCode() {
	case CheckExitLocked:
		return ErrLocked
	case CheckExitDamaged:
		return fmt.Errorf("%w: %s", ErrCorrupt, detail)
	}
	// A fault or a panic inside bbolt: the Go runtime exits 2, or the
	// child died of a signal.
	return fmt.Errorf("%w: the check crashed (%s): %s", ErrCorrupt, ee.ProcessState, detail)
}

// headBuffer keeps the first 4 KiB written to it.
type headBuffer struct{ b bytes.Buffer }

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := 4<<10 - h.b.Len(); room > 0 {
		h.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (h *headBuffer) firstLine() string {
	line, _, _ := strings.Cut(strings.TrimSpace(h.b.String()), "\n")
	return line
}

// check runs opts.Check with its time limit.
func (s *Store) check(opts Options) error {
	timeout := opts.CheckTimeout
	if timeout <= 0 {
		timeout = checkTimeoutDefault
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	err := opts.Check(ctx, s.dbPath)
	if err == nil {
		s.log.Debug("database checked", "path", s.dbPath, "duration_seconds", time.Since(start).Seconds())
	}
	return err
}

// guard runs op on the open database with faults turned into panics and
// panics into a [*FaultError]; a fault starts the database's replacement.
func (s *Store) guard(op func(*bolt.DB) error) error {
	err := s.guarded(op)
	if fe, ok := errors.AsType[*FaultError](err); ok {
		s.faulted(fe)
	}
	return err
}

func (s *Store) guarded(op func(*bolt.DB) error) (err error) {
	db := s.currentDB()
	if db == nil {
		return ErrUnavailable
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &FaultError{Detail: fmt.Sprint(r)}
		}
	}()
	return op(db)
}

// currentDB returns the database to use, or nil from a fault until a fresh
// one is open: nothing touches a faulty file again (a transaction that
// faulted may have left bbolt's own locks held).
func (s *Store) currentDB() *bolt.DB {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.recovering.Load() {
		return nil
	}
	return s.db
}

// view runs fn in a read transaction under guard.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	return s.guard(func(db *bolt.DB) error { return db.View(fn) })
}

// updateNow runs fn in a write transaction of its own under guard.
func (s *Store) updateNow(fn func(*bolt.Tx) error) error {
	return s.guard(func(db *bolt.DB) error { return db.Update(fn) })
}

// onFault wraps a batched transaction function, which bbolt runs on a
// goroutine of its own: a fault there becomes a panic that bbolt recovers
// and answers by running fn again alone, on the caller's goroutine, under
// guard.
func onFault(fn func(*bolt.Tx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		return fn(tx)
	}
}

// health is what [Store.Health] reports; nil when all is well.
type health struct{ err error }

// Health returns nil while the database is usable, else why not: a fault
// was found and the file is being replaced, or no fresh one could be
// opened. Requests meanwhile see [ErrUnavailable] or the fault.
func (s *Store) Health() error {
	if h := s.health.Load(); h != nil {
		return h.err
	}
	return nil
}

// Settle waits until a replacement of the database under way has ended.
func (s *Store) Settle() { s.bg.Wait() }

// faulted starts replacing the database after a fault (once at a time).
func (s *Store) faulted(fe *FaultError) {
	if s.readOnly || !s.recovering.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.bg.Add(1) // under s.mu: Close waits for it
	s.mu.Unlock()
	s.log.Error("database fault while serving; moving it aside and starting a fresh one", "path", s.dbPath, "err", fe)
	s.health.Store(&health{err: fmt.Errorf("database fault at %s: %w; replacing it", time.Now().UTC().Format(time.RFC3339), fe)})
	go func() {
		defer s.bg.Done()
		defer s.recovering.Store(false)
		if s.beforeRecover != nil {
			s.beforeRecover()
		}
		s.replaceDB()
	}()
}

// replaceDB closes the faulty database (or gives up on it, see
// abandonDB), moves the file aside and opens a fresh one. Blobs stay; their
// stamps are recorded again as they are opened. No lock is held while
// bbolt works: a transaction stuck on the faulty database must not hold up
// the rest.
func (s *Store) replaceDB() {
	s.dbMu.Lock()
	old := s.db
	s.db = nil
	s.dbMu.Unlock()
	if old != nil {
		s.abandonDB(old)
	}
	if s.isClosed() {
		return
	}
	if err := s.moveAside(nil, "fault"); err != nil {
		s.log.Error("moving the faulty database aside", "path", s.dbPath, "err", err)
		s.health.Store(&health{err: fmt.Errorf("database fault; moving it aside failed: %w", err)})
		return
	}
	db, err := boltOpen(s.dbPath, Options{Timeout: time.Second})
	if err == nil {
		err = migrateGuarded(db, 0)
		if err != nil {
			closeQuietly(db)
		}
	}
	if err != nil {
		s.log.Error("opening a fresh database after a fault; serving without one", "path", s.dbPath, "err", err)
		s.health.Store(&health{err: fmt.Errorf("database fault; no fresh database: %w", err)})
		return
	}
	db.MaxBatchDelay = batchDelay
	s.dbMu.Lock()
	s.db = db
	s.dbMu.Unlock()
	s.stamps.Clear()
	s.health.Store(nil)
	s.log.Warn("fresh database open after a fault; cached records are recomputed as needed", "path", s.dbPath)
}

// abandonTimeout is how long replaceDB waits for the faulty database to
// close before it gives up on it.
const abandonTimeout = 5 * time.Second

// abandonDB closes a faulty database, waiting at most abandonTimeout: a
// write transaction that faulted inside bbolt's commit or rollback may have
// left its writer lock held, and Close would wait for it forever. The file
// descriptor and mapping are then left behind (the file is renamed; its
// lock does not cover the fresh file).
func (s *Store) abandonDB(db *bolt.DB) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		closeQuietly(db)
	}()
	t := time.NewTimer(abandonTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Error("the faulty database does not close (a transaction holds it); leaving it open", "path", s.dbPath)
	}
}

// closeQuietly closes a database that may be damaged.
func closeQuietly(db *bolt.DB) {
	defer func() { _ = recover() }()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	_ = db.Close()
}

// migrateGuarded is migrate with faults turned into errors.
func migrateGuarded(db *bolt.DB, v int) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &FaultError{Detail: fmt.Sprint(r)}
		}
	}()
	return migrate(db, v)
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// precheck looks at the file before bbolt maps it (see the top of this
// file): reason is "corrupt" when it must be moved aside.
func (s *Store) precheck(opts Options) (reason string, err error) {
	fi, err := os.Stat(s.dbPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cache: opening %s: %w", s.dbPath, err)
	}
	if fi.Size() == 0 {
		if opts.ReadOnly {
			return "", fmt.Errorf("%w: %s is empty", ErrCorrupt, s.dbPath)
		}
		// bbolt writes a new database into an empty file: nothing to keep.
		s.log.Warn("database file is empty (a crash while it was created?); starting a fresh one", "path", s.dbPath)
		s.damage.movedAside.WithLabelValues("empty").Inc()
		return "", nil
	}
	if err := checkFile(s.dbPath); err != nil {
		if isOSError(err) {
			return "", fmt.Errorf("cache: opening %s: %w", s.dbPath, err)
		}
		if opts.ReadOnly {
			return "", fmt.Errorf("%w: %s: %w", ErrCorrupt, s.dbPath, err)
		}
		s.log.Error("database damaged", "path", s.dbPath, "err", err)
		return "corrupt", nil
	}
	if opts.Check == nil || opts.ReadOnly {
		return "", nil
	}
	switch err := s.check(opts); {
	case err == nil:
	case errors.Is(err, ErrLocked):
		return "", fmt.Errorf("%w: %s is locked (is pipgate serve running?)", ErrLocked, s.dbPath)
	case errors.Is(err, ErrCorrupt):
		s.log.Error("database damaged", "path", s.dbPath, "err", err)
		return "corrupt", nil
	default:
		s.log.Warn("database check did not finish; opening it unchecked", "path", s.dbPath, "err", err)
	}
	return "", nil
}
