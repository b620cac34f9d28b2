package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestE2EDependencyConfusion runs real pip through pipgate in front of a
// private index (basic auth) that owns internal-lib 1.0, and the public
// index, where an attacker published internal-lib 9.9. pip must get 1.0,
// the public index must never be asked about internal-lib, public files
// must still verify, and the password must appear nowhere pipgate writes.
func TestE2EDependencyConfusion(t *testing.T) {
	t.Parallel() // its own server and data dir: runs beside the other end-to-end tests
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	pip := pypitest.NewPip(t) // skips, saying why, without pip
	const user, password = "ci-bot", "e2e-Private-Passw0rd"
	ss := provenancetest.New(t)
	private, public := pypitest.NewServer(t), pypitest.NewServer(t)
	private.RequireBasicAuth(user, password)

	// internal-lib 1.0 (private, no Integrity API) needs pubdep from PyPI.
	ilFn := pypitest.WheelFilename("internal-lib", "1.0")
	private.AddDist("internal-lib", pypitest.Dist{Filename: ilFn,
		Content: pypitest.MakeWheel("internal-lib", "1.0", pypitest.WheelOptions{Requires: []string{"pubdep>=1.0"}})})
	evilFn := pypitest.WheelFilename("internal-lib", "9.9")
	public.AddDist("internal-lib", pypitest.Dist{Filename: evilFn, Content: pypitest.MakeWheel("internal-lib", "9.9", pypitest.WheelOptions{})})
	pubFn := pypitest.WheelFilename("pubdep", "1.0")
	pubContent := pypitest.MakeWheel("pubdep", "1.0", pypitest.WheelOptions{})
	public.AddDist("pubdep", pypitest.Dist{Filename: pubFn, Content: pubContent,
		Provenance: ss.ProvenanceFor(pubFn, pubContent, provenancetest.GitHub("good/pubdep", "release.yml"))})

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "internal-password"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// pubdep must be signed by its trusted publisher: public files verify.
	policy := "version: 1\npackages:\n  - name: pubdep\n    require: trusted-publisher\n    action: block\n    publishers:\n      - kind: github\n        repository: good/pubdep\n"
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: data
upstreams:
  - name: internal
    url: %s
    projects: ["internal-lib", "acme-*"]
    username: %s
    password_file: internal-password
  - name: pypi
    url: %s
trust:
  trusted_root: %s
policy: policy.yaml
audit_log: audit.jsonl
`, private.URL(), user, public.URL(), ss.WriteTrustedRoot(dir))
	cfgPath := filepath.Join(dir, "pipgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPipgate(t, cfgPath, filepath.Join(dir, "audit.jsonl"), false)
	venv := pip.Venv(t)
	out, err := pip.Run(context.Background(), venv, "install", "--index-url", p.base+"/simple/", "--no-cache-dir", "internal-lib")
	if err != nil {
		t.Fatalf("pip install internal-lib: %v\n%s", err, out)
	}
	for name, want := range map[string]string{"internal-lib": "1.0", "pubdep": "1.0"} {
		if v, err := pip.Installed(context.Background(), venv, name); v != want {
			t.Errorf("%s: %q installed (%v); want version %s", name, v, err, want)
		}
	}
	if n := public.Hits("/simple/internal-lib") + public.Hits("/integrity/internal-lib"); n != 0 {
		t.Errorf("the public index saw %d requests about internal-lib; want 0", n)
	}
	if auth := public.AuthorizationHeaders(); len(auth) != 1 || auth[""] == 0 {
		t.Errorf("the public index received credentials: %d distinct Authorization values", len(auth))
	}

	recs := p.audit(t)
	for fn, want := range map[string][2]string{ilFn: {"unattested", "internal"}, pubFn: {"verified", "pypi"}} {
		got := findAudit(recs, fn)
		if len(got) == 0 || got[0]["verdict"] != want[0] || got[0]["upstream"] != want[1] {
			t.Errorf("audit of %s = %v; want verdict %s from upstream %s", fn, got, want[0], want[1])
		}
	}
	if len(findAudit(recs, evilFn)) != 0 {
		t.Errorf("the public internal-lib 9.9 was served")
	}

	// Everything a person or a scraper can see, and everything on disk.
	var seen strings.Builder
	for _, path := range []string{"/simple/", "/simple/internal-lib/", "/simple/pubdep/", "/-/status", "/metrics", "/readyz"} {
		for _, accept := range []string{"", "application/json", "application/vnd.pypi.simple.v1+json"} {
			req, _ := http.NewRequest(http.MethodGet, p.base+path, nil)
			if accept != "" {
				req.Header.Set("Accept", accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			_ = resp.Header.Write(&seen)
			seen.Write(body)
		}
	}
	if !strings.Contains(seen.String(), `upstream="internal"`) || !strings.Contains(seen.String(), `id="upstreams"`) {
		t.Error("/metrics or /-/status does not name the upstreams")
	}
	needles := []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	check := func(where, text string) {
		t.Helper()
		for _, n := range needles {
			if strings.Contains(text, n) {
				t.Errorf("%s contains the upstream credentials", where)
			}
		}
	}
	check("a served page, /-/status, /metrics or /readyz", seen.String())
	check("pip's output", out)
	check("the log", p.stderr.String())
	files := 0
	err = filepath.WalkDir(filepath.Join(dir, "data"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() { // folders, the admin socket
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		check("data file "+path, string(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 { // the database and at least the two wheels
		t.Errorf("walked %d files in the data directory; want the database and the blobs", files)
	}
	audit, err := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	check("the audit log", string(audit))
}
