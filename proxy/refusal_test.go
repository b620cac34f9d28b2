package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/internal/statusline"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// rawConn is one client connection that sends HTTP/1.1 requests by hand.
type rawConn struct {
	t    *testing.T
	addr string
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, addr: addr, conn: conn, br: bufio.NewReader(conn)}
}

// do sends one request and reads the whole response.
func (c *rawConn) do(method, path string) (*http.Response, string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, method+" "+path+" HTTP/1.1\r\nHost: "+c.addr+"\r\nUser-Agent: test\r\n\r\n"); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s body: %v", method, path, err)
	}
	return resp, string(body)
}

// closed reports whether the server closed the connection (reading ends
// with EOF, not more bytes).
func (c *rawConn) closed() bool {
	_, err := c.br.ReadByte()
	return err == io.EOF
}

// TestRefusalReasonInStatusLine: a blocked download's status line carries
// the policy's reason (pip prints that line), with the usual headers, an
// exact Content-Length and a closed connection; other errors keep the
// standard phrase and the connection.
func TestRefusalReasonInStatusLine(t *testing.T) {
	up := pypitest.NewServer(t)
	evil := addWheel(up, "demo", "2.0", func(d *pypitest.Dist) { d.Provenance = []byte(`{"version":1,"attestation_bundles":[]}`) })
	tp := newTestProxy(t, up, demoTrustsGoodRepo, func(o *Options) { o.EagerReleases = 0 })
	tp.verifier.set(evil.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork\r\nX-Injected: 1", Workflow: "release.yml"}})
	addr := tp.http.Listener.Addr().String()

	// Another error keeps the standard phrase and the connection, which
	// then carries the refusal.
	c := dialRaw(t, addr)
	resp, _ := c.do(http.MethodGet, "/files/demo/nope-1.0.tar.gz")
	if resp.Status != "404 Not Found" || resp.Close {
		t.Errorf("404 = %q (close %v); want the standard phrase on a kept connection", resp.Status, resp.Close)
	}
	resp, body := c.do(http.MethodGet, "/files/demo/"+evil.Filename)
	reason := strings.TrimPrefix(resp.Status, "403 ")
	if resp.StatusCode != 403 || !strings.HasPrefix(reason, "pipgate: demo: signed by github:evil/fork") ||
		!strings.Contains(reason, `policy rule "demo" trusts github:good/repo`) {
		t.Errorf("status line = %q; want 403 and the policy's reason", resp.Status)
	}
	if strings.ContainsAny(reason, "\r\n") || resp.Header.Get("X-Injected") != "" {
		t.Errorf("the reason broke out of the status line: %q %v", reason, resp.Header)
	}
	if statusline.Reason(403, body) != reason || !strings.Contains(resp.Header.Get(headerReason), "evil/fork") {
		t.Errorf("body %q, header %q; want the reason of the status line %q", body, resp.Header.Get(headerReason), reason)
	}
	if resp.ContentLength != int64(len(body)) || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
		resp.Header.Get(headerVerdict) != string(pypi.VerdictUntrustedPublisher) || resp.Header.Get(headerRequestID) == "" ||
		resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Date") == "" {
		t.Errorf("headers %v, length %d; want the refusal's headers and an exact length", resp.Header, resp.ContentLength)
	}
	if !resp.Close || !c.closed() {
		t.Errorf("connection kept open after a hijacked refusal (Connection %q)", resp.Header.Get("Connection"))
	}

	c = dialRaw(t, addr)
	resp, body = c.do(http.MethodHead, "/files/demo/"+evil.Filename)
	if resp.StatusCode != 403 || !strings.Contains(resp.Status, "evil/fork") || body != "" || resp.ContentLength <= 0 || !c.closed() {
		t.Errorf("HEAD = %q, body %q, length %d; want the reason, no body, the GET's length, a close", resp.Status, body, resp.ContentLength)
	}

	// Go's own client reads it as usual.
	r2, b2 := tp.get("/files/demo/" + evil.Filename)
	if r2.StatusCode != 403 || !strings.Contains(r2.Status, "evil/fork") || !strings.Contains(string(b2), "evil/fork") {
		t.Errorf("http.Client: %q %q", r2.Status, b2)
	}
	// The access log and the metrics count the refusals as 403s. The line
	// is written once the handler returns, after the client has its answer:
	// wait for it (nothing else says when).
	tp.logs.WaitFor(10*time.Second, func(s string) bool { return strings.Count(s, `"status":403`) >= 3 })
	if n := strings.Count(tp.logs.String(), `"status":403`); n != 3 {
		t.Errorf("access log has %d 403 lines; want 3:\n%s", n, tp.logs.String())
	}
}

