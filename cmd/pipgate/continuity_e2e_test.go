package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestE2EContinuityEvasions runs real pip, unpinned, against projects whose
// uploader tries to walk around the trust-over-time checks (issue 16): in
// each case pip installs the last accepted release. Then the policy file is
// rewritten in place, slowly, into a permissive one: polling never adopts
// it (the log and /-/status say so), and SIGHUP does.
func TestE2EContinuityEvasions(t *testing.T) {
	t.Parallel() // its own server and data dir: runs beside the other end-to-end tests
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	pip := pypitest.NewPip(t) // skips, saying why, without pip
	ctx := context.Background()
	up := pypitest.NewServer(t)
	ss := provenancetest.New(t)
	good := provenancetest.GitHub("good/repo", "release.yml")
	evil := provenancetest.GitHub("evil/fork", "release.yml")
	third := provenancetest.Google("builder@third.iam.gserviceaccount.com")

	// add publishes one file: a wheel, or an sdist with ext; signed by id
	// (nil: no provenance).
	add := func(project, version, ext string, id provenancetest.Signer, yanked bool) {
		fn, content := pypitest.WheelFilename(project, version), pypitest.MakeWheel(project, version, pypitest.WheelOptions{})
		if ext != "" {
			fn, content = strings.TrimSuffix(pypitest.SdistFilename(project, version), ".tar.gz")+ext, pypitest.MakeSdist(project, version)
		}
		d := pypitest.Dist{Filename: fn, Content: content, Yanked: yanked}
		if id != (provenancetest.Signer{}) {
			d.Provenance = ss.ProvenanceFor(fn, content, id)
		}
		up.AddDist(project, d)
	}
	none := provenancetest.Signer{}
	type file struct {
		version, ext string
		id           provenancetest.Signer
		yanked       bool
	}
	cases := []struct {
		project string
		files   []file
		want    string // what unpinned pip installs
	}{
		{"two-new", []file{{"1.0", "", good, false}, {"1.1", "", evil, false}, {"1.2", "", evil, false}}, "1.0"},
		{"rc-decoy", []file{{"1.0", "", good, false}, {"2.0rc1", "", evil, false}, {"2.0", "", evil, false}}, "1.0"},
		{"two-unattested", []file{{"1.0", "", good, false}, {"1.1", "", none, false}, {"1.2", "", none, false}}, "1.0"},
		{"unattested-rc-decoy", []file{{"1.0", "", good, false}, {"2.0rc1", "", none, false}, {"2.0", "", none, false}}, "1.0"},
		{"yanked-history", []file{{"0.9", "", none, false}, {"1.0", "", good, true}, {"1.1", "", good, true}, {"2.0", "", evil, false}, {"2.1", "", none, false}}, "0.9"},
		{"old-sdists", []file{{"1.0", "", good, false}, {"2.0", ".tar.bz2", none, false}, {"2.1", ".tgz", none, false}}, "1.0"},
		{"returning", []file{{"1.0", "", good, false}, {"1.1", "", evil, false}, {"1.2", "", good, false}}, "1.2"},
		{"third-publisher", []file{{"1.0", "", good, false}, {"1.1", "", evil, false}, {"1.2", "", third, false}}, "1.0"},
		{"post-release", []file{{"1.0", "", good, false}, {"1.0.post1", "", evil, false}}, "1.0"},
		{"epoch", []file{{"1.0", "", good, false}, {"1!0.1", "", evil, false}}, "1.0"},
	}
	for _, c := range cases {
		for _, f := range c.files {
			add("eva-"+c.project, f.version, f.ext, f.id, f.yanked)
		}
	}

	dir := t.TempDir()
	const strict = "version: 1\ndefaults:\n  continuity: block\n"
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(strict), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: data
upstream:
  url: %s
trust:
  trusted_root: %s
policy: policy.yaml
audit_log: audit.jsonl
verification:
  eager_releases: 2
  eager_budget: 60s
`, up.URL(), ss.WriteTrustedRoot(dir))
	cfgPath := filepath.Join(dir, "pipgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPipgate(t, cfgPath, filepath.Join(dir, "audit.jsonl"), false)
	index := p.base + "/simple/"
	installed := func(venv, name string) string { // the version in venv, or "" (pip show's, read without pip)
		v, err := pip.Installed(ctx, venv, name)
		if err != nil {
			return "(" + err.Error() + ")"
		}
		return v
	}

	// Each case is its own project. One pip run installs them all into one
	// venv (a pip start is most of the CPU of a case): every project has
	// no dependency and is chosen on its own page, so pip's choice for one
	// does not depend on the others. Should that run fail, each case runs
	// alone in its own venv, so that a failure names its case.
	t.Run("pip", func(t *testing.T) {
		install := func(venv string, names ...string) (string, error) {
			// --pre: pre-releases are candidates too; the decoys must not win.
			return pip.Run(ctx, venv, append([]string{"install", "--pre", "--index-url", index, "--no-cache-dir"}, names...)...)
		}
		var names []string
		for _, c := range cases {
			names = append(names, "eva-"+c.project)
		}
		venv := pip.Venv(t)
		out, err := install(venv, names...)
		if err != nil {
			t.Logf("pip install of every case at once: %v; each alone:\n%s", err, out)
		}
		for _, c := range cases {
			t.Run(c.project, func(t *testing.T) {
				name, venv, out := "eva-"+c.project, venv, out
				if err != nil {
					t.Parallel()
					venv = pip.Venv(t)
					var err error
					if out, err = install(venv, name); err != nil {
						t.Fatalf("pip install %s: %v\n%s", name, err, out)
					}
				}
				if v := installed(venv, name); v != c.want {
					t.Errorf("%s = %q; want %s, the last accepted release\n%s", name, v, c.want, out)
				}
			})
		}
	})

	t.Run("slow-in-place-policy-writer", func(t *testing.T) {
		// The writer truncates the policy in place and writes a valid,
		// permissive first part, then stalls.
		f, err := os.OpenFile(policyPath, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("version: 1\n"); err != nil {
			t.Fatal(err)
		}
		const note = `"msg":"policy file changed in place; not adopted until SIGHUP`
		// The watcher polls every 5s; its log line says it saw the change
		// and left it.
		if !p.stderr.WaitFor(30*time.Second, func(s string) bool { return strings.Contains(s, note) }) {
			t.Fatalf("no log line about the in-place change:\n%s", tail(p.stderr.String(), 20))
		}
		if st := p.status(t); st["policy_changed_in_place_at"] == nil {
			t.Errorf("/-/status = %v; want policy_changed_in_place_at", st)
		}
		// The strict policy is still in force: the flagged release is refused.
		resp, err := http.Get(p.base + "/files/eva-two-new/" + pypitest.WheelFilename("eva-two-new", "1.2"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("eva-two-new 1.2 under the half-written policy = %d; want 403 (the old policy in force)", resp.StatusCode)
		}
		// The writer finishes; the operator sends SIGHUP: adopted.
		if _, err := f.WriteString("defaults:\n  continuity: none\n"); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		reloads := strings.Count(p.stderr.String(), `"msg":"policy reloaded"`)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if !p.stderr.WaitFor(10*time.Second, func(s string) bool { return strings.Count(s, `"msg":"policy reloaded"`) > reloads }) {
			t.Fatalf("no policy reload logged after SIGHUP:\n%s", tail(p.stderr.String(), 20))
		}
		resp, err = http.Get(p.base + "/files/eva-two-new/" + pypitest.WheelFilename("eva-two-new", "1.2"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("eva-two-new 1.2 after SIGHUP (continuity none) = %d; want 200", resp.StatusCode)
		}
		if st := p.status(t); st["policy_changed_in_place_at"] != nil {
			t.Errorf("/-/status still notes the in-place change after SIGHUP: %v", st["policy_changed_in_place_at"])
		}
	})
}
