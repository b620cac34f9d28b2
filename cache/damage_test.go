package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

// checkDBArg makes the test binary the child of cache.ChildCheck.
const checkDBArg = "--pipgate-test-check-db"

// runCheckChild lets the test binary serve as the child of
// cache.ChildCheck (TestMain calls it first): called with checkDBArg PATH it
// runs CheckDB on PATH and exits the way 'pipgate cache check-db' does.
func runCheckChild() {
	if len(os.Args) != 3 || os.Args[1] != checkDBArg {
		return
	}
	err := cache.CheckDB(os.Args[2])
	switch {
	case err == nil:
		os.Exit(0)
	case errors.Is(err, cache.ErrLocked):
		os.Exit(cache.CheckExitLocked)
	case errors.Is(err, cache.ErrCorrupt):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(cache.CheckExitDamaged)
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// childCheck is cache.ChildCheck running this test binary.
func childCheck(t testing.TB) func(context.Context, string) error {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return cache.ChildCheck(exe, checkDBArg)
}

// filledDB writes a data directory whose database spans many pages (page
// snapshots and facts) and holds one blob; it returns the blob's sha256.
func filledDB(t *testing.T, dir string) string {
	t.Helper()
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 60 {
		p := &pypi.ProjectPage{Name: fmt.Sprintf("demo%d", i)}
		for j := range 30 {
			p.Files = append(p.Files, pypi.File{Filename: fmt.Sprintf("demo%d-%d.0.tar.gz", i, j),
				URL: fmt.Sprintf("https://files.example/demo%d-%d.0.tar.gz", i, j)})
		}
		if err := s.PutPage("default", p.Name, p, now); err != nil {
			t.Fatal(err)
		}
	}
	sum := putBlob(t, s, []byte("a file that must survive a database rebuild"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return sum
}

const pageSize = 4096

// damage is one way to break pipgate.db.
type damage struct {
	name  string
	apply func(t *testing.T, path string)
	// deep: only the thorough check (a child process) finds it before
	// serving; the cheap checks pass it.
	deep bool
}

func truncateTo(n int64) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		if err := os.Truncate(path, n); err != nil {
			t.Fatal(err)
		}
	}
}

// garbage overwrites pages [from, to) (to < 0: to the end) with random bytes.
func garbage(from, to int64) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fi, _ := f.Stat()
		if to < 0 {
			to = fi.Size() / pageSize
		}
		rng := rand.New(rand.NewPCG(uint64(from), uint64(to))) //nolint:gosec // reproducible garbage, not a secret
		buf := make([]byte, pageSize)
		for p := from; p < to; p++ {
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			if _, err := f.WriteAt(buf, p*pageSize); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func damages() []damage {
	ds := []damage{
		{name: "text file", apply: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("this is not a database\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "garbage after the meta pages", apply: garbage(2, -1)},
		{name: "garbage meta pages", apply: garbage(0, 2)},
		{name: "garbage pages in the middle", apply: garbage(6, 40), deep: true},
	}
	for _, n := range []int64{4 << 10, 8 << 10, 12 << 10, 16 << 10, 20 << 10, 24 << 10, 64 << 10} {
		ds = append(ds, damage{name: fmt.Sprintf("truncated to %d KiB", n>>10), apply: truncateTo(n)})
	}
	return ds
}

// TestOpenDamagedDB: serve's Open of a damaged database never crashes: the
// file is moved aside (kept, byte for byte, with a timestamp), an error is
// logged and counted, and the fresh database works; the blob is still
// served (re-adopted by a rehash). Cases only the thorough check finds are
// opened with the child-process check, as serve does.
func TestOpenDamagedDB(t *testing.T) {
	for _, d := range damages() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			sum := filledDB(t, dir)
			path := filepath.Join(dir, "pipgate.db")
			d.apply(t, path)
			damaged, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			logger, logs := newLogger()
			reg := prometheus.NewRegistry()
			opts := cache.Options{Dir: dir, Logger: logger, Registerer: reg}
			if d.deep {
				opts.Check = childCheck(t)
			}
			s, err := cache.Open(opts)
			if err != nil {
				t.Fatalf("Open: %v\n%s", err, logs)
			}
			defer s.Close()
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("moved aside: %v; want one pipgate.db.corrupt-<time>\n%s", aside, logs)
			}
			if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, damaged) {
				t.Errorf("the damaged file was not kept as it was (%d bytes, want %d)", len(kept), len(damaged))
			}
			if !strings.Contains(logs.String(), "level=ERROR msg=\"database damaged\"") {
				t.Errorf("no error logged:\n%s", logs)
			}
			if n := gatherLabeled(t, reg, "pipgate_cache_db_moved_aside_total", "corrupt"); n != 1 {
				t.Errorf("pipgate_cache_db_moved_aside_total{reason=corrupt} = %v; want 1", n)
			}
			if _, _, err := s.Page("default", "demo1"); !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("a page in the fresh database: %v; want ErrNotFound", err)
			}
			if err := s.PutPage("default", "demo1", &pypi.ProjectPage{Name: "demo1"}, time.Now()); err != nil {
				t.Fatalf("writing to the fresh database: %v", err)
			}
			if _, _, err := s.Page("default", "demo1"); err != nil {
				t.Errorf("reading back from the fresh database: %v", err)
			}
			b, err := s.OpenBlob(sum)
			if err != nil {
				t.Fatalf("the blob after the rebuild: %v", err)
			}
			b.Close()
			if s.Health() != nil {
				t.Errorf("Health after the rebuild: %v", s.Health())
			}
		})
	}
}