// TestIndexYanksWhatPipMayPick: when the policy yanks the newest releases,
// eager verification walks down to the release unpinned pip would fall back
// to, so every blocked release on the way is listed as yanked with its
// reason, and no further.
func TestIndexYanksWhatPipMayPick(t *testing.T) {
	up := pypitest.NewServer(t)
	prov := []byte(`{"version":1,"attestation_bundles":[]}`)
	goodID := &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}
	evilID := &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork", Workflow: "release.yml"}
	var files []pypitest.Dist
	for _, v := range []string{"1.0", "2.0", "3.0", "4.0"} {
		files = append(files, addWheel(up, "demo", v, func(d *pypitest.Dist) { d.Provenance = prov }))
	}
	tp := newTestProxy(t, up, demoTrustsGoodRepo, func(o *Options) { o.EagerReleases = 1 })
	tp.verifier.set(files[0].Filename, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: goodID})
	for _, f := range files[1:] {
		tp.verifier.set(f.Filename, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: evilID})
	}
	yanks := func(project string) map[string]string {
		t.Helper()
		_, body := tp.get("/simple/"+project+"/", "Accept", pipAccept)
		out := map[string]string{}
		for _, f := range parseJSONPage(t, body, tp.http.URL+"/simple/"+project+"/").Files {
			out[f.Filename] = "listed"
			if f.Yanked {
				out[f.Filename] = f.YankedReason
			}
		}
		return out
	}
	got := yanks("demo")
	if got[files[0].Filename] != "listed" {
		t.Errorf("%s (trusted) = %q; want listed", files[0].Filename, got[files[0].Filename])
	}
	for _, f := range files[1:] {
		if !strings.Contains(got[f.Filename], "evil/fork") {
			t.Errorf("%s = %q; want yanked with the reason", f.Filename, got[f.Filename])
		}
	}
	if n := tp.verifier.calls.Load(); n != 4 {
		t.Errorf("%d verifications; want 4 (down to the trusted release, no further)", n)
	}

}

// TestRefusalReasonOverTLS: over HTTPS the refusal's status line carries the
// reason on HTTP/1.1 (what pip speaks); a client that negotiates HTTP/2 gets
// the standard status and the reason in the body and header.
func TestRefusalReasonOverTLS(t *testing.T) {
	up := pypitest.NewServer(t)
	evil := addWheel(up, "demo", "2.0", func(d *pypitest.Dist) { d.Provenance = []byte(`{"version":1,"attestation_bundles":[]}`) })
	tp := newTestProxy(t, up, demoTrustsGoodRepo, func(o *Options) { o.EagerReleases = 0 })
	tp.verifier.set(evil.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork", Workflow: "release.yml"}})
	for _, h2 := range []bool{false, true} {
		srv := httptest.NewUnstartedServer(tp.srv)
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		c := srv.Client()
		resp, err := c.Get(srv.URL + "/files/demo/" + evil.Filename)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), "evil/fork") || !strings.Contains(resp.Header.Get(headerReason), "evil/fork") {
			t.Errorf("%s: %q, body %q; want 403 with the reason in body and header", resp.Proto, resp.Status, body)
		}
		if h2 != (resp.ProtoMajor == 2) {
			t.Fatalf("negotiated %s; want HTTP/2 %v", resp.Proto, h2)
		}
		if reason := strings.TrimPrefix(resp.Status, "403 "); h2 && reason != "Forbidden" ||
			!h2 && !strings.HasPrefix(reason, "pipgate: demo: signed by github:evil/fork") {
			t.Errorf("%s status line %q; want the reason on HTTP/1.1, the standard phrase on HTTP/2", resp.Proto, resp.Status)
		}
	}
}

