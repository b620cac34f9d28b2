package cache

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pipgate/pipgate/pypi"
)

// writeDB creates a bbolt file at Dir/pipgate.db with the given buckets and
// keys, as some other program (or a newer pipgate) would have left it.
func writeDB(t *testing.T, dir string, content map[string]map[string]string) string {
	t.Helper()
	path := filepath.Join(dir, dbName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for bn, kv := range content {
			b, err := tx.CreateBucketIfNotExists([]byte(bn))
			if err != nil {
				return err
			}
			for k, v := range kv {
				if err := b.Put([]byte(k), []byte(v)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// schemaOf returns the schema version stored in the bbolt file at path,
// after bbolt's consistency check of the file.
func schemaOf(t *testing.T, path string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	_ = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("integrity check of %s: %v", path, err)
		}
		if b := tx.Bucket([]byte(bucketMeta)); b != nil {
			v = string(b.Get([]byte(keySchema)))
		}
		return nil
	})
	return v
}

func TestOpenMovesAsideUnknownSchemas(t *testing.T) {
	cases := []struct {
		name    string
		content map[string]map[string]string
		reason  string // suffix of the moved-aside name, "" when kept
		roErr   error  // read-only Open error
	}{
		{"newer schema", map[string]map[string]string{bucketMeta: {keySchema: "99"}, bucketFacts: {"k": "v"}}, "schema99", ErrSchema},
		{"garbled schema", map[string]map[string]string{bucketMeta: {keySchema: "one"}}, "corrupt", ErrCorrupt},
		{"foreign database", map[string]map[string]string{"widgets": {"a": "b"}}, "corrupt", ErrCorrupt},
		{"current schema", map[string]map[string]string{bucketMeta: {keySchema: strconv.Itoa(SchemaVersion)}, bucketFacts: {"k": "v"}}, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeDB(t, dir, tc.content)

			ro, err := Open(Options{Dir: dir, ReadOnly: true})
			if !errors.Is(err, tc.roErr) || (tc.roErr == nil) != (err == nil) {
				t.Errorf("read-only Open: got %v; want %v", err, tc.roErr)
			}
			if err == nil {
				ro.Close()
			}

			var buf strings.Builder
			s, err := Open(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got, want := schemaOf(t, path), strconv.Itoa(SchemaVersion); got != want {
				t.Errorf("schema after Open: got %q; want %q", got, want)
			}
			moved, _ := filepath.Glob(path + ".*")
			if tc.reason == "" {
				if len(moved) != 0 || buf.Len() != 0 {
					t.Errorf("kept database: moved %q, log %q", moved, buf.String())
				}
				return
			}
			if len(moved) != 1 || !strings.HasPrefix(filepath.Base(moved[0]), dbName+"."+tc.reason+"-") {
				t.Fatalf("moved aside: got %q; want one %s.%s-<timestamp>", moved, dbName, tc.reason)
			}
			if got := schemaOf(t, moved[0]); got != tc.content[bucketMeta][keySchema] {
				t.Errorf("moved-aside schema: got %q; want %q (untouched)", got, tc.content[bucketMeta][keySchema])
			}
			// A newer schema is a warning; a file that is not a pipgate
			// database is damage, an error.
			level := "WARN"
			if tc.reason == "corrupt" {
				level = "ERROR"
			}
			if log := buf.String(); !strings.Contains(log, level) || !strings.Contains(log, path) || !strings.Contains(log, moved[0]) {
				t.Errorf("log %q: want a %s line naming %s and %s", log, level, path, moved[0])
			}
			// A second move in the same second gets another name.
			if err := os.WriteFile(path, []byte("garbage garbage garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err = Open(Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if all, _ := filepath.Glob(path + ".*"); len(all) != 2 {
				t.Errorf("after a second move: got %q; want two moved-aside files", all)
			}
		})
	}
}

func TestMigrationTable(t *testing.T) {
	// Every schema before the current one must have a migration step.
	for v := 1; v < SchemaVersion; v++ {
		if migration(v) == nil {
			t.Errorf("no migration from schema %d to %d", v, v+1)
		}
	}
	if m := migration(SchemaVersion); m != nil {
		t.Errorf("migration(%d): got a step beyond the current schema", SchemaVersion)
	}
}

// TestMigrateSchema1DropsFacts opens a schema-1 database as pipgate 1 left
// it: its facts, keyed by digests without the filename, are not trusted
// (dropped, so they are recomputed), and the rest carries over.
func TestMigrateSchema1DropsFacts(t *testing.T) {
	dir := t.TempDir()
	a, b, c := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	verified := `{"v":1,"recorded_at":"2026-01-01T00:00:00Z","facts":{"verdict":"verified"}}`
	path := writeDB(t, dir, map[string]map[string]string{
		bucketMeta:    {keySchema: "1"},
		bucketFacts:   {a + "/" + b + "/" + c: verified, a + "/-/" + c: `{"v":1,"recorded_at":"2026-01-01T00:00:00Z","facts":{"verdict":"unattested"}}`},
		bucketRefs:    {"metadata:" + a: `{"v":1,"sha256":"` + b + `","at":"2026-01-01T00:00:00Z"}`},
		bucketHistory: {"demo": `{"v":1,"history":{"first_seen":"2026-01-01T00:00:00Z"}}`},
	})

	// Read-only inspection refuses the old schema instead of trusting it.
	if _, err := Open(Options{Dir: dir, ReadOnly: true}); !errors.Is(err, ErrSchema) {
		t.Fatalf("read-only Open of schema 1: got %v; want ErrSchema", err)
	}
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for _, fn := range []string{"demo-1.0.tar.gz", "evil-1.0.tar.gz"} {
		if _, _, err := s.Facts(FactKey{Filename: fn, FileSHA256: a, ProvenanceSHA256: b, TrustRootSHA256: c}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Facts(%s) after migration: got %v; want ErrNotFound (schema-1 verdicts are not trusted)", fn, err)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Facts != 0 || st.SchemaVersion != SchemaVersion {
		t.Errorf("after migration: %d facts, schema %d; want 0 facts, schema %d", st.Facts, st.SchemaVersion, SchemaVersion)
	}
	if got, err := s.Ref("metadata:" + LegacyUpstream + ":" + a); err != nil || got != b {
		t.Errorf("ref after migration: %q, %v; want %s kept", got, err, b)
	}
	if _, err := s.History("demo"); err != nil {
		t.Errorf("history after migration: %v; want it kept", err)
	}
	// New facts are written and read under the new key.
	k := FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: a, ProvenanceSHA256: b, TrustRootSHA256: c}
	if err := s.PutFacts(k, pypi.Facts{Verdict: pypi.VerdictVerified}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := schemaOf(t, path); got != strconv.Itoa(SchemaVersion) {
		t.Errorf("schema on disk: %q; want %d", got, SchemaVersion)
	}
	if moved, _ := filepath.Glob(path + ".*"); len(moved) != 0 {
		t.Errorf("migration moved the database aside: %q", moved)
	}
	s, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if f, _, err := s.Facts(k); err != nil || f.Verdict != pypi.VerdictVerified {
		t.Errorf("facts after reopening: %+v, %v", f, err)
	}
}

// TestMigrateSchema2ScopesKeys opens a schema-2 database, whose pages,
// provenance and metadata refs came from the one upstream there was: they
// are filed under LegacyUpstream, readable as before, and Verify is clean.
func TestMigrateSchema2ScopesKeys(t *testing.T) {
	dir := t.TempDir()
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	provURL := "https://pypi.org/integrity/demo/1.0/demo-1.0.tar.gz/provenance"
	path := writeDB(t, dir, map[string]map[string]string{
		bucketMeta:       {keySchema: "2"},
		bucketPages:      {"demo": `{"v":1,"fetched_at":"2026-01-01T00:00:00Z","page":{"Name":"demo"}}`},
		bucketProvenance: {provURL: `{"v":1,"fetched_at":"2026-01-01T00:00:00Z","absent":true}`},
		bucketRefs:       {"metadata:" + a: `{"v":1,"sha256":"` + b + `","at":"2026-01-01T00:00:00Z"}`, "other": `{"v":1,"sha256":"` + b + `","at":"2026-01-01T00:00:00Z"}`},
	})
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if p, _, err := s.Page(LegacyUpstream, "demo"); err != nil || p.Name != "demo" {
		t.Errorf("Page(%s, demo) after migration: %+v, %v", LegacyUpstream, p, err)
	}
	if e, err := s.Provenance(LegacyUpstream, provURL); err != nil || !e.Absent {
		t.Errorf("Provenance after migration: %+v, %v", e, err)
	}
	if got, err := s.Ref("metadata:" + LegacyUpstream + ":" + a); err != nil || got != b {
		t.Errorf("metadata ref after migration: %q, %v", got, err)
	}
	if got, err := s.Ref("other"); err != nil || got != b {
		t.Errorf("another ref after migration: %q, %v; want it untouched", got, err)
	}
	if _, _, err := s.Page("pypi", "demo"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Page(pypi, demo): %v; want ErrNotFound (another upstream's record)", err)
	}
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if p.Kind == "record" {
			t.Errorf("Verify after migration: %+v", p)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := schemaOf(t, path); got != "3" {
		t.Errorf("schema on disk: %q; want 3", got)
	}
}
