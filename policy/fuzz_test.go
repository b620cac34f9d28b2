package policy_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// FuzzParse checks that Parse never panics, that a problem always says
// something, and that a parsed policy validates and decides deterministically
// with well-formed decisions.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	seeds = append(seeds, "../configs/policy.yaml", "../configs/policy-strict.yaml", "../configs/policy-trust-over-time.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(decideYAML))
	f.Add([]byte("version: 1\npackages:\n  - &a {name: x}\n  - *a\n"))
	f.Add([]byte("version: 1\npackages: [{name: \"[^a]*\", require: none}, {name: b}]\n"))

	facts := []pypi.Facts{
		{Verdict: pypi.VerdictVerified, Identity: goodID},
		{Verdict: pypi.VerdictVerified},
		{Verdict: pypi.VerdictUnattested},
		{Verdict: pypi.VerdictInvalid, Reason: "r", Detail: "d"},
		{Verdict: pypi.VerdictUnsupported},
		{Verdict: pypi.VerdictError},
	}
	projects := []string{"x", "requests", "internal-tools", "pypi-attestations", "A_b.c"}
	actions := []policy.Action{policy.ActionAllow, policy.ActionBlock, policy.ActionYank, policy.ActionWarn}
	rank := map[policy.Action]int{policy.ActionAllow: 0, policy.ActionWarn: 1, policy.ActionYank: 2, policy.ActionBlock: 3}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	v2 := pypi.MustParseVersion("2.0")
	// A history whose first attested file is another publisher's, then
	// a file that could not be checked.
	history := []policy.Upload{
		{Filename: "x-1.0.tar.gz", Version: pypi.MustParseVersion("1.0"), Provenance: true},
		{Filename: "x-1.5.tar.gz", Version: pypi.MustParseVersion("1.5"), Provenance: true},
	}
	timed := policy.SortUploads(history)
	other := pypi.Identity{Kind: pypi.KindGitHub, Repository: "other/repo"}
	records := []policy.Record{
		policy.FindRecord(history, timed, func(int) policy.Attestation { return policy.Attestation{Publisher: &other} }),
		policy.FindRecord(history, timed, func(int) policy.Attestation { return policy.Attestation{Unknown: true} }),
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		p1, err1 := policy.Parse(b)
		p2, err2 := policy.Parse(b)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("Parse is not deterministic: %v vs %v", err1, err2)
		}
		if err1 != nil {
			if err1.Error() != err2.Error() {
				t.Fatalf("Parse errors differ:\n%v\n%v", err1, err2)
			}
			probs := policy.Problems(err1)
			if len(probs) == 0 {
				t.Fatalf("Parse error %v holds no ProblemError", err1)
			}
			for _, pr := range probs {
				if pr.Msg == "" || pr.Line < 0 {
					t.Errorf("malformed problem %+v", pr)
				}
			}
			return
		}
		if p1.Digest() != p2.Digest() || !reflect.DeepEqual(p1.Rules(), p2.Rules()) || !reflect.DeepEqual(p1.Defaults(), p2.Defaults()) {
			t.Fatalf("two parses of the same bytes differ")
		}
		names := []string{policy.DefaultsRule}
		for _, r := range p1.Rules() {
			if r.Name == "" || r.Line < 1 {
				t.Errorf("rule %+v lacks a name or line", r)
			}
			if r.Require == policy.RequireTrustedPublisher && len(r.Publishers) == 0 {
				t.Errorf("rule %q requires a trusted publisher but has none", r.Name)
			}
			names = append(names, r.Name)
		}
		for _, proj := range projects {
			for _, fa := range facts {
				d1, d2 := p1.Decide(proj, fa), p2.Decide(proj, fa)
				if d1 != d2 {
					t.Fatalf("Decide(%q, %s) differs: %+v vs %+v", proj, fa.Verdict, d1, d2)
				}
				if !slices.Contains(actions, d1.Action) || !slices.Contains(names, d1.Rule) || d1.Reason == "" {
					t.Fatalf("Decide(%q, %s) = %+v: malformed", proj, fa.Verdict, d1)
				}
				if fa.Verdict == pypi.VerdictInvalid && d1.Action == policy.ActionAllow {
					t.Fatalf("Decide(%q, invalid) allowed: %+v", proj, d1)
				}
				// The checks across releases only ever add to the verdict's action.
				for i, up := range []time.Time{{}, now.Add(-time.Hour), now.Add(-400 * 24 * time.Hour)} {
					rec := &records[i%len(records)]
					df := p1.DecideFile(proj, policy.File{Facts: fa, Filename: "x-2.0.tar.gz", Version: &v2, UploadTime: up, Now: now, Record: rec})
					if !slices.Contains(actions, df.Action) || rank[df.Action] < rank[d1.Action] || df.Reason == "" || df.Rule != d1.Rule {
						t.Fatalf("DecideFile(%q, %s) = %+v; Decide gave %+v", proj, fa.Verdict, df, d1)
					}
					if df.Finding != "" && !slices.Contains(policy.Findings, df.Finding) {
						t.Fatalf("DecideFile finding %q is not one of %v", df.Finding, policy.Findings)
					}
				}
			}
		}
	})
}
