package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/audit"
	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// fakeVerifier returns canned facts by filename and counts calls.
type fakeVerifier struct {
	mu    sync.Mutex
	facts map[string]pypi.Facts
	calls atomic.Int64
}

func (v *fakeVerifier) Facts(_ []byte, filename, _ string) pypi.Facts {
	v.calls.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	if f, ok := v.facts[filename]; ok {
		return f
	}
	return pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: "format", Detail: "no canned facts"}
}

func (v *fakeVerifier) set(filename string, f pypi.Facts) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.facts[filename] = f
}

func (v *fakeVerifier) TrustRootDigest() string { return strings.Repeat("ab", 32) }

type staticPolicy struct{ p atomic.Pointer[policy.Policy] }

func (s *staticPolicy) Current() *policy.Policy { return s.p.Load() }

func mustPolicy(t testing.TB, src string) *policy.Policy {
	t.Helper()
	if src == "" {
		return policy.Default()
	}
	p, err := policy.Parse([]byte(src))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return p
}

type testProxy struct {
	t        testing.TB
	up       *pypitest.Server
	srv      *Server
	http     *httptest.Server
	store    *cache.Store
	verifier *fakeVerifier
	policy   *staticPolicy
	logs     *pypitest.LogBuffer
	audit    *pypitest.LogBuffer
	auditLog *audit.Log
	reg      *prometheus.Registry // the Registerer, when a *prometheus.Registry
	// The fill hooks the tests set (before the requests they watch): the
	// proxy is built with Options.Hooks that call them.
	fillDone       atomic.Pointer[func(key string, written int64, err error)]
	fillGraceEnded atomic.Pointer[func(key string, stopped bool)]
	fillJoined     atomic.Pointer[func(key string)]
	dir            string
}

type proxyOption func(*Options)

