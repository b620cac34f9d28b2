package proxy

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pipgate/pipgate/audit"
	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

const (
	privateUser     = "ci-bot"
	privatePassword = "Pr1vate-Index-Passw0rd"
)

// privateSetup is pipgate in front of a private index (basic auth) owning
// internal-lib and acme-*, and a public index that carries a higher
// internal-lib: a dependency-confusion attempt.
type privateSetup struct {
	t               *testing.T
	private, public *pypitest.Server
	srv             *Server
	http            *httptest.Server
	store           *cache.Store
	dir             string
	logs, audit     *pypitest.LogBuffer
	auditLog        *audit.Log      // written on its tick: Flush before reading audit
	seen            strings.Builder // every response, headers and body
	privWhl         []byte
}

// setupOptions vary newPrivateSetup: the upstreams' index TTLs and the
// server's clock.
type setupOptions struct {
	privateTTL, publicTTL time.Duration
	now                   func() time.Time
}

func newPrivateSetup(t *testing.T, password string, opts ...setupOptions) *privateSetup {
	t.Helper()
	var o setupOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ss := provenancetest.New(t)
	x := &privateSetup{t: t, private: pypitest.NewServer(t), public: pypitest.NewServer(t), logs: &pypitest.LogBuffer{}, audit: &pypitest.LogBuffer{}}
	x.private.RequireBasicAuth(privateUser, privatePassword)

	// Private: internal-lib 1.0 without provenance (no Integrity API), and
	// acme-tools signed by a (private) Sigstore.
	x.privWhl = pypitest.MakeWheel("internal-lib", "1.0", pypitest.WheelOptions{})
	x.private.AddDist("internal-lib", pypitest.Dist{Filename: pypitest.WheelFilename("internal-lib", "1.0"), Content: x.privWhl})
	acme := pypitest.MakeWheel("acme-tools", "2.0", pypitest.WheelOptions{})
	acmeFn := pypitest.WheelFilename("acme-tools", "2.0")
	x.private.AddDist("acme-tools", pypitest.Dist{Filename: acmeFn, Content: acme,
		Provenance: ss.ProvenanceFor(acmeFn, acme, provenancetest.GitHub("acme/tools", "release.yml"))})
	// Public: the confusion attempt, acme-missing (owned by private, which
	// lacks it), and a verified public project.
	evil := pypitest.MakeWheel("internal-lib", "9.9", pypitest.WheelOptions{})
	x.public.AddDist("internal-lib", pypitest.Dist{Filename: pypitest.WheelFilename("internal-lib", "9.9"), Content: evil})
	x.public.AddDist("acme-missing", pypitest.Dist{Filename: pypitest.WheelFilename("acme-missing", "1.0"),
		Content: pypitest.MakeWheel("acme-missing", "1.0", pypitest.WheelOptions{})})
	req := pypitest.MakeWheel("requests", "2.0", pypitest.WheelOptions{})
	reqFn := pypitest.WheelFilename("requests", "2.0")
	x.public.AddDist("requests", pypitest.Dist{Filename: reqFn, Content: req,
		Provenance: ss.ProvenanceFor(reqFn, req, provenancetest.GitHub("psf/requests", "release.yml"))})

	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewJSONHandler(x.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	priv, err := upstream.New(upstream.Options{Name: "internal", URL: x.private.URL(), Username: privateUser, Password: password,
		Registerer: reg, Logger: logger, IndexTTL: o.privateTTL})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := upstream.New(upstream.Options{Name: "pypi", URL: x.public.URL(), Registerer: reg, Logger: logger,
		IndexTTL: o.publicTTL})
	if err != nil {
		t.Fatal(err)
	}
	router, err := upstream.NewRouter(upstream.RouterOptions{Routes: []upstream.Route{
		{Client: priv, Projects: []string{"internal-lib", "acme-*"}},
		{Client: pub},
	}})
	if err != nil {
		t.Fatal(err)
	}
	x.dir = t.TempDir()
	x.store, err = cache.Open(cache.Options{Dir: x.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.store.Close() })
	x.auditLog, err = audit.New(audit.Options{Path: "-", Stdout: x.audit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.auditLog.Close() })
	pol := &staticPolicy{}
	pol.p.Store(mustPolicy(t, ""))
	x.srv, err = New(Options{
		Options: gate.Options{Upstream: router, Store: x.store, Verifier: realVerifier{ss.Verifier()}, Policy: pol,
			Logger: logger, Registerer: reg, EagerReleases: 1, EagerBudget: 5 * time.Second, Now: o.now},
		Audit: x.auditLog, MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.srv.Close)
	x.http = httptest.NewServer(x.srv)
	t.Cleanup(x.http.Close)
	return x
}

// get fetches path and records the whole response for the leak check.
func (x *privateSetup) get(path string, hdr ...string) (*http.Response, []byte) {
	x.t.Helper()
	req, err := http.NewRequest(http.MethodGet, x.http.URL+path, nil)
	if err != nil {
		x.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		x.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		x.t.Fatalf("reading %s: %v", path, err)
	}
	_ = resp.Header.Write(&x.seen)
	x.seen.Write(body)
	return resp, body
}

// projectFiles returns the filenames of a JSON project page.
func projectFiles(t *testing.T, body []byte) []string {
	t.Helper()
	var page struct {
		Files []struct {
			Filename string `json:"filename"`
			URL      string `json:"url"`
		} `json:"files"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("project page: %v\n%s", err, body)
	}
	var out []string
	for _, f := range page.Files {
		out = append(out, f.Filename)
	}
	return out
}

// assertNoSecret fails when the password, or the Authorization value made
// from it, appears in anything pipgate served, logged, audited or stored.
func (x *privateSetup) assertNoSecret() {
	x.t.Helper()
	x.srv.Close() // background fills and eager verification are done
	needles := []string{privatePassword, base64.StdEncoding.EncodeToString([]byte(privateUser + ":" + privatePassword))}
	check := func(where, text string) {
		for _, n := range needles {
			if strings.Contains(text, n) {
				x.t.Errorf("%s contains the upstream credentials", where)
			}
		}
	}
	check("the responses (pages, files, /-/status, /metrics, /readyz)", x.seen.String())
	check("the log", x.logs.String())
	if err := x.auditLog.Flush(); err != nil {
		x.t.Fatal(err)
	}
	check("the audit log", x.audit.String())
	files := 0
	err := filepath.WalkDir(x.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		check("data file "+p, string(data))
		return nil
	})
	if err != nil {
		x.t.Fatal(err)
	}
	if files == 0 {
		x.t.Error("walked no file in the data directory; want at least the database")
	}
}

func TestPrivateUpstreamOwnsItsNames(t *testing.T) {
	x := newPrivateSetup(t, privatePassword)
	wantFn := pypitest.WheelFilename("internal-lib", "1.0")

	// The confusion attempt: only the private 1.0 is listed.
	resp, body := x.get("/simple/internal-lib/", "Accept", pipAccept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/simple/internal-lib/: %d %s", resp.StatusCode, body)
	}
	if got := projectFiles(t, body); len(got) != 1 || got[0] != wantFn {
		t.Fatalf("internal-lib files = %q; want only %s", got, wantFn)
	}
	resp, body = x.get("/files/internal-lib/" + wantFn)
	if resp.StatusCode != http.StatusOK || string(body) != string(x.privWhl) {
		t.Fatalf("private file: %d, %d bytes; want 200 and the private wheel", resp.StatusCode, len(body))
	}
	// A private index without an Integrity API: unattested, policy decides.
	if v := resp.Header.Get(headerVerdict); v != string(pypi.VerdictUnattested) {
		t.Errorf("private file verdict %q; want unattested", v)
	}
	// An owned name the owner lacks is a 404, never looked up in public.
	resp, _ = x.get("/simple/acme-missing/", "Accept", pipAccept)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/simple/acme-missing/: %d; want 404", resp.StatusCode)
	}
	// Private provenance (a private Sigstore) is verified like PyPI's.
	acmeFn := pypitest.WheelFilename("acme-tools", "2.0")
	x.get("/simple/acme-tools/", "Accept", pipAccept)
	resp, _ = x.get("/files/acme-tools/" + acmeFn)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(headerVerdict) != string(pypi.VerdictVerified) {
		t.Errorf("acme-tools: %d verdict %q; want 200 verified", resp.StatusCode, resp.Header.Get(headerVerdict))
	}
	// Public files still come from the default upstream and still verify.
	reqFn := pypitest.WheelFilename("requests", "2.0")
	resp, body = x.get("/simple/requests/", "Accept", pipAccept)
	if got := projectFiles(t, body); resp.StatusCode != http.StatusOK || len(got) != 1 || got[0] != reqFn {
		t.Fatalf("/simple/requests/: %d %q", resp.StatusCode, got)
	}
	resp, _ = x.get("/files/requests/" + reqFn)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(headerVerdict) != string(pypi.VerdictVerified) {
		t.Errorf("requests: %d verdict %q; want 200 verified", resp.StatusCode, resp.Header.Get(headerVerdict))
	}
	// /simple/ is the union, each name from its owner.
	resp, body = x.get("/simple/", "Accept", pipAccept)
	var list struct {
		Projects []struct{ Name string } `json:"projects"`
	}
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/simple/: %d %v", resp.StatusCode, err)
	}
	var names []string
	for _, p := range list.Projects {
		names = append(names, pypi.NormalizeName(p.Name))
	}
	if got := strings.Join(names, ","); got != "acme-tools,internal-lib,requests" {
		t.Errorf("/simple/ lists %q; want acme-tools,internal-lib,requests", got)
	}

	// The public index never saw a request for an owned name.
	for _, p := range []string{"/simple/internal-lib", "/simple/acme-", "/files/", "/integrity/internal-lib", "/integrity/acme-"} {
		if p == "/files/" {
			if n := x.public.Hits(p) - 1; n != 0 { // requests' wheel is the one public file
				t.Errorf("the public index served %d files besides requests'", n)
			}
			continue
		}
		if n := x.public.Hits(p); n != 0 {
			t.Errorf("the public index saw %d requests under %s; want 0", n, p)
		}
	}
	// Credentials went to the private index only.
	if auth := x.public.AuthorizationHeaders(); len(auth) != 1 || auth[""] == 0 {
		t.Errorf("the public index got Authorization headers %q; want none", keys(auth))
	}
	if auth := x.private.AuthorizationHeaders(); auth[""] != 0 {
		t.Errorf("the private index got %d requests without credentials; want 0", auth[""])
	}

	// Metrics, the status page and the audit log say who served what.
	_, metrics := x.get("/metrics")
	for _, want := range []string{`upstream="internal"`, `upstream="pypi"`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_, status := x.get("/-/status", "Accept", "application/json")
	var snap struct {
		Upstreams []upstream.Info `json:"upstreams"`
		Decisions []struct {
			Project, Upstream string
		} `json:"decisions"`
	}
	if err := json.Unmarshal(status, &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Upstreams) != 2 || snap.Upstreams[0].Name != "internal" || !snap.Upstreams[0].Auth || !snap.Upstreams[1].Default {
		t.Errorf("status upstreams = %+v", snap.Upstreams)
	}
	for _, d := range snap.Decisions {
		want := "pypi"
		if d.Project != "requests" {
			want = "internal"
		}
		if d.Upstream != want {
			t.Errorf("status decision for %s: upstream %q; want %q", d.Project, d.Upstream, want)
		}
	}
	_, html := x.get("/-/status")
	if !strings.Contains(string(html), `id="upstreams"`) || !strings.Contains(string(html), "internal") {
		t.Error("the status page does not list the upstreams")
	}
	if err := x.auditLog.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(x.audit.String(), `"upstream":"internal"`) {
		t.Error("the audit log does not name the internal upstream")
	}
	x.get("/readyz")
	x.assertNoSecret()
	if _, err := os.Stat(filepath.Join(x.dir, "blobs")); err != nil {
		t.Errorf("no blobs in the data directory (%v): the leak check did not cover them", err)
	}
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestPrivateUpstreamAuthFailure(t *testing.T) {
	const wrong = "Wr0ng-Passw0rd-guess"
	x := newPrivateSetup(t, wrong)
	resp, body := x.get("/simple/internal-lib/", "Accept", pipAccept)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "upstream internal refused pipgate's credentials (401)") {
		t.Errorf("/simple/internal-lib/ with a wrong password: %d %q; want 502 naming the upstream and the auth failure", resp.StatusCode, body)
	}
	if n := x.public.Hits(""); n != 0 {
		t.Errorf("the public index saw %d requests; want 0 (internal-lib is owned)", n)
	}
	resp, body = x.get("/readyz")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "upstream internal: authentication failed: 401 Unauthorized") {
		t.Errorf("/readyz: %d %q; want the auth failure in the detail", resp.StatusCode, body)
	}
	if !strings.Contains(x.logs.String(), `"msg":"upstream authentication failed","upstream":"internal"`) {
		t.Errorf("the log does not report the auth failure:\n%s", x.logs.String())
	}
	if strings.Contains(x.logs.String()+x.seen.String(), wrong) {
		t.Error("the wrong password appears in a response or the log")
	}
	x.assertNoSecret()
}

// TestUpstreamsDoNotShareCachedPages: a page cached from one upstream is
// never served for a project another upstream owns (the ownership moved:
// an old cache, a new config).
func TestUpstreamsDoNotShareCachedPages(t *testing.T) {
	x := newPrivateSetup(t, privatePassword)
	// What a config with the public index alone cached for internal-lib.
	evil := &pypi.ProjectPage{Name: "internal-lib", Files: []pypi.File{{
		Filename: pypitest.WheelFilename("internal-lib", "9.9"),
		URL:      x.public.FileURL("internal-lib", pypitest.WheelFilename("internal-lib", "9.9")),
		Hashes:   pypi.MakeHashes(map[string]string{"sha256": strings.Repeat("ab", 32)}),
	}}}
	if err := x.store.PutPage("pypi", "internal-lib", evil, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, body := x.get("/simple/internal-lib/", "Accept", pipAccept)
	if got := projectFiles(t, body); resp.StatusCode != http.StatusOK || len(got) != 1 || got[0] != pypitest.WheelFilename("internal-lib", "1.0") {
		t.Errorf("internal-lib files = %q (%d); want the private 1.0 only", got, resp.StatusCode)
	}
	if _, _, err := x.store.Page("internal", "internal-lib"); err != nil {
		t.Errorf("the private page is not cached under its upstream: %v", err)
	}

}

// TestLegacyUpstreamName: records the cache migrated from before upstreams
// had names are filed under the name the single "upstream:" gets.
func TestLegacyUpstreamName(t *testing.T) {
	if cache.LegacyUpstream != upstream.DefaultName {
		t.Errorf("cache.LegacyUpstream = %q; upstream.DefaultName = %q; want them equal", cache.LegacyUpstream, upstream.DefaultName)
	}
}

// TestEgressKeepsOwnership: through the egress tunnel (pypi.org and
// files.pythonhosted.org intercepted) the same router answers, so an owned
// name comes from its owner there too, and a public file URL of an owned
// name, sent straight to files.pythonhosted.org, is not served.
func TestEgressKeepsOwnership(t *testing.T) {
	x := newPrivateSetup(t, privatePassword)
	c := startTunnel(t, x.srv).client(true)
	get := func(u string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept", pipAccept)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	resp, body := get("https://pypi.org/simple/internal-lib/")
	if got := projectFiles(t, body); resp.StatusCode != http.StatusOK || len(got) != 1 || got[0] != pypitest.WheelFilename("internal-lib", "1.0") {
		t.Errorf("internal-lib through the tunnel: %d %q; want the private 1.0 only", resp.StatusCode, got)
	}
	evil := pypitest.WheelFilename("internal-lib", "9.9")
	if resp, _ := get("https://files.pythonhosted.org/packages/ab/cd/ef/" + evil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the public internal-lib 9.9 by its file URL through the tunnel: %d; want 404", resp.StatusCode)
	}
	resp, _ = get("https://files.pythonhosted.org/packages/ab/cd/ef/" + pypitest.WheelFilename("requests", "2.0"))
	if resp.StatusCode != http.StatusOK || resp.Header.Get(headerVerdict) != string(pypi.VerdictVerified) {
		t.Errorf("a public file through the tunnel: %d %q; want 200 verified", resp.StatusCode, resp.Header.Get(headerVerdict))
	}
	if n := x.public.Hits("/simple/internal-lib") + x.public.Hits("/files/") - 1; n != 0 {
		t.Errorf("the public index saw %d requests about internal-lib; want 0", n)
	}
}

// TestIndexTTLPerUpstream: each upstream's pages stay fresh for its own
// index_ttl.
func TestIndexTTLPerUpstream(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	x := newPrivateSetup(t, privatePassword, setupOptions{privateTTL: time.Hour, publicTTL: time.Minute, now: clock})
	fetch := func() {
		t.Helper()
		for _, p := range []string{"internal-lib", "requests"} {
			if resp, body := x.get("/simple/"+p+"/", "Accept", pipAccept); resp.StatusCode != http.StatusOK {
				t.Fatalf("/simple/%s/: %d %s", p, resp.StatusCode, body)
			}
		}
	}
	fetch()
	mu.Lock()
	now = now.Add(10 * time.Minute) // past the public TTL, within the private one
	mu.Unlock()
	fetch()
	if n := x.private.Hits("/simple/internal-lib/"); n != 1 {
		t.Errorf("the private page was fetched %d times; want 1 (fresh for its 1h index_ttl)", n)
	}
	if n := x.public.Hits("/simple/requests/"); n != 2 {
		t.Errorf("the public page was fetched %d times; want 2 (stale after its 1m index_ttl)", n)
	}
}

// /-/status/<owned-but-missing> says which upstream owns the name and that
// it lacks it, not a bare "not found"; an unowned missing name names the
// default upstream.
func TestStatusOfMissingOwnedProject(t *testing.T) {
	x := newPrivateSetup(t, privatePassword)
	resp, body := x.get("/-/status/acme-missing")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `pipgate: project "acme-missing" is owned by upstream internal (`) ||
		!strings.Contains(string(body), "which does not have it (its projects patterns match the name; pipgate asks no other index for it)") {
		t.Errorf("/-/status/acme-missing: %d %q; want 404 naming the owner that lacks it", resp.StatusCode, body)
	}
	if n := x.public.Hits("/simple/acme-missing/"); n != 0 {
		t.Errorf("the public index was asked for acme-missing %d times; want 0", n)
	}
	resp, body = x.get("/-/status/nowhere-at-all")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `pipgate: project "nowhere-at-all" is owned by upstream pypi (`) ||
		!strings.Contains(string(body), "the default upstream") {
		t.Errorf("/-/status/nowhere-at-all: %d %q; want 404 naming the default upstream", resp.StatusCode, body)
	}
	x.assertNoSecret()
}
