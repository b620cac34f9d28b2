package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

// learnDir is a stopped server's config and data directory with a decision
// history: demo served (good/repo), its 2.0 refused (evil/fork), other
// unattested; a kept continuity record for demo.
func learnDir(t *testing.T) (cfgPath, policyPath string) {
	t.Helper()
	dir := t.TempDir()
	s, err := cache.Open(cache.Options{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	seedDecisions(t, s)
	if err := s.UpdateHistory("demo", func(h *cache.History) {
		h.Record = &cache.HistoryRecord{Filename: "demo-1.0-py3-none-any.whl", Version: "1.0",
			Publisher: pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}}
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	policyPath = filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "pipgate.yaml")
	if err := os.WriteFile(cfgPath, []byte("data_dir: data\npolicy: policy.yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, policyPath
}

// suggest, test and report from a stopped server's database; their exit
// codes and usage errors.
func TestLearnCommandsFromDatabase(t *testing.T) {
	cfg, _ := learnDir(t)
	dir := filepath.Dir(cfg)

	code, out, errOut := runCmd(t, "policy", "suggest", "--config", cfg)
	if code != 0 || !strings.Contains(out, "(read from the database)") || !strings.Contains(out, "repository: good/repo") ||
		strings.Contains(out, "evil/fork\n") || !strings.Contains(out, "left out: github:evil/fork@release.yml signed only refused files (2.0)") ||
		!strings.Contains(out, "# other: 1 file of 1 version, 1 download, never attested") {
		t.Fatalf("suggest: exit %d\n%s%s", code, out, errOut)
	}
	sugg := filepath.Join(dir, "out.yaml")
	if code, _, e := runCmd(t, "policy", "suggest", "--config", cfg, "-o", sugg, "--min-count", "5"); code != 0 {
		t.Fatalf("suggest -o: exit %d: %s", code, e)
	}
	b, _ := os.ReadFile(sugg)
	if !strings.Contains(string(b), "below --min-count 5") || strings.Contains(string(b), "- name: demo") {
		t.Errorf("--min-count 5 (demo served 4 times):\n%s", b)
	}
	// Never over the policy in force, which the server would adopt unreviewed.
	before, _ := os.ReadFile(filepath.Join(dir, "policy.yaml"))
	if code, _, e := runCmd(t, "policy", "suggest", "--config", cfg, "--merge", "-o", filepath.Join(dir, "policy.yaml")); code != 2 || !strings.Contains(e, "is the policy in force") {
		t.Errorf("-o onto the policy in force: exit %d: %s", code, e)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "policy.yaml")); string(after) != string(before) {
		t.Errorf("the policy in force changed:\n%s", after)
	}
	if code, _, _ := runCmd(t, "policy", "suggest", "--config", cfg, "--min-count", "0"); code != 2 {
		t.Errorf("--min-count 0: exit %d; want 2", code)
	}
	if code, _, _ := runCmd(t, "policy", "suggest", "--config", cfg, "extra"); code != 2 {
		t.Errorf("an extra argument: exit %d; want 2", code)
	}
	if code, _, e := runCmd(t, "policy", "suggest", "--data-dir", t.TempDir()); code != 1 || !strings.Contains(e, "no pipgate database") {
		t.Errorf("empty data dir: exit %d: %s", code, e)
	}

	// A candidate trusting only evil/fork: demo 1.0 (served) refused, demo
	// 2.0 (refused) served; exit 1; JSON says the same.
	cand := filepath.Join(dir, "cand.yaml")
	if err := os.WriteFile(cand, []byte("version: 1\npackages:\n  - name: demo\n    require: trusted-publisher\n    publishers:\n      - {kind: github, repository: evil/fork}\n    action: block\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, "policy", "test", "--config", cfg, cand)
	if code != 1 || !strings.Contains(out, "Served, would now be REFUSED (403): 1\n  demo 1.0  demo-1.0-py3-none-any.whl") ||
		!strings.Contains(out, "Refused, would now be served: 1\n  demo 2.0  demo-2.0-py3-none-any.whl") {
		t.Errorf("policy test: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "policy", "test", "--json", "--config", cfg, cand)
	var rep policyTestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.Source != "database" || rep.Files != 3 ||
		len(rep.Refuse) != 1 || len(rep.Allow) != 1 || rep.Refuse[0].After.Verdict != "untrusted-publisher" {
		t.Errorf("policy test --json: exit %d, %v\n%s", code, err, out)
	}
	// Continuity: judged against the kept record (good/repo): 2.0 by
	// evil/fork is a publisher change, so stays refused; nothing served is.
	if err := os.WriteFile(cand, []byte("version: 1\ndefaults:\n  continuity: block\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, "policy", "test", "--config", cfg, cand)
	if code != 0 || !strings.Contains(out, "demo     kept    github:good/repo") || !strings.Contains(out, "Unchanged: 3 files.") {
		t.Errorf("policy test, continuity: exit %d\n%s", code, out)
	}
	// An invalid candidate: its problems, exit 2.
	if err := os.WriteFile(cand, []byte("version: 1\npackages:\n  - name: demo\n    requires: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, e := runCmd(t, "policy", "test", "--config", cfg, cand); code != 2 || !strings.Contains(e, "cand.yaml:4: packages[0].requires: unknown field") {
		t.Errorf("invalid candidate: exit %d: %s", code, e)
	}
	if code, _, _ := runCmd(t, "policy", "test", "--config", cfg); code != 2 {
		t.Errorf("no candidate: exit %d; want 2", code)
	}

	code, out, _ = runCmd(t, "report", "--config", cfg)
	if code != 0 || !strings.Contains(out, "Enforceable today (1): demo\n") || !strings.Contains(out, "other    unattested   defaults  1      1") {
		t.Errorf("report: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "report", "--config", cfg, "--csv")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || code != 0 || len(recs) != 4 || strings.Join(recs[1][:6], ",") != "demo,enforceable,defaults,2,1,4" ||
		recs[3][0] != "TOTAL" || recs[3][3] != "3" {
		t.Errorf("report --csv: exit %d, %v\n%s", code, err, out)
	}
	code, out, _ = runCmd(t, "report", "--config", cfg, "--json")
	var cov coverageReport
	if err := json.Unmarshal([]byte(out), &cov); err != nil || code != 0 || len(cov.Projects) != 2 || cov.Totals.Blocked != 1 || strings.Join(cov.Enforceable, ",") != "demo" {
		t.Errorf("report --json: exit %d, %v\n%s", code, err, out)
	}
	if code, _, _ := runCmd(t, "report", "--json", "--csv", "--config", cfg); code != 2 {
		t.Errorf("--json --csv: exit %d; want 2", code)
	}
}