func newTestProxy(t testing.TB, up *pypitest.Server, policySrc string, opts ...proxyOption) *testProxy {
	t.Helper()
	dir := t.TempDir()
	store, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// The upstream timeout is the production default (30s): no test here is
	// about it, and on a loaded machine the fake upstream can take seconds
	// before its headers (a 2s timeout turned slow answers into 504s).
	client, err := upstream.New(upstream.Options{URL: up.URL()})
	if err != nil {
		t.Fatal(err)
	}
	tp := &testProxy{t: t, up: up, store: store, dir: dir, verifier: &fakeVerifier{facts: map[string]pypi.Facts{}},
		policy: &staticPolicy{}, logs: &pypitest.LogBuffer{}, audit: &pypitest.LogBuffer{}}
	tp.policy.p.Store(mustPolicy(t, policySrc))
	audit, err := audit.New(audit.Options{Path: "-", Stdout: tp.audit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { audit.Close() })
	o := Options{Audit: audit, Options: gate.Options{
		Upstream:      upstream.Single(client),
		Store:         store,
		Verifier:      tp.verifier,
		Policy:        tp.policy,
		Logger:        slog.New(slog.NewJSONHandler(tp.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:    prometheus.NewRegistry(),
		IndexTTL:      time.Minute,
		EagerReleases: 1,
		EagerBudget:   2 * time.Second,
		Hooks: gate.Hooks{
			FillDone: func(key string, written int64, err error) {
				if f := tp.fillDone.Load(); f != nil {
					(*f)(key, written, err)
				}
			},
			FillGraceEnded: func(key string, stopped bool) {
				if f := tp.fillGraceEnded.Load(); f != nil {
					(*f)(key, stopped)
				}
			},
			FillJoined: func(key string) {
				if f := tp.fillJoined.Load(); f != nil {
					(*f)(key)
				}
			},
		},
	}}
	for _, f := range opts {
		f(&o)
	}
	tp.srv, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	tp.reg, _ = o.Registerer.(*prometheus.Registry)
	tp.auditLog = audit
	t.Cleanup(tp.srv.Close)
	tp.http = httptest.NewServer(tp.srv)
	t.Cleanup(tp.http.Close)
	return tp
}

func (tp *testProxy) get(path string, hdr ...string) (*http.Response, []byte) {
	tp.t.Helper()
	req, err := http.NewRequest(http.MethodGet, tp.http.URL+path, nil)
	if err != nil {
		tp.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		tp.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tp.t.Fatalf("reading %s: %v", path, err)
	}
	return resp, body
}

// demoTrustsGoodRepo is a policy that blocks project demo unless
// github:good/repo signed the file.
const demoTrustsGoodRepo = `version: 1
packages:
  - name: demo
    require: trusted-publisher
    action: block
    publishers:
      - kind: github
        repository: good/repo
`

const pipAccept = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func addWheel(up *pypitest.Server, name, version string, mod func(*pypitest.Dist)) pypitest.Dist {
	d := pypitest.Dist{
		Filename: pypitest.WheelFilename(name, version),
		Content:  pypitest.MakeWheel(name, version, pypitest.WheelOptions{}),
	}
	if mod != nil {
		mod(&d)
	}
	up.AddDist(name, d)
	return d
}

func parseJSONPage(t testing.TB, body []byte, base string) *pypi.ProjectPage {
	t.Helper()
	u, _ := url.Parse(base)
	p, err := pypi.ParseProjectJSON(body, u)
	if err != nil {
		t.Fatalf("parsing served JSON page: %v\n%s", err, body)
	}
	return p
}

// yankedJSON returns the yanked files of project's page as pip gets it
// (JSON), each with its yank reason.
func (tp *testProxy) yankedJSON(t testing.TB, project string) map[string]string {
	t.Helper()
	_, body := tp.get("/simple/"+project+"/", "Accept", pipAccept)
	out := map[string]string{}
	for _, f := range parseJSONPage(t, body, tp.http.URL+"/simple/"+project+"/").Files {
		if f.Yanked {
			out[f.Filename] = f.YankedReason
		}
	}
	return out
}

func TestProjectPageBothFormats(t *testing.T) {
	up := pypitest.NewServer(t)
	w1 := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.RequiresPython = ">=3.8" })
	addWheel(up, "demo", "2.0", func(d *pypitest.Dist) { d.Yanked, d.YankedReason = true, "broken build" })
	tp := newTestProxy(t, up, "")

	resp, body := tp.get("/simple/demo/", "Accept", pipAccept)
	if got := resp.Header.Get("Content-Type"); got != pypi.ContentTypeV1JSON {
		t.Fatalf("Content-Type = %q; want %q", got, pypi.ContentTypeV1JSON)
	}
	if resp.Header.Get("Vary") != "Accept" {
		t.Errorf("Vary = %q; want Accept", resp.Header.Get("Vary"))
	}
	if bytes.Contains(body, []byte(`"dist-info-metadata"`)) {
		t.Errorf("served JSON carries the dist-info-metadata key that crashes old pip")
	}
	page := parseJSONPage(t, body, tp.http.URL+"/simple/demo/")
	if len(page.Files) != 2 {
		t.Fatalf("got %d files; want 2", len(page.Files))
	}
	f := page.Files[0]
	if want := tp.http.URL + "/files/demo/" + w1.Filename; f.URL != want {
		t.Errorf("file URL = %q; want %q", f.URL, want)
	}
	if f.SHA256() != sha(w1.Content) {
		t.Errorf("sha256 = %q; want %q", f.SHA256(), sha(w1.Content))
	}
	if f.RequiresPython != ">=3.8" {
		t.Errorf("requires-python = %q", f.RequiresPython)
	}
	if !f.CoreMetadata {
		t.Errorf("core-metadata lost")
	}
	if !page.Files[1].Yanked || page.Files[1].YankedReason != "broken build" {
		t.Errorf("yank lost: %+v", page.Files[1])
	}

	resp, body = tp.get("/simple/demo/", "Accept", "text/html")
	if got := resp.Header.Get("Content-Type"); got != pypi.ContentTypeHTML {
		t.Fatalf("Content-Type = %q; want text/html", got)
	}
	u, _ := url.Parse(tp.http.URL + "/simple/demo/")
	hp, err := pypi.ParseProjectHTML(body, u)
	if err != nil {
		t.Fatal(err)
	}
	if hp.Files[0].URL != f.URL || hp.Files[0].SHA256() != f.SHA256() || hp.Files[0].RequiresPython != ">=3.8" {
		t.Errorf("HTML page differs from JSON: %+v vs %+v", hp.Files[0], f)
	}
	if !hp.Files[1].Yanked || hp.Files[1].YankedReason != "broken build" {
		t.Errorf("HTML yank lost: %+v", hp.Files[1])
	}
}

func TestRedirectsAndNotFound(t *testing.T) {
	up := pypitest.NewServer(t)
	addWheel(up, "foo-bar", "1.0", nil)
	tp := newTestProxy(t, up, "")
	for _, c := range []struct {
		path     string
		code     int
		location string
	}{
		{"/simple/Foo_Bar/", 301, "/simple/foo-bar/"},
		{"/simple/foo-bar", 301, "/simple/foo-bar/"},
		{"/simple/nope/", 404, ""},
		{"/simple/bad%20name/", 400, ""},
		{"/files/foo-bar/nope-1.0.tar.gz", 404, ""},
		{"/nowhere", 404, ""},
	} {
		resp, _ := tp.get(c.path)
		if resp.StatusCode != c.code || resp.Header.Get("Location") != c.location {
			t.Errorf("GET %s = %d %q; want %d %q", c.path, resp.StatusCode, resp.Header.Get("Location"), c.code, c.location)
		}
	}
}

func TestFileDownloadCachedAndSingleFetch(t *testing.T) {
	up := pypitest.NewServer(t)
	d := addWheel(up, "demo", "1.0", nil)
	up.SetFault("/files/", pypitest.Fault{Delay: 200 * time.Millisecond})
	tp := newTestProxy(t, up, "")
	path := "/files/demo/" + d.Filename

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(tp.http.URL + path)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			if resp.StatusCode != 200 || !bytes.Equal(b, d.Content) {
				errs <- fmt.Errorf("status %d, %d bytes; want 200 and the wheel", resp.StatusCode, len(b))
				return
			}
			if v := resp.Header.Get(headerVerdict); v != string(pypi.VerdictUnattested) {
				errs <- fmt.Errorf("%s = %q; want unattested", headerVerdict, v)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	up.ClearFaults()
	if n := up.Hits("/files/"); n != 1 {
		t.Errorf("upstream file fetches = %d; want 1 for 8 concurrent requests", n)
	}
	resp, body := tp.get(path)
	if resp.StatusCode != 200 || !bytes.Equal(body, d.Content) || resp.Header.Get(headerCache) != "" && resp.Header.Get(headerCache) != string(gate.CacheHit) {
		t.Fatalf("cached GET = %d (%d bytes)", resp.StatusCode, len(body))
	}
	if n := up.Hits("/files/"); n != 1 {
		t.Errorf("upstream file fetches after a cached GET = %d; want 1", n)
	}
	if _, err := os.Stat(filepath.Join(tp.dir, "blobs", "sha256", sha(d.Content)[:2], sha(d.Content))); err != nil {
		t.Errorf("blob not stored content-addressed: %v", err)
	}

	// HEAD and Range on the cached file.
	req, _ := http.NewRequest(http.MethodHead, tp.http.URL+path, nil)
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 200 || hr.ContentLength != int64(len(d.Content)) {
		t.Errorf("HEAD = %d, length %d; want 200, %d", hr.StatusCode, hr.ContentLength, len(d.Content))
	}
	resp, body = tp.get(path, "Range", "bytes=0-9")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, d.Content[:10]) {
		t.Errorf("Range = %d %q; want 206 and the first 10 bytes", resp.StatusCode, body)
	}
}

func TestWrongHashAndTruncationLeaveNothing(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(*pypitest.Server, *pypitest.Dist)
	}{
		{"wrong hash", func(_ *pypitest.Server, d *pypitest.Dist) {
			d.ServeContent = []byte("not the wheel the index promised")
		}},
		{"truncated", func(up *pypitest.Server, _ *pypitest.Dist) {
			up.SetFault("/files/", pypitest.Fault{TruncateAfter: 100})
		}},
		{"upstream 500", func(up *pypitest.Server, _ *pypitest.Dist) { up.SetFault("/files/", pypitest.Fault{Status: 500}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := pypitest.NewServer(t)
			d := pypitest.Dist{Filename: pypitest.WheelFilename("demo", "1.0"), Content: pypitest.MakeWheel("demo", "1.0", pypitest.WheelOptions{})}
			c.setup(up, &d)
			up.AddDist("demo", d)
			tp := newTestProxy(t, up, "")
			resp, err := http.Get(tp.http.URL + "/files/demo/" + d.Filename)
			if err == nil {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if rerr == nil && resp.StatusCode == 200 && bytes.Equal(b, d.Content) {
					t.Fatalf("proxy served the file intact despite the fault")
				}
				if rerr == nil && resp.StatusCode == 200 {
					t.Fatalf("proxy answered 200 with a complete body of %d bytes; want an error or an aborted body", len(b))
				}
			}
			// Every handler has returned and every fill has ended on its own.
			tp.http.Close()
			tp.srv.gate.Wait()
			if tp.store.HasBlob(sha(d.Content)) {
				t.Errorf("the blob was stored despite the fault")
			}
			entries, _ := filepath.Glob(filepath.Join(tp.dir, "blobs", "sha256", "*", "*"))
			if len(entries) != 0 {
				t.Errorf("blobs left behind: %v", entries)
			}
		})
	}
}

func TestStaleIfErrorAndOfflineMirror(t *testing.T) {
	up := pypitest.NewServer(t)
	d := addWheel(up, "demo", "1.0", nil)
	tp := newTestProxy(t, up, "", func(o *Options) { o.IndexTTL = time.Nanosecond })
	if resp, _ := tp.get("/simple/demo/", "Accept", pipAccept); resp.StatusCode != 200 {
		t.Fatalf("first page = %d", resp.StatusCode)
	}
	if resp, _ := tp.get("/files/demo/" + d.Filename); resp.StatusCode != 200 {
		t.Fatalf("first file = %d", resp.StatusCode)
	}
	up.SetFault("", pypitest.Fault{Status: 503})
	resp, body := tp.get("/simple/demo/", "Accept", pipAccept)
	if resp.StatusCode != 200 || resp.Header.Get(headerCache) != string(gate.CacheStale) {
		t.Fatalf("page with upstream 503 = %d, %s=%q; want 200 stale", resp.StatusCode, headerCache, resp.Header.Get(headerCache))
	}
	if p := parseJSONPage(t, body, tp.http.URL+"/simple/demo/"); len(p.Files) != 1 {
		t.Errorf("stale page has %d files", len(p.Files))
	}
	up.Close()
	resp, body = tp.get("/files/demo/" + d.Filename)
	if resp.StatusCode != 200 || !bytes.Equal(body, d.Content) {
		t.Errorf("file with upstream gone = %d; want 200 from the mirror", resp.StatusCode)
	}
	if resp, _ := tp.get("/simple/other/"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("uncached page with upstream gone = %d; want 502", resp.StatusCode)
	}
	if !strings.Contains(tp.logs.String(), "serving the last good page") {
		t.Errorf("the log does not say a stale page was served")
	}
}

func TestMetadataAndProvenanceRoutes(t *testing.T) {
	up := pypitest.NewServer(t)
	prov := []byte(`{"version":1,"attestation_bundles":[]}`)
	d := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = prov })
	plain := addWheel(up, "demo", "0.9", nil)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })

	_, body := tp.get("/simple/demo/", "Accept", pipAccept)
	page := parseJSONPage(t, body, tp.http.URL+"/simple/demo/")
	var served *pypi.File
	for i := range page.Files {
		if page.Files[i].Filename == d.Filename {
			served = &page.Files[i]
		}
	}
	if served == nil || !strings.HasPrefix(served.Provenance, tp.http.URL+"/integrity/demo/1.0/"+d.Filename) {
		t.Fatalf("provenance URL not rewritten to pipgate: %+v", served)
	}
	resp, got := tp.get(strings.TrimPrefix(served.Provenance, tp.http.URL))
	if resp.StatusCode != 200 || !bytes.Equal(got, prov) || resp.Header.Get("Content-Type") != pypi.ContentTypeIntegrity {
		t.Errorf("provenance = %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), got)
	}
	resp, got = tp.get("/integrity/demo/0.9/" + plain.Filename + "/provenance")
	if resp.StatusCode != 404 || !strings.Contains(string(got), "No provenance available for "+plain.Filename) {
		t.Errorf("no-provenance answer = %d %q", resp.StatusCode, got)
	}
	tp.verifier.set(d.Filename, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "a/b"}})
	resp, meta := tp.get("/files/demo/" + d.Filename + ".metadata")
	if resp.StatusCode != 200 || !bytes.Contains(meta, []byte("Name: demo")) {
		t.Errorf("metadata = %d %q", resp.StatusCode, meta)
	}
	if v := resp.Header.Get(headerVerdict); v != string(pypi.VerdictVerified) {
		t.Errorf("metadata %s = %q; want the file's verdict, verified", headerVerdict, v)
	}
	if served.CoreMetadataHashes.Get("sha256") != "" && served.CoreMetadataHashes.Get("sha256") != sha(meta) {
		t.Errorf("metadata sha256 %s does not match the index's %s", sha(meta), served.CoreMetadataHashes.Get("sha256"))
	}
}

