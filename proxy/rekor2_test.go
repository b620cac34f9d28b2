package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// noTimeReason is how provenance words a Rekor v2 entry without timestamp.
const noTimeReason = "no usable signing time: a Rekor v2 log entry records none, and the attestation has no RFC 3161 timestamp"

// rekor2Upstream lists two wheels attested in the fake Sigstore's Rekor v2
// log: "rekortwo" with an RFC 3161 timestamp from its TSA, "notime"
// without one. It returns their contents.
func rekor2Upstream(t *testing.T, ss *provenancetest.Sigstore, up *pypitest.Server) (good, bad pypitest.Dist) {
	t.Helper()
	gh := provenancetest.GitHub("octo/rekortwo", "release.yml")
	mint := func(name string, opts ...provenancetest.Option) pypitest.Dist {
		content := pypitest.MakeWheel(name, "1.0", pypitest.WheelOptions{})
		fn := pypitest.WheelFilename(name, "1.0")
		d := pypitest.Dist{Filename: fn, Content: content,
			Provenance: ss.ProvenanceFor(fn, content, gh, append([]provenancetest.Option{provenancetest.WithRekorV2()}, opts...)...)}
		up.AddDist(name, d)
		return d
	}
	return mint("rekortwo"), mint("notime", provenancetest.WithoutTimestamp())
}

// TestRekorV2Served: through the real verifier, a wheel whose attestation
// is a Rekor v2 entry with a timestamp from a TSA in the trusted root is
// served 200 verified, listed as is, with its bytes; one whose Rekor v2
// entry has no timestamp is refused 403 invalid with the sentence that says
// why, in the reason header, the status line, the body and the page's yank
// reason, and none of its bytes.
func TestRekorV2Served(t *testing.T) {
	ss := provenancetest.New(t)
	up := pypitest.NewServer(t)
	good, bad := rekor2Upstream(t, ss, up)
	tp := newTestProxy(t, up, "", func(o *Options) { o.Verifier = &countingVerifier{v: ss.Verifier()} })

	resp, body := tp.get("/files/rekortwo/" + good.Filename)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(headerVerdict) != string(pypi.VerdictVerified) || sha(body) != sha(good.Content) {
		t.Errorf("Rekor v2 attested file: %d %s %q (%d bytes); want 200 verified with its bytes",
			resp.StatusCode, resp.Header.Get(headerVerdict), resp.Header.Get(headerReason), len(body))
	}

	resp, body = tp.get("/files/notime/" + bad.Filename)
	reason := resp.Header.Get(headerReason)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get(headerVerdict) != string(pypi.VerdictInvalid) ||
		!strings.Contains(reason, "signature: "+noTimeReason) || !strings.Contains(resp.Status, noTimeReason) ||
		!strings.Contains(string(body), noTimeReason) || strings.Contains(string(body), "threshold") {
		t.Errorf("Rekor v2 entry without timestamp: %q %s, reason %q, body %q; want 403 invalid saying %q",
			resp.Status, resp.Header.Get(headerVerdict), reason, body, noTimeReason)
	}
	if strings.Contains(string(body), string(bad.Content[:32])) {
		t.Error("the refusal carries the file's bytes")
	}

	for _, c := range []struct {
		project, filename, yanked string
	}{{"rekortwo", good.Filename, ""}, {"notime", bad.Filename, noTimeReason}} {
		resp, body := tp.get("/simple/"+c.project+"/", "Accept", pipAccept)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/simple/%s/ = %d", c.project, resp.StatusCode)
		}
		f := gate.FileNamed(parseJSONPage(t, body, tp.http.URL+"/simple/"+c.project+"/"), c.filename)
		switch {
		case f == nil:
			t.Errorf("%s not listed", c.filename)
		case c.yanked == "" && f.Yanked:
			t.Errorf("%s listed yanked (%q); want it listed as is", c.filename, f.YankedReason)
		case c.yanked != "" && (!f.Yanked || !strings.Contains(f.YankedReason, c.yanked)):
			t.Errorf("%s listed yanked=%v %q; want yanked saying %q", c.filename, f.Yanked, f.YankedReason, c.yanked)
		}
	}
}

// TestRekorV2Pip runs real pip through pipgate: the Rekor v2 attested wheel
// downloads; the one without a timestamp fails, and pip shows the reason.
func TestRekorV2Pip(t *testing.T) {
	t.Parallel() // after the sequential tests (the heap measurements among them), beside the other slow ones
	if testing.Short() {
		t.Skip("-short: skipping the real-pip run")
	}
	pip := pypitest.NewPip(t)
	ss := provenancetest.New(t)
	up := pypitest.NewServer(t)
	good, bad := rekor2Upstream(t, ss, up)
	tp := newTestProxy(t, up, "", func(o *Options) { o.Verifier = &countingVerifier{v: ss.Verifier()} })
	download := func(req string) (string, string, error) {
		dir := t.TempDir()
		out, err := pip.Run(t.Context(), "", "download", "--no-deps", "--index-url", tp.http.URL+"/simple/", "-d", dir, req)
		return dir, out, err
	}
	dir, out, err := download("rekortwo==1.0")
	if err != nil {
		t.Fatalf("pip download of the Rekor v2 attested wheel: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, good.Filename))
	if err != nil || sha(got) != sha(good.Content) {
		t.Errorf("pip saved %s: %v, sha256 %s; want the wheel's bytes", good.Filename, err, sha(got))
	}
	dir, out, err = download("notime==1.0")
	if err == nil || !strings.Contains(out, "403 Client Error") || !strings.Contains(out, noTimeReason) {
		t.Errorf("pip download of the wheel without timestamp: %v; want pip to fail showing %q\n%s", err, noTimeReason, out)
	}
	if _, serr := os.Stat(filepath.Join(dir, bad.Filename)); serr == nil {
		t.Error("pip saved the refused wheel")
	}
}
