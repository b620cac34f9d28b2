package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// whyPolicyRules are the e2e policy's rules for the "pip shows why"
// scenarios (appended to its packages list).
const whyPolicyRules = `  - name: signed-only
    require: trusted-publisher
    action: block
    publishers:
      - kind: github
        repository: good/repo
  - name: attested-only
    require: attestation
    action: block
`

// testPipShowsWhy runs real pip, on TestE2E's server, against every kind of
// refusal pip can meet and checks that pip's own output carries pipgate's
// reason in the 403 status line pip prints. (The cooldown, and unpinned pip
// falling back past it, are TestE2E's policy/cooldown-and-publisher-change-
// fallback.)
func testPipShowsWhy(t *testing.T, up *pypitest.Server, ss *provenancetest.Sigstore, pip *pypitest.Pip, p *proc, why *whyLog) {
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
	index := p.base + "/simple/"
	venv := pip.Venv(t)
	run := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		args = append([]string{"install", "--no-deps", "--index-url", index}, args...)
		out, err := pip.Run(t.Context(), venv, args...)
		if err == nil {
			t.Fatalf("pip %s succeeded; want a refusal:\n%s", strings.Join(args, " "), out)
		}
		why.add(name, out, args...)
		return out
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
		// Every release blocked: pip skips every yanked release and says
		// only that none matches (PEP 592 leaves pip no way to show a yank
		// reason unless pinned); /-/status/<project> lists the reasons.
		out := run(t, "unpinned, every release blocked", "signed-only")
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
}

// whyLog records what pip printed for each refusal; with PIPGATE_WHY_OUT
// set, it is written there when the test ends (the README quotes it).
type whyLog struct {
	base string
	mu   sync.Mutex // subtests add side by side
	b    strings.Builder
}

func newWhyLog(t *testing.T, base string) *whyLog {
	w := &whyLog{base: base}
	t.Cleanup(func() {
		if f := os.Getenv("PIPGATE_WHY_OUT"); f != "" {
			w.mu.Lock()
			defer w.mu.Unlock()
			if err := os.WriteFile(f, []byte(w.b.String()), 0o644); err != nil {
				t.Error(err)
			}
		}
	})
	return w
}

// add records pip's output for a pip command (the server's address shown
// as 127.0.0.1:8080).
func (w *whyLog) add(name, out string, args ...string) {
	shown := strings.ReplaceAll("pip "+strings.Join(args, " ")+"\n"+out, w.base, "http://127.0.0.1:8080")
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(&w.b, "## %s\n$ %s\n", name, shown)
}