func TestSSRFFileHostRefused(t *testing.T) {
	up := pypitest.NewServer(t)
	whl := pypitest.MakeWheel("demo", "1.0", pypitest.WheelOptions{})
	page := fmt.Sprintf(`{"meta":{"api-version":"1.1"},"name":"demo","files":[{"filename":"demo-1.0-py3-none-any.whl","url":"http://169.254.169.254/latest/demo-1.0-py3-none-any.whl","hashes":{"sha256":"%s"}}],"versions":["1.0"]}`, sha(whl))
	up.SetRawPage("demo", pypi.ContentTypeV1JSON, []byte(page))
	tp := newTestProxy(t, up, "")
	resp, body := tp.get("/files/demo/demo-1.0-py3-none-any.whl")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("file on a foreign host = %d %q; want 502", resp.StatusCode, body)
	}
}

func TestPolicyBlocksAndYanks(t *testing.T) {
	up := pypitest.NewServer(t)
	prov := []byte(`{"version":1,"attestation_bundles":[]}`)
	good := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = prov })
	evil := addWheel(up, "demo", "2.0", func(d *pypitest.Dist) { d.Provenance = []byte(`{"version":1,"attestation_bundles":[{}]}`) })
	none := addWheel(up, "demo", "0.5", nil)
	tp := newTestProxy(t, up, demoTrustsGoodRepo, func(o *Options) { o.EagerReleases = 3 })
	tp.verifier.set(good.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}})
	tp.verifier.set(evil.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork", Workflow: "release.yml"}})

	yanked := tp.yankedJSON(t, "demo")
	if _, ok := yanked[good.Filename]; ok {
		t.Errorf("trusted file listed as yanked")
	}
	if r, ok := yanked[evil.Filename]; !ok || !strings.Contains(r, "evil/fork") {
		t.Errorf("untrusted file yank = %q, %v; want a reason naming evil/fork", r, ok)
	}
	// The status page lists what the index yanked, before any download.
	blocked := map[string]bool{}
	for _, d := range tp.srv.decisions.blocked() {
		blocked[d.Filename] = true
	}
	if !blocked[evil.Filename] || !blocked[none.Filename] || blocked[good.Filename] {
		t.Errorf("status blocked list = %v; want the untrusted and the unattested file", blocked)
	}
	if _, ok := yanked[none.Filename]; !ok {
		t.Errorf("unattested file not yanked under require: trusted-publisher")
	}
	calls := tp.verifier.calls.Load()

	resp, _ := tp.get("/files/demo/" + good.Filename)
	if resp.StatusCode != 200 || resp.Header.Get(headerVerdict) != "verified" {
		t.Errorf("trusted file = %d %s", resp.StatusCode, resp.Header.Get(headerVerdict))
	}
	resp, body := tp.get("/files/demo/" + evil.Filename)
	if resp.StatusCode != 403 || resp.Header.Get(headerVerdict) != string(pypi.VerdictUntrustedPublisher) || !strings.Contains(string(body), "evil/fork") ||
		!strings.Contains(resp.Header.Get(headerReason), "evil/fork") {
		t.Errorf("untrusted file = %d %s %q; want 403 untrusted-publisher with the reason", resp.StatusCode, resp.Header.Get(headerVerdict), body)
	}
	if n := tp.verifier.calls.Load(); n != calls {
		t.Errorf("downloads re-verified: %d verifier calls after the page, %d after", calls, n)
	}
	if up.Hits("/files/demo/"+evil.Filename) != 0 && up.Hits("/files/") > 1 {
		t.Errorf("a blocked file was fetched from the upstream")
	}
	// The audit log has one line per download decision.
	var lines []map[string]any
	if err := tp.auditLog.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(tp.audit.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 || lines[1]["verdict"] != string(pypi.VerdictUntrustedPublisher) || lines[1]["action"] != "block" {
		t.Errorf("audit = %v; want 2 records, the second a block", lines)
	}

	// The project's history recorded both publishers, and the log says a
	// second one was seen.
	h, err := tp.store.History("demo")
	if err != nil || len(h.Publishers) != 2 {
		t.Errorf("history = %+v, %v; want two publishers", h, err)
	}
	if !strings.Contains(tp.logs.String(), "another verified publisher recorded") {
		t.Errorf("no second-publisher note in the log")
	}

	// A policy change takes effect without re-verification.
	tp.policy.p.Store(mustPolicy(t, "version: 1\n"))
	resp, _ = tp.get("/files/demo/" + evil.Filename)
	if resp.StatusCode != 200 {
		t.Errorf("after a policy relaxation the file = %d; want 200", resp.StatusCode)
	}
	if n := tp.verifier.calls.Load(); n != calls {
		t.Errorf("the policy change caused re-verification (%d calls, want %d)", n, calls)
	}
}

func TestProvenanceErrorNotCached(t *testing.T) {
	up := pypitest.NewServer(t)
	d := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = []byte(`{"version":1,"attestation_bundles":[]}`) })
	src := "version: 1\ndefaults:\n  require: attestation\n  action: block\n  on_error: block\n"
	tp := newTestProxy(t, up, src, func(o *Options) { o.EagerReleases = 0 })
	tp.verifier.set(d.Filename, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "a/b"}})
	up.SetFault("/integrity/", pypitest.Fault{Status: 503})
	resp, body := tp.get("/files/demo/" + d.Filename)
	if resp.StatusCode != 403 || resp.Header.Get(headerVerdict) != string(pypi.VerdictError) {
		t.Fatalf("with the Integrity API down = %d %s %q; want 403 error", resp.StatusCode, resp.Header.Get(headerVerdict), body)
	}
	up.ClearFaults()
	resp, _ = tp.get("/files/demo/" + d.Filename)
	if resp.StatusCode != 200 || resp.Header.Get(headerVerdict) != string(pypi.VerdictVerified) {
		t.Errorf("after recovery = %d %s; want 200 verified (the error must not be cached)", resp.StatusCode, resp.Header.Get(headerVerdict))
	}
}

