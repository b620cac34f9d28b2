package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipgate/pipgate/internal/testbin"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// The end-to-end test builds the pipgate binary, starts it on 127.0.0.1:0 in
// front of a fake upstream index whose attestations a fake Sigstore minted,
// and drives real pip through it: index mode and egress (MITM) mode.

// pipgateBinary returns the binary every end-to-end test, the deploy checks
// and TestHugePageMemory share: the release build (internal/testbin.Release,
// the Dockerfile's, not -race), built once per source state. The servers
// ran under -race before: two to ten times the CPU, and no test read the
// race reports (a race printed to the log and the exit status of a server
// stopped by SIGTERM was not checked). The in-process proxy and gate tests
// keep the race detector on the same code. With PIPGATE_E2E_RACE=1 they run
// the -race build (internal/testbin.Pipgate) instead, and a server that
// reports a data race fails its test.
func pipgateBinary(t testing.TB) string {
	t.Helper()
	if os.Getenv("PIPGATE_E2E_RACE") != "" {
		return testbin.Pipgate(t)
	}
	return testbin.Release(t)
}

// proc is a running pipgate.
type proc struct {
	cmd      *exec.Cmd
	base     string // http://127.0.0.1:PORT
	egress   string // 127.0.0.1:PORT or ""
	stderr   *pypitest.LogBuffer
	auditLog string
	client   *http.Client // trusts the server's CA when it serves HTTPS
}

// startPipgate runs the binary with cfgPath and waits for /readyz.
func startPipgate(t testing.TB, cfgPath, auditLog string, wantEgress bool) *proc {
	t.Helper()
	return startPipgateArgs(t, []string{"--config", cfgPath}, auditLog, wantEgress, nil)
}

// startPipgateArgs runs 'pipgate serve args...' and waits for /readyz; with
// roots, the index listener is expected to serve HTTPS with a certificate
// those roots trust.
func startPipgateArgs(t testing.TB, args []string, auditLog string, wantEgress bool, roots *x509.CertPool) *proc {
	t.Helper()
	return startPipgateEnv(t, args, auditLog, wantEgress, roots, nil)
}

// startPipgateEnv is startPipgateArgs with env added to the server's
// environment.
func startPipgateEnv(t testing.TB, args []string, auditLog string, wantEgress bool, roots *x509.CertPool, env []string) *proc {
	t.Helper()
	bin := pipgateBinary(t)
	p := &proc{stderr: &pypitest.LogBuffer{}, auditLog: auditLog, client: http.DefaultClient}
	scheme := "http://"
	if roots != nil {
		scheme = "https://"
		p.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	}
	p.cmd = testbin.Command(context.Background(), t, bin, append(append([]string{"serve"}, args...), "--log.format", "json", "--log.level", "debug")...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	p.cmd.Stdout = io.Discard
	addrs := make(chan [2]string, 4)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = p.stderr.Write(append(append([]byte(nil), line...), '\n'))
			var m struct{ Msg, Listener, Addr string }
			if json.Unmarshal(line, &m) == nil && m.Msg == "listening" {
				addrs <- [2]string{m.Listener, m.Addr}
			}
		}
	}()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
			t.Errorf("pipgate did not stop within 20s of SIGTERM")
		}
		pw.Close()
		if log := p.stderr.String(); strings.Contains(log, "WARNING: DATA RACE") {
			t.Errorf("pipgate reported a data race:\n%s", log[strings.Index(log, "WARNING: DATA RACE"):])
		} else if t.Failed() {
			t.Logf("pipgate log (tail):\n%s", tail(log, 60))
		}
	})
	want := 1
	if wantEgress {
		want = 2
	}
	deadline := time.After(60 * time.Second)
	for got := 0; got < want; got++ {
		select {
		case a := <-addrs:
			switch a[0] {
			case "listen":
				p.base = scheme + a[1]
			case "egress.listen":
				p.egress = a[1]
			}
		case <-deadline:
			t.Fatalf("pipgate did not start listening; log:\n%s", p.stderr.String())
		}
	}
	// serve logs "pipgate ready" once every listener is bound and serving.
	if !p.stderr.WaitFor(60*time.Second, func(s string) bool { return strings.Contains(s, `"msg":"pipgate ready"`) }) {
		t.Fatalf("pipgate never logged ready; log:\n%s", p.stderr.String())
	}
	resp, err := p.client.Get(p.base + "/readyz")
	if err != nil {
		t.Fatalf("pipgate logged ready, then /readyz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pipgate logged ready, then /readyz = %d", resp.StatusCode)
	}
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// metric sums the samples of a series in a /metrics scrape whose labels
// contain every given label pair.
func (p *proc) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	body := p.scrape(t)
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func (p *proc) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// audit returns the audit records once every decision the server has
// counted (pipgate_downloads_total, pipgate_egress_refused_total) is in the
// file: the log is written asynchronously, and the counters say how many
// records to expect.
func (p *proc) audit(t *testing.T) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := p.readAudit(t)
		var downloads, refused float64
		for _, r := range recs {
			switch r["event"] {
			case "download":
				downloads++
			case "egress-refused":
				refused++
			}
		}
		if downloads >= p.metric(t, "pipgate_downloads_total") && refused >= p.metric(t, "pipgate_egress_refused_total") {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log holds %v downloads and %v refusals after 10s; the metrics count more", downloads, refused)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proc) readAudit(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	data, err := os.ReadFile(p.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// status returns /-/status as JSON.
func (p *proc) status(t *testing.T) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.base+"/-/status", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("/-/status JSON: %v", err)
	}
	return st
}

