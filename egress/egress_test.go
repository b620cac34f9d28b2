package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/pypi/pypitest"
)

// egressTestCA is a CA generated once per test binary (key generation is
// cheap with ECDSA, but there is no need to repeat it).
var egressTestCA = sync.OnceValues(func() (egressCA, error) {
	certPEM, keyPEM, err := GenerateCA("pipgate test CA", 24*time.Hour)
	if err != nil {
		return egressCA{}, err
	}
	// LoadCA reads files: written to a folder removed at once.
	dir, err := os.MkdirTemp("", "pipgate-egress-ca-")
	if err != nil {
		return egressCA{}, err
	}
	defer os.RemoveAll(dir)
	c := egressCA{keyPEM: keyPEM}
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return egressCA{}, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return egressCA{}, err
	}
	if c.cert, err = LoadCA(certFile, keyFile); err != nil {
		return egressCA{}, err
	}
	c.pool = x509.NewCertPool()
	c.pool.AddCert(c.cert.Leaf)
	return c, nil
})

type egressCA struct {
	cert   tls.Certificate
	pool   *x509.CertPool
	keyPEM []byte
}

func egressLoadTestCA(t testing.TB) egressCA {
	t.Helper()
	c, err := egressTestCA()
	if err != nil {
		t.Fatalf("test CA: %v", err)
	}
	return c
}

// egressRefusals records OnRefuse calls.
type egressRefusals struct {
	mu   sync.Mutex
	list []Refusal
}

func (r *egressRefusals) add(x Refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, x)
}

func (r *egressRefusals) all() []Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// egressFixture is an egress handler on a loopback listener in front of a
// stand-in index handler.
type egressFixture struct {
	egress   *Proxy
	srv      *httptest.Server
	ca       egressCA
	refusals *egressRefusals
	reg      *prometheus.Registry
}

func egressStart(t testing.TB, inner http.Handler) *egressFixture {
	t.Helper()
	return egressStartLogging(t, inner, slog.New(slog.DiscardHandler))
}

func egressStartLogging(t testing.TB, inner http.Handler, logger *slog.Logger) *egressFixture {
	t.Helper()
	ca := egressLoadTestCA(t)
	f := &egressFixture{ca: ca, refusals: &egressRefusals{}, reg: prometheus.NewRegistry()}
	e, err := New(Options{
		Handler:    inner,
		CA:         ca.cert,
		Intercept:  []string{"pypi.org", "Files.PythonHosted.org"},
		Logger:     logger,
		OnRefuse:   f.refusals.add,
		Registerer: f.reg,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.egress = e
	f.srv = httptest.NewServer(e)
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a Go client that uses the egress listener as its proxy and
// trusts the test CA.
func (f *egressFixture) client(keepAlive bool) *http.Client {
	u, _ := url.Parse(f.srv.URL)
	tr := &http.Transport{
		Proxy:             http.ProxyURL(u),
		TLSClientConfig:   &tls.Config{RootCAs: f.ca.pool, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: !keepAlive,
		ForceAttemptHTTP2: false,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (f *egressFixture) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// egressEcho is a stand-in index handler that describes the request it got.
func egressEcho(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s %s tls=%v proxy-auth=%q",
		r.Method, r.Host, r.URL, r.RequestURI, r.TLS != nil, r.Header.Get("Proxy-Authorization"))
}

func egressGet(t testing.TB, c *http.Client, rawURL string) (int, string) {
	t.Helper()
	resp, err := c.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", rawURL, err)
	}
	return resp.StatusCode, string(b)
}

func TestEgressIntercepted(t *testing.T) {
	f := egressStart(t, http.HandlerFunc(egressEcho))
	c := f.client(true)
	tests := []struct {
		url, want string
	}{
		{"https://pypi.org/simple/requests/", `GET pypi.org https://pypi.org/simple/requests/ /simple/requests/ tls=true proxy-auth=""`},
		{"https://pypi.org/simple/a/?format=json", `GET pypi.org https://pypi.org/simple/a/?format=json /simple/a/?format=json tls=true proxy-auth=""`},
		{"https://PyPI.org:443/integrity/a/1.0/a-1.0.tar.gz/provenance", `GET pypi.org https://pypi.org/integrity/a/1.0/a-1.0.tar.gz/provenance /integrity/a/1.0/a-1.0.tar.gz/provenance tls=true proxy-auth=""`},
		{"https://files.pythonhosted.org/packages/ab/cd/a-1.0-py3-none-any.whl", `GET files.pythonhosted.org https://files.pythonhosted.org/packages/ab/cd/a-1.0-py3-none-any.whl /packages/ab/cd/a-1.0-py3-none-any.whl tls=true proxy-auth=""`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			code, body := egressGet(t, c, tt.url)
			if code != http.StatusOK {
				t.Fatalf("status %d; want 200 (%s)", code, body)
			}
			if body != tt.want {
				t.Errorf("got %q; want %q", body, tt.want)
			}
		})
	}
	if got := f.refusals.all(); len(got) != 0 {
		t.Errorf("refusals %v; want none", got)
	}
}

// egressConnect dials the egress listener and sends a CONNECT for target.
func egressConnect(t testing.TB, addr, target string, header string) (net.Conn, *http.Response) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, target, header)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("reading CONNECT response: %v", err)
	}
	return conn, resp
}

