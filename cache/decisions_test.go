package cache_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

func decision(project, file string, at time.Time) cache.Decision {
	return cache.Decision{Project: project, Filename: file, Version: "1.0", Verdict: "verified", Action: "allow",
		Rule: "default", Identity: "github:o/r@release.yml", Count: 1, FirstSeen: at, LastSeen: at}
}

// Rows merge by key (count added, first and last seen widened), a different
// decision about the same file is its own row, and the rows survive closing
// and reopening the data directory.
func TestDecisionsMergeAndSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	a := decision("demo", "demo-1.0.tar.gz", t0.Add(time.Hour))
	b := a
	b.FirstSeen, b.LastSeen, b.Count, b.Reason = t0, t0, 2, "older"
	blocked := a
	blocked.Action, blocked.Verdict, blocked.Identity, blocked.Rule = "block", "unattested", "", "demo"
	if err := s.AddDecisions([]cache.Decision{a, blocked}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDecisions([]cache.Decision{b, decision("other", "other-1.0.tar.gz", t0)}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	got, err := s.Decisions("demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("demo has %d rows, want 2: %+v", len(got), got)
	}
	var allow cache.Decision
	for _, d := range got {
		if d.Action == "allow" {
			allow = d
		}
	}
	if allow.Count != 3 || !allow.FirstSeen.Equal(t0) || !allow.LastSeen.Equal(t0.Add(time.Hour)) || allow.Reason != "" {
		t.Errorf("merged row = %+v, want count 3, first %v, last %v, the newer (empty) reason", allow, t0, t0.Add(time.Hour))
	}
	all, err := s.Decisions("")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Project != "demo" || all[2].Project != "other" {
		t.Errorf("all rows = %+v", all)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Decisions != 3 {
		t.Errorf("Stats.Decisions = %d, want 3", st.Decisions)
	}
	rep, err := s.Verify()
	if err != nil || len(rep.Problems) != 0 {
		t.Errorf("Verify: %v %+v", err, rep.Problems)
	}
	if err := s.Purge("decisions"); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.Decisions(""); len(all) != 0 {
		t.Errorf("after purge: %d rows", len(all))
	}
}

// Past the limit the rows last seen longest ago go first, down to nine
// tenths of the limit; a row seen again recently is kept however old its
// first sighting.
func TestDecisionsBound(t *testing.T) {
	s := openStore(t, "")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const maxRows = 20
	var batch []cache.Decision
	for i := range maxRows {
		batch = append(batch, decision("p", fmt.Sprintf("p-%02d.tar.gz", i), t0.Add(time.Duration(i)*time.Minute)))
	}
	if err := s.AddDecisions(batch, maxRows); err != nil {
		t.Fatal(err)
	}
	// File 00, the oldest, is seen again: now the newest.
	again := decision("p", "p-00.tar.gz", t0.Add(time.Hour))
	over := decision("p", "p-99.tar.gz", t0.Add(2*time.Hour))
	if err := s.AddDecisions([]cache.Decision{again, over}, maxRows); err != nil {
		t.Fatal(err)
	}
	got, err := s.Decisions("p")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxRows-maxRows/10 {
		t.Fatalf("%d rows after trimming, want %d", len(got), maxRows-maxRows/10)
	}
	kept := map[string]bool{}
	for _, d := range got {
		kept[d.Filename] = true
	}
	for _, f := range []string{"p-00.tar.gz", "p-99.tar.gz", "p-19.tar.gz"} {
		if !kept[f] {
			t.Errorf("%s dropped; kept %v", f, kept)
		}
	}
	for _, f := range []string{"p-01.tar.gz", "p-02.tar.gz", "p-03.tar.gz"} {
		if kept[f] {
			t.Errorf("%s (last seen longest ago) kept", f)
		}
	}
}

func TestDecisionsInvalid(t *testing.T) {
	s := openStore(t, "")
	good := decision("p", "p-1.0.tar.gz", time.Now())
	err := s.AddDecisions([]cache.Decision{{Project: "p"}, good}, 0)
	if !errors.Is(err, cache.ErrInvalidKey) {
		t.Errorf("AddDecisions with an empty filename: %v, want ErrInvalidKey", err)
	}
	if got, _ := s.Decisions("p"); len(got) != 1 {
		t.Errorf("the valid decision was not written alongside: %+v", got)
	}
	if _, err := s.Decisions("Not/Normal"); !errors.Is(err, cache.ErrInvalidKey) {
		t.Errorf("Decisions(bad name): %v", err)
	}
}

// A row's facts: the verification verdict (untrusted-publisher was
// verified) and the signer, in full from Signer, else read back from its
// string form; Signer and UploadTime survive merges with rows lacking them.
func TestDecisionFacts(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		row  cache.Decision
		want pypi.Facts
	}{
		{cache.Decision{Verdict: "untrusted-publisher", Identity: "github:evil/fork@release.yml (refs/tags/v1)"},
			pypi.Facts{Verdict: "verified", Identity: &pypi.Identity{Kind: "github", Repository: "evil/fork", Workflow: "release.yml", Ref: "refs/tags/v1"}}},
		{cache.Decision{Verdict: "verified", Identity: "gitlab:group/sub/project"},
			pypi.Facts{Verdict: "verified", Identity: &pypi.Identity{Kind: "gitlab", Repository: "group/sub/project"}}},
		{cache.Decision{Verdict: "verified", Identity: "google:b@p.iam.gserviceaccount.com"},
			pypi.Facts{Verdict: "verified", Identity: &pypi.Identity{Kind: "google", Email: "b@p.iam.gserviceaccount.com"}}},
		{cache.Decision{Verdict: "verified", Identity: "identity:me (x) (https://issuer.example)"},
			pypi.Facts{Verdict: "verified", Identity: &pypi.Identity{Kind: "identity", Subject: "me (x)", Issuer: "https://issuer.example"}}},
		{cache.Decision{Verdict: "verified", Identity: "nonsense"}, pypi.Facts{Verdict: "verified"}},
		{cache.Decision{Verdict: "verified", Identity: "github:o/r", Signer: &pypi.Identity{Kind: "github", Repository: "o/r", Issuer: "i", Workflow: "w.yml"}},
			pypi.Facts{Verdict: "verified", Identity: &pypi.Identity{Kind: "github", Repository: "o/r", Issuer: "i", Workflow: "w.yml"}}},
		{cache.Decision{Verdict: "unattested", Identity: "github:o/r"}, pypi.Facts{Verdict: "unattested"}},
	} {
		got := c.row.Facts()
		if got.Verdict != c.want.Verdict || (got.Identity == nil) != (c.want.Identity == nil) || (got.Identity != nil && *got.Identity != *c.want.Identity) {
			t.Errorf("%+v.Facts() = %+v %+v; want %+v", c.row, got, got.Identity, c.want.Identity)
		}
	}

	s, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := decision("demo", "demo-1.0.tar.gz", at)
	a.Signer, a.UploadTime = &pypi.Identity{Kind: "github", Repository: "o/r", Workflow: "release.yml"}, at.Add(-time.Hour)
	b := decision("demo", "demo-1.0.tar.gz", at.Add(time.Minute)) // a newer row without them
	if err := s.AddDecisions([]cache.Decision{a}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDecisions([]cache.Decision{b}, 0); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Decisions("demo")
	if err != nil || len(rows) != 1 || rows[0].Signer == nil || rows[0].Signer.Workflow != "release.yml" || !rows[0].UploadTime.Equal(a.UploadTime) || rows[0].Count != 2 {
		t.Fatalf("merged rows = %+v, %v", rows, err)
	}
	obs := cache.Observations(rows)
	if len(obs) != 1 || obs[0].Facts.Identity == nil || obs[0].Facts.Identity.Workflow != "release.yml" || obs[0].Count != 2 || obs[0].Action != "allow" {
		t.Errorf("observations = %+v", obs)
	}
}

// Records lists the continuity records kept, by project.
func TestRecords(t *testing.T) {
	s, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if recs, err := s.Records(); err != nil || len(recs) != 0 {
		t.Fatalf("empty store: %v, %v", recs, err)
	}
	rec := &cache.HistoryRecord{Filename: "demo-1.0.tar.gz", Version: "1.0", Publisher: pypi.Identity{Kind: "github", Repository: "o/r"}}
	if err := s.UpdateHistory("demo", func(h *cache.History) { h.Record = rec }); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateHistory("other", func(h *cache.History) { h.LastAttestedVersion = "2.0" }); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Records()
	if err != nil || len(recs) != 1 || recs["demo"].Filename != "demo-1.0.tar.gz" || recs["demo"].Publisher.Repository != "o/r" {
		t.Errorf("Records() = %+v, %v", recs, err)
	}
}
