package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/provenance/provenancetest"
)

// verifyFixtures returns the real PyPI fixtures folder (internal/fixtures).
func verifyFixtures(t *testing.T) string {
	t.Helper()
	return fixtures.PyPI(t)
}

func verifyRun(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runVerify(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyCommandFixtures(t *testing.T) {
	fx := verifyFixtures(t)
	f := func(rel string) string { return filepath.Join(fx, rel) }
	prod, staging := f("trust/trusted_root.production.json"), f("trust/trusted_root.staging.json")
	dist := f("pypi-attestations/pypi_attestations-0.0.19.tar.gz")
	distBytes, err := os.ReadFile(dist)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	renamed := writeFile(t, tmp, "pypi_attestations-0.0.20.tar.gz", distBytes)
	respelled := writeFile(t, t.TempDir(), "Pypi-Attestations-0.0.19.tar.gz", distBytes)
	trusting := writeFile(t, tmp, "trusting.yaml", []byte(`version: 1
packages:
  - name: pypi-attestations
    require: trusted-publisher
    action: block
    publishers:
      - kind: github
        repository: trailofbits/pypi-attestations
        workflow: release.yml
      - kind: identity
        issuer: https://github.com/login/oauth
        subject: jku@goto.fi
`))
	other := writeFile(t, tmp, "other.yaml", []byte(`version: 1
packages:
  - name: pypi-attestations
    require: trusted-publisher
    action: block
    publishers:
      - kind: github
        repository: someone/else
`))
	cases := []struct {
		name string
		args []string
		code int
		out  []string
	}{
		{"provenance", []string{"--trusted-root", prod, "--provenance", f("pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance"), dist}, 0,
			[]string{"pypi_attestations-0.0.19.tar.gz: verified", "signer:      github:trailofbits/pypi-attestations@release.yml (refs/tags/v0.0.19)", "commit:      08802efe1f8e5fec4ad842d6b8ce97656092ee72", "recorded:    github:trailofbits/pypi-attestations@release.yml"}},
		{"parsed-equal name", []string{"--trusted-root", prod, "--provenance", f("pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance"), respelled}, 0,
			[]string{"Pypi-Attestations-0.0.19.tar.gz: verified"}},
		{"two attestations", []string{"--trusted-root", prod, "--attestation", f("pypi-attestations/pypi_attestations-0.0.19.tar.gz.publish.attestation"),
			"--attestation", f("pypi-attestations/pypi_attestations-0.0.19.tar.gz.slsa.attestation"), dist}, 0,
			[]string{"verified", "https://docs.pypi.org/attestations/publish/v1, https://slsa.dev/provenance/v1"}},
		{"policy allows", []string{"--trusted-root", prod, "--policy", trusting, "--provenance", f("pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance"), dist}, 0,
			[]string{"policy:      allow (rule pypi-attestations, verdict verified)"}},
		{"policy other publisher", []string{"--trusted-root", prod, "--policy", other, "--provenance", f("pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance"), dist}, 1,
			[]string{"pypi_attestations-0.0.19.tar.gz: refused by policy: block (rule pypi-attestations, verdict untrusted-publisher): ", "\n  verification: verified\n"}},
		{"attestation identity matched by policy", []string{"--trusted-root", prod, "--policy", trusting,
			"--attestation", f("pypi-attestations-upstream/pypi_attestations-0.0.19.tar.gz.publish.attestation.with_timestamp"), dist}, 0,
			[]string{"signer:      identity:jku@goto.fi (https://github.com/login/oauth)", "policy:      allow"}},
		{"rekor v2 unsupported", []string{"--trusted-root", staging, "--attestation", f("pypi-attestations-upstream/pypi_attestations-0.0.19.tar.gz.publish.attestation.with_rekor2_timestamp"), dist}, 1,
			[]string{"unsupported (unsupported)", "Rekor v2"}},
		{"staging root", []string{"--trusted-root", staging, "--provenance", f("pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance"), dist}, 1,
			[]string{"invalid (signature)"}},
		{"renamed file", []string{"--trusted-root", prod, "--provenance", f("pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance"), renamed}, 1,
			[]string{"invalid (name-mismatch)", "subject does not match distribution name"}},
		{"other bytes", []string{"--trusted-root", prod, "--provenance", f("pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance"),
			writeFile(t, t.TempDir(), "pypi_attestations-0.0.19.tar.gz", []byte("nothing"))}, 1,
			[]string{"invalid (digest-mismatch)", "subject does not match distribution digest"}},
		{"gitlab attestation", []string{"--trusted-root", prod, "--attestation", f("pypi-attestations/gitlab_oidc_project-0.0.3.tar.gz.publish.attestation"), f("pypi-attestations/gitlab_oidc_project-0.0.3.tar.gz")}, 0,
			[]string{"signer:      gitlab:facutuesca/gitlab-oidc-project@.gitlab-ci.yml (refs/heads/main)"}},
		{"signers disagree", []string{"--trusted-root", prod, "--provenance", f("pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance"),
			"--attestation", f("pypi-attestations-upstream/pypi_attestations-0.0.19.tar.gz.publish.attestation.with_timestamp"), dist}, 1,
			[]string{"invalid (identity-mismatch)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := verifyRun(c.args...)
			if code != c.code {
				t.Fatalf("exit %d; want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			for _, want := range c.out {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			// The first line is the outcome: never "verified" when the exit
			// status says otherwise.
			if first, _, _ := strings.Cut(out, "\n"); strings.HasSuffix(first, ": verified") != (c.code == 0) {
				t.Errorf("first line %q with exit %d", first, c.code)
			}
		})
	}
}

func TestVerifyCommandMinted(t *testing.T) {
	ps := provenancetest.New(t)
	dir := t.TempDir()
	rootPath := ps.WriteTrustedRoot(dir)
	content := []byte("a wheel")
	dist := writeFile(t, dir, "demo_pkg-0.1-py3-none-any.whl", content)
	prov := writeFile(t, dir, "demo.provenance", ps.ProvenanceFor("demo_pkg-0.1-py3-none-any.whl", content, provenancetest.Google("ci@proj.iam.gserviceaccount.com")))
	code, out, errOut := verifyRun("--trusted-root", rootPath, "--provenance", prov, dist)
	if code != 0 || !strings.Contains(out, "signer:      google:ci@proj.iam.gserviceaccount.com") {
		t.Fatalf("exit %d; want 0 and the Google signer\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// The same provenance against a real root: not verified.
	other := provenancetest.New(t).WriteTrustedRoot(t.TempDir())
	if code, out, _ := verifyRun("--trusted-root", other, "--provenance", prov, dist); code != 1 || !strings.Contains(out, "invalid (signature)") {
		t.Errorf("wrong root: exit %d; want 1 with a signature failure\n%s", code, out)
	}
}

func TestVerifyCommandUsage(t *testing.T) {
	dir := t.TempDir()
	dist := writeFile(t, dir, "x-1.0.tar.gz", []byte("x"))
	att := writeFile(t, dir, "x.att", []byte("{}"))
	dead := httptest.NewServer(http.NotFoundHandler())
	defer dead.Close()
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"--help"}, 0, "usage: pipgate verify"},
		{"no args", nil, 2, "missing DIST"},
		{"two dists with --attestation", []string{"--attestation", att, dist, dist}, 2, "--provenance and --attestation apply to one DIST"},
		{"missing dist", []string{"--attestation", att, filepath.Join(dir, "nope.tar.gz")}, 2, "no such file"},
		{"missing attestation", []string{"--attestation", filepath.Join(dir, "nope"), dist}, 2, "no such file"},
		{"bad trusted root", []string{"--trusted-root", att, "--attestation", att, dist}, 2, "no usable Sigstore trusted root"},
		{"unknown flag", []string{"--frobnicate", dist}, 2, "flag provided but not defined"},
		{"offline tuf", []string{"--tuf-cache", filepath.Join(dir, "tuf"), "--tuf-url", dead.URL, "--attestation", att, dist}, 2, "pass --trusted-root"},
		{"bad policy", []string{"--policy", att, "--attestation", att, dist}, 2, att + ":1: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := verifyRun(c.args...)
			if code != c.code {
				t.Fatalf("exit %d; want %d\n%s", code, c.code, errOut)
			}
			if !strings.Contains(errOut, c.stderr) {
				t.Errorf("stderr lacks %q:\n%s", c.stderr, errOut)
			}
		})
	}
}

// Several DISTs, each checked against the provenance or attestations beside
// it; JSON output; the hint when a staging-signed file meets production.
func TestVerifyCommandBesideAndJSON(t *testing.T) {
	fx := verifyFixtures(t)
	f := func(rel string) string { return filepath.Join(fx, rel) }
	prod, staging := f("trust/trusted_root.production.json"), f("trust/trusted_root.staging.json")
	provDist := f("pypi-attestations/pypi_attestations-0.0.19.tar.gz")   // .provenance beside it
	stagingDist := f("pypi-attestations/rfc8785-0.1.2-py3-none-any.whl") // .publish.attestation and .attestation, staging-signed

	code, out, errOut := verifyRun(provDist, stagingDist, "--json", "--trusted-root", prod)
	if code != 1 {
		t.Fatalf("exit %d; want 1\n%s\n%s", code, out, errOut)
	}
	var res []verifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if len(res) != 2 {
		t.Fatalf("%d results; want 2:\n%s", len(res), out)
	}
	if r := res[0]; r.Verdict != "verified" || r.Signer == nil || r.Signer.Repository != "trailofbits/pypi-attestations" ||
		len(r.Inputs) != 1 || r.Inputs[0] != provDist+".provenance" || r.SHA256 != "9bb1add04b1b4e182be6b0b80931593f7a291eb49d69b4fd728a5d4cbcdc4bd3" {
		t.Errorf("first result: %+v", r)
	}
	if r := res[1]; r.Verdict != "invalid" || r.Reason != "signature" || !strings.Contains(r.Hint, "Sigstore staging") || !strings.Contains(r.Hint, "--staging") ||
		len(r.Inputs) != 2 || r.Signer != nil {
		t.Errorf("second result: %+v", r)
	}

	// Text: the hint line; with the staging root the same file verifies.
	code, out, _ = verifyRun("--trusted-root", prod, stagingDist)
	if code != 1 || !strings.Contains(out, "  hint:        signed with Sigstore staging (its transparency log is not in this trust root): retry with --staging") {
		t.Errorf("exit %d; want 1 with the staging hint:\n%s", code, out)
	}
	code, out, _ = verifyRun("--trusted-root", staging, stagingDist)
	if code != 0 || !strings.Contains(out, "signer:      identity:william@yossarian.net") || strings.Contains(out, "hint:") {
		t.Errorf("staging root: exit %d; want 0, the signer and no hint:\n%s", code, out)
	}
	// A production-signed file against the staging root says the opposite.
	code, out, _ = verifyRun("--trusted-root", staging, provDist)
	if code != 1 || !strings.Contains(out, "hint:        signed with Sigstore production") {
		t.Errorf("exit %d; want 1 with the production hint:\n%s", code, out)
	}
	// A failure that is not about the instance carries no hint.
	renamed := writeFile(t, t.TempDir(), "pypi_attestations-0.0.20.tar.gz", mustRead(t, provDist))
	code, out, _ = verifyRun("--trusted-root", prod, "--provenance", provDist+".provenance", renamed)
	if code != 1 || strings.Contains(out, "hint:") {
		t.Errorf("name mismatch: exit %d, want 1 without a hint:\n%s", code, out)
	}
	// A DIST without anything beside it is not verified (1); the others are
	// still verified and printed.
	lone := writeFile(t, t.TempDir(), "lone-1.0.tar.gz", []byte("x"))
	code, out, errOut = verifyRun("--trusted-root", prod, provDist, lone)
	if code != 1 || !strings.Contains(out, "pypi_attestations-0.0.19.tar.gz: verified") ||
		!strings.Contains(out, "lone-1.0.tar.gz: not verified: unattested: no lone-1.0.tar.gz.provenance (nor .publish.attestation or .attestation) beside it; give --provenance or --attestation\n") {
		t.Errorf("exit %d; want 1, the good one verified and the lone one unattested\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyUnattested: a DIST with nothing attesting it is not verified
// (exit 1, not a usage error), says so on its first line, and under a
// policy that refuses it the refusal leads.
func TestVerifyUnattested(t *testing.T) {
	dir := t.TempDir()
	dist := writeFile(t, dir, "x-1.0.tar.gz", []byte("x"))
	dead := httptest.NewServer(http.NotFoundHandler()) // no trust root is needed: nothing to verify
	defer dead.Close()
	tuf := []string{"--tuf-cache", filepath.Join(dir, "tuf"), "--tuf-url", dead.URL}
	code, out, errOut := verifyRun(append(tuf, dist)...)
	want := "x-1.0.tar.gz: not verified: unattested: no x-1.0.tar.gz.provenance (nor .publish.attestation or .attestation) beside it; give --provenance or --attestation\n  sha256:      2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n"
	if code != 1 || out != want || errOut != "" {
		t.Errorf("exit %d; want 1\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, out, want, errOut)
	}

	pol := writeFile(t, dir, "policy.yaml", []byte("version: 1\npackages:\n  - name: x\n    require: attestation\n    action: block\n"))
	code, out, _ = verifyRun(append(tuf, "--policy", pol, dist)...)
	first, rest, _ := strings.Cut(out, "\n")
	if code != 1 || !strings.HasPrefix(first, "x-1.0.tar.gz: refused by policy: block (rule x, verdict unattested): ") ||
		!strings.HasPrefix(rest, "  verification: not verified: unattested: no x-1.0.tar.gz.provenance") || strings.Contains(rest, "policy:") {
		t.Errorf("policy refusal: exit %d; want 1 with the refusal first\n%s", code, out)
	}

	code, out, _ = verifyRun(append(tuf, "--json", dist)...)
	var res []verifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || len(res) != 1 || res[0].Verdict != "unattested" || res[0].Error != "" {
		t.Errorf("--json: exit %d, %v, %+v", code, err, res)
	}
}

// TestVerifyBoundedMemory: verify's memory is bounded by its limits, not by
// its inputs. A sparse 256 MiB DIST is hashed as a stream (1 GiB behaves the
// same, at four times the CPU); five 200 MB
// provenance files are refused by their size, unread; an endless
// attestation (/dev/zero, whose size says 0) is cut at the limit. The bytes
// allocated while verifying (runtime.MemStats.TotalAlloc, which a whole
// read of any of them would pass) stay under 64 MiB.
func TestVerifyBoundedMemory(t *testing.T) {
	ps := provenancetest.New(t)
	dir := t.TempDir()
	root := ps.WriteTrustedRoot(dir)
	sparse := func(name string, size int64) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dist := sparse("big-1.0.tar.gz", 256<<20)
	args := []string{"--trusted-root", root}
	for i := range 5 {
		args = append(args, "--provenance", sparse("big"+strconv.Itoa(i)+".provenance", 200<<20))
	}
	// Two more DISTs, each with a 200 MB provenance beside it, and one whose
	// attestation is endless.
	other := sparse("other-1.0.tar.gz", 1<<20)
	sparse("other-1.0.tar.gz.provenance", 200<<20)
	endless := writeFile(t, dir, "endless-1.0.tar.gz", []byte("x"))
	if err := os.Symlink("/dev/zero", endless+".attestation"); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"256 MiB DIST, five 200 MB provenances", append(args, dist), []string{
			"big-1.0.tar.gz: invalid (format): " + filepath.Join(dir, "big0.provenance") + ": 209715200 bytes, more than the limit of 4194304 for a provenance object or attestation\n",
			"  sha256:      a6d72ac7690f53be6ae46ba88506bd97302a093f7108472bd9efc3cefda06484\n"}},
		{"several DISTs", []string{"--trusted-root", root, other, endless}, []string{
			"other-1.0.tar.gz: invalid (format): " + other + ".provenance: 209715200 bytes, more than the limit",
			"endless-1.0.tar.gz: invalid (format): " + endless + ".attestation: more than the limit of 4194304 bytes"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			code, out, errOut := verifyRun(c.args...)
			runtime.ReadMemStats(&after)
			if code != 1 {
				t.Fatalf("exit %d; want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			for _, want := range c.want {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("verify allocated %d MiB; want under 64 MiB", alloc>>20)
			} else {
				t.Logf("verify allocated %.1f MiB", float64(alloc)/(1<<20))
			}
		})
	}
}

// TestVerifyStops: verify checks its context while it hashes a DIST
// (SIGINT and SIGTERM cancel it in main), prints no result and exits 2.
func TestVerifyStops(t *testing.T) {
	dir := t.TempDir()
	dist := writeFile(t, dir, "x-1.0.tar.gz", bytes.Repeat([]byte("x"), 4<<20))
	writeFile(t, dir, "x-1.0.tar.gz.provenance", []byte("{}"))
	ctx := &countdownCtx{Context: context.Background(), n: 3}
	var out, errOut bytes.Buffer
	code := runVerify(ctx, []string{dist}, &out, &errOut)
	if code != 2 || out.Len() != 0 || errOut.String() != "pipgate verify: interrupted\n" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, interrupted", code, out.String(), errOut.String())
	}
	if ctx.n >= 0 {
		t.Errorf("ctx checked %d times while hashing 4 MiB; want more", 3-ctx.n)
	}
}