func TestEgressRefusesConnect(t *testing.T) {
	called := false
	f := egressStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
	tests := []struct {
		target string
		reason Reason
	}{
		{"example.org:443", ReasonNotIntercepted},
		{"pypi.org.evil.example:443", ReasonNotIntercepted},
		{"127.0.0.1:443", ReasonNotIntercepted},
		{"pypi.org.:443", ReasonNotIntercepted},
		{"pypi.org:80", ReasonPort},
		{"pypi.org:8443", ReasonPort},
		{"files.pythonhosted.org:0443", ReasonPort},
		{"pypi.org", ReasonBadTarget},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			before := len(f.refusals.all())
			_, resp := egressConnect(t, f.addr(), tt.target, "")
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d; want 403 (%s)", resp.StatusCode, body)
			}
			if !strings.Contains(string(body), string(tt.reason)) {
				t.Errorf("body %q; want it to name %q", body, tt.reason)
			}
			if want := "403 " + strings.TrimSpace(string(body)); resp.Status != want {
				t.Errorf("status line %q; want %q (the reason, which clients print)", resp.Status, want)
			}
			got := f.refusals.all()[before:]
			want := []Refusal{{Client: "127.0.0.1", Method: "CONNECT", Host: tt.target, Reason: tt.reason}}
			if !slices.Equal(got, want) {
				t.Errorf("OnRefuse got %+v; want %+v", got, want)
			}
		})
	}
	// A Go client sees the refusal as an error from its proxy.
	if resp, err := f.client(false).Get("https://example.org/simple/"); err == nil || !strings.Contains(err.Error(), "pipgate egress: example.org:443 refused: "+string(ReasonNotIntercepted)) {
		if err == nil {
			resp.Body.Close()
		}
		t.Errorf("GET through a refused CONNECT: err %v; want the proxy error to name the reason", err)
	}
	if called {
		t.Error("the inner handler was called for a refused CONNECT")
	}
	// Every refusal is counted on the registry the proxy was handed.
	want := fmt.Sprintf(`
# HELP pipgate_egress_refused_total Requests refused by the egress proxy (a host or port that is not intercepted).
# TYPE pipgate_egress_refused_total counter
pipgate_egress_refused_total %d
`, len(tests)+1)
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "pipgate_egress_refused_total"); err != nil {
		t.Error(err)
	}
}

func TestEgressRefusesPlainHTTP(t *testing.T) {
	called := false
	f := egressStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
	tests := []struct {
		name, url string
		viaProxy  bool
		host      string
		reason    Reason
	}{
		{"proxied http to intercepted host", "http://pypi.org/simple/", true, "pypi.org", ReasonPlainHTTP},
		{"proxied http to other host", "http://example.org/", true, "example.org", ReasonPlainHTTP},
		{"listener itself", f.srv.URL + "/healthz", false, f.addr(), ReasonNotProxy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &http.Client{Transport: &http.Transport{}}
			if tt.viaProxy {
				c = f.client(false)
			}
			before := len(f.refusals.all())
			code, body := egressGet(t, c, tt.url)
			if code != http.StatusForbidden {
				t.Fatalf("status %d; want 403 (%s)", code, body)
			}
			got := f.refusals.all()[before:]
			want := []Refusal{{Client: "127.0.0.1", Method: "GET", Host: tt.host, Reason: tt.reason}}
			if !slices.Equal(got, want) {
				t.Errorf("OnRefuse got %+v; want %+v", got, want)
			}
		})
	}
	if called {
		t.Error("the inner handler was called for a refused request")
	}
}

