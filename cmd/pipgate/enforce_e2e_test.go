package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// runCmd runs 'pipgate args...' in-process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), append([]string{"pipgate"}, args...), &o, &e)
	return code, o.String(), e.String()
}

// TestE2EObserveToEnforce is issue 20's walk, with real pip: observe
// (nothing required) while pip installs attested and unattested projects;
// 'pipgate policy suggest' learns a policy from the decision history while
// the server runs (through the admin socket); 'pipgate policy test' replays
// the history under it (refuses nothing served) and under a wrong policy
// (lists what it would break, exit 1); 'pipgate report' says what is
// enforceable; the suggestion is applied by SIGHUP; pip still installs
// everything it installed before, and a release signed by another
// publisher is refused, pinned or not. Then, with the server stopped, the
// same commands read the database.
//
// With PIPGATE_README_OUT=DIR set, the commands' outputs are written there
// (the README's "From observe to enforce" shows them).
func TestE2EObserveToEnforce(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	pip := pypitest.NewPip(t) // skips, saying why, without pip
	ctx := context.Background()
	up := pypitest.NewServer(t)
	ss := provenancetest.New(t)
	good := provenancetest.GitHub("acme/toolkit", "release.yml")
	google := provenancetest.Google("release@acme-builds.iam.gserviceaccount.com")
	evil := provenancetest.GitHub("mallory/toolkit", "release.yml")
	day := func(n int) time.Time {
		return time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(n) * 24 * time.Hour)
	}
	add := func(project, version string, id *provenancetest.Signer, at time.Time) {
		fn, content := pypitest.WheelFilename(project, version), pypitest.MakeWheel(project, version, pypitest.WheelOptions{})
		d := pypitest.Dist{Filename: fn, Content: content, UploadTime: at}
		if id != nil {
			d.Provenance = ss.ProvenanceFor(fn, content, *id)
		}
		up.AddDist(project, d)
	}
	add("acme-toolkit", "1.0", &good, day(0))
	add("acme-toolkit", "1.1", &good, day(10))
	add("acme-client", "2.0", &google, day(3))
	add("legacy-utils", "0.9", nil, day(1))
	// Published after the observation: 'pip install acme-toolkit' would
	// take it, and it is signed by someone else.
	add("acme-toolkit", "1.2", &evil, day(20))
	// And an sdist added to the trusted 1.1 by the same other publisher.
	sdist, sdistContent := pypitest.SdistFilename("acme-toolkit", "1.1"), pypitest.MakeSdist("acme-toolkit", "1.1")
	up.AddDist("acme-toolkit", pypitest.Dist{Filename: sdist, Content: sdistContent, UploadTime: day(21),
		Provenance: ss.ProvenanceFor(sdist, sdistContent, evil)})

	dir := t.TempDir()
	const observe = `# Observe: nothing required; every verdict is recorded.
version: 1
defaults:
  require: none
  action: warn
`
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(observe), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "pipgate.yaml")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: data\nupstream:\n  url: %s\ntrust:\n  trusted_root: %s\npolicy: policy.yaml\naudit_log: audit.jsonl\n",
		up.URL(), ss.WriteTrustedRoot(dir))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPipgate(t, cfgPath, filepath.Join(dir, "audit.jsonl"), false)
	index := p.base + "/simple/"
	readme := os.Getenv("PIPGATE_README_OUT")
	// The README shows these outputs with the temporary folder and port
	// replaced by the ones its example uses; pipgate's own (not pip's,
	// which vary with its version) must be in it as printed, times aside.
	stamp := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	inReadme := stamp.ReplaceAllString(string(md), "TIME")
	save := func(name, text string) {
		text = strings.ReplaceAll(text, dir, "/srv/pipgate")
		text = strings.ReplaceAll(text, strings.TrimPrefix(p.base, "http://"), "pipgate:8080")
		if !strings.HasPrefix(name, "pip-") && !strings.HasSuffix(name, "-after.txt") && !strings.HasSuffix(name, ".csv") && name != "suggest-merge.txt" &&
			!strings.Contains(inReadme, stamp.ReplaceAllString(strings.TrimRight(text, "\n"), "TIME")) {
			t.Errorf("README.md does not show the %s output as printed now (PIPGATE_README_OUT=DIR writes it):\n%s", name, text)
		}
		if readme != "" {
			if err := os.WriteFile(filepath.Join(readme, name), []byte(text), 0o600); err != nil {
				t.Error(err)
			}
		}
	}
	install := func(venv string, reqs ...string) (string, error) {
		return pip.Run(ctx, venv, append([]string{"install", "--index-url", index, "--no-cache-dir"}, reqs...)...)
	}

	// Observe: what the developers install.
	observed := [][]string{{"acme-toolkit==1.0", "legacy-utils"}, {"acme-toolkit==1.1", "acme-client"}}
	for _, reqs := range observed {
		if out, err := install(pip.Venv(t), reqs...); err != nil {
			t.Fatalf("observe: pip install %v: %v\n%s", reqs, err, out)
		}
	}

	// Observe mode: no package rule decided anything; the unverified
	// downloads are those the alert counts (policy="defaults").
	if n := p.metric(t, "pipgate_downloads_total", `policy="rule"`); n != 0 {
		t.Errorf("observe: %v downloads decided by a package rule; want 0", n)
	}
	if n := p.metric(t, "pipgate_downloads_total", `verdict="unattested"`, `policy="defaults"`); n != 1 {
		t.Errorf("observe: %v unattested downloads under the defaults; want 1 (legacy-utils)", n)
	}

	// Suggest, while the server runs (it holds the database).
	suggested := filepath.Join(dir, "suggested.yaml")
	code, _, errOut := runCmd(t, "policy", "suggest", "--config", cfgPath, "-o", suggested)
	if code != 0 {
		t.Fatalf("policy suggest: exit %d: %s", code, errOut)
	}
	text, err := os.ReadFile(suggested)
	if err != nil {
		t.Fatal(err)
	}
	save("suggest.txt", string(text))
	if !strings.Contains(string(text), "(read from the server)") {
		t.Errorf("the suggestion was not read from the running server:\n%s", text)
	}
	sp, err := policy.Load(suggested)
	if err != nil {
		t.Fatalf("the suggestion does not load: %v\n%s", err, text)
	}
	rules := map[string]policy.Rule{}
	for _, r := range sp.Rules() {
		rules[r.Name] = r
	}
	if len(rules) != 2 || len(rules["acme-toolkit"].Publishers) != 1 || rules["acme-toolkit"].Publishers[0].Repository != "acme/toolkit" ||
		len(rules["acme-client"].Publishers) != 1 || rules["acme-client"].Publishers[0].Email != "release@acme-builds.iam.gserviceaccount.com" {
		t.Errorf("suggested rules = %+v\n%s", rules, text)
	}
	if !strings.Contains(string(text), "# legacy-utils: 1 file of 1 version, 1 download, never attested: unenforced (the defaults apply)") {
		t.Errorf("no note about legacy-utils:\n%s", text)
	}
	if code, out, e := runCmd(t, "policy", "check", suggested); code != 0 {
		t.Errorf("policy check: exit %d: %s%s", code, out, e)
	}

	// Test it: it refuses nothing that was served.
	code, out, errOut := runCmd(t, "policy", "test", "--config", cfgPath, suggested)
	save("test-ok.txt", out)
	if code != 0 || !strings.Contains(out, "OK: ") {
		t.Errorf("policy test of the suggestion: exit %d\n%s%s", code, out, errOut)
	}
	// A wrong candidate: the toolkit's publisher mistyped. The test lists
	// both served releases with the reason the server would give; exit 1.
	wrong := filepath.Join(dir, "wrong.yaml")
	if err := os.WriteFile(wrong, bytes.ReplaceAll(text, []byte("repository: acme/toolkit"), []byte("repository: acme/tool-kit")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, "policy", "test", "--config", cfgPath, wrong)
	save("test-wrong.txt", out)
	if code != 1 || !strings.Contains(out, "Served, would now be REFUSED (403): 2") ||
		!strings.Contains(out, "signed by github:acme/toolkit@release.yml") || !strings.Contains(out, "trusts github:acme/tool-kit@release.yml") {
		t.Errorf("policy test of a wrong policy: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd(t, "policy", "test", "--json", "--config", cfgPath, wrong)
	var rep policyTestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || len(rep.Refuse) != 2 || rep.Source != "server" {
		t.Errorf("policy test --json: exit %d, %v\n%s", code, err, out)
	}

	// Report: the two attested projects can be enforced today.
	code, out, errOut = runCmd(t, "report", "--config", cfgPath)
	save("report.txt", out)
	if code != 0 || !strings.Contains(out, "Enforceable today (2): acme-client, acme-toolkit") {
		t.Errorf("report: exit %d\n%s%s", code, out, errOut)
	}

	// Apply it: the reviewed file becomes the policy; SIGHUP.
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

	// Everything installed before still installs.
	for _, reqs := range observed {
		if out, err := install(pip.Venv(t), reqs...); err != nil {
			t.Errorf("enforce: pip install %v: %v\n%s", reqs, err, out)
		}
	}
	// Unpinned, pip skips the release by the other publisher (listed as
	// yanked) and installs the last trusted one.
	venv := pip.Venv(t)
	out, err = install(venv, "acme-toolkit")
	save("pip-unpinned.txt", out)
	if err != nil {
		t.Errorf("enforce: pip install acme-toolkit: %v\n%s", err, out)
	} else if v, err := pip.Installed(ctx, venv, "acme-toolkit"); v != "1.1" {
		t.Errorf("unpinned acme-toolkit: %q, %v installed; want 1.1\n%s", v, err, out)
	}
	// Pinned, it is refused with the reason.
	out, err = install(pip.Venv(t), "acme-toolkit==1.2")
	save("pip-refused.txt", out)
	if err == nil || !strings.Contains(out, "403") || !strings.Contains(out, "mallory/toolkit") {
		t.Errorf("enforce: pip install acme-toolkit==1.2: %v; want a 403 naming the signer\n%s", err, out)
	}
	for _, fn := range []string{pypitest.WheelFilename("acme-toolkit", "1.2"), sdist} {
		resp, err := http.Get(p.base + "/files/acme-toolkit/" + fn)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Pipgate-Verdict") != "untrusted-publisher" {
			t.Errorf("%s = %d %q; want 403 untrusted-publisher", fn, resp.StatusCode, resp.Header.Get("X-Pipgate-Verdict"))
		}
	}

	if n := p.metric(t, "pipgate_downloads_total", `verdict="untrusted-publisher"`, `action="block"`, `policy="rule"`); n < 3 {
		t.Errorf("enforce: %v refusals by a package rule counted; want at least 3", n)
	}

	// Stopped: the same commands read the database. The history now holds
	// the refusal; replaying the policy in force changes nothing.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }() // the cleanup's Wait then returns at once
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("pipgate did not stop within 60s of SIGTERM:\n%s", tail(p.stderr.String(), 20))
	}
	code, out, errOut = runCmd(t, "policy", "test", "--config", cfgPath, policyPath)
	save("test-after.txt", out)
	if code != 0 || !strings.Contains(out, "(read from the database)") || !strings.Contains(out, "Unchanged: 6 files.") {
		t.Errorf("policy test after enforcing, stopped: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "report", "--csv", "--config", cfgPath)
	save("report-after.csv", out)
	if code != 0 || !strings.Contains(out, "acme-toolkit,enforced,acme-toolkit,4,2,") {
		t.Errorf("report --csv, stopped: exit %d\n%s%s", code, out, errOut)
	}
	code, merged, errOut := runCmd(t, "policy", "suggest", "--merge", "--config", cfgPath)
	save("suggest-merge.txt", merged)
	if code != 0 || !strings.Contains(merged, `acme-toolkit: kept rule "acme-toolkit"`) || !strings.Contains(merged, "# acme-toolkit: 2 files of 2 versions (1.0, 1.1)") {
		t.Errorf("suggest --merge, stopped: exit %d\n%s%s", code, merged, errOut)
	}
}
