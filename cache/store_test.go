package cache_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

var (
	sumA = strings.Repeat("a", 64)
	sumB = strings.Repeat("b", 64)
	sumC = strings.Repeat("c", 64)
)

func TestOpenCreatesDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	s := openStore(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o700); got != want {
		t.Errorf("data dir mode: got %v; want %v", got, want)
	}
	for _, p := range []string{"pipgate.db", "blobs/sha256", "blobs/tmp"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("missing %s: %v", p, err)
		}
	}
	if got, want := s.Path(), filepath.Join(dir, "pipgate.db"); got != want {
		t.Errorf("Path: got %q; want %q", got, want)
	}
	if _, err := cache.Open(cache.Options{}); err == nil {
		t.Error("Open without Dir: got nil error")
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir)
	for _, ro := range []bool{false, true} {
		start := time.Now()
		s, err := cache.Open(cache.Options{Dir: dir, Timeout: 100 * time.Millisecond, ReadOnly: ro})
		if err == nil {
			s.Close()
			t.Fatalf("second Open (read-only %v): got nil error", ro)
		}
		if !errors.Is(err, cache.ErrLocked) {
			t.Errorf("second Open (read-only %v): got %v; want ErrLocked", ro, err)
		}
		if !strings.Contains(err.Error(), filepath.Join(dir, "pipgate.db")) {
			t.Errorf("error %q does not name the database", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("second Open took %v despite a 100ms timeout", d)
		}
	}
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	if _, err := cache.Open(cache.Options{Dir: dir, ReadOnly: true}); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("read-only Open of an empty dir: got %v; want ErrNotFound", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("read-only Open created %d entries", len(entries))
	}
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutRef("x", sumA); err != nil {
		t.Fatal(err)
	}
	s.Close()

	ro, err := cache.Open(cache.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got, err := ro.Ref("x"); err != nil || got != sumA {
		t.Errorf("Ref on read-only store: got %q, %v; want %q", got, err, sumA)
	}
	if err := ro.PutRef("y", sumB); err == nil {
		t.Error("PutRef on a read-only store: got nil error")
	}
	if _, err := ro.NewBlob(); err == nil {
		t.Error("NewBlob on a read-only store: got nil error")
	}
	// Two read-only stores share the lock.
	ro2, err := cache.Open(cache.Options{Dir: dir, ReadOnly: true, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("second read-only Open: %v", err)
	}
	ro2.Close()
}

func TestOpenCorruptMovedAside(t *testing.T) {
	garbage := bytes.Repeat([]byte("not a bbolt file \x00\xff"), 1000)
	cases := []struct {
		name string
		data []byte
	}{
		{"garbage", garbage},
		{"short", []byte("x")},
		{"zero page", make([]byte, 8192)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "pipgate.db")
			if err := os.WriteFile(dbPath, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}

			// Read-only: refuse, touch nothing.
			if _, err := cache.Open(cache.Options{Dir: dir, ReadOnly: true}); !errors.Is(err, cache.ErrCorrupt) {
				t.Errorf("read-only Open: got %v; want ErrCorrupt", err)
			}
			if got, _ := os.ReadFile(dbPath); !bytes.Equal(got, tc.data) {
				t.Fatal("read-only Open changed the corrupt file")
			}

			log, buf := newLogger()
			s, err := cache.Open(cache.Options{Dir: dir, Logger: log})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { s.Close(); checkDB(t, dbPath) })
			if err := s.PutFacts(cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumA}, pypi.Facts{Verdict: pypi.VerdictUnattested}); err != nil {
				t.Fatalf("fresh database unusable: %v", err)
			}
			moved, _ := filepath.Glob(dbPath + ".corrupt-*")
			if len(moved) != 1 {
				t.Fatalf("moved-aside files: got %q; want one pipgate.db.corrupt-*", moved)
			}
			if got, _ := os.ReadFile(moved[0]); !bytes.Equal(got, tc.data) {
				t.Error("moved-aside file does not hold the original bytes")
			}
			logs := buf.String()
			if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, dbPath) || !strings.Contains(logs, moved[0]) {
				t.Errorf("log %q: want an ERROR line naming %s and %s", logs, dbPath, moved[0])
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	k := cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumA, ProvenanceSHA256: sumB, TrustRootSHA256: sumC}
	if err := s.PutFacts(k, pypi.Facts{Verdict: pypi.VerdictVerified}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	log, buf := newLogger()
	s2, err := cache.Open(cache.Options{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close(); checkDB(t, s2.Path()) })
	f, _, err := s2.Facts(k)
	if err != nil || f.Verdict != pypi.VerdictVerified {
		t.Errorf("Facts after reopen: got %q, %v; want %q", f.Verdict, err, pypi.VerdictVerified)
	}
	if strings.Contains(buf.String(), "moved aside") {
		t.Errorf("a healthy database was moved aside: %s", buf.String())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "pipgate.db.*")); len(m) != 0 {
		t.Errorf("unexpected files %q", m)
	}
}