// egressTunnelRaw opens a decrypted tunnel to target and returns the TLS
// connection, for writing requests by hand.
func egressTunnelRaw(t testing.TB, f *egressFixture, target, serverName string) (*tls.Conn, error) {
	t.Helper()
	conn, resp := egressConnect(t, f.addr(), target, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: status %d; want 200", target, resp.StatusCode)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: serverName, RootCAs: f.ca.pool, MinVersion: tls.VersionTLS12})
	return tc, tc.Handshake()
}

func TestEgressInnerHost(t *testing.T) {
	f := egressStart(t, http.HandlerFunc(egressEcho))
	tests := []struct {
		name, request string
		code          int
		reason        Reason // expected OnRefuse reason, for 403
	}{
		{"same host", "GET /simple/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n", 200, ""},
		{"same host with port 443 and other case", "GET /simple/ HTTP/1.1\r\nHost: PyPI.org:443\r\n\r\n", 200, ""},
		{"other intercepted host", "GET /packages/x.whl HTTP/1.1\r\nHost: files.pythonhosted.org\r\n\r\n", 403, ReasonHostMismatch},
		{"foreign host", "GET / HTTP/1.1\r\nHost: example.org\r\n\r\n", 403, ReasonHostMismatch},
		{"same host other port", "GET / HTTP/1.1\r\nHost: pypi.org:8443\r\n\r\n", 403, ReasonHostMismatch},
		{"absolute form to foreign host", "GET https://example.org/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n", 403, ReasonHostMismatch},
		{"absolute form to same host", "GET https://pypi.org/simple/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := egressTunnelRaw(t, f, "pypi.org:443", "pypi.org")
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			before := len(f.refusals.all())
			if _, err := io.WriteString(tc, tt.request); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
			if err != nil {
				t.Fatalf("reading response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d; want %d (%s)", resp.StatusCode, tt.code, body)
			}
			got := f.refusals.all()[before:]
			if tt.reason == "" {
				if len(got) != 0 {
					t.Errorf("OnRefuse got %+v; want none", got)
				}
				if !strings.Contains(string(body), "GET pypi.org https://pypi.org/") {
					t.Errorf("body %q; want the handler to see pypi.org", body)
				}
				return
			}
			if len(got) != 1 || got[0].Reason != tt.reason {
				t.Errorf("OnRefuse got %+v; want one with reason %q", got, tt.reason)
			}
			if !resp.Close {
				t.Errorf("refusal inside a tunnel does not close it")
			}
		})
	}
}

func TestEgressTunnelWithoutTLS(t *testing.T) {
	f := egressStart(t, http.HandlerFunc(egressEcho))
	conn, resp := egressConnect(t, f.addr(), "pypi.org:443", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT status %d; want 200", resp.StatusCode)
	}
	io.WriteString(conn, "GET /simple/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d; want 403", resp.StatusCode)
	}
	if got := f.refusals.all(); len(got) != 1 || got[0].Reason != ReasonNotTLS {
		t.Errorf("OnRefuse got %+v; want one with reason %q", got, ReasonNotTLS)
	}
}

func TestEgressSNIMismatch(t *testing.T) {
	f := egressStart(t, http.HandlerFunc(egressEcho))
	if _, err := egressTunnelRaw(t, f, "pypi.org:443", "files.pythonhosted.org"); err == nil {
		t.Fatal("handshake naming another server succeeded; want it to fail")
	}
	if got := f.refusals.all(); len(got) != 1 || got[0].Reason != ReasonSNIMismatch {
		t.Errorf("OnRefuse got %+v; want one with reason %q", got, ReasonSNIMismatch)
	}
}

