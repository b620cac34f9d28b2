package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

var h0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func gh(repo, wf string) *pypi.Identity {
	return &pypi.Identity{Kind: pypi.KindGitHub, Issuer: "https://token.actions.githubusercontent.com", Repository: repo, Workflow: wf}
}

// obs is one history row: a file of project at version, with facts, and
// the decision made count times.
func obs(project, version, ext string, facts pypi.Facts, action policy.Action, count int64, at time.Time) policy.Observation {
	fn := project + "-" + version + ext
	if ext == "" {
		fn = strings.ReplaceAll(project, "-", "_") + "-" + version + "-py3-none-any.whl"
	}
	verdict := facts.Verdict
	id := ""
	if facts.Identity != nil {
		id = facts.Identity.String()
	}
	return policy.Observation{Project: project, Version: version, Filename: fn, SHA256: strings.Repeat("a", 64),
		Facts: facts, Verdict: verdict, Action: action, Rule: "defaults", Identity: id,
		Count: count, FirstSeen: at, LastSeen: at.Add(time.Hour)}
}

// history is an observe-mode history: demo attested by good/repo (two
// releases), mixed has an unattested old release, plain is never attested,
// rare's only publisher was served once, and tampered was refused.
func history() []policy.Observation {
	return []policy.Observation{
		obs("demo", "1.0", "", verified(gh("good/repo", "release.yml")), policy.ActionAllow, 3, h0),
		obs("demo", "1.1", "", verified(gh("good/repo", "release.yml")), policy.ActionAllow, 2, h0.Add(24*time.Hour)),
		obs("demo", "1.1", ".tar.gz", verified(gh("good/repo", "release.yml")), policy.ActionAllow, 1, h0.Add(24*time.Hour)),
		obs("mixed", "0.9", "", unattested, policy.ActionAllow, 4, h0),
		obs("mixed", "1.0", "", verified(gh("mixed/mixed", "publish.yml")), policy.ActionAllow, 4, h0),
		obs("plain", "2.0", "", unattested, policy.ActionAllow, 5, h0),
		obs("plain", "2.1", ".tar.gz", unattested, policy.ActionAllow, 1, h0),
		obs("rare", "1.0", "", verified(gh("rare/rare", "release.yml")), policy.ActionAllow, 1, h0),
		obs("tampered", "1.0", "", pypi.Facts{Verdict: pypi.VerdictInvalid}, policy.ActionBlock, 2, h0),
	}
}

const observeYAML = `version: 1
defaults:
  require: none
  action: warn
  continuity: warn
`

// The suggestion: a trusted-publisher rule per attested project, in name
// order, with its publishers exactly as seen and the comments; the rest in
// a comment; the defaults as in force. It passes the check, and replayed
// against the history it refuses exactly the unattested file served of
// the mixed project (which its comment points out).
func TestSuggest(t *testing.T) {
	cur := mustParse(t, observeYAML)
	out, err := policy.Suggest(cur, history(), policy.SuggestOptions{MinCount: 2, Header: []string{"Written by a test"}})
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	t.Logf("suggested:\n%s", text)
	p, err := policy.Parse(out)
	if err != nil {
		t.Fatalf("the suggestion does not parse: %v", err)
	}
	var names []string
	for _, r := range p.Rules() {
		names = append(names, r.Name)
		if r.Require != policy.RequireTrustedPublisher || r.Action != policy.ActionBlock {
			t.Errorf("rule %s: require %s, action %s", r.Name, r.Require, r.Action)
		}
	}
	if strings.Join(names, ",") != "demo,mixed" {
		t.Errorf("rules %v; want demo, mixed (rare is below --min-count, plain and tampered never attested)", names)
	}
	if pubs := p.Lookup("demo").Publishers; len(pubs) != 1 || pubs[0] != (pypi.Publisher{Kind: "github", Repository: "good/repo", Workflow: "release.yml"}) {
		t.Errorf("demo publishers = %+v", pubs)
	}
	if d := p.Defaults(); d.Require != policy.RequireNone || d.Action != policy.ActionWarn || d.Continuity != policy.ActionWarn {
		t.Errorf("defaults = %+v; want those in force", d)
	}
	for _, want := range []string{
		"# Written by a test",
		"# demo: 3 files of 2 versions (1.0, 1.1), served 6 times; first seen 2026-03-01T12:00:00Z, last seen 2026-03-02T13:00:00Z",
		"# 3 files of 2 versions (1.0, 1.1), served 6 times; first seen",
		"# CHECK: 1 file served without a verified attestation (0.9): this rule refuses them",
		"# plain: 2 files of 2 versions, 6 downloads, never attested: unenforced (the defaults apply)",
		"# rare: 1 file of 1 version, 1 download, no publisher to list: github:rare/rare@release.yml served 1 time, below --min-count 2",
		"# tampered: 1 file of 1 version, 0 downloads, never attested",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("suggestion lacks %q", want)
		}
	}
	// Stable: the same history in another order gives the same bytes.
	h := history()
	for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
		h[i], h[j] = h[j], h[i]
	}
	again, err := policy.Suggest(cur, h, policy.SuggestOptions{MinCount: 2, Header: []string{"Written by a test"}})
	if err != nil || string(again) != text {
		t.Errorf("another order of the same history gave another policy (%v):\n%s", err, again)
	}

	res := policy.Replay(p, history(), policy.ReplayOptions{Now: h0.Add(48 * time.Hour)})
	if len(res.Refuse) != 1 || res.Refuse[0].Filename != "mixed-0.9-py3-none-any.whl" || res.Refuse[0].After.Verdict != pypi.VerdictUnattested {
		t.Errorf("replay refuses %+v; want only mixed 0.9", res.Refuse)
	}
	if len(res.Allow) != 0 || len(res.Skipped) != 0 || res.Files != 9 {
		t.Errorf("replay: %+v", res)
	}
}

