package cache_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// openStore opens a read-write Store in dir (a fresh temp dir when "") and
// registers a cleanup that closes it and runs bbolt's consistency check on
// the file, as bbolt's internal/btesting does after every test.
func openStore(t testing.TB, dir string) *cache.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkDB(t, s.Path())
	})
	return s
}

// checkDB runs tx.Check on the bbolt file at path.
func checkDB(t testing.TB, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("integrity check: opening %s: %v", path, err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("integrity check of %s: %v", path, err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("integrity check: %v", err)
	}
}

func newLogger() (*slog.Logger, *pypitest.LogBuffer) {
	b := &pypitest.LogBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// pypiFixtures returns the real PyPI fixture folder (internal/fixtures).
func pypiFixtures(t testing.TB) string {
	t.Helper()
	return fixtures.PyPI(t)
}

// files lists the regular files under dir, relative to it.
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return out
}
