package policy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// fullHistory is a decision history at its row limit (50,000 rows): 1,000
// projects of 50 files, two thirds of the projects attested.
func fullHistory() []policy.Observation {
	var out []policy.Observation
	for p := range 1000 {
		project := fmt.Sprintf("project-%04d", p)
		for f := range 50 {
			facts := pypi.Facts{Verdict: pypi.VerdictUnattested}
			if p%3 != 0 {
				facts = verified(gh("owner/"+project, "release.yml"))
			}
			out = append(out, obs(project, fmt.Sprintf("1.%d", f), "", facts, policy.ActionAllow, 3, h0.Add(time.Duration(f)*time.Hour)))
		}
	}
	return out
}

// BenchmarkLearnFullHistory: what 'policy suggest', 'policy test' and
// 'report' compute over a full decision history.
func BenchmarkLearnFullHistory(b *testing.B) {
	h := fullHistory()
	cur := policy.Default()
	b.Run("suggest", func(b *testing.B) {
		for b.Loop() {
			if _, err := policy.Suggest(cur, h, policy.SuggestOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	out, err := policy.Suggest(cur, h, policy.SuggestOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cand, err := policy.Parse(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(out)), "policy-bytes")
	b.Run("replay", func(b *testing.B) {
		for b.Loop() {
			if r := policy.Replay(cand, h, policy.ReplayOptions{Now: h0}); len(r.Refuse) != 0 || r.Files != 50_000 {
				b.Fatalf("replayed %d files, refuses %d; want 50,000 and none", r.Files, len(r.Refuse))
			}
		}
	})
	b.Run("coverage", func(b *testing.B) {
		for b.Loop() {
			policy.CoverageOf(cand, h)
		}
	})
}
