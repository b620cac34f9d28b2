package policy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// benchPolicy builds a policy of 50 rules: 15 globs (prefix, suffix, infix
// and character classes) and 35 literal names, half of them pinned to a
// trusted publisher.
func benchPolicy(b *testing.B) *policy.Policy {
	var s strings.Builder
	s.WriteString("version: 1\ndefaults:\n  require: attestation\n  action: yank\npackages:\n")
	for i := range 15 {
		var pat string
		switch i % 4 {
		case 0:
			pat = fmt.Sprintf("corp%d-*", i)
		case 1:
			pat = fmt.Sprintf("*-plugin%d", i)
		case 2:
			pat = fmt.Sprintf("team%d-*-lib", i)
		case 3:
			pat = fmt.Sprintf("py[0-9]x%d-*", i)
		}
		fmt.Fprintf(&s, "  - name: %q\n    require: none\n", pat)
	}
	for i := range 35 {
		fmt.Fprintf(&s, "  - name: project-%d\n", i)
		if i%2 == 0 {
			fmt.Fprintf(&s, "    require: trusted-publisher\n    action: block\n    publishers:\n"+
				"      - kind: gitlab\n        repository: org/other-%d\n"+
				"      - kind: github\n        repository: org/project-%d\n        workflow: release.yml\n", i, i)
		}
	}
	p, err := policy.Parse([]byte(s.String()))
	if err != nil {
		b.Fatal(err)
	}
	if n := len(p.Rules()); n != 50 {
		b.Fatalf("benchmark policy has %d rules; want 50", n)
	}
	return p
}

func BenchmarkDecide(b *testing.B) {
	p := benchPolicy(b)
	id := func(repo string) pypi.Facts {
		return pypi.Facts{Verdict: pypi.VerdictVerified, Identity: &pypi.Identity{
			Kind: pypi.KindGitHub, Issuer: "https://token.actions.githubusercontent.com",
			Repository: repo, Workflow: "release.yml", Ref: "refs/tags/v1.0",
		}}
	}
	cases := []struct {
		name, project string
		wantAction    policy.Action
		wantRule      string
		facts         pypi.Facts
	}{
		// The last literal rule: every glob is tried before it.
		{"literal-trusted", "project-34", "allow", "project-34", id("org/project-34")},
		{"literal-untrusted", "project-34", "block", "project-34", id("evil/fork")},
		{"literal-unnormalised", "Project_34", "allow", "project-34", id("org/project-34")},
		{"glob", "team14-x-lib", "allow", "team14-*-lib", pypi.Facts{Verdict: pypi.VerdictUnattested}},
		{"defaults", "requests", "yank", "defaults", pypi.Facts{Verdict: pypi.VerdictUnattested}},
	}
	for _, c := range cases {
		if d := p.Decide(c.project, c.facts); d.Action != c.wantAction || d.Rule != c.wantRule {
			b.Fatalf("%s: Decide = %+v; want action %q rule %q", c.name, d, c.wantAction, c.wantRule)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(c.project, c.facts)
			}
		})
	}
}
