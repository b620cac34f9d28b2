package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestReportPage: /-/report counts the decision history (what clients were
// served and refused), as JSON and as an escaped HTML page, against the
// policy in force.
func TestReportPage(t *testing.T) {
	up := pypitest.NewServer(t)
	prov := []byte(`{"version":1,"attestation_bundles":[]}`)
	good := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = prov })
	evil := addWheel(up, "demo", "2.0", func(d *pypitest.Dist) { d.Provenance = prov })
	plain := addWheel(up, "plain", "1.0", nil)
	tp := newTestProxy(t, up, demoTrustsGoodRepo)
	tp.verifier.set(good.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}})
	tp.verifier.set(evil.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/<b>fork", Workflow: "release.yml"}})
	for path, want := range map[string]int{"/files/demo/" + good.Filename: 200, "/files/demo/" + evil.Filename: 403, "/files/plain/" + plain.Filename: 200} {
		if resp, _ := tp.get(path); resp.StatusCode != want {
			t.Fatalf("%s = %d; want %d", path, resp.StatusCode, want)
		}
	}
	// The rows keep the full signer and the upload time, for a replay.
	rows, err := tp.srv.DecisionHistory("demo")
	if err != nil || len(rows) != 2 {
		t.Fatalf("history = %+v, %v", rows, err)
	}
	for _, d := range rows {
		if d.Signer == nil || d.Signer.Workflow != "release.yml" || d.UploadTime.IsZero() {
			t.Errorf("row %s: signer %+v, upload time %v; want both", d.Filename, d.Signer, d.UploadTime)
		}
	}
	resp, body := tp.get("/-/report", "Accept", "application/json")
	var rp reportPage
	if err := json.Unmarshal(body, &rp); resp.StatusCode != 200 || err != nil {
		t.Fatalf("/-/report JSON = %d, %v\n%s", resp.StatusCode, err, body)
	}
	if len(rp.Projects) != 2 || rp.Totals.Files != 3 || rp.Totals.Served != 2 || rp.Totals.Blocked != 1 || rp.Totals.Verified != 2 {
		t.Fatalf("report = %+v", rp)
	}
	demo, pl := rp.Projects[0], rp.Projects[1]
	if demo.Project != "demo" || demo.State != policy.StateEnforced || len(demo.Publishers) != 2 || pl.State != policy.StateUnattested {
		t.Errorf("projects = %+v", rp.Projects)
	}
	resp, body = tp.get("/-/report")
	html := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(html, `<a href="status/demo">demo</a>`) || strings.Contains(html, "evil/<b>fork") || !strings.Contains(html, "evil/&lt;b&gt;fork") {
		t.Errorf("/-/report HTML = %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), html)
	}
}