// TestOpenEmptyDB: a zero-length pipgate.db (a crash while it was created)
// gets a warning and a fresh database.
func TestOpenEmptyDB(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pipgate.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	reg := prometheus.NewRegistry()
	s, err := cache.Open(cache.Options{Dir: dir, Logger: logger, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(logs.String(), "level=WARN msg=\"database file is empty") {
		t.Errorf("no warning for the empty file:\n%s", logs)
	}
	if n := gatherLabeled(t, reg, "pipgate_cache_db_moved_aside_total", "empty"); n != 1 {
		t.Errorf("pipgate_cache_db_moved_aside_total{reason=empty} = %v; want 1", n)
	}
	if err := s.PutPage("default", "demo", &pypi.ProjectPage{Name: "demo"}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestCheckDamagedDB: the read-only open (cache stats, cache verify) and the
// thorough check report every damage as ErrCorrupt, without crashing and
// without touching the file; a sound database passes both.
func TestCheckDamagedDB(t *testing.T) {
	sound := t.TempDir()
	filledDB(t, sound)
	check := childCheck(t)
	if err := check(context.Background(), filepath.Join(sound, "pipgate.db")); err != nil {
		t.Fatalf("check of a sound database: %v", err)
	}
	for _, d := range append(damages(), damage{name: "empty", apply: truncateTo(0)}) {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			filledDB(t, dir)
			path := filepath.Join(dir, "pipgate.db")
			d.apply(t, path)
			before, _ := os.ReadFile(path)
			if err := check(context.Background(), path); !errors.Is(err, cache.ErrCorrupt) {
				t.Errorf("child check: %v; want ErrCorrupt", err)
			}
			if !d.deep {
				s, err := cache.Open(cache.Options{Dir: dir, ReadOnly: true})
				if err == nil {
					s.Close()
				}
				if !errors.Is(err, cache.ErrCorrupt) {
					t.Errorf("read-only Open: %v; want ErrCorrupt", err)
				}
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("checking changed the file")
			}
		})
	}
}

// TestFaultWhileServing: a database damaged under a running store (pages
// overwritten with garbage, or the file cut short so that bbolt's mapping
// faults) costs the requests that hit it an error matching ErrCorrupt, no
// crash; Health reports it until the store has moved the file aside and
// opened a fresh one, which then serves; the blobs stay.
func TestFaultWhileServing(t *testing.T) {
	for _, d := range []damage{
		{name: "garbage pages", apply: garbage(2, -1)},
		{name: "truncated", apply: truncateTo(8 << 10)},
	} {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			sum := filledDB(t, dir)
			logger, logs := newLogger()
			reg := prometheus.NewRegistry()
			s, err := cache.Open(cache.Options{Dir: dir, Logger: logger, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, _, err := s.Page("default", "demo7"); err != nil {
				t.Fatalf("before the damage: %v", err)
			}
			if fi, _ := os.Stat(s.Path()); fi.Size() < 48*pageSize {
				t.Fatalf("the database is %d bytes; the damages below need more pages", fi.Size())
			}
			release := cache.HoldRecovery(s)
			d.apply(t, s.Path())
			_, _, err = s.Page("default", "demo50")
			if !errors.Is(err, cache.ErrCorrupt) {
				t.Fatalf("a read of the damaged database: %v; want ErrCorrupt", err)
			}
			if s.Health() == nil {
				t.Error("Health is nil while the damaged database is being replaced")
			}
			// Writes fail cleanly too, until the replacement.
			if err := s.PutPage("default", "x", &pypi.ProjectPage{Name: "x"}, time.Now()); err == nil {
				t.Log("a write succeeded on the damaged database")
			}
			release()
			s.Settle()
			if err := s.Health(); err != nil {
				t.Fatalf("Health after the replacement: %v\n%s", err, logs)
			}
			if aside, _ := filepath.Glob(s.Path() + ".fault-*"); len(aside) != 1 {
				t.Errorf("moved aside: %v; want one pipgate.db.fault-<time>", aside)
			}
			if n := gatherLabeled(t, reg, "pipgate_cache_db_moved_aside_total", "fault"); n != 1 {
				t.Errorf("pipgate_cache_db_moved_aside_total{reason=fault} = %v; want 1", n)
			}
			if !strings.Contains(logs.String(), "level=ERROR msg=\"database fault while serving") {
				t.Errorf("no error logged:\n%s", logs)
			}
			if err := s.PutPage("default", "demo50", &pypi.ProjectPage{Name: "demo50"}, time.Now()); err != nil {
				t.Fatalf("writing after the replacement: %v", err)
			}
			if _, _, err := s.Page("default", "demo50"); err != nil {
				t.Errorf("reading after the replacement: %v", err)
			}
			b, err := s.OpenBlob(sum)
			if err != nil {
				t.Fatalf("the blob after the replacement: %v", err)
			}
			b.Close()
		})
	}
}

// gatherLabeled returns the counter name{reason=label}.
func gatherLabeled(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{%s} not gathered", name, label)
	return 0
}