func TestEgressTLSVersion(t *testing.T) {
	f := egressStart(t, http.HandlerFunc(egressEcho))
	conn, resp := egressConnect(t, f.addr(), "pypi.org:443", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT status %d; want 200", resp.StatusCode)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: "pypi.org", RootCAs: f.ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}) //nolint:gosec // the point of the test
	if err := tc.Handshake(); err == nil {
		t.Error("TLS 1.1 handshake succeeded; want TLS 1.2 or later required")
	}
}

// egressPeerCert fetches url through the proxy on a new connection and
// returns the server certificate the client saw.
func egressPeerCert(t *testing.T, c *http.Client, rawURL string) *x509.Certificate {
	t.Helper()
	resp, err := c.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatalf("GET %s: no TLS state", rawURL)
	}
	if v := resp.TLS.Version; v < tls.VersionTLS12 {
		t.Errorf("TLS version %x; want 1.2 or later", v)
	}
	return resp.TLS.PeerCertificates[0]
}

func TestEgressCertificates(t *testing.T) {
	f := egressStart(t, http.HandlerFunc(egressEcho))
	c := f.client(false) // a new connection, hence a new handshake, per request
	first := egressPeerCert(t, c, "https://pypi.org/simple/")
	second := egressPeerCert(t, c, "https://pypi.org/simple/a/")
	other := egressPeerCert(t, c, "https://files.pythonhosted.org/packages/x")
	if !bytes.Equal(first.Raw, second.Raw) {
		t.Errorf("second handshake to pypi.org got serial %x; want the cached certificate %x", second.SerialNumber, first.SerialNumber)
	}
	if bytes.Equal(first.Raw, other.Raw) {
		t.Error("files.pythonhosted.org got the pypi.org certificate")
	}
	if got := f.egress.certs.len(); got != 2 {
		t.Errorf("cached certificates %d; want 2", got)
	}
	tests := []struct {
		cert *x509.Certificate
		host string
	}{{first, "pypi.org"}, {other, "files.pythonhosted.org"}}
	for _, tt := range tests {
		if _, ok := tt.cert.PublicKey.(*ecdsa.PublicKey); !ok {
			t.Errorf("%s: leaf key %T; want ECDSA", tt.host, tt.cert.PublicKey)
		}
		if got := tt.cert.DNSNames; !slices.Equal(got, []string{tt.host}) {
			t.Errorf("%s: DNS names %q; want %q", tt.host, got, []string{tt.host})
		}
		if tt.cert.NotAfter.After(f.ca.cert.Leaf.NotAfter) {
			t.Errorf("%s: leaf outlives the CA", tt.host)
		}
	}
}

func TestEgressResponses(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			http.Error(w, "no such project", http.StatusNotFound)
		case "/empty":
		case "/not-modified":
			w.Header().Set("ETag", `"x"`)
			w.WriteHeader(http.StatusNotModified)
		case "/sized":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		case "/sniff":
			io.WriteString(w, "<!DOCTYPE html><html></html>")
		case "/deny":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "denied by rule x\n")
		default:
			http.Error(w, "unexpected", http.StatusTeapot)
		}
	})
	f := egressStart(t, inner)
	c := f.client(true)
	tests := []struct {
		method, path string
		code         int
		body         string
		contentType  string
		length       int64
	}{
		{"GET", "/missing", 404, "no such project\n", "text/plain; charset=utf-8", -1},
		{"GET", "/empty", 200, "", "", 0},
		{"GET", "/not-modified", 304, "", "", 0},
		{"GET", "/sized", 200, "hello", "text/plain; charset=utf-8", 5},
		{"HEAD", "/sized", 200, "", "text/plain; charset=utf-8", 5},
		{"GET", "/sniff", 200, "<!DOCTYPE html><html></html>", "text/html; charset=utf-8", -1},
		{"GET", "/deny", 403, "denied by rule x\n", "text/plain", -1},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "https://pypi.org"+tt.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if resp.StatusCode != tt.code {
				t.Errorf("status %d; want %d", resp.StatusCode, tt.code)
			}
			if string(body) != tt.body {
				t.Errorf("body %q; want %q", body, tt.body)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type %q; want %q", got, tt.contentType)
			}
			if resp.ContentLength != tt.length {
				t.Errorf("Content-Length %d; want %d", resp.ContentLength, tt.length)
			}
		})
	}
	// Every request above went over one kept-alive tunnel.
	reused := 0
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if i.Reused {
			reused++
		}
	}}
	for range 3 {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "https://pypi.org/sized", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if reused != 3 {
		t.Errorf("reused connections %d; want 3", reused)
	}
}

