package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// countingVerifier is a real provenance.Verifier that counts verifications.
type countingVerifier struct {
	v      *provenance.Verifier
	digest string
	calls  atomic.Int64
}

func (c *countingVerifier) Facts(prov []byte, filename, sha string) pypi.Facts {
	c.calls.Add(1)
	return c.v.Facts(prov, provenance.Dist{Filename: filename, SHA256: sha})
}

func (c *countingVerifier) TrustRootDigest() string { return c.digest }

// restartableProxy is a pipgate over a data directory that can be closed and
// reopened, as a restart does.
type restartableProxy struct {
	t     *testing.T
	up    *pypitest.Server
	v     gate.Verifier
	dir   string
	store *cache.Store
	srv   *Server
	http  *httptest.Server
}

func newRestartableProxy(t *testing.T, up *pypitest.Server, v gate.Verifier) *restartableProxy {
	p := &restartableProxy{t: t, up: up, v: v, dir: t.TempDir()}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *restartableProxy) start() {
	t := p.t
	t.Helper()
	store, err := cache.Open(cache.Options{Dir: p.dir})
	if err != nil {
		t.Fatal(err)
	}
	client, err := upstream.New(upstream.Options{URL: p.up.URL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pol := &staticPolicy{}
	pol.p.Store(mustPolicy(t, ""))
	srv, err := New(Options{Options: gate.Options{Upstream: upstream.Single(client), Store: store, Verifier: p.v, Policy: pol,
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		IndexTTL: time.Minute, EagerReleases: 5, EagerBudget: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	p.store, p.srv, p.http = store, srv, httptest.NewServer(srv)
}

func (p *restartableProxy) stop() {
	if p.http == nil {
		return
	}
	p.http.Close()
	p.srv.Close()
	if err := p.store.Close(); err != nil {
		p.t.Error(err)
	}
	p.http = nil
}

func (p *restartableProxy) restart() {
	p.stop()
	p.start()
}

func (p *restartableProxy) get(path string, hdr ...string) (*http.Response, []byte) {
	tp := &testProxy{t: p.t, http: p.http}
	return tp.get(path, hdr...)
}

// listing is one file as the upstream lists it.
type listing struct {
	project, filename string
	genuine           bool // the name the attestation was signed for
}

// checkDownload fetches l as a client does and checks what it received: the
// genuine file 200 verified with its bytes; a renamed copy 403 invalid with
// the name-mismatch reason in the header and the body.
func checkDownload(t *testing.T, p *restartableProxy, l listing, content []byte, when string) {
	t.Helper()
	resp, body := p.get("/files/" + l.project + "/" + l.filename)
	verdict, reason := resp.Header.Get(headerVerdict), resp.Header.Get(headerReason)
	if l.genuine {
		if resp.StatusCode != 200 || verdict != string(pypi.VerdictVerified) || sha(body) != sha(content) {
			t.Errorf("%s: %s = %d %s %q (%d bytes); want 200 verified with the file", when, l.filename, resp.StatusCode, verdict, reason, len(body))
		}
		return
	}
	if resp.StatusCode != 403 || verdict != string(pypi.VerdictInvalid) || !strings.Contains(reason, "name-mismatch") ||
		!strings.Contains(string(body), "name-mismatch") {
		t.Errorf("%s: renamed copy %s = %d %s, reason %q, body %q; want 403 invalid (name-mismatch)", when, l.filename,
			resp.StatusCode, verdict, reason, body[:min(len(body), 200)])
	}
}

// checkListed fetches l's project page as pip does and checks how l is
// listed: the genuine file as is, a renamed copy yanked with the reason.
func checkListed(t *testing.T, p *restartableProxy, l listing, when string) {
	t.Helper()
	resp, body := p.get("/simple/"+l.project+"/", "Accept", pipAccept)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: /simple/%s/ = %d", when, l.project, resp.StatusCode)
	}
	page := parseJSONPage(t, body, p.http.URL+"/simple/"+l.project+"/")
	f := gate.FileNamed(page, l.filename)
	switch {
	case f == nil:
		t.Errorf("%s: %s not listed", when, l.filename)
	case l.genuine && f.Yanked:
		t.Errorf("%s: genuine %s listed yanked (%q)", when, l.filename, f.YankedReason)
	case !l.genuine && (!f.Yanked || !strings.Contains(f.YankedReason, "name-mismatch")):
		t.Errorf("%s: renamed %s listed yanked=%v %q; want yanked for name-mismatch", when, l.filename, f.Yanked, f.YankedReason)
	}
}

// runRenamedCopies lists the same bytes and provenance under the genuine
// name and under other names, and checks each as itself in both orders, on
// a fresh cache and again after a restart (the verdicts then come from the
// cache: no verification runs).
func runRenamedCopies(t *testing.T, newVerifier func() *countingVerifier, content, prov []byte, files []listing) {
	orders := map[string][]listing{"genuine first": files, "renamed first": nil}
	for i := len(files) - 1; i >= 0; i-- {
		orders["renamed first"] = append(orders["renamed first"], files[i])
	}
	for name, order := range orders {
		for _, viaPage := range []bool{false, true} {
			mode := "downloads only"
			if viaPage {
				mode = "page then download (eager verification)"
			}
			t.Run(name+", "+mode, func(t *testing.T) {
				up := pypitest.NewServer(t)
				for _, l := range files {
					up.AddDist(l.project, pypitest.Dist{Filename: l.filename, Content: content, Provenance: prov})
				}
				v := newVerifier()
				p := newRestartableProxy(t, up, v)
				for _, l := range order {
					if viaPage {
						checkListed(t, p, l, "fresh cache")
					}
					checkDownload(t, p, l, content, "fresh cache")
				}
				if got := v.calls.Load(); got != int64(len(files)) {
					t.Errorf("fresh cache: %d verifications; want %d (one per listed name)", got, len(files))
				}
				p.restart()
				before := v.calls.Load()
				for _, l := range order {
					checkListed(t, p, l, "after restart")
					checkDownload(t, p, l, content, "after restart")
				}
				if got := v.calls.Load() - before; got != 0 {
					t.Errorf("after restart: %d verifications; want 0 (every verdict cached under its own name)", got)
				}
			})
		}
	}
}

// TestRenamedCopyCheckedAsItself: a signed file's bytes and provenance
// listed under another name (another project, another version) are refused
// for the name mismatch, and the genuine file is served verified, whichever
// is requested first, on a fresh cache and after a restart (fake Sigstore).
func TestRenamedCopyCheckedAsItself(t *testing.T) {
	ss := provenancetest.New(t)
	content := pypitest.MakeSdist("demo", "1.0")
	prov := ss.ProvenanceFor("demo-1.0.tar.gz", content, provenancetest.GitHub("good/repo", "release.yml"))
	runRenamedCopies(t, func() *countingVerifier {
		return &countingVerifier{v: ss.Verifier(), digest: strings.Repeat("cd", 32)}
	}, content, prov, []listing{
		{project: "demo", filename: "demo-1.0.tar.gz", genuine: true},
		{project: "demo", filename: "demo-2.0.tar.gz"},
		{project: "evil", filename: "evil-1.0.tar.gz"},
	})
}

// TestRenamedCopyRealAttestation is TestRenamedCopyCheckedAsItself with the
// real pypi_attestations-0.0.19 sdist, its real Integrity API provenance and
// the production trusted root (shared/fixtures/pypi, internal/fixtures).
func TestRenamedCopyRealAttestation(t *testing.T) {
	dir := fixtures.PyPI(t)
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	content := read("pypi-attestations/pypi_attestations-0.0.19.tar.gz")
	prov := read("pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance")
	ts, err := provenance.NewTrustSource(context.Background(), provenance.TrustSourceOptions{
		TrustedRootPath: filepath.Join(dir, "trust", "trusted_root.production.json")})
	if err != nil {
		t.Fatal(err)
	}
	runRenamedCopies(t, func() *countingVerifier {
		return &countingVerifier{v: ts.Verifier(), digest: ts.Digest()}
	}, content, prov, []listing{
		{project: "pypi-attestations", filename: "pypi_attestations-0.0.19.tar.gz", genuine: true},
		{project: "pypi-attestations", filename: "pypi_attestations-0.0.20.tar.gz"},
		// A parsed-equal spelling passes the name check (protocol.md d.1
		// step 9), and is keyed, verified and cached as itself.
		{project: "pypi-attestations", filename: "Pypi-Attestations-0.0.19.tar.gz", genuine: true},
		{project: "evil", filename: "evil-1.0.tar.gz"},
	})
}

// TestPageDropsUnusableLink: one ftp: (or otherwise unusable) file link on
// an upstream page costs that link only: the page is served without it, the
// other files download, and the drop is logged (credentials redacted) and
// counted.
func TestPageDropsUnusableLink(t *testing.T) {
	whl := pypitest.MakeWheel("demo", "1.0", pypitest.WheelOptions{})
	good := pypitest.WheelFilename("demo", "1.0")
	pages := map[string]func(fileURL string) string{
		pypi.ContentTypeV1JSON: func(fileURL string) string {
			return fmt.Sprintf(`{"meta":{"api-version":"1.1"},"name":"demo","files":[`+
				`{"filename":"demo-0.9.tar.gz","url":"ftp://user:hunter2@mirror.example/demo-0.9.tar.gz","hashes":{"sha256":"%[2]s"}},`+
				`{"filename":"%[3]s","url":"%[1]s","hashes":{"sha256":"%[2]s"}},`+
				`{"filename":"demo-0.8.tar.gz","url":"https://x.example/%%zz","hashes":{"sha256":"%[2]s"}}],"versions":["1.0"]}`,
				fileURL, sha(whl), good)
		},
		pypi.ContentTypeHTML: func(fileURL string) string {
			return fmt.Sprintf(`<!DOCTYPE html><html><body>`+
				`<a href="ftp://user:hunter2@mirror.example/demo-0.9.tar.gz#sha256=%[2]s">demo-0.9.tar.gz</a>`+
				`<a href="%[1]s#sha256=%[2]s">%[3]s</a>`+
				`<a href="https://x.example/%%zz">demo-0.8.tar.gz</a></body></html>`, fileURL, sha(whl), good)
		},
	}
	for ct, page := range pages {
		t.Run(ct, func(t *testing.T) {
			up := pypitest.NewServer(t)
			up.AddDist("other", pypitest.Dist{Filename: good, Content: whl})
			up.SetRawPage("demo", ct, []byte(page(up.FileURL("other", good))))
			logs := &pypitest.LogBuffer{}
			reg := prometheus.NewRegistry()
			client, err := upstream.New(upstream.Options{URL: up.URL(), Registerer: reg,
				Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			tp := newTestProxy(t, up, "", func(o *Options) { o.Upstream = upstream.Single(client) })

			resp, body := tp.get("/simple/demo/", "Accept", pipAccept)
			if resp.StatusCode != 200 {
				t.Fatalf("/simple/demo/ = %d %q; want 200 without the bad links", resp.StatusCode, body)
			}
			p := parseJSONPage(t, body, tp.http.URL+"/simple/demo/")
			if len(p.Files) != 1 || p.Files[0].Filename != good {
				t.Fatalf("served files %+v; want only %s", p.Files, good)
			}
			want := `
# HELP pipgate_upstream_links_dropped_total File links left out of upstream project pages because they were unusable (not an http(s) URL, unparsable, an unsafe filename, a malformed hash), by upstream.
# TYPE pipgate_upstream_links_dropped_total counter
pipgate_upstream_links_dropped_total{upstream="default"} 2
`
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pipgate_upstream_links_dropped_total"); err != nil {
				t.Error(err)
			}
			resp, body = tp.get("/files/demo/" + good)
			if resp.StatusCode != 200 || sha(body) != sha(whl) {
				t.Errorf("good file = %d (%d bytes); want 200 with the wheel", resp.StatusCode, len(body))
			}
			if resp, _ := tp.get("/files/demo/demo-0.9.tar.gz"); resp.StatusCode != 404 {
				t.Errorf("dropped file = %d; want 404 (not a file of the page)", resp.StatusCode)
			}
			log := logs.String()
			for _, want := range []string{`"msg":"unusable file link dropped"`, `demo-0.9.tar.gz`, `"index":2`, "%zz", "ftp://REDACTED@"} {
				if !strings.Contains(log, want) {
					t.Errorf("upstream log lacks %s:\n%s", want, log)
				}
			}
			if strings.Contains(log, "hunter2") {
				t.Errorf("a credential from the page reached the log:\n%s", log)
			}
		})
	}
}
