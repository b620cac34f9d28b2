package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
)

const testLock = `lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.9"

[[packages]]
name = "attrs"
version = "25.1.0"
[[packages.attestation-identities]]
kind = "GitHub"
repository = "python-attrs/attrs"
workflow = "pypi-package.yml"
environment = "pypi"

[[packages]]
name = "Lab_Lib"
version = "1.0"
[[packages.attestation-identities]]
kind = "GitLab"
repository = "group/sub/lab-lib"
workflow_filepath = "ci/release.yml"

[[packages]]
name = "lab-lib"
version = "0.9"
markers = "python_version < '3.10'"
[[packages.attestation-identities]]
kind = "GitLab"
repository = "group/sub/lab-lib"
workflow_filepath = "ci/release.yml"

[[packages]]
name = "gcp-thing"
version = "2.0"
[[packages.attestation-identities]]
kind = "Google"
email = "builder@gcp-thing.iam.gserviceaccount.com"

[[packages]]
name = "state-thing"
version = "3.0"
[[packages.attestation-identities]]
kind = "ActiveState"
organization = "acme"

[[packages]]
name = "plain"
version = "1.0"
`

func TestPolicyFromLock(t *testing.T) {
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "pylock.toml")
	if err := os.WriteFile(lockPath, []byte(testLock), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	now := func() time.Time { return time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC) }
	if code := runPolicyFromLock([]string{lockPath}, &stdout, &stderr, now); code != 0 {
		t.Fatalf("from-lock exit %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"# Written by `pipgate policy from-lock` at 2026-12-01T15:00:00Z\n# from pylock.toml (sha256 ",
		"created by uv, lock-version 1.0",
		"# Locked without attestation identities (the defaults apply): plain.\n",
		"# Note: packages[4].attestation-identities[0] (state-thing): kind \"ActiveState\" is not one pipgate can check",
		"  - name: \"attrs\"  # locked: 25.1.0\n    require: trusted-publisher\n    action: block\n    publishers:\n      - kind: github\n        repository: \"python-attrs/attrs\"\n        workflow: \"pypi-package.yml\"\n",
		"  - name: \"lab-lib\"  # locked: 1.0, 0.9\n",
		"      - kind: gitlab\n        repository: \"group/sub/lab-lib\"\n        workflow: \"ci/release.yml\"\n",
		"      - kind: google\n        email: \"builder@gcp-thing.iam.gserviceaccount.com\"\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "state-thing\"") || strings.Count(out, "- name: \"lab-lib\"") != 1 {
		t.Errorf("want no rule for state-thing and one merged rule for lab-lib:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "ActiveState") {
		t.Errorf("stderr lacks the ActiveState note: %q", stderr.String())
	}

	// The output passes pipgate policy check.
	polPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(polPath, stdout.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var cout, cerr bytes.Buffer
	if code := runPolicy(context.Background(), []string{"check", polPath}, &cout, &cerr); code != 0 || cout.String() != polPath+": ok (3 rules)\n" {
		t.Fatalf("policy check: exit %d, stdout %q, stderr %q", code, cout.String(), cerr.String())
	}

	// Matching and non-matching identities, verified by the fake Sigstore.
	pol, err := policy.Load(polPath)
	if err != nil {
		t.Fatal(err)
	}
	s := provenancetest.New(t)
	v := s.Verifier()
	facts := func(project string, id provenancetest.Signer) pypi.Facts {
		fn, content := strings.ReplaceAll(project, "-", "_")+"-1.0-py3-none-any.whl", []byte("wheel of "+project)
		return v.Facts(s.ProvenanceFor(fn, content, id), provenancetest.DistFor(fn, content))
	}
	tests := []struct {
		project     string
		signer      provenancetest.Signer
		wantAction  policy.Action
		wantVerdict pypi.Verdict
	}{
		{"attrs", provenancetest.GitHub("python-attrs/attrs", "pypi-package.yml"), policy.ActionAllow, pypi.VerdictVerified},
		{"attrs", provenancetest.GitHub("evil/attrs", "pypi-package.yml"), policy.ActionBlock, pypi.VerdictUntrustedPublisher},
		{"attrs", provenancetest.GitHub("python-attrs/attrs", "other.yml"), policy.ActionBlock, pypi.VerdictUntrustedPublisher},
		{"lab-lib", provenancetest.GitLab("group/sub/lab-lib", "ci/release.yml"), policy.ActionAllow, pypi.VerdictVerified},
		{"lab-lib", provenancetest.GitLab("group/other", "ci/release.yml"), policy.ActionBlock, pypi.VerdictUntrustedPublisher},
		{"gcp-thing", provenancetest.Google("builder@gcp-thing.iam.gserviceaccount.com"), policy.ActionAllow, pypi.VerdictVerified},
		{"gcp-thing", provenancetest.Google("someone@else.iam.gserviceaccount.com"), policy.ActionBlock, pypi.VerdictUntrustedPublisher},
		{"plain", provenancetest.GitHub("any/one", "x.yml"), policy.ActionAllow, pypi.VerdictVerified},
	}
	for _, tt := range tests {
		f := facts(tt.project, tt.signer)
		if f.Verdict != pypi.VerdictVerified {
			t.Fatalf("minted facts: %+v", f)
		}
		if d := pol.Decide(tt.project, f); d.Action != tt.wantAction || d.Verdict != tt.wantVerdict {
			t.Errorf("%s signed by %s: %s %s; want %s %s (%s)", tt.project, f.Identity, d.Action, d.Verdict, tt.wantAction, tt.wantVerdict, d.Reason)
		}
	}

	// --require attestation: identities become accepted publishers for continuity.
	stdout.Reset()
	if code := runPolicyFromLock([]string{"--require", "attestation", "--action", "warn", lockPath}, &stdout, &stderr, now); code != 0 {
		t.Fatalf("from-lock --require attestation: exit %d; stderr:\n%s", code, stderr.String())
	}
	pol2, err := policy.Parse(stdout.Bytes())
	if err != nil {
		t.Fatalf("--require attestation output does not parse: %v\n%s", err, stdout.String())
	}
	r := pol2.Lookup("attrs")
	if r.Require != policy.RequireAttestation || r.Action != policy.ActionWarn || r.Continuity != policy.ActionWarn || len(r.Publishers) != 1 {
		t.Errorf("attrs rule = %+v; want attestation, warn, continuity warn, one publisher", r)
	}
}

func TestPolicyFromLockErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.toml", testLock)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"bad toml", []string{write("bad.toml", "lock-version = \n")}, 1, "parsing lock: toml: line 1"},
		{"not a lock", []string{write("other.toml", "[tool.x]\na = 1\n")}, 1, "no lock-version"},
		{"lock version 2", []string{write("v2.toml", "lock-version = \"2.0\"\n")}, 1, `unsupported lock-version "2.0"`},
		{"bad name", []string{write("name.toml", "lock-version = \"1.0\"\n[[packages]]\nname = \"a b\"\n")}, 1, `packages[0].name: invalid project name "a b"`},
		{"bad workflow", []string{write("wf.toml", "lock-version = \"1.0\"\n[[packages]]\nname = \"x\"\n[[packages.attestation-identities]]\nkind = \"GitHub\"\nrepository = \"o/x\"\nworkflow = \".github/workflows/r.yml\"\n")}, 0,
			`packages[0].attestation-identities[0] (x): workflow: want a bare file name like "release.yml", not a path: ".github/workflows/r.yml"; left out`},
		{"missing", []string{filepath.Join(dir, "missing.toml")}, 2, "no such file"},
		{"two files", []string{good, good}, 2, "want exactly one PYLOCK.toml"},
		{"bad require", []string{"--require", "none", good}, 2, `--require "none"`},
		{"bad action", []string{"--action", "allow", good}, 2, `--action "allow"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runPolicy(context.Background(), append([]string{"from-lock"}, tt.args...), &stdout, &stderr)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.wantCode, tt.wantStderr)
			}
			if code != 0 && stdout.Len() > 0 || code == 0 && !strings.Contains(stdout.String(), "packages: []") {
				t.Errorf("stdout on failure: %q", stdout.String())
			}
		})
	}
}