// TestEgressStreams checks that the body is not buffered: the client reads
// the first chunk while the handler is still blocked before the second.
func TestEgressStreams(t *testing.T) {
	release := make(chan struct{})
	done := make(chan struct{})
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		io.WriteString(w, "first chunk\n")
		select {
		case <-release:
		case <-time.After(10 * time.Second):
			return
		}
		io.WriteString(w, "second chunk\n")
	})
	f := egressStart(t, inner)
	resp, err := f.client(true).Get("https://files.pythonhosted.org/packages/big.whl")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first chunk\n" {
		t.Fatalf("first line %q, %v; want %q while the handler is blocked", line, err, "first chunk\n")
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "second chunk\n" {
		t.Errorf("rest %q; want %q", rest, "second chunk\n")
	}
	<-done
}

func TestEgressHandlerAbort(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/before" {
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	})
	f := egressStart(t, inner)
	c := f.client(false)
	resp, err := c.Get("https://pypi.org/after")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Error("reading a body the handler aborted succeeded; want an error")
	}
	if code, _ := egressGet(t, c, "https://pypi.org/before"); code != http.StatusInternalServerError {
		t.Errorf("abort before the head: status %d; want 500", code)
	}
}

// TestEgressClientGone checks that the handler's writes fail and its
// context ends when the client hangs up mid-body.
func TestEgressClientGone(t *testing.T) {
	writeErr := make(chan error, 1)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				writeErr <- err
				return
			}
		}
	})
	f := egressStart(t, inner)
	tc, err := egressTunnelRaw(t, f, "pypi.org:443", "pypi.org")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(tc, "GET /endless HTTP/1.1\r\nHost: pypi.org\r\n\r\n")
	if _, err := io.ReadFull(tc, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	tc.Close()
	select {
	case err := <-writeErr:
		if err == nil {
			t.Error("write error nil; want one")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler kept writing after the client left")
	}
}

func TestEgressClose(t *testing.T) {
	f := egressStart(t, http.HandlerFunc(egressEcho))
	tc, err := egressTunnelRaw(t, f, "pypi.org:443", "pypi.org")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.egress.Close(); err != nil {
		t.Fatal(err)
	}
	_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read from a tunnel after Close: %v; want the connection closed", err)
	}
	f.egress.mu.Lock()
	open := len(f.egress.tunnels)
	f.egress.mu.Unlock()
	if open != 0 {
		t.Errorf("open tunnels after Close %d; want 0", open)
	}
	// Tunnels asked for after Close are not opened.
	conn, err := net.Dial("tcp", f.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect}); err == nil && resp.StatusCode == http.StatusOK {
		t.Error("CONNECT after Close got 200; want the connection refused")
	}
}

// TestEgressLogsNoKey drives every logging path (minting, refusals, a
// failed handshake) and checks that the CA key never reaches the log.
func TestEgressLogsNoKey(t *testing.T) {
	var logs pypitest.LogBuffer
	f := egressStartLogging(t, http.HandlerFunc(egressEcho), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	egressGet(t, f.client(false), "https://pypi.org/simple/")
	egressConnect(t, f.addr(), "example.org:443", "")
	if _, err := egressTunnelRaw(t, f, "pypi.org:443", "example.org"); err == nil {
		t.Fatal("handshake naming another server succeeded")
	}
	untrusted := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(egressMustParse(f.srv.URL))}}
	if _, err := untrusted.Get("https://pypi.org/simple/"); err == nil {
		t.Fatal("a client that does not trust the CA got through")
	}
	keyPEM := f.ca.keyPEM
	block := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")[1] // first base64 line of the key
	// The failed handshake is logged on the tunnel goroutine.
	logs.WaitFor(10*time.Second, func(s string) bool { return strings.Contains(s, "handshake") })
	out := logs.String()
	for _, want := range []string{"egress refused", "handshake"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, block) || strings.Contains(out, "PRIVATE KEY") {
		t.Errorf("log carries the CA key:\n%s", out)
	}
}

