package cache_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pipgate/pipgate/cache"
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
