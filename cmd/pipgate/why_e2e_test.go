package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// whyPolicy blocks what the "pip shows why" scenarios need blocked.
const whyPolicy = `version: 1
packages:
  - name: signed-only
    require: trusted-publisher
    action: block
    publishers:
      - kind: github
        repository: good/repo
  - name: attested-only
    require: attestation
    action: block
  - name: fresh
    min_release_age: 7d
    cooldown_action: block
`

// TestE2EPipShowsWhy runs real pip against every kind of refusal pip can
// meet and checks that pip's own output carries pipgate's reason: in a yank
// reason pip prints, or in the 403 status line pip prints. With
// PIPGATE_WHY_OUT set, the outputs are written there (the README quotes
// them).
func TestE2EPipShowsWhy(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	pip := pypitest.NewPip(t)
	up := pypitest.NewServer(t)
	ss := provenancetest.New(t)
	good := provenancetest.GitHub("good/repo", "release.yml")
	evil := provenancetest.GitHub("evil/fork", "release.yml")
	add := func(project, filename string, content []byte, signer *provenancetest.Signer, upload time.Time) {
		d := pypitest.Dist{Filename: filename, Content: content, UploadTime: upload}
		if signer != nil {
			d.Provenance = ss.ProvenanceFor(filename, content, *signer)
		}
		up.AddDist(project, d)
	}
	whl := func(name, version string) (string, []byte) {
		return pypitest.WheelFilename(name, version), pypitest.MakeWheel(name, version, pypitest.WheelOptions{})
	}
	sdist := func(name, version string) (string, []byte) {
		return pypitest.SdistFilename(name, version), pypitest.MakeSdist(name, version)
	}
	old := time.Now().Add(-90 * 24 * time.Hour)
	// signed-only: every release signed by the wrong publisher (unpinned:
	// nothing to pick), and an older one too (pinned past eager verification).
	for _, v := range []string{"1.0", "2.0", "3.0"} {
		fn, c := whl("signed-only", v)
		add("signed-only", fn, c, &evil, old)
	}
	// attested-only: 2.0 attested, 1.0 an unattested sdist.
	fn, c := whl("attested-only", "2.0")
	add("attested-only", fn, c, &good, old)
	sdistFn, c := sdist("attested-only", "1.0")
	add("attested-only", sdistFn, c, nil, old)
	// fresh: 1.0 is old, 2.0 was uploaded an hour ago.
	fn, c = whl("fresh", "1.0")
	add("fresh", fn, c, &good, old)
	freshFn, c := whl("fresh", "2.0")
	add("fresh", freshFn, c, &good, time.Now().Add(-time.Hour))

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(whyPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: data\nupstream:\n  url: %s\ntrust:\n  trusted_root: %s\npolicy: policy.yaml\naudit_log: \"\"\nverification:\n  eager_releases: 1\n",
		up.URL(), ss.WriteTrustedRoot(dir))
	cfgPath := filepath.Join(dir, "pipgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPipgate(t, cfgPath, "", false)
	index := p.base + "/simple/"
	venv := pip.Venv(t)
	var record strings.Builder
	pipRun := func(t *testing.T, name string, wantOK bool, args ...string) string {
		t.Helper()
		args = append([]string{"install", "--no-deps", "--index-url", index}, args...)
		out, err := pip.Run(t.Context(), venv, args...)
		if (err == nil) != wantOK {
			t.Fatalf("pip %s: %v; want success %v:\n%s", strings.Join(args, " "), err, wantOK, out)
		}
		shown := strings.ReplaceAll("pip "+strings.Join(args, " ")+"\n"+out, p.base, "http://127.0.0.1:8080")
		fmt.Fprintf(&record, "## %s\n$ %s\n", name, shown)
		return out
	}
	run := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		return pipRun(t, name, false, args...)
	}
	want := func(t *testing.T, out string, parts ...string) {
		t.Helper()
		for _, s := range parts {
			if !strings.Contains(out, s) {
				t.Errorf("pip's output lacks %q:\n%s", s, out)
			}
		}
	}

	t.Run("unpinned", func(t *testing.T) {
		// The newest release is in cooldown: unpinned pip skips it (yanked)
		// and installs the one before.
		out := pipRun(t, "unpinned, newest release blocked", true, "fresh")
		want(t, out, "fresh-1.0-py3-none-any.whl", "Successfully installed fresh-1.0")
		// Every release blocked: pip skips every yanked release and says
		// only that none matches (PEP 592 leaves pip no way to show a yank
		// reason unless pinned); /-/status/<project> lists the reasons.
		out = run(t, "unpinned, every release blocked", "signed-only")
		want(t, out, "No matching distribution found for signed-only")
		resp, err := p.client.Get(p.base + "/-/status/signed-only")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if n := strings.Count(string(body), "signed by github:evil/fork"); n != 3 {
			t.Errorf("/-/status/signed-only shows the reason %d times; want once per release (3)", n)
		}
	})
	t.Run("pinned-wheel", func(t *testing.T) {
		out := run(t, "pinned wheel", "signed-only==3.0")
		want(t, out, "403 Client Error: pipgate: signed-only: signed by github:evil/fork", `policy rule "signed-only" trusts github:good/repo`)
	})
	t.Run("older-wheel", func(t *testing.T) {
		// 1.0 was judged when the page was served (eager verification
		// walked down past the blocked 3.0 and 2.0, so it is listed as
		// yanked); pinned, pip takes it and the refusal says why.
		out := run(t, "older release", "signed-only==1.0")
		want(t, out, "403 Client Error: pipgate: signed-only: signed by github:evil/fork")
	})
	t.Run("pinned-sdist", func(t *testing.T) {
		out := run(t, "pinned sdist", "attested-only==1.0")
		want(t, out, "403 Client Error: pipgate: attested-only: no provenance (unattested)", sdistFn)
	})
	t.Run("cooldown", func(t *testing.T) {
		out := run(t, "cooldown", "fresh==2.0")
		want(t, out, "403 Client Error: pipgate: fresh:", "cooldown")
	})
	if f := os.Getenv("PIPGATE_WHY_OUT"); f != "" {
		if err := os.WriteFile(f, []byte(record.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