func egressMustParse(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestNewEgressOptions(t *testing.T) {
	ca := egressLoadTestCA(t)
	leaf, err := caMintLeaf(ca.cert, "pypi.org", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(egressEcho)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no handler", Options{CA: ca.cert, Intercept: []string{"pypi.org"}}, "Handler is required"},
		{"no CA", Options{Handler: h, Intercept: []string{"pypi.org"}}, "CA is required"},
		{"not a CA", Options{Handler: h, CA: *leaf, Intercept: []string{"pypi.org"}}, "not a CA"},
		{"no intercept", Options{Handler: h, CA: ca.cert}, "Intercept is required"},
		{"port in intercept", Options{Handler: h, CA: ca.cert, Intercept: []string{"pypi.org:443"}}, `Intercept[0]: "pypi.org:443" is not a host name`},
		{"wildcard in intercept", Options{Handler: h, CA: ca.cert, Intercept: []string{"pypi.org", "*.pythonhosted.org"}}, `Intercept[1]: "*.pythonhosted.org" is not a host name`},
		{"url in intercept", Options{Handler: h, CA: ca.cert, Intercept: []string{"https://pypi.org/"}}, "is not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
	noLeaf := ca.cert
	noLeaf.Leaf = nil
	if _, err := New(Options{Handler: h, CA: noLeaf, Intercept: []string{"pypi.org"}}); err != nil {
		t.Errorf("CA without Leaf: %v; want it parsed", err)
	}
}

func FuzzEgressInnerHost(f *testing.F) {
	for _, s := range []string{"pypi.org", "PyPI.org:443", "pypi.org:80", "[::1]:443", "::1", "", "pypi.org:", ":443", "a:b:c", "pypi.org:443:443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := innerHost(s)
		if !ok {
			return
		}
		if h == "" || h != strings.ToLower(h) || strings.ContainsAny(h, "[]") {
			t.Errorf("innerHost(%q) = %q; want lower case, no port", s, h)
		}
		if again, ok := innerHost(h); ok && again != h && net.ParseIP(h) == nil {
			t.Errorf("innerHost(%q) = %q, then %q; want idempotent", s, h, again)
		}
	})
}

func FuzzEgressConnectTarget(f *testing.F) {
	e := &Proxy{intercept: map[string]bool{"pypi.org": true, "files.pythonhosted.org": true}}
	for _, s := range []string{"pypi.org:443", "PYPI.ORG:443", "pypi.org:80", "pypi.org", "example.org:443", "[::1]:443", ":443", "pypi.org:443\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, reason := e.connectTarget(s)
		if reason != "" {
			if host != "" {
				t.Errorf("connectTarget(%q) = %q with reason %q; want no host", s, host, reason)
			}
			return
		}
		if !e.intercept[host] {
			t.Errorf("connectTarget(%q) accepted %q, not intercepted", s, host)
		}
		if !strings.HasSuffix(s, ":443") {
			t.Errorf("connectTarget(%q) accepted a port other than 443", s)
		}
	})
}

// BenchmarkEgressTLSHandshake measures a CONNECT plus a full TLS handshake
// with the cached per-host certificate (the first iteration mints it).
func BenchmarkEgressTLSHandshake(b *testing.B) {
	f := egressStart(b, http.HandlerFunc(egressEcho))
	cfg := &tls.Config{ServerName: "pypi.org", RootCAs: f.ca.pool, MinVersion: tls.VersionTLS12, ClientSessionCache: nil}
	handshake := func() {
		conn, err := net.Dial("tcp", f.addr())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("CONNECT: %v %v", resp, err)
		}
		tc := tls.Client(conn, cfg)
		if err := tc.Handshake(); err != nil {
			b.Fatal(err)
		}
		tc.Close()
	}
	handshake() // mint and cache
	b.ResetTimer()
	for b.Loop() {
		handshake()
	}
}