// waitStatus polls /-/status until cond holds (what the server reports is
// what says a signal took effect), for at most 10s.
func (p *proc) waitStatus(t *testing.T, what string, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := p.status(t)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: /-/status after 10s: %v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func findAudit(recs []map[string]any, filename string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r["filename"] == filename {
			out = append(out, r)
		}
	}
	return out
}

const e2ePolicy = `version: 1
defaults:
  require: none
  action: warn
  on_invalid: block
  on_error: block
packages:
  - name: trusted-pkg
    require: trusted-publisher
    action: block
    publishers:
      - kind: github
        repository: good/repo
        workflow: release.yml
  - name: yankme
    require: trusted-publisher
    action: yank
    publishers:
      - kind: github
        repository: good/repo
  - name: warnme
    require: trusted-publisher
    action: warn
    publishers:
      - kind: gitlab
        repository: group/project
  - name: err-block
    require: attestation
    action: block
    on_error: block
  - name: err-warn
    require: attestation
    action: block
    on_error: warn
  - name: cool-pkg
    min_release_age: 7d
  - name: cont-pkg
    continuity: block
` + whyPolicyRules

func TestE2E(t *testing.T) {
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

	wheel := func(name, version string, o pypitest.WheelOptions) (string, []byte) {
		return pypitest.WheelFilename(name, version), pypitest.MakeWheel(name, version, o)
	}
	signed := func(project, version string, id provenancetest.Signer, o pypitest.WheelOptions) (string, []byte) {
		fn, content := wheel(project, version, o)
		up.AddDist(project, pypitest.Dist{Filename: fn, Content: content, Provenance: ss.ProvenanceFor(fn, content, id)})
		return fn, content
	}
	// Issue 2: a dependency, a pinned version, a yanked version, requires-python.
	for _, v := range []struct {
		version, requiresPython string
		yanked                  bool
	}{{"1.0", "", false}, {"1.1", ">=4", false}, {"2.0", "", true}} {
		fn, content := wheel("lib", v.version, pypitest.WheelOptions{RequiresPython: v.requiresPython})
		up.AddDist("lib", pypitest.Dist{Filename: fn, Content: content, RequiresPython: v.requiresPython,
			Yanked: v.yanked, YankedReason: map[bool]string{true: "lib 2.0 was broken"}[v.yanked]})
	}
	appFn, appContent := wheel("app", "1.0", pypitest.WheelOptions{Requires: []string{"lib>=1.0"}})
	up.AddDist("app", pypitest.Dist{Filename: appFn, Content: appContent})
	// Issue 4: trusted, untrusted, yank, warn, tampered, provenance errors.
	trusted1, _ := signed("trusted-pkg", "1.0", good, pypitest.WheelOptions{})
	trusted2, _ := signed("trusted-pkg", "2.0", evil, pypitest.WheelOptions{})
	signed("yankme", "1.0", good, pypitest.WheelOptions{})
	yank2, _ := signed("yankme", "2.0", evil, pypitest.WheelOptions{})
	warn1, _ := signed("warnme", "1.0", evil, pypitest.WheelOptions{})
	tamperFn, orig := wheel("tampered", "1.0", pypitest.WheelOptions{})
	tampered := pypitest.MakeWheel("tampered", "1.0", pypitest.WheelOptions{
		Files: map[string][]byte{"tampered/payload.py": []byte("import os  # injected after signing\n")}})
	up.AddDist("tampered", pypitest.Dist{Filename: tamperFn, Content: tampered, Provenance: ss.ProvenanceFor(tamperFn, orig, good)})
	// Issue 10: a release two hours old under a 7-day cooldown; a publisher change.
	coolOld, coolOldContent := wheel("cool-pkg", "1.0", pypitest.WheelOptions{})
	up.AddDist("cool-pkg", pypitest.Dist{Filename: coolOld, Content: coolOldContent, UploadTime: time.Now().Add(-30 * 24 * time.Hour)})
	coolNew, coolNewContent := wheel("cool-pkg", "1.1", pypitest.WheelOptions{})
	up.AddDist("cool-pkg", pypitest.Dist{Filename: coolNew, Content: coolNewContent, UploadTime: time.Now().Add(-2 * time.Hour)})
	signed("cont-pkg", "1.0", good, pypitest.WheelOptions{})
	contNew, _ := signed("cont-pkg", "2.0", evil, pypitest.WheelOptions{})
	errBlockFn, _ := signed("err-block", "1.0", good, pypitest.WheelOptions{})
	errWarnFn, _ := signed("err-warn", "1.0", good, pypitest.WheelOptions{})

	dir := t.TempDir()
	caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if out, err := testbin.Command(t.Context(), t, pipgateBinary(t), "ca", "init", "--cert", caCert, "--key", caKey).CombinedOutput(); err != nil {
		t.Fatalf("pipgate ca init: %v\n%s", err, out)
	}
	if fi, err := os.Stat(caKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode = %v, %v; want 0600", fi.Mode(), err)
	}
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(e2ePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.jsonl")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: data
upstream:
  url: %s
  index_ttl: 1ms
  timeout: 5s
trust:
  trusted_root: %s
policy: policy.yaml
audit_log: audit.jsonl
verification:
  eager_releases: 1
egress:
  listen: 127.0.0.1:0
  ca_cert: ca.pem
  ca_key: ca-key.pem
  intercept: [pypi.org, files.pythonhosted.org]
`, up.URL(), ss.WriteTrustedRoot(dir))
	cfgPath := filepath.Join(dir, "pipgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPipgate(t, cfgPath, auditPath, true)
	index := p.base + "/simple/"
	why := newWhyLog(t, p.base)

	// Each pip subtest installs into a venv of its own (download needs none).
	install := func(venv string, pkgs ...string) (string, error) {
		return pip.Run(ctx, venv, append([]string{"install", "--index-url", index, "--no-cache-dir"}, pkgs...)...)
	}
	download := func(t *testing.T, pkgs ...string) (string, error) {
		return pip.Run(ctx, "", append([]string{"download", "--no-deps", "--index-url", index, "--no-cache-dir", "-d", t.TempDir()}, pkgs...)...)
	}
	mustOK := func(t *testing.T, what string, out string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s failed: %v\n%s", what, err, out)
		}
	}
	installed := func(venv, name string) string { // the version in venv, or "" (pip show's, read without pip)
		v, err := pip.Installed(ctx, venv, name)
		if err != nil {
			return "(" + err.Error() + ")"
		}
		return v
	}

	// The subtests in "pip" run side by side: each works on projects of its
	// own (or only reads, under the one policy), in its own venv, and what
	// it checks does not depend on the others' order. The subtests after the
	// group need the server to themselves: counters that must not move,
	// policy reloads, the upstream stopped.
	//
	// The installs of the subtests below that must succeed are of
	// independent projects: one pip run installs them all into one venv (a
	// pip start is most of a subtest's CPU). Each project is chosen on its
	// own page and none depends on another (app's dependency lib is no one
	// else's), so pip's choice for one does not depend on the others; each
	// subtest still checks its own versions and pipgate's record of its
	// own files. Should that run fail, each subtest installs its projects
	// alone in a venv of its own, as before, so that a failure names its
	// subtest.
	shared := pip.Venv(t) // cont-pkg 1.0 installed, then upgraded once its new publisher is accepted
	sharedOut, sharedErr := install(shared, "app", "trusted-pkg==1.0", "yankme", "cont-pkg", "warnme")
	if sharedErr != nil {
		t.Logf("pip install of every subtest's projects at once: %v; each subtest installs its own:\n%s", sharedErr, sharedOut)
	}
	contVenv := shared
	if sharedErr != nil {
		contVenv = pip.Venv(t)
	}
	// setup returns the venv where reqs are installed and pip's output:
	// the shared run's, or, should it have failed, a run of reqs alone in
	// venv (a new one when "").
	setup := func(t *testing.T, venv string, reqs ...string) (string, string) {
		t.Helper()
		if sharedErr == nil {
			return shared, sharedOut
		}
		if venv == "" {
			venv = pip.Venv(t)
		}
		out, err := install(venv, reqs...)
		mustOK(t, "install "+strings.Join(reqs, " "), out, err)
		return venv, out
	}
	t.Run("pip", func(t *testing.T) {
		t.Run("index/dependency-yanked-requires-python", func(t *testing.T) {
			t.Parallel()
			venv, out := setup(t, "", "app")
			if v := installed(venv, "app"); v != "1.0" {
				t.Errorf("app = %q; want 1.0", v)
			}
			// 1.1 needs Python >= 4 and 2.0 is yanked: the resolver must pick 1.0.
			if v := installed(venv, "lib"); v != "1.0" {
				t.Errorf("lib = %q; want 1.0 (1.1 requires Python>=4, 2.0 is yanked)\n%s", v, out)
			}
			out, err := download(t, "lib==2.0")
			mustOK(t, "pip download lib==2.0 (pinned yanked)", out, err)
			if !strings.Contains(out, "lib 2.0 was broken") {
				t.Errorf("pip did not print the upstream yank reason:\n%s", out)
			}
		})
		t.Run("policy/trusted-publisher", func(t *testing.T) {
			t.Parallel()
			venv, out := setup(t, "", "trusted-pkg==1.0")
			if v := installed(venv, "trusted-pkg"); v != "1.0" {
				t.Errorf("trusted-pkg = %q; want 1.0\n%s", v, out)
			}
			out, err := download(t, "trusted-pkg==2.0")
			if err == nil {
				t.Fatalf("pip downloaded trusted-pkg 2.0, signed by evil/fork:\n%s", out)
			}
			if !strings.Contains(out, "403") {
				t.Errorf("pip output does not show the 403:\n%s", out)
			}
			recs := findAudit(p.audit(t), trusted2)
			if len(recs) == 0 || recs[len(recs)-1]["action"] != "block" ||
				!strings.Contains(fmt.Sprint(recs[len(recs)-1]["reason"]), "evil/fork") {
				t.Errorf("audit for %s = %v; want a block naming evil/fork", trusted2, recs)
			}
			if !strings.Contains(p.stderr.String(), "evil/fork") {
				t.Errorf("pipgate's log does not carry the reason")
			}
			recs = findAudit(p.audit(t), trusted1)
			if len(recs) == 0 || recs[0]["verdict"] != "verified" || !strings.Contains(fmt.Sprint(recs[0]["identity"]), "good/repo") {
				t.Errorf("audit for %s = %v; want verified by good/repo", trusted1, recs)
			}
		})
		t.Run("policy/yank", func(t *testing.T) {
			t.Parallel()
			venv, out := setup(t, "", "yankme")
			if v := installed(venv, "yankme"); v != "1.0" {
				t.Errorf("yankme = %q; want 1.0 (2.0 is yanked by pipgate)\n%s", v, out)
			}
			// The only install into the shared venv after the shared run:
			// the other subtests only read their own projects' versions.
			out, err := install(venv, "yankme==2.0")
			mustOK(t, "install yankme==2.0 (pinned)", out, err)
			if v := installed(venv, "yankme"); v != "2.0" {
				t.Errorf("pinned yankme = %q; want 2.0", v)
			}
			if !strings.Contains(out, "evil/fork") {
				t.Errorf("pip did not print pipgate's yank reason:\n%s", out)
			}
			recs := findAudit(p.audit(t), yank2)
			if len(recs) == 0 || recs[len(recs)-1]["action"] != "yank" {
				t.Errorf("audit for %s = %v; want a yank", yank2, recs)
			}
		})
		t.Run("policy/cooldown-and-publisher-change-fallback", func(t *testing.T) {
			t.Parallel()
			// Unpinned: 1.1 is listed as yanked until its cooldown ends, so pip
			// falls back to 1.0. (A run of its own: the README shows its output.)
			venv := pip.Venv(t)
			out, err := install(venv, "cool-pkg")
			why.add("unpinned, newest release blocked", out, "install", "--index-url", index, "--no-cache-dir", "cool-pkg")
			mustOK(t, "install cool-pkg", out, err)
			if v := installed(venv, "cool-pkg"); v != "1.0" {
				t.Errorf("cool-pkg = %q; want 1.0 (1.1 is in its 7-day cooldown)\n%s", v, out)
			}
			// Pinned: the download is refused, and pip prints the reason (the
			// 403 status line): when 1.1 becomes available.
			out, err = download(t, "cool-pkg==1.1")
			why.add("cooldown", out, "download", "--no-deps", "--index-url", index, "--no-cache-dir", "-d", "DIR", "cool-pkg==1.1")
			if err == nil {
				t.Fatalf("pip downloaded cool-pkg 1.1 during its cooldown:\n%s", out)
			}
			for _, want := range []string{"403", "cooldown: uploaded", "available from"} {
				if !strings.Contains(out, want) {
					t.Errorf("pip output lacks %q:\n%s", want, out)
				}
			}
			// The same from curl's side: 403, the reason in the header and body.
			resp, err := http.Get(p.base + "/files/cool-pkg/" + coolNew)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if r := resp.Header.Get("X-Pipgate-Reason"); resp.StatusCode != 403 || !strings.HasPrefix(r, "pipgate: cool-pkg: cooldown: uploaded ") ||
				!strings.Contains(r, "available from ") || !strings.Contains(string(body), r) {
				t.Errorf("GET %s = %d, reason %q, body %q; want 403 with the cooldown reason in both", coolNew, resp.StatusCode, r, body)
			}
			recs := findAudit(p.audit(t), coolNew)
			if len(recs) == 0 || recs[len(recs)-1]["finding"] != "cooldown" || recs[len(recs)-1]["action"] != "block" {
				t.Errorf("audit for %s = %v; want a block with finding cooldown", coolNew, recs)
			}
			if n := p.metric(t, "pipgate_policy_findings_total", `finding="cooldown"`, `action="block"`); n < 1 {
				t.Errorf("pipgate_policy_findings_total{finding=cooldown,action=block} = %v; want >= 1", n)
			}

			// A publisher change: 2.0 is signed by evil/fork, 1.0 by good/repo.
			venv, out = setup(t, contVenv, "cont-pkg")
			if v := installed(venv, "cont-pkg"); v != "1.0" {
				t.Errorf("cont-pkg = %q; want 1.0 (2.0 changed publisher)\n%s", v, out)
			}
			out, err = download(t, "cont-pkg==2.0")
			if err == nil || !strings.Contains(out, "publisher-changed") || !strings.Contains(out, "github:evil/fork") || !strings.Contains(out, "github:good/repo") {
				t.Errorf("pinned cont-pkg==2.0: err %v; want a refusal naming the finding and both publishers:\n%s", err, out)
			}
			recs = findAudit(p.audit(t), contNew)
			if len(recs) == 0 || recs[len(recs)-1]["finding"] != "publisher-changed" {
				t.Errorf("audit for %s = %v; want finding publisher-changed", contNew, recs)
			}
		})
		t.Run("policy/warn", func(t *testing.T) {
			t.Parallel()
			venv, out := setup(t, "", "warnme")
			if v := installed(venv, "warnme"); v != "1.0" {
				t.Errorf("warnme = %q; want 1.0 (warned, served)\n%s", v, out)
			}
			recs := findAudit(p.audit(t), warn1)
			if len(recs) == 0 || recs[0]["action"] != "warn" || recs[0]["verdict"] != string(pypi.VerdictUntrustedPublisher) {
				t.Errorf("audit for %s = %v; want warn untrusted-publisher", warn1, recs)
			}
		})
		t.Run("policy/tampered-refused-under-require-none", func(t *testing.T) {
			t.Parallel()
			venv := pip.Venv(t)
			// Eager verification found the file invalid, so the index lists it
			// as yanked: pip does not even pick it.
			out, err := install(venv, "tampered")
			if err == nil {
				t.Fatalf("pip installed a tampered file:\n%s", out)
			}
			// Pinned, pip takes the yanked file and the download is refused.
			out, err = download(t, "tampered==1.0")
			if err == nil || !strings.Contains(out, "403") {
				t.Fatalf("pinned download of the tampered file: err %v; want a 403\n%s", err, out)
			}
			recs := findAudit(p.audit(t), tamperFn)
			if len(recs) == 0 || recs[len(recs)-1]["verdict"] != "invalid" || recs[len(recs)-1]["action"] != "block" ||
				!strings.Contains(fmt.Sprint(recs[len(recs)-1]["reason"]), "digest") {
				t.Errorf("audit for the tampered file = %v; want invalid/block with a digest reason", recs)
			}
		})
		t.Run("policy/provenance-down", func(t *testing.T) {
			t.Parallel()
			up.SetFault("/integrity/err-", pypitest.Fault{Status: 503}) // err-block and err-warn only: the other subtests run meanwhile
			out, err := download(t, "err-block")
			if err == nil {
				t.Errorf("on_error: block served a file whose provenance could not be fetched:\n%s", out)
			}
			out, err = download(t, "err-warn")
			mustOK(t, "download err-warn with the Integrity API down (on_error: warn)", out, err)
			up.ClearFaults()
			out, err = download(t, "err-block")
			mustOK(t, "download err-block after recovery (the error must not be cached)", out, err)
			recs := findAudit(p.audit(t), errBlockFn)
			if len(recs) < 2 || recs[0]["verdict"] != "error" || recs[len(recs)-1]["verdict"] != "verified" {
				t.Errorf("audit for err-block = %v; want error then verified", recs)
			}
			if recs := findAudit(p.audit(t), errWarnFn); len(recs) == 0 || recs[0]["action"] != "warn" {
				t.Errorf("audit for err-warn = %v; want warn", recs)
			}
		})
		t.Run("pip-shows-why", func(t *testing.T) {
			t.Parallel()
			testPipShowsWhy(t, up, ss, pip, p, why)
		})
		t.Run("status-pages-in-chromium", func(t *testing.T) {
			t.Parallel()
			browser := chromium(t)
			// The downloads the pages show (run alone with -run, the pip
			// subtests before have not made them).
			for _, f := range []string{"trusted-pkg/" + trusted1, "trusted-pkg/" + trusted2, "trusted-pkg/" + trusted2, "tampered/" + tamperFn} {
				resp, err := p.client.Get(p.base + "/files/" + f)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			overview := loadInChromium(t, browser, p.base+"/-/status", "status", 1280, 1400)
			if text, _ := overview.section(t, "policy"); !strings.Contains(text, "policy.yaml") || !strings.Contains(text, "loaded 20") {
				t.Errorf("#policy = %q; want the file and when it was loaded", text)
			}
			if text, _ := overview.section(t, "blocked"); !strings.Contains(text, trusted2) || !strings.Contains(text, "evil/fork") ||
				!strings.Contains(text, tamperFn) || !strings.Contains(text, "untrusted-publisher") {
				t.Errorf("#blocked = %q; want the untrusted and the tampered file with reasons", text)
			}
			if _, rows := overview.section(t, "decisions"); rows < 3 {
				t.Errorf("#decisions has %d rows; want at least 3", rows)
			}
			if !slices.Contains(overview.links(), "status/trusted-pkg") {
				t.Errorf("the status page links %q; want status/trusted-pkg", overview.links())
			}

			proj := loadInChromium(t, browser, p.base+"/-/status/trusted-pkg", "status-trusted-pkg", 1280, 600)
			if text, _ := proj.section(t, "rule"); !strings.Contains(text, "trusted-pkg") || !strings.Contains(text, "line 8 of") {
				t.Errorf("#rule = %q; want the rule and its line", text)
			}
			text, rows := proj.section(t, "files")
			if rows != 2 {
				t.Errorf("#files has %d rows; want 2 (every file of the page)", rows)
			}
			for _, want := range []string{trusted1, trusted2, "verified", "untrusted-publisher", "github:good/repo@release.yml",
				"github:evil/fork@release.yml", "trusted-pkg (line 8)", "allow", "block", `policy rule "trusted-pkg" trusts`} {
				if !strings.Contains(text, want) {
					t.Errorf("#files lacks %q: %q", want, text)
				}
			}
		})
		t.Run("egress", func(t *testing.T) {
			t.Parallel()
			epip := pypitest.NewPip(t)
			evenv := epip.Venv(t)
			edl := func(indexURL string, pkgs ...string) (string, error) {
				args := []string{"download", "--no-deps", "--no-cache-dir", "--proxy", "http://" + p.egress,
					"--cert", caCert, "--index-url", indexURL, "-d", t.TempDir()}
				return epip.Run(ctx, evenv, append(args, pkgs...)...)
			}
			out, err := edl("https://pypi.org/simple/", "trusted-pkg==1.0")
			mustOK(t, "pip download through the egress proxy", out, err)
			if out, err := edl("https://pypi.org/simple/", "trusted-pkg==2.0"); err == nil ||
				!strings.Contains(out, "403 Client Error: pipgate: trusted-pkg: signed by github:evil/fork") {
				t.Errorf("egress served trusted-pkg 2.0 signed by evil/fork, or pip did not show why (%v):\n%s", err, out)
			}
			if out, err := edl("https://example.com/simple/", "trusted-pkg==1.0"); err == nil {
				t.Errorf("egress let pip reach example.com:\n%s", out)
			}
			// Without the CA trusted, pip refuses the intercepted certificate.
			out, err = epip.Run(ctx, evenv, "download", "--no-deps", "--no-cache-dir", "--proxy", "http://"+p.egress,
				"--index-url", "https://pypi.org/simple/", "-d", t.TempDir(), "trusted-pkg==1.0")
			if err == nil || !strings.Contains(out, "CERTIFICATE_VERIFY_FAILED") {
				t.Errorf("pip without the CA trusted: %v; want a certificate failure\n%s", err, out)
			}
			recs := p.audit(t)
			refused := false
			for _, r := range recs {
				if r["event"] == "egress-refused" && strings.Contains(fmt.Sprint(r["host"]), "example.com") {
					refused = true
				}
			}
			if !refused {
				t.Errorf("no egress-refused audit record for example.com")
			}
		})
	})

	t.Run("policy/publisher-change-accepted", func(t *testing.T) {
		venv := contVenv // where cont-pkg 1.0 was installed (before policy/cooldown-and-publisher-change-fallback, or by it)
		// The operator accepts the change (the publisher the reason names)
		// and sends SIGHUP: unpinned pip now gets 2.0, and nothing was
		// verified again.
		verified := p.metric(t, "pipgate_verifications_total")
		accepted := strings.Replace(e2ePolicy, "  - name: cont-pkg\n    continuity: block\n",
			"  - name: cont-pkg\n    continuity: block\n    publishers:\n      - {kind: github, repository: evil/fork}\n", 1)
		if accepted == e2ePolicy {
			t.Fatal("the cont-pkg rule is not in e2ePolicy")
		}
		if err := os.WriteFile(policyPath, []byte(accepted), 0o600); err != nil {
			t.Fatal(err)
		}
		reloads := strings.Count(p.stderr.String(), `"msg":"policy reloaded"`)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		// The reloader logs "policy reloaded" once the new policy is in force.
		if !p.stderr.WaitFor(10*time.Second, func(s string) bool { return strings.Count(s, `"msg":"policy reloaded"`) > reloads }) {
			t.Fatalf("no policy reload logged after SIGHUP:\n%s", tail(p.stderr.String(), 20))
		}
		out, err := install(venv, "--upgrade", "cont-pkg")
		mustOK(t, "install --upgrade cont-pkg after accepting evil/fork", out, err)
		if v := installed(venv, "cont-pkg"); v != "2.0" {
			t.Errorf("cont-pkg = %q after accepting the new publisher; want 2.0\n%s", v, out)
		}
		if n := p.metric(t, "pipgate_verifications_total"); n != verified {
			t.Errorf("accepting the publisher re-verified: pipgate_verifications_total %v -> %v", verified, n)
		}
	})
	t.Run("cache/second-install-verifies-nothing", func(t *testing.T) {
		before := p.metric(t, "pipgate_verifications_total")
		hits := p.metric(t, "pipgate_cache_lookups_total", `kind="verdict"`, `result="hit"`)
		venv2 := pip.Venv(t)
		out, err := pip.Run(ctx, venv2, "install", "--index-url", index, "--no-cache-dir", "trusted-pkg==1.0")
		mustOK(t, "second install", out, err)
		if after := p.metric(t, "pipgate_verifications_total"); after != before {
			t.Errorf("verifications went from %v to %v on a second install; want no new verification", before, after)
		}
		if h := p.metric(t, "pipgate_cache_lookups_total", `kind="verdict"`, `result="hit"`); h <= hits {
			t.Errorf("verdict cache hits %v -> %v; want more", hits, h)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		if v := p.metric(t, "pipgate_downloads_total", `verdict="verified"`, `action="allow"`); v < 2 {
			t.Errorf("verified downloads = %v; want >= 2", v)
		}
		if v := p.metric(t, "pipgate_downloads_total", `verdict="untrusted-publisher"`, `action="block"`); v < 1 {
			t.Errorf("blocked untrusted downloads = %v; want >= 1", v)
		}
		if v := p.metric(t, "pipgate_downloads_total", `verdict="unattested"`); v < 2 {
			t.Errorf("unattested downloads = %v; want >= 2 (app, lib)", v)
		}
		if v := p.metric(t, "pipgate_policy_decisions_total", `action="block"`, `rule="trusted-pkg"`); v < 1 {
			t.Errorf("policy blocks by rule trusted-pkg = %v; want >= 1", v)
		}
		// Each component's own series, on the one registry serve wires:
		// policy reloader, trust source, cache store, egress, upstream.
		scrape := p.scrape(t)
		for _, name := range []string{
			"pipgate_config_last_reload_successful", "pipgate_config_last_reload_success_timestamp_seconds",
			"pipgate_trust_root_last_refresh_timestamp_seconds", "pipgate_cache_size_bytes",
			"pipgate_egress_refused_total", "pipgate_upstream_requests_total",
		} {
			if !strings.Contains(scrape, "\n"+name) {
				t.Errorf("the scrape lacks %s", name)
			}
		}
		if v := p.metric(t, "pipgate_config_last_reload_successful"); v != 1 {
			t.Errorf("pipgate_config_last_reload_successful = %v; want 1", v)
		}
		for _, name := range []string{"pipgate_trust_root_last_refresh_timestamp_seconds", "pipgate_config_last_reload_success_timestamp_seconds", "pipgate_cache_size_bytes"} {
			if v := p.metric(t, name); v <= 0 {
				t.Errorf("%s = %v; want > 0", name, v)
			}
		}
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("promtool not installed (Debian package prometheus): skipping promtool check metrics")
		}
		cmd := testbin.Command(t.Context(), t, promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(p.scrape(t))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})
	t.Run("policy/reload-on-sighup", func(t *testing.T) {
		before := p.metric(t, "pipgate_verifications_total")
		loaded := p.status(t)["policy_loaded_at"]
		relaxed := strings.Replace(e2ePolicy, "        repository: good/repo\n        workflow: release.yml\n",
			"        repository: good/repo\n        workflow: release.yml\n      - kind: github\n        repository: evil/fork\n", 1)
		if err := os.WriteFile(policyPath, []byte(relaxed), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		st := p.waitStatus(t, "the relaxed policy loaded", func(st map[string]any) bool { return st["policy_loaded_at"] != loaded })
		if strings.Contains(fmt.Sprint(st["blocked"]), trusted2) {
			t.Errorf("/-/status still lists %s as blocked under a policy that trusts evil/fork", trusted2)
		}
		out, err := download(t, "trusted-pkg==2.0")
		mustOK(t, "download trusted-pkg==2.0 after the policy trusts evil/fork", out, err)
		if after := p.metric(t, "pipgate_verifications_total"); after != before {
			t.Errorf("the policy reload re-verified: %v -> %v", before, after)
		}
		// A broken policy keeps the old one, and the status page says why.
		if err := os.WriteFile(policyPath, []byte("version: 1\npackages:\n  - nme: x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Process.Signal(syscall.SIGHUP)
		p.waitStatus(t, "the failed reload shown", func(st map[string]any) bool {
			return strings.Contains(fmt.Sprint(st["policy_reload_error"]), "nme")
		})
		out, err = download(t, "trusted-pkg==2.0")
		mustOK(t, "download after a bad policy reload", out, err)
		if v := p.metric(t, "pipgate_config_last_reload_successful"); v != 0 {
			t.Errorf("pipgate_config_last_reload_successful = %v after a bad reload; want 0", v)
		}
	})
	t.Run("index/upstream-down-mirror", func(t *testing.T) {
		up.Close() // index_ttl is 1ms: every page is stale by now
		venv3 := pip.Venv(t)
		out, err := pip.Run(ctx, venv3, "install", "--index-url", index, "--no-cache-dir", "app")
		mustOK(t, "install app with the upstream stopped", out, err)
		if !regexp.MustCompile(`"cache":"stale"`).MatchString(p.stderr.String()) {
			t.Errorf("no access-log line says a stale page was served")
		}
	})
}