// --merge keeps the current file's comments and rules; a project one of
// them matches gets no new rule; the rest is added after them.
func TestSuggestMerge(t *testing.T) {
	const current = `# Our policy. Reviewed by security.
version: 1
defaults:
  require: none   # observe
  action: warn
packages:
  # internal packages are never attested
  - name: "internal-*"
    require: none
  - name: demo
    require: trusted-publisher
    action: block
    publishers:
      - kind: github
        repository: good/repo
`
	cur := mustParse(t, current)
	out, err := policy.Suggest(cur, history(), policy.SuggestOptions{Merge: true, Current: []byte(current)})
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	t.Logf("merged:\n%s", text)
	for _, want := range []string{"# Our policy. Reviewed by security.", "# observe", "# internal packages are never attested",
		`demo: kept rule "demo" (line 10); publishers seen: github:good/repo@release.yml`} {
		if !strings.Contains(text, want) {
			t.Errorf("merged policy lacks %q", want)
		}
	}
	p, err := policy.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range p.Rules() {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "internal-*,demo,mixed,rare" {
		t.Errorf("rules %v", names)
	}
	if pubs := p.Lookup("demo").Publishers; len(pubs) != 1 || pubs[0].Workflow != "" {
		t.Errorf("the kept demo rule changed: %+v", pubs)
	}
	// Merging again into the merged file replaces the earlier notes and
	// header rather than pile them up, and adds no rule twice.
	opts := policy.SuggestOptions{Merge: true, Current: out, Header: []string{"Suggested by 'pipgate policy suggest' (again)"}}
	again, err := policy.Suggest(mustParse(t, text), history(), opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Current = again
	twice, err := policy.Suggest(mustParse(t, string(again)), history(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(twice), "Projects without a suggested rule:") != 1 || strings.Count(string(twice), "- name: rare") != 1 ||
		strings.Count(string(twice), "(again)") != 1 || !strings.Contains(string(twice), "# Our policy. Reviewed by security.") {
		t.Errorf("merging twice:\n%s\nthen:\n%s", again, twice)
	}
	// An empty packages list in flow style is turned into a block list.
	out, err = policy.Suggest(mustParse(t, "version: 1\npackages: []\n"), history(), policy.SuggestOptions{Merge: true, Current: []byte("version: 1\npackages: []\n")})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := policy.Parse(out); err != nil || len(p.Rules()) != 3 {
		t.Errorf("merge into an empty list: %v\n%s", err, out)
	}
}

// A signer whose name carries a newline cannot break out of the comment
// into the policy.
func TestSuggestHostileNames(t *testing.T) {
	evil := &pypi.Identity{Kind: pypi.KindIdentity, Issuer: "https://issuer.example", Subject: "a\nversion: 2\npackages: []\n#"}
	h := []policy.Observation{obs("demo", "1.0", "", verified(evil), policy.ActionAllow, 1, h0)}
	out, err := policy.Suggest(policy.Default(), h, policy.SuggestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// CheckPublisher refuses such a subject: no rule, a one-line note.
	if len(p.Rules()) != 0 || !strings.Contains(string(out), "\n# demo: 1 file of 1 version, 1 download, no publisher to list: identity:a version: 2 packages: [] # (https://issuer.example) cannot be a policy entry") {
		t.Errorf("suggestion:\n%s", out)
	}
}

// Replay under a candidate policy uses the server's decision code: what it
// would refuse and allow against each file's latest decision, continuity
// against the kept record, files without facts skipped, cooldowns measured
// from the recorded upload time.
func TestReplay(t *testing.T) {
	good, evil := gh("good/repo", "release.yml"), gh("evil/fork", "release.yml")
	h := []policy.Observation{
		obs("demo", "1.0", "", verified(good), policy.ActionAllow, 3, h0),
		obs("demo", "1.1", "", verified(evil), policy.ActionAllow, 1, h0.Add(time.Hour)),
		obs("demo", "1.2", "", unattested, policy.ActionAllow, 1, h0.Add(2*time.Hour)),
		obs("demo", "0.5", "", unattested, policy.ActionAllow, 1, h0),
		obs("gone", "1.0", "", pypi.Facts{Verdict: pypi.VerdictError}, policy.ActionBlock, 1, h0),
		obs("fresh", "1.0", "", unattested, policy.ActionAllow, 1, h0),
		obs("fresh", "2.0", "", unattested, policy.ActionAllow, 1, h0),
		obs("was-blocked", "1.0", "", verified(good), policy.ActionBlock, 1, h0),
	}
	h[6].UploadTime = h0.Add(-time.Hour) // fresh 2.0: uploaded just before
	// A later decision about the refused file served it (after a reload).
	h = append(h, h[0])
	h[len(h)-1].Action, h[len(h)-1].LastSeen = policy.ActionWarn, h0.Add(10*time.Hour)
	cand := mustParse(t, `version: 1
packages:
  - name: demo
    continuity: block
  - name: fresh
    min_release_age: 7d
  - name: was-blocked
    require: attestation
`)
	res := policy.Replay(cand, h, policy.ReplayOptions{Now: h0.Add(24 * time.Hour)})
	got := map[string]string{}
	for kind, list := range map[string][]policy.ReplayFile{"refuse": res.Refuse, "allow": res.Allow, "yank": res.Yank, "skipped": res.Skipped} {
		for _, f := range list {
			got[f.Filename] = kind
		}
	}
	want := map[string]string{
		"demo-1.1-py3-none-any.whl":        "refuse",  // publisher-changed against good/repo
		"demo-1.2-py3-none-any.whl":        "refuse",  // attestation-lost
		"fresh-2.0-py3-none-any.whl":       "refuse",  // in its cooldown
		"gone-1.0-py3-none-any.whl":        "skipped", // no facts
		"was_blocked-1.0-py3-none-any.whl": "allow",
	}
	for f, k := range want {
		if got[f] != k {
			t.Errorf("%s: %q; want %q", f, got[f], k)
		}
	}
	for f, k := range got {
		if want[f] == "" {
			t.Errorf("%s: %q; want unchanged", f, k)
		}
	}
	for _, f := range res.Refuse {
		switch f.Filename {
		case "demo-1.1-py3-none-any.whl":
			if f.After.Finding != policy.FindingPublisherChanged || !strings.Contains(f.After.Reason, "good/repo") {
				t.Errorf("demo 1.1: %+v", f.After)
			}
		case "fresh-2.0-py3-none-any.whl":
			if f.After.Finding != policy.FindingCooldown {
				t.Errorf("fresh 2.0: %+v", f.After)
			}
		}
	}
	// fresh 1.0 has no upload time: replayed without the cooldown, noted.
	if len(res.Records) != 1 || res.Records[0].Source != "history" || res.Records[0].First != "demo-1.0-py3-none-any.whl" {
		t.Errorf("records = %+v", res.Records)
	}

	// A kept record wins over the history: the evil publisher was first.
	v, _ := pypi.ParseVersion("1.1")
	kept := map[string]policy.Record{"demo": {First: &policy.Upload{Filename: "demo-1.1-py3-none-any.whl", Version: v, Provenance: true}, Publisher: *evil}}
	res = policy.Replay(cand, h, policy.ReplayOptions{Now: h0.Add(24 * time.Hour), Records: kept})
	var refused []string
	for _, f := range res.Refuse {
		if f.Project == "demo" {
			refused = append(refused, f.Filename+":"+string(f.After.Finding))
		}
	}
	// 1.0 (good) is placed before the kept first file: a publisher change
	// all the same (someone else than the publisher of record).
	if strings.Join(refused, " ") != "demo-1.0-py3-none-any.whl:publisher-changed demo-1.2-py3-none-any.whl:attestation-lost" {
		t.Errorf("with the kept record: %v", refused)
	}
	if res.Records[0].Source != "kept" || res.Records[0].Publisher != "github:evil/fork" {
		t.Errorf("records = %+v", res.Records)
	}
}

// Coverage counts files by their facts and says which projects a
// trusted-publisher rule could enforce today.
func TestCoverage(t *testing.T) {
	cur := mustParse(t, observeYAML+"packages:\n  - name: rare\n    require: trusted-publisher\n    publishers:\n      - {kind: github, repository: rare/rare}\n")
	c := policy.CoverageOf(cur, history())
	states := map[string]string{}
	for _, p := range c.Projects {
		states[p.Project] = p.State
	}
	want := map[string]string{"demo": "enforceable", "mixed": "partial", "plain": "unattested", "rare": "enforced", "tampered": "unattested"}
	for k, v := range want {
		if states[k] != v {
			t.Errorf("%s: state %q; want %q", k, states[k], v)
		}
	}
	if strings.Join(c.Enforceable, ",") != "demo" {
		t.Errorf("enforceable = %v", c.Enforceable)
	}
	tot := c.Totals
	if tot.Files != 9 || tot.Served != 8 || tot.Verified != 5 || tot.Unattested != 3 || tot.Invalid != 1 || tot.Blocked != 1 || tot.Downloads != 21 {
		t.Errorf("totals = %+v", tot)
	}
	demo := c.Projects[0]
	if demo.Project != "demo" || len(demo.Publishers) != 1 || demo.Publishers[0].Publisher != "github:good/repo@release.yml" ||
		demo.Publishers[0].Files != 3 || strings.Join(demo.Publishers[0].Versions, ",") != "1.0,1.1" {
		t.Errorf("demo = %+v", demo)
	}
}

// Two publishers of one project are both listed, with a line asking the
// reviewer to check each; a row with a name that is no normalised project
// name gets no rule.
func TestSuggestTwoPublishersAndBadNames(t *testing.T) {
	h := []policy.Observation{
		obs("two", "1.0", "", verified(gh("a/two", "release.yml")), policy.ActionAllow, 1, h0),
		obs("two", "2.0", "", verified(gh("b/two", "release.yml")), policy.ActionAllow, 1, h0),
		obs("Bad_Name", "1.0", "", verified(gh("a/bad", "release.yml")), policy.ActionAllow, 1, h0),
		obs("bad\nname", "1.0", "", verified(gh("a/bad", "release.yml")), policy.ActionAllow, 1, h0),
	}
	out, err := policy.Suggest(policy.Default(), h, policy.SuggestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if rs := p.Rules(); len(rs) != 1 || rs[0].Name != "two" || len(rs[0].Publishers) != 2 {
		t.Errorf("rules = %+v\n%s", rs, out)
	}
	for _, want := range []string{"# CHECK: 2 publishers signed files of this project", `# "Bad_Name": not a normalised project name; no rule`, `# "bad\nname": not a normalised`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// A candidate that yanks (rather than blocks) a served file lists it as
// newly yanked, not refused: pip still installs it when pinned.
func TestReplayYank(t *testing.T) {
	h := []policy.Observation{
		obs("demo", "1.0", "", verified(gh("evil/fork", "release.yml")), policy.ActionAllow, 1, h0),
		obs("demo", "0.9", "", verified(gh("good/repo", "release.yml")), policy.ActionYank, 1, h0),
	}
	cand := mustParse(t, "version: 1\npackages:\n  - name: demo\n    require: trusted-publisher\n    action: yank\n    publishers:\n      - {kind: github, repository: good/repo}\n")
	res := policy.Replay(cand, h, policy.ReplayOptions{Now: h0})
	if len(res.Yank) != 1 || res.Yank[0].Version != "1.0" || res.Yank[0].After.Action != policy.ActionYank || len(res.Refuse) != 0 || res.Unchanged != 1 {
		t.Errorf("replay = %+v", res)
	}
}
