package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/egress"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// tunnelFixture is the egress proxy (package egress) on a loopback listener
// in front of a Server's TunnelHandler, as serve wires them.
type tunnelFixture struct {
	srv  *httptest.Server
	pool *x509.CertPool
}

func startTunnel(t testing.TB, s *Server) *tunnelFixture {
	t.Helper()
	certPEM, keyPEM, err := egress.GenerateCA("pipgate proxy test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	e, err := egress.New(egress.Options{
		Handler:   s.TunnelHandler(),
		CA:        ca,
		Intercept: []string{"pypi.org", "files.pythonhosted.org"},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &tunnelFixture{srv: httptest.NewServer(e), pool: x509.NewCertPool()}
	t.Cleanup(func() { f.srv.Close(); _ = e.Close() })
	if !f.pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("test CA not added to the pool")
	}
	return f
}

// client returns a Go client that uses the egress listener as its proxy and
// trusts the test CA.
func (f *tunnelFixture) client(keepAlive bool) *http.Client {
	u, _ := url.Parse(f.srv.URL)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy:             http.ProxyURL(u),
		TLSClientConfig:   &tls.Config{RootCAs: f.pool, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: !keepAlive,
	}}
}

// TestTunnelHidesOwnRoutes: inside the egress tunnel only the index answers.
// pipgate's own routes (metrics, status, health) are 404 on
// https://pypi.org/..., while the index listener still serves them.
func TestTunnelHidesOwnRoutes(t *testing.T) {
	up := pypitest.NewServer(t)
	addWheel(up, "demo", "1.0", nil)
	tp := newTestProxy(t, up, "", func(o *Options) {
		o.EagerReleases = 0
		o.MetricsHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "pipgate_build_info 1\n") })
	})
	c := startTunnel(t, tp.srv).client(true)
	for _, p := range []string{"/metrics", "/-/status", "/healthz", "/readyz"} {
		for _, host := range []string{"https://pypi.org", "https://files.pythonhosted.org"} {
			resp, err := c.Get(host + p)
			if err != nil {
				t.Fatalf("GET %s%s: %v", host, p, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "pipgate_build_info") {
				t.Errorf("GET %s%s through the tunnel = %d %q; want 404", host, p, resp.StatusCode, body)
			}
		}
		if resp, _ := tp.get(p); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s on the index listener = %d; want 200", p, resp.StatusCode)
		}
	}
	resp, err := c.Get("https://pypi.org/simple/demo/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the index through the tunnel = %d; want 200", resp.StatusCode)
	}
	// A distribution URL pipgate did not write is served in the tunnel
	// only: on the index listener it is no route.
	if resp, _ := tp.get("/packages/ab/cd/" + pypitest.WheelFilename("demo", "1.0")); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a foreign file URL on the index listener = %d; want 404", resp.StatusCode)
	}
}

// TestEgressServesIndexAndForeignFileURLs runs the real index handler behind
// the egress MITM: pages on https://pypi.org/simple/ link files on the same
// intercepted origin, and a file URL pipgate never wrote (as on
// files.pythonhosted.org, with no page seen first) is still found through
// the index and verified before it is served.
func TestEgressServesIndexAndForeignFileURLs(t *testing.T) {
	up := pypitest.NewServer(t)
	prov := []byte(`{"version":1,"attestation_bundles":[]}`)
	good := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = prov })
	evil := addWheel(up, "demo", "2.0", func(d *pypitest.Dist) { d.Provenance = prov })
	tp := newTestProxy(t, up, demoTrustsGoodRepo, func(o *Options) { o.EagerReleases = 0 })
	tp.verifier.set(good.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}})
	tp.verifier.set(evil.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork", Workflow: "release.yml"}})
	f := startTunnel(t, tp.srv)
	c := f.client(true)

	get := func(url string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	// A file on files.pythonhosted.org before any page: verified and served.
	resp, body := get("https://files.pythonhosted.org/packages/ab/cd/ef/" + good.Filename)
	if resp.StatusCode != 200 || resp.Header.Get(headerVerdict) != "verified" || sha(body) != sha(good.Content) {
		t.Fatalf("foreign file URL = %d %s; want 200 verified with the wheel", resp.StatusCode, resp.Header.Get(headerVerdict))
	}
	resp, body = get("https://files.pythonhosted.org/packages/12/34/56/" + evil.Filename)
	if resp.StatusCode != 403 || resp.Header.Get(headerVerdict) != string(pypi.VerdictUntrustedPublisher) {
		t.Errorf("foreign URL of an untrusted file = %d %s %q; want 403", resp.StatusCode, resp.Header.Get(headerVerdict), body)
	}
	if !strings.HasPrefix(resp.Status, "403 pipgate: demo: ") || !strings.Contains(resp.Status, "evil/fork") {
		t.Errorf("status line through the tunnel = %q; want the reason in it", resp.Status)
	}
	if resp, _ := get("https://files.pythonhosted.org/packages/not-a-dist.txt"); resp.StatusCode != 404 {
		t.Errorf("a non-distribution path = %d; want 404", resp.StatusCode)
	}

	// The page through the tunnel: file URLs resolve on the intercepted
	// origin, provenance is absolute https on it.
	resp, body = get("https://pypi.org/simple/demo/", "Accept", pipAccept)
	if resp.StatusCode != 200 {
		t.Fatalf("page through the tunnel = %d", resp.StatusCode)
	}
	page := parseJSONPage(t, body, "https://pypi.org/simple/demo/")
	for _, pf := range page.Files {
		if !strings.HasPrefix(pf.URL, "https://pypi.org/files/demo/") {
			t.Errorf("file URL %q is not on the intercepted origin", pf.URL)
		}
		if !strings.HasPrefix(pf.Provenance, "https://pypi.org/integrity/demo/") {
			t.Errorf("provenance URL %q is not https on the intercepted origin", pf.Provenance)
		}
	}
	resp, body = get(page.Files[0].URL)
	if resp.StatusCode != 200 || sha(body) != page.Files[0].SHA256() {
		t.Errorf("file through the tunnel = %d", resp.StatusCode)
	}
}

// BenchmarkCachedFileEgressVsIndex serves one cached 64 MiB file through
// pipgate's own handler in index mode (plain HTTP on loopback) and through
// the egress MITM tunnel (TLS on loopback): the ratio is the cost of egress.
func BenchmarkCachedFileEgressVsIndex(b *testing.B) {
	const size = 64 << 20
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i * 7)
	}
	up := pypitest.NewServer(b)
	fn := pypitest.WheelFilename("huge", "1.0")
	up.AddDist("huge", pypitest.Dist{Filename: fn, Content: content})
	tp := newTestProxy(b, up, "")
	if resp, body := tp.get("/files/huge/" + fn); resp.StatusCode != 200 || len(body) != size {
		b.Fatalf("warm-up = %d", resp.StatusCode)
	}
	f := startTunnel(b, tp.srv)
	fetch := func(b *testing.B, c *http.Client, url string) {
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || n != size || resp.StatusCode != 200 {
				b.Fatalf("status %d, %d bytes, %v", resp.StatusCode, n, err)
			}
		}
	}
	b.Run("index-mode", func(b *testing.B) { fetch(b, http.DefaultClient, tp.http.URL+"/files/huge/"+fn) })
	b.Run("egress-tunnel", func(b *testing.B) { fetch(b, f.client(true), "https://pypi.org/files/huge/"+fn) })
}