// BenchmarkEgressThroughput compares a 64 MiB body served by the stand-in
// handler through the tunnel with the same handler served directly over
// plain HTTP (the ratio the issue asks for) and, to separate the cost of TLS
// from that of the tunnel, directly over HTTPS.
func BenchmarkEgressThroughput(b *testing.B) {
	const size = 64 << 20
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 2048) // 32 KiB
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	f := egressStart(b, inner)
	direct := httptest.NewServer(inner)
	b.Cleanup(direct.Close)
	directTLS := httptest.NewTLSServer(inner)
	b.Cleanup(directTLS.Close)
	tunnel, plain, tlsClient := f.client(true), &http.Client{Transport: &http.Transport{}}, directTLS.Client()
	fetch := func(c *http.Client, u string) time.Duration {
		start := time.Now()
		resp, err := c.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("read %d bytes, %v; want %d", n, err, size)
		}
		return time.Since(start)
	}
	tunnelURL, plainURL, tlsURL := "https://files.pythonhosted.org/big.whl", direct.URL+"/big.whl", directTLS.URL+"/big.whl"
	// Connections, handshakes and the certificate are set up outside the timing.
	fetch(tunnel, tunnelURL)
	fetch(plain, plainURL)
	fetch(tlsClient, tlsURL)
	var tTunnel, tPlain, tTLS time.Duration
	b.SetBytes(3 * size)
	for b.Loop() {
		tTunnel += fetch(tunnel, tunnelURL)
		tPlain += fetch(plain, plainURL)
		tTLS += fetch(tlsClient, tlsURL)
	}
	mb := func(d time.Duration) float64 { return float64(b.N) * size / 1e6 / d.Seconds() }
	b.ReportMetric(mb(tTunnel), "tunnel-MB/s")
	b.ReportMetric(mb(tPlain), "direct-MB/s")
	b.ReportMetric(mb(tTLS), "direct-tls-MB/s")
	b.ReportMetric(mb(tTunnel)/mb(tPlain), "tunnel/direct")
	b.ReportMetric(mb(tTunnel)/mb(tTLS), "tunnel/direct-tls")
}

// TestEgressUntrustedClientLog: a client that does not trust the egress CA
// (real pip, whose OpenSSL alert Go reads as "bad record MAC", and Go's
// client) makes one clear warning per connection naming the fix, not TLS
// alert noise; another failed handshake is logged as such.
func TestEgressUntrustedClientLog(t *testing.T) {
	var logs pypitest.LogBuffer
	f := egressStartLogging(t, http.HandlerFunc(egressEcho), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	const rejected = `level=WARN msg="egress client rejected pipgate's certificate: install the egress CA in the client (pip --cert CA.pem or PIP_CERT; REQUESTS_CA_BUNDLE, when set, overrides both)" target=pypi.org:443 tls_error=`
	count := func(s string) int { return strings.Count(logs.String(), s) }

	untrusted := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(egressMustParse(f.srv.URL)), DisableKeepAlives: true}}
	if _, err := untrusted.Get("https://pypi.org/simple/"); err == nil {
		t.Fatal("a client that does not trust the CA got through")
	}
	if !logs.WaitFor(10*time.Second, func(s string) bool { return strings.Contains(s, rejected) }) {
		t.Fatalf("Go client: no rejection line:\n%s", logs.String())
	}
	if _, err := egressTunnelRaw(t, f, "pypi.org:443", "example.org"); err == nil {
		t.Fatal("handshake naming another server succeeded")
	}
	if !logs.WaitFor(10*time.Second, func(s string) bool {
		return strings.Contains(s, `msg="egress client TLS handshake failed" target=pypi.org:443`)
	}) {
		t.Fatalf("SNI mismatch: no handshake line:\n%s", logs.String())
	}

	pip := pypitest.NewPip(t)
	pip.Extra = []string{"HTTPS_PROXY=http://" + f.addr()}
	out, err := pip.Run(t.Context(), "", "download", "--no-deps", "-d", t.TempDir(), "--index-url", "https://pypi.org/simple/", "requests")
	if err == nil || !strings.Contains(out, "CERTIFICATE_VERIFY_FAILED") {
		t.Fatalf("pip without the CA: %v\n%s", err, out)
	}
	if !logs.WaitFor(10*time.Second, func(s string) bool { return strings.Count(s, rejected) >= 2 }) {
		t.Fatalf("pip: no rejection line:\n%s", logs.String())
	}
	if n := count(rejected + `"local error: tls: bad record MAC"`); n == 0 {
		t.Errorf("pip's rejection is not the bad-record-MAC one:\n%s", logs.String())
	}
	// One line per connection: nothing else about these handshakes.
	if n := count("msg=goproxy"); n != 0 {
		t.Errorf("%d raw goproxy lines besides the clear ones:\n%s", n, logs.String())
	}
}
