package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
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
	if code := runPolicyFromLock(context.Background(), []string{lockPath}, &stdout, &stderr, now); code != 0 {
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
	if code := runPolicyFromLock(context.Background(), []string{"--require", "attestation", "--action", "warn", lockPath}, &stdout, &stderr, now); code != 0 {
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
		{"bad toml", []string{write("bad.toml", "lock-version = \n")}, 1, "parsing lock: line 1, column 16: "},
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

// TestPolicyFromLockLimits: long lists in the comments are cut at
// maxListed with a count, and a lock whose policy would not load (over
// policy.MaxFileSize) is refused, with nothing written.
func TestPolicyFromLockLimits(t *testing.T) {
	t.Parallel()
	opts := fromLockOptions{Require: policy.RequireTrustedPublisher, Action: policy.ActionBlock}
	lock := genLock("plain", 100)
	lock = append(lock, "[[packages]]\nname = \"p3\"\nversion = \"1\"\n[[packages.attestation-identities]]\nkind = \"GitHub\"\nrepository = \"o/p3\"\n"...)
	for v := range 30 {
		lock = append(lock, "[[packages]]\nname = \"many\"\nversion = \""+strconv.Itoa(v)+"\"\n[[packages.attestation-identities]]\nkind = \"GitHub\"\nrepository = \"o/many\"\n"...)
	}
	lock = append(lock, "[[packages]]\nname = \"bad\"\n"...)
	for k := range 25 {
		lock = append(lock, "[[packages.attestation-identities]]\nkind = \"K"+strconv.Itoa(k)+"\"\n"...)
	}
	out, notes, err := policyFromLock(context.Background(), lock, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		// p3 has a rule, so it is not listed; 99 others are, 20 by name.
		"# Locked without attestation identities (the defaults apply): p0, p1, p2, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, p16, p17, p18, p19, p20 and 79 more.\n",
		"  - name: \"many\"  # locked: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19 and 10 more\n",
		"# Note: 6 more identities or projects left out, as above\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if len(notes) != maxListed+1 || strings.Count(s, "# Note: ") != maxListed+1 {
		t.Errorf("%d notes, %d in the output; want %d", len(notes), strings.Count(s, "# Note: "), maxListed+1)
	}

	// Too many rules for a policy file.
	path := writeFile(t, t.TempDir(), "pylock.toml", genLock("attested", 10_000))
	var stdout, stderr bytes.Buffer
	code := runPolicyFromLock(context.Background(), []string{path}, &stdout, &stderr, time.Now)
	if code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "the policy would be larger than 1048576 bytes, the most a policy file may be") {
		t.Errorf("exit %d, %d bytes out, stderr %q; want 1, nothing, too large", code, stdout.Len(), stderr.String())
	}
	// Just under the limit: written, and it loads.
	const fits = 7_500 // about 134 bytes a rule
	out, _, err = policyFromLock(context.Background(), genLock("attested", fits), opts)
	if err != nil || len(out) > policy.MaxFileSize || len(out) < policy.MaxFileSize*9/10 {
		t.Fatalf("%d projects: %d bytes, %v; want close under %d", fits, len(out), err, policy.MaxFileSize)
	}
	// (policyFromLock checked that it loads, with policy.ParseFile.)
}