func TestHealthAndStatus(t *testing.T) {
	up := pypitest.NewServer(t)
	addWheel(up, "demo", "1.0", nil)
	tp := newTestProxy(t, up, "")
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, _ := tp.get(p); resp.StatusCode != 200 {
			t.Errorf("GET %s = %d", p, resp.StatusCode)
		}
	}
	tp.get("/files/demo/" + pypitest.WheelFilename("demo", "1.0"))
	resp, body := tp.get("/-/status", "Accept", "application/json")
	var st map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("status JSON = %d %q", resp.StatusCode, body)
	}
	if decisions, _ := st["decisions"].([]any); len(decisions) != 1 {
		t.Errorf("status decisions = %v; want the one download", st["decisions"])
	}
	if st["cache_bytes"].(float64) <= 0 {
		t.Errorf("status cache_bytes = %v; want the stored blob counted", st["cache_bytes"])
	}
	// The status page's cache figure is the blobs, as 'pipgate cache stats'
	// counts them; the database apart.
	if stats, err := tp.store.Stats(); err != nil || st["cache_blob_bytes"].(float64) != float64(stats.BlobBytes) || stats.BlobBytes <= 0 {
		t.Errorf("status cache_blob_bytes = %v; want Stats().BlobBytes %d (%v)", st["cache_blob_bytes"], stats.BlobBytes, err)
	}
	resp, body = tp.get("/-/status")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "demo") {
		t.Errorf("status HTML = %d", resp.StatusCode)
	}
}
