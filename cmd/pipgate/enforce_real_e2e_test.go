package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestE2EObserveToEnforceRealAttestations walks observe → suggest → test →
// apply on real PyPI distributions and their real attestations (the
// shared fixtures, Sigstore production trust root, verified offline): a
// GitHub-published sdist with its Integrity API provenance, and a GitHub-
// and a GitLab-published one whose provenance carries their real
// publish attestations. The suggestion lists the signers exactly as their
// certificates name them (repository and workflow), the replay refuses
// nothing, a candidate with the wrong workflow is caught, and once applied
// every file is still served, verified. (The sdists are fetched as pip
// would, without building them.)
func TestE2EObserveToEnforceRealAttestations(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	dir := fixtures.Path(t, "pypi", "pypi-attestations")
	root := fixtures.Path(t, "pypi", "trust", "trusted_root.production.json")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// provenance wraps one real publish attestation in an Integrity API
	// object with the publisher PyPI records.
	provenance := func(att string, publisher map[string]any) []byte {
		b, err := json.Marshal(map[string]any{"version": 1, "attestation_bundles": []any{
			map[string]any{"publisher": publisher, "attestations": []json.RawMessage{read(att)}}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	files := []struct{ project, filename string }{
		{"pypi-attestations", "pypi_attestations-0.0.19.tar.gz"},
		{"pypi-attestation-models", "pypi_attestation_models-0.0.4a2.tar.gz"},
		{"gitlab-oidc-project", "gitlab_oidc_project-0.0.3.tar.gz"},
	}
	up := pypitest.NewServer(t)
	up.AddDist(files[0].project, pypitest.Dist{Filename: files[0].filename, Content: read(files[0].filename),
		Provenance: read(files[0].filename + ".provenance")})
	up.AddDist(files[1].project, pypitest.Dist{Filename: files[1].filename, Content: read(files[1].filename),
		Provenance: provenance(files[1].filename+".attestation",
			map[string]any{"kind": "GitHub", "repository": "trailofbits/pypi-attestation-models", "workflow": "release.yml", "environment": nil})})
	up.AddDist(files[2].project, pypitest.Dist{Filename: files[2].filename, Content: read(files[2].filename),
		Provenance: provenance(files[2].filename+".publish.attestation",
			map[string]any{"kind": "GitLab", "repository": "facutuesca/gitlab-oidc-project", "workflow_filepath": ".gitlab-ci.yml", "environment": ""})})

	work := t.TempDir()
	policyPath := filepath.Join(work, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(work, "pipgate.yaml")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: data\nupstream:\n  url: %s\ntrust:\n  trusted_root: %s\npolicy: policy.yaml\naudit_log: audit.jsonl\n",
		up.URL(), root)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPipgate(t, cfgPath, filepath.Join(work, "audit.jsonl"), false)
	fetch := func(when string) {
		t.Helper()
		for _, f := range files {
			resp, err := http.Get(p.base + "/files/" + f.project + "/" + f.filename)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Pipgate-Verdict") != "verified" {
				t.Errorf("%s: %s = %d, verdict %q; want 200 verified", when, f.filename, resp.StatusCode, resp.Header.Get("X-Pipgate-Verdict"))
			}
		}
	}
	fetch("observe")

	suggested := filepath.Join(work, "suggested.yaml")
	if code, _, e := runCmd(t, "policy", "suggest", "--config", cfgPath, "-o", suggested); code != 0 {
		t.Fatalf("policy suggest: exit %d: %s", code, e)
	}
	sp, err := policy.Load(suggested)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(suggested)
	want := map[string]pypi.Publisher{
		"pypi-attestations":       {Kind: "github", Repository: "trailofbits/pypi-attestations", Workflow: "release.yml"},
		"pypi-attestation-models": {Kind: "github", Repository: "trailofbits/pypi-attestation-models", Workflow: "release.yml"},
		"gitlab-oidc-project":     {Kind: "gitlab", Repository: "facutuesca/gitlab-oidc-project", Workflow: ".gitlab-ci.yml"},
	}
	if rs := sp.Rules(); len(rs) != len(want) {
		t.Errorf("suggested %d rules; want %d\n%s", len(rs), len(want), text)
	}
	for project, pub := range want {
		r := sp.Lookup(project)
		if r.Require != policy.RequireTrustedPublisher || len(r.Publishers) != 1 || r.Publishers[0] != pub {
			t.Errorf("%s: %+v; want exactly %+v\n%s", project, r, pub, text)
		}
	}
	if code, out, _ := runCmd(t, "policy", "test", "--config", cfgPath, suggested); code != 0 || !strings.Contains(out, "Unchanged: 3 files.") {
		t.Errorf("policy test of the suggestion: exit %d\n%s", code, out)
	}
	// The workflow PyPI's README names as wrong for this file.
	wrong := filepath.Join(work, "wrong.yaml")
	if err := os.WriteFile(wrong, []byte(strings.Replace(string(text), "repository: trailofbits/pypi-attestations\n        workflow: release.yml",
		"repository: trailofbits/pypi-attestations\n        workflow: publish.yml", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCmd(t, "policy", "test", "--config", cfgPath, wrong); code != 1 ||
		!strings.Contains(out, "Served, would now be REFUSED (403): 1\n  pypi-attestations 0.0.19  pypi_attestations-0.0.19.tar.gz") {
		t.Errorf("policy test with workflow publish.yml: exit %d\n%s", code, out)
	}

	if err := os.WriteFile(policyPath, text, 0o600); err != nil {
		t.Fatal(err)
	}
	reloads := strings.Count(p.stderr.String(), `"msg":"policy reloaded"`)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !p.stderr.WaitFor(30*time.Second, func(s string) bool { return strings.Count(s, `"msg":"policy reloaded"`) > reloads }) {
		t.Fatalf("no policy reload after SIGHUP:\n%s", tail(p.stderr.String(), 20))
	}
	fetch("enforce")
	if n := p.metric(t, "pipgate_downloads_total", `verdict="verified"`, `action="allow"`, `policy="rule"`); n != 3 {
		t.Errorf("verified downloads decided by a rule after SIGHUP = %v; want 3", n)
	}
}