// TestUpstreamFailureNamedInStatusLine: an unreachable upstream is a 502
// whose status line (what pip prints), body and log name the upstream, its
// URL and the cause; /readyz and /-/status show its last success and last
// failure.
func TestUpstreamFailureNamedInStatusLine(t *testing.T) {
	up := pypitest.NewServer(t)
	addWheel(up, "demo", "1.0", nil)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
	if resp, _ := tp.get("/simple/demo/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("/simple/demo/ with the upstream up: %d", resp.StatusCode)
	}
	upURL := up.URL()
	up.Close()

	c := dialRaw(t, tp.http.Listener.Addr().String())
	resp, body := c.do(http.MethodGet, "/simple/other/")
	want := "pipgate: upstream default (" + upURL + ") unreachable: dial tcp "
	reason := strings.TrimPrefix(resp.Status, "502 ")
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(reason, want) || !strings.Contains(reason, "connection refused") {
		t.Errorf("status line %q; want 502 %q... connection refused", resp.Status, want)
	}
	if strings.TrimSpace(body) != reason {
		t.Errorf("body %q; want the status line's reason %q", body, reason)
	}

	rresp, rb := c2get(t, tp, "/readyz")
	if rresp.StatusCode != http.StatusOK || !strings.Contains(rb, "upstream default ("+upURL+"): failing (1 in a row); last success ") ||
		!strings.Contains(rb, "; last failure ") || !strings.Contains(rb, "connection refused") {
		t.Errorf("/readyz: %d %q; want the upstream failing, its last success and its last failure with the cause", rresp.StatusCode, rb)
	}
	_, js := tp.get("/-/status", "Accept", "application/json")
	var snap struct {
		Upstreams []upstream.Info `json:"upstreams"`
	}
	if err := json.Unmarshal(js, &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Upstreams) != 1 {
		t.Fatalf("status upstreams %+v; want one", snap.Upstreams)
	}
	h := snap.Upstreams[0].Health
	if h.ConsecutiveFailures != 1 || h.LastSuccess.IsZero() || h.LastFailure.Before(h.LastSuccess) || !strings.Contains(h.LastError, "connection refused") {
		t.Errorf("status health %+v; want 1 failure after a success, with the cause", h)
	}
	_, html := tp.get("/-/status")
	if !strings.Contains(string(html), "failing (1 in a row)") || !strings.Contains(string(html), "connection refused") {
		t.Error("the status page does not show the failing upstream and why")
	}
}

// TestUpstreamFailureShownByPip: pip logs a failed project page only at -vv
// and then says "from versions: none". With the upstream down, real pip's
// own output at its default verbosity names the upstream and the cause, and
// pip still fails (nothing is offered); a client that is not pip keeps the
// 502; the metrics and the access log count the failure, not a 200.
func TestUpstreamFailureShownByPip(t *testing.T) {
	t.Parallel()
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
	upURL := up.URL()
	up.Close()
	want := "pipgate: upstream default (" + upURL + ") unreachable: dial tcp "

	// Attack: pip's answer must not be one a cache keeps, nor a page.
	resp, body := tp.get("/simple/gone/", "User-Agent", "pip/23.2.1 {}")
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, `text/plain; error="502 `+want) || !strings.Contains(ct, "connection refused") ||
		resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(string(body), want) {
		t.Errorf("pip's page: %s, Content-Type %q, Cache-Control %q, body %q; want 200, text/plain; error=\"502 %s...\", no-store",
			resp.Status, ct, resp.Header.Get("Cache-Control"), body, want)
	}
	for _, ua := range []string{"uv/0.9.0", "curl/8", ""} {
		resp, _ := tp.get("/simple/gone/", "User-Agent", ua)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("User-Agent %q: %s; want 502", ua, resp.Status)
		}
	}
	// A file is not a page: pip prints its status line already.
	if resp, _ := tp.get("/files/gone/gone-1.0-py3-none-any.whl", "User-Agent", "pip/23.2.1 {}"); resp.StatusCode == http.StatusOK {
		t.Errorf("pip's file download with the upstream down: %s; want an error status", resp.Status)
	}
	// The access log line follows the metrics (both after the response):
	// wait for the four pages' lines.
	if !tp.logs.WaitFor(10*time.Second, func(s string) bool {
		return strings.Contains(s, `"path":"/simple/gone/","status":502,"sent_status":200`) &&
			strings.Count(s, `"path":"/simple/gone/","status":502,`) == 4
	}) {
		t.Errorf("want four access-log lines with status 502, pip's with sent_status 200:\n%s", tp.logs.String())
	}
	for code, want := range map[string]float64{"200": 0, "502": 4} {
		if n := testutil.ToFloat64(tp.srv.metrics.httpRequests.WithLabelValues(routeSimple, http.MethodGet, code)); n != want {
			t.Errorf("pipgate_http_requests_total{route=simple_project,code=%s} = %v; want %v (every page failed)", code, n, want)
		}
	}

	if testing.Short() {
		return
	}
	pip := pypitest.NewPip(t)
	out, err := pip.Run(t.Context(), "", "download", "--no-deps", "-d", t.TempDir(), "--index-url", tp.http.URL+"/simple/", "gone")
	if err == nil || !strings.Contains(out, "WARNING: Skipping page "+tp.http.URL+"/simple/gone/ because the GET request got Content-Type: text/plain; error=\"502 "+want) ||
		!strings.Contains(out, "connection refused") || strings.Contains(out, "Traceback") {
		t.Errorf("pip with the upstream down: %v; want a failure whose output names the upstream and the cause:\n%s", err, out)
	}
}

func c2get(t *testing.T, tp *testProxy, path string) (*http.Response, string) {
	t.Helper()
	resp, body := tp.get(path)
	return resp, string(body)
}
