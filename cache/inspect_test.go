package cache_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

// populate puts one record of every kind and two blobs into s.
func populate(t *testing.T, s *cache.Store) (blobs []string) {
	t.Helper()
	now := time.Now()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.PutFacts(cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumA}, pypi.Facts{Verdict: pypi.VerdictUnattested}))
	must(s.PutFacts(cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumB, ProvenanceSHA256: sumC}, pypi.Facts{Verdict: pypi.VerdictVerified}))
	must(s.PutProvenance("default", "https://pypi.org/integrity/demo/1/demo-1.tar.gz/provenance", cache.ProvenanceEntry{Body: []byte("{}"), FetchedAt: now}))
	must(s.PutPage("default", "demo", &pypi.ProjectPage{Name: "demo"}, now))
	must(s.PutProjectList(&pypi.ProjectList{Projects: []pypi.ProjectEntry{{Name: "demo"}}}, now))
	must(s.UpdateHistory("demo", func(*cache.History) {}))
	for _, data := range []string{"wheel", "metadata"} {
		sum, err := writeBlob(t, s, []byte(data), "")
		must(err)
		blobs = append(blobs, sum)
	}
	must(s.PutRef("metadata:"+sumA, blobs[1]))
	return blobs
}

func TestStats(t *testing.T) {
	s := openStore(t, "")
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if want := (cache.Stats{SchemaVersion: cache.SchemaVersion, DBBytes: st.DBBytes}); st != want || st.DBBytes <= 0 {
		t.Errorf("Stats of an empty store: got %+v; want %+v with DBBytes > 0", st, want)
	}
	populate(t, s)
	st, err = s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := cache.Stats{
		SchemaVersion: cache.SchemaVersion, Facts: 2, Provenance: 1, Pages: 1, Refs: 1, Projects: 1,
		ProjectList: true, Blobs: 2, BlobBytes: int64(len("wheel") + len("metadata")), DBBytes: st.DBBytes,
	}
	if st != want {
		t.Errorf("Stats: got %+v; want %+v", st, want)
	}
}

func TestPurge(t *testing.T) {
	cases := []struct {
		what string
		want func(full cache.Stats) cache.Stats
	}{
		{"index", func(s cache.Stats) cache.Stats { s.Pages, s.ProjectList = 0, false; return s }},
		{"facts", func(s cache.Stats) cache.Stats { s.Facts = 0; return s }},
		{"provenance", func(s cache.Stats) cache.Stats { s.Provenance = 0; return s }},
		{"history", func(s cache.Stats) cache.Stats { s.Projects = 0; return s }},
		{"blobs", func(s cache.Stats) cache.Stats { s.Blobs, s.BlobBytes, s.Refs = 0, 0, 0; return s }},
		{"all", func(s cache.Stats) cache.Stats {
			return cache.Stats{SchemaVersion: s.SchemaVersion, DBBytes: s.DBBytes}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.what, func(t *testing.T) {
			s := openStore(t, "")
			populate(t, s)
			full, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Purge(tc.what); err != nil {
				t.Fatalf("Purge(%q): %v", tc.what, err)
			}
			got, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want(full)
			want.DBBytes = got.DBBytes
			if got != want {
				t.Errorf("Stats after Purge(%q): got %+v; want %+v", tc.what, got, want)
			}
			rep, err := s.Verify()
			if err != nil || !rep.OK() {
				t.Errorf("Verify after Purge(%q): got %+v, %v; want no problems", tc.what, rep.Problems, err)
			}
			// The store stays usable.
			if err := s.PutFacts(cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sumC}, pypi.Facts{Verdict: pypi.VerdictInvalid}); err != nil {
				t.Errorf("PutFacts after Purge(%q): %v", tc.what, err)
			}
		})
	}
	s := openStore(t, "")
	if err := s.Purge("everything"); err == nil || !strings.Contains(err.Error(), "index") {
		t.Errorf("Purge(everything): got %v; want an error listing the targets", err)
	}
	if got := cache.PurgeTargets(); !slices.Contains(got, "all") || !slices.Contains(got, "blobs") {
		t.Errorf("PurgeTargets: got %q", got)
	}
}

func TestVerifyFindsProblems(t *testing.T) {
	dir := t.TempDir()
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	blobs := populate(t, s)
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	// 7 records, plus the stamp Commit recorded for each of the 2 blobs.
	if !rep.OK() || rep.Records != 9 || rep.Blobs != 2 {
		t.Fatalf("Verify of a healthy store: got %+v; want 9 records, 2 blobs, no problems", rep)
	}
	if err := s.PutRef("metadata:"+sumB, sumC); err != nil { // a blob never written
		t.Fatal(err)
	}
	s.Close()

	// Damage the directory behind the store's back.
	wheel := filepath.Join(dir, "blobs", "sha256", blobs[0][:2], blobs[0])
	if err := os.Chmod(wheel, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wheel, []byte("wheeL"), 0o600); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(dir, "blobs", "sha256", "notes.txt")
	if err := os.WriteFile(stray, []byte("hi"), 0o600); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(dir, "blobs", "tmp", "blob-123")
	if err := os.WriteFile(orphan, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "pipgate.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("facts")).Put([]byte("nonsense"), []byte(`{"v":1}`)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("pages")).Put([]byte("default/demo"), []byte(`{"v":1,"page":`)); err != nil {
			return err
		}
		return tx.Bucket([]byte("history")).Put([]byte("future"), []byte(`{"v":7}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	rep = verifyReadOnly(t, dir)
	want := []struct{ kind, where string }{
		{"record", "facts/nonsense"},
		{"record", "history/future"},
		{"record", "pages/default/demo"},
		{"ref", "refs/metadata:" + sumB},
		{"blob", wheel},
		{"blob", stray},
		{"temp", orphan},
	}
	var got []string
	for _, p := range rep.Problems {
		got = append(got, p.Kind+" "+p.Where)
	}
	for _, w := range want {
		if !slices.Contains(got, w.kind+" "+w.where) {
			t.Errorf("Verify: missing problem %s %s in %q", w.kind, w.where, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Verify: got %d problems %q; want %d", len(got), got, len(want))
	}
	if rep.OK() {
		t.Error("Report.OK: got true")
	}

	// The damaged page reads as a bad record, which callers treat as a miss.
	s = openStore(t, dir)
	if _, _, err := s.Page("default", "demo"); !errors.Is(err, cache.ErrBadRecord) {
		t.Errorf("Page of a garbled record: got %v; want ErrBadRecord", err)
	}
	if _, err := s.History("future"); !errors.Is(err, cache.ErrBadRecord) {
		t.Errorf("History of a newer record: got %v; want ErrBadRecord", err)
	}
}
