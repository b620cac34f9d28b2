package proxy

// The hostile-upstream and hostile-client suite (issue 13): every test
// states what the client received (status, headers, trailer, bytes, and
// whether the transfer completed cleanly, as curl's exit status would) and
// what pipgate used (temporary files, blobs, bytes written, heap).

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/internal/testbin"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// outcome is what a client got.
type outcome struct {
	status  int
	header  http.Header
	trailer http.Header
	n       int64  // body bytes received
	sum     string // their sha256
	body    []byte // the body, when at most 64 KiB
	// complete: the body ended as its framing said (Content-Length reached
	// or the last chunk seen): curl would exit 0. A transfer pipgate aborts
	// is not complete.
	complete bool
	err      error // the read error when not complete
}

// delivered reports a success status with a complete body: what a client
// takes as the file.
func (o outcome) delivered() bool { return o.status >= 200 && o.status < 300 && o.complete }

func (o outcome) String() string {
	return fmt.Sprintf("status %d, %d bytes, complete %v (%v), verdict header %q, trailer %q",
		o.status, o.n, o.complete, o.err, o.header.Get(headerVerdict), o.trailer.Get(headerVerdict))
}

// fetch sends one request with c and reads the whole response.
func fetch(t testing.TB, c *http.Client, method, url string, hdr ...string) outcome {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	return readOutcome(resp)
}

func readOutcome(resp *http.Response) outcome {
	h := sha256.New()
	var small bytes.Buffer
	n, err := io.Copy(io.MultiWriter(h, &capWriter{b: &small, max: 64 << 10}), resp.Body)
	o := outcome{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, n: n,
		sum: hex.EncodeToString(h.Sum(nil)), complete: err == nil, err: err}
	if n <= 64<<10 {
		o.body = small.Bytes()
	}
	return o
}

type capWriter struct {
	b   *bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) <= w.max {
		w.b.Write(p)
	}
	return len(p), nil
}

var plainClient = &http.Client{Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// fillEnd is one ended fill, from the Server's test hook.
type fillEnd struct {
	key     string
	written int64
	err     error
}

// watchFills reports every fill's end; set before the first request.
func (tp *testProxy) watchFills() <-chan fillEnd {
	ch := make(chan fillEnd, 64)
	done := func(key string, written int64, err error) { ch <- fillEnd{key, written, err} }
	tp.fillDone.Store(&done)
	return ch
}

func waitFill(t testing.TB, ch <-chan fillEnd) fillEnd {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no fill ended within 20s")
	}
	return fillEnd{}
}

// assertNothingLeft checks the data directory holds no temporary file and
// no blob other than keep.
func assertNothingLeft(t testing.TB, tp *testProxy, keep ...string) {
	t.Helper()
	if tmp, _ := filepath.Glob(filepath.Join(tp.dir, "blobs", "tmp", "*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	blobs, _ := filepath.Glob(filepath.Join(tp.dir, "blobs", "sha256", "*", "*"))
	for _, b := range blobs {
		ok := false
		for _, k := range keep {
			ok = ok || filepath.Base(b) == k
		}
		if !ok {
			t.Errorf("blob stored: %s", b)
		}
	}
}

// content returns n deterministic, incompressible bytes: the ChaCha8
// stream keyed by sha256(seed), written in one call (a sha256 per 32 bytes
// cost a third of a CPU-second per 5 MiB under -race).
func content(n int, seed string) []byte {
	out := make([]byte, n)
	_, _ = rand.NewChaCha8(sha256.Sum256([]byte(seed))).Read(out)
	return out
}

var testIdentity = &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}

// signedDist registers a file with provenance the fake verifier calls
// verified, so that its success header would be "verified".
func signedDist(t testing.TB, up *pypitest.Server, tp *testProxy, name, version string, body []byte, mod func(*pypitest.Dist)) pypitest.Dist {
	t.Helper()
	d := pypitest.Dist{Filename: pypitest.WheelFilename(name, version), Content: body,
		Provenance: []byte(`{"version":1,"attestation_bundles":[]}`)}
	if d.Content == nil {
		d.Content = pypitest.MakeWheel(name, version, pypitest.WheelOptions{})
	}
	if mod != nil {
		mod(&d)
	}
	up.AddDist(name, d)
	if tp != nil {
		tp.verifier.set(d.Filename, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: testIdentity})
	}
	return d
}

// assertRefused: a clean 403 naming the digest mismatch, no file bytes.
func assertRefused(t testing.TB, what string, o outcome, file []byte) {
	t.Helper()
	if o.status != http.StatusForbidden || !o.complete {
		t.Errorf("%s: %v; want a complete 403", what, o)
		return
	}
	if v := o.header.Get(headerVerdict); v != string(pypi.VerdictInvalid) {
		t.Errorf("%s: %s = %q; want invalid", what, headerVerdict, v)
	}
	if r := o.header.Get(headerReason); !strings.Contains(r, "digest-mismatch") {
		t.Errorf("%s: %s = %q; want digest-mismatch", what, headerReason, r)
	}
	if !strings.Contains(string(o.body), "digest-mismatch") || (len(file) > 0 && bytes.Contains(o.body, file[:min(len(file), 64)])) {
		t.Errorf("%s: body %q; want the reason and none of the file", what, o.body)
	}
	if o.header.Get("ETag") != "" {
		t.Errorf("%s: ETag %q on a refusal", what, o.header.Get("ETag"))
	}
}

// assertAborted: a streamed response cut before its end, which never said
// verified (no header, no trailer) and never carried the last bytes.
func assertAborted(t testing.TB, what string, o outcome, size int) {
	t.Helper()
	if o.err != nil && o.status == 0 {
		return // the connection died before the head: not delivered either
	}
	if o.complete {
		t.Errorf("%s: %v; want an aborted transfer", what, o)
	}
	if o.n > int64(size-tailHoldback) {
		t.Errorf("%s: received %d of %d bytes; the last %d must be held back until the digest matched", what, o.n, size, tailHoldback)
	}
	if o.header.Get(headerVerdict) != "" || o.trailer.Get(headerVerdict) != "" || o.header.Get("ETag") != "" {
		t.Errorf("%s: verdict header %q, trailer %q, ETag %q on unchecked bytes; want none", what,
			o.header.Get(headerVerdict), o.trailer.Get(headerVerdict), o.header.Get("ETag"))
	}
}

// TestDeliverySmallBadBodies: a small file whose upstream body is wrong in
// any way is never delivered: a bad digest or size is a clean 403 (verdict
// invalid, reason digest-mismatch), a broken body a 502 (verdict error);
// GET, HEAD and Range alike; nothing is left on disk; bodies are cut at
// the index size or cache.max_file_size.
func TestDeliverySmallBadBodies(t *testing.T) {
	const maxFile = 1 << 20
	for _, c := range []struct {
		name     string
		htmlOnly bool // no index size
		fault    func(up *pypitest.Server, d pypitest.Dist) pypitest.Fault
		code     int
		// maxWritten bounds what the fill may write (disk).
		maxWritten int64
	}{
		{"tampered last byte", false, func(*pypitest.Server, pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{Tamper: true}
		}, 403, -1},
		{"short Content-Length", false, func(_ *pypitest.Server, d pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{ContentLength: int64(len(d.Content) - 100)}
		}, 403, 0},
		{"long Content-Length", false, func(_ *pypitest.Server, d pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{ContentLength: int64(len(d.Content) + 100)}
		}, 403, 0},
		{"short Content-Length, no index size", true, func(_ *pypitest.Server, d pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{ContentLength: int64(len(d.Content) - 100)}
		}, 403, -1},
		{"long Content-Length, no index size", true, func(_ *pypitest.Server, d pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{ContentLength: int64(len(d.Content) + 100)}
		}, 502, -1},
		{"redirect to another file", false, func(up *pypitest.Server, _ pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{RedirectTo: up.FileURL("other", pypitest.WheelFilename("other", "1.0"))}
		}, 403, -1},
		{"truncated", false, func(*pypitest.Server, pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{TruncateAfter: 1000}
		}, 502, -1},
		{"reset", false, func(*pypitest.Server, pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{ResetAfter: 1000}
		}, 502, -1},
		{"endless body for a listed small wheel", false, func(*pypitest.Server, pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{Endless: true}
		}, 403, -2},
		{"100 GB Content-Length for a listed small wheel", false, func(*pypitest.Server, pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{Endless: true, ContentLength: 100 << 30}
		}, 403, 0},
		{"endless body, no index size", true, func(*pypitest.Server, pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{Endless: true}
		}, 502, maxFile},
		{"100 GB Content-Length, no index size", true, func(*pypitest.Server, pypitest.Dist) pypitest.Fault {
			return pypitest.Fault{Endless: true, ContentLength: 100 << 30}
		}, 502, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := pypitest.NewServer(t)
			up.HTMLOnly(c.htmlOnly)
			tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0; o.MaxFileSize = maxFile })
			ends := tp.watchFills()
			d := signedDist(t, up, tp, "demo", "1.0", nil, nil)
			addWheel(up, "other", "1.0", nil)
			up.SetFault("/files/"+sha(d.Content)+"/", c.fault(up, d))
			url := tp.http.URL + "/files/demo/" + d.Filename
			for _, m := range []struct{ method, rng string }{{"GET", ""}, {"HEAD", ""}, {"GET", "bytes=0-99"}} {
				var o outcome
				if m.rng != "" {
					o = fetch(t, plainClient, m.method, url, "Range", m.rng)
				} else {
					o = fetch(t, plainClient, m.method, url)
				}
				what := m.method + " " + m.rng
				if o.delivered() && o.status < 300 {
					t.Fatalf("%s: %v; a bad body was delivered", what, o)
				}
				if o.status != c.code {
					t.Errorf("%s: %v %q; want %d", what, o, o.body, c.code)
				}
				if c.code == 403 && m.method == "GET" {
					assertRefused(t, what, o, d.Content)
				}
				if c.code == 502 && o.header.Get(headerVerdict) != string(pypi.VerdictError) {
					t.Errorf("%s: %s = %q on a failed fetch; want error", what, headerVerdict, o.header.Get(headerVerdict))
				}
				e := waitFill(t, ends)
				if e.err == nil {
					t.Errorf("%s: the fill succeeded", what)
				}
				switch {
				case c.maxWritten == -2 && e.written > int64(len(d.Content)):
					t.Errorf("%s: the fill wrote %d bytes for a file listed at %d", what, e.written, len(d.Content))
				case c.maxWritten >= 0 && e.written > c.maxWritten:
					t.Errorf("%s: the fill wrote %d bytes; want at most %d", what, e.written, c.maxWritten)
				}
			}
			assertNothingLeft(t, tp)
			if got := testutil.ToFloat64(tp.srv.metrics.digestMismatches.WithLabelValues("refused")); c.code == 403 && got == 0 {
				t.Errorf("pipgate_file_digest_mismatches_total{outcome=refused} = %v", got)
			}
			// The upstream fixed: the same request now gets the file.
			up.ClearFaults()
			o := fetch(t, plainClient, "GET", url)
			if !o.delivered() || o.sum != sha(d.Content) || o.header.Get(headerVerdict) != string(pypi.VerdictVerified) {
				t.Errorf("after the upstream is fixed: %v; want the file, verified", o)
			}
		})
	}
}

// TestDeliveryLargeTamperedAborted: four clients on a 20 MB file whose last
// byte is wrong all get a stream that is cut short: none gets the whole body
// with a success status, none sees a verdict, none gets the last bytes. One
// upstream fetch, nothing stored, memory flat (the file is never held whole).
func TestDeliveryLargeTamperedAborted(t *testing.T) {
	const size = 20 << 20
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
	ends := tp.watchFills()
	good := content(size, "large")
	bad := bytes.Clone(good)
	bad[size-1] ^= 1
	d := signedDist(t, up, tp, "big", "1.0", good, func(d *pypitest.Dist) { d.ServeContent = bad })
	url := tp.http.URL + "/files/big/" + d.Filename
	// Warm the page, so that mostly the file is measured.
	if o := fetch(t, plainClient, "GET", tp.http.URL+"/simple/big/"); o.status != 200 {
		t.Fatal(o)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	outs := make([]outcome, 4)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = fetch(t, plainClient, "GET", url)
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	for i, o := range outs {
		if o.delivered() {
			t.Errorf("client %d: %v; the tampered file was delivered", i, o)
		}
		if _, announced := o.trailer[headerVerdict]; o.status != 200 || !announced {
			t.Errorf("client %d: %v, trailers announced %v; want a streamed 200 announcing the verdict trailer", i, o, o.trailer)
		}
		assertAborted(t, fmt.Sprintf("client %d", i), o, size)
	}
	if e := waitFill(t, ends); !errors.Is(e.err, gate.ErrDigestMismatch) {
		t.Errorf("fill error = %v; want a digest mismatch", e.err)
	}
	if n := up.Hits("/files/"); n != 1 {
		t.Errorf("upstream fetches = %d; want 1 for 4 clients", n)
	}
	assertNothingLeft(t, tp)
	// 4 × 20 MB went through; a copy held in memory would allocate that.
	t.Logf("allocated %d KiB streaming 4 × 20 MiB", (after.TotalAlloc-before.TotalAlloc)>>10)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("allocated %d MiB streaming 4 × 20 MiB; want it flat (< 8 MiB)", alloc>>20)
	}
	if got := testutil.ToFloat64(tp.srv.metrics.digestMismatches.WithLabelValues("aborted")); got != 4 {
		t.Errorf("pipgate_file_digest_mismatches_total{outcome=aborted} = %v; want 4", got)
	}
}

// TestDeliveryLargeStreamsThenVerdictTrailer: a large good file streams at
// once (a client reads most of it while the upstream still holds the end),
// ends complete with the verdict in the trailer, and is then a cache hit
// with the verdict header, ETag and Content-Length.
func TestDeliveryLargeStreamsThenVerdictTrailer(t *testing.T) {
	const size = 3 << 20
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0; o.CheckFirstMax = 1 << 20 })
	body := content(size, "good")
	d := signedDist(t, up, tp, "big", "1.0", body, nil)
	gate := make(chan struct{})
	up.SetFault("/files/", pypitest.Fault{TruncateAfter: size - 512<<10, Gate: gate})
	resp, err := plainClient.Get(tp.http.URL + "/files/big/" + d.Filename)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(headerVerdict) != "" || resp.Header.Get("ETag") != "" || resp.ContentLength != -1 {
		t.Fatalf("streamed head: %d, verdict %q, ETag %q, length %d; want 200, no verdict, no ETag, chunked",
			resp.StatusCode, resp.Header.Get(headerVerdict), resp.Header.Get("ETag"), resp.ContentLength)
	}
	// Everything the upstream sent, less the held-back tail, arrives
	// before the upstream sends the rest.
	head := make([]byte, size-512<<10-tailHoldback)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatalf("reading the streamed part while the upstream holds the end: %v", err)
	}
	close(gate)
	o := readOutcome(resp)
	if !o.complete || int(o.n)+len(head) != size || !bytes.Equal(head, body[:len(head)]) || o.sum != sha(body[len(head):]) {
		t.Fatalf("rest of the stream: %v; want the complete file", o)
	}
	if v := o.trailer.Get(headerVerdict); v != string(pypi.VerdictVerified) {
		t.Errorf("trailer %s = %q; want verified after the digest matched", headerVerdict, v)
	}
	up.ClearFaults()
	hit := fetch(t, plainClient, "GET", tp.http.URL+"/files/big/"+d.Filename)
	if !hit.delivered() || hit.sum != sha(body) || hit.header.Get(headerVerdict) != "verified" ||
		hit.header.Get("ETag") != `"`+sha(body)+`"` || hit.header.Get("Content-Length") != fmt.Sprint(size) {
		t.Errorf("cache hit: %v, ETag %q, length %q", hit, hit.header.Get("ETag"), hit.header.Get("Content-Length"))
	}
	if n := up.Hits("/files/"); n != 1 {
		t.Errorf("upstream fetches = %d; want 1", n)
	}
}

// TestDeliverySlowUpstreamStatusLine: a small file whose upstream is slow
// still gives the client its status line within CheckWait (pip's read
// timeout is 15s), then streams; a 1-byte-at-a-time upstream ends complete
// with the verdict trailer.
func TestDeliverySlowUpstreamStatusLine(t *testing.T) {
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0; o.CheckWait = 100 * time.Millisecond })
	d := signedDist(t, up, tp, "demo", "1.0", content(400, "small"), nil)
	gate := make(chan struct{})
	up.SetFault("/files/", pypitest.Fault{Gate: gate})
	url := tp.http.URL + "/files/demo/" + d.Filename
	resp, err := plainClient.Get(url) // the upstream has sent no byte yet
	if err != nil {
		t.Fatal(err)
	}
	if _, announced := resp.Trailer[headerVerdict]; resp.StatusCode != 200 || !announced || resp.Header.Get(headerVerdict) != "" {
		t.Errorf("head while the upstream is silent: %d, trailers %v, verdict %q", resp.StatusCode, resp.Trailer, resp.Header.Get(headerVerdict))
	}
	close(gate)
	o := readOutcome(resp)
	resp.Body.Close()
	if !o.delivered() || o.sum != sha(d.Content) || o.trailer.Get(headerVerdict) != "verified" {
		t.Errorf("after the upstream answered: %v", o)
	}

	// The same through the egress tunnel.
	d3 := signedDist(t, up, tp, "demo", "3.0", content(400, "tunnel"), nil)
	gate3 := make(chan struct{})
	up.SetFault("/files/", pypitest.Fault{Gate: gate3})
	resp, err = startTunnel(t, tp.srv).client(true).Get("https://files.pythonhosted.org/packages/ab/" + d3.Filename)
	if err != nil {
		t.Fatal(err)
	}
	if _, announced := resp.Trailer[headerVerdict]; resp.StatusCode != 200 || !announced || resp.Header.Get(headerVerdict) != "" {
		t.Errorf("tunnel head while the upstream is silent: %d, trailers %v, verdict %q", resp.StatusCode, resp.Trailer, resp.Header.Get(headerVerdict))
	}
	close(gate3)
	o = readOutcome(resp)
	resp.Body.Close()
	if !o.delivered() || o.sum != sha(d3.Content) || o.trailer.Get(headerVerdict) != "verified" {
		t.Errorf("tunnel, after the upstream answered: %v", o)
	}

	// Dripping, one byte per millisecond: 400 ms for the file.
	d2 := signedDist(t, up, tp, "demo", "2.0", content(400, "drip"), nil)
	up.SetFault("/files/", pypitest.Fault{Drip: time.Millisecond})
	o = fetch(t, plainClient, "GET", tp.http.URL+"/files/demo/"+d2.Filename)
	if !o.delivered() || o.sum != sha(d2.Content) || o.trailer.Get(headerVerdict) != "verified" {
		t.Errorf("dripping upstream: %v", o)
	}
}

// TestDeliveryAbandonedFill: when its last client hangs up, a fill stops
// after the grace period and leaves nothing on disk; one that is close to
// done finishes and is stored.
func TestDeliveryAbandonedFill(t *testing.T) {
	t.Run("endless body", func(t *testing.T) {
		up := pypitest.NewServer(t)
		up.HTMLOnly(true) // no index size
		tp := newTestProxy(t, up, "", func(o *Options) {
			o.EagerReleases = 0
			o.CheckWait = 20 * time.Millisecond
			o.FillGrace = 20 * time.Millisecond
		})
		ends := tp.watchFills()
		d := signedDist(t, up, tp, "demo", "1.0", nil, nil)
		upEnded := make(chan bool, 1)
		up.SetFault("/files/", pypitest.Fault{Endless: true, Drip: time.Millisecond, DripBytes: 16 << 10,
			OnEnd: func(_ int64, gone bool) { upEnded <- gone }})
		resp, err := plainClient.Get(tp.http.URL + "/files/demo/" + d.Filename)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, 64<<10); err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		resp.Body.Close() // the client hangs up
		e := waitFill(t, ends)
		if !errors.Is(e.err, gate.ErrFillAbandoned) {
			t.Errorf("fill ended with %v; want it abandoned", e.err)
		}
		if gone := <-upEnded; !gone {
			t.Error("the upstream response was not cut off")
		}
		assertNothingLeft(t, tp)
		if got := gathered(t, tp.reg, "pipgate_file_fills_abandoned_total"); got != 1 {
			t.Errorf("pipgate_file_fills_abandoned_total = %v; want 1", got)
		}
	})
	t.Run("close to done", func(t *testing.T) {
		const size = 2 << 20
		up := pypitest.NewServer(t)
		tp := newTestProxy(t, up, "", func(o *Options) {
			o.EagerReleases = 0
			o.CheckFirstMax = 1 << 20
			o.FillGrace = 10 * time.Millisecond
		})
		ends := tp.watchFills()
		graced := make(chan bool, 1)
		graceEnded := func(_ string, stopped bool) { graced <- stopped }
		tp.fillGraceEnded.Store(&graceEnded)
		d := signedDist(t, up, tp, "demo", "1.0", content(size, "nearly"), nil)
		gate := make(chan struct{})
		up.SetFault("/files/", pypitest.Fault{TruncateAfter: size - 100<<10, Gate: gate})
		resp, err := plainClient.Get(tp.http.URL + "/files/demo/" + d.Filename)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, size-100<<10-tailHoldback); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if stopped := <-graced; stopped {
			t.Fatal("a fill 95% done was stopped when its client left")
		}
		close(gate)
		if e := waitFill(t, ends); e.err != nil {
			t.Fatalf("fill: %v", e.err)
		}
		if !tp.store.HasBlob(sha(d.Content)) {
			t.Error("the finished fill was not stored")
		}
		assertNothingLeft(t, tp, sha(d.Content))
	})
}

// TestDeliverySlowReaderDropped: a client that requests a file and never
// reads is disconnected after WriteIdleTimeout, for a cache hit (sendfile)
// and a streamed miss; it never receives the whole file.
func TestDeliverySlowReaderDropped(t *testing.T) {
	const size = 20 << 20
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) {
		o.EagerReleases = 0
		o.WriteIdleTimeout = 200 * time.Millisecond
		o.FillGrace = 10 * time.Millisecond
	})
	cached := signedDist(t, up, tp, "big", "1.0", content(size, "a"), nil)
	missed := signedDist(t, up, tp, "big", "2.0", content(size, "b"), nil)
	// Cached by a HEAD, which fills and checks the file before its status
	// line and has no body: a GET here would itself be a reader that the
	// 200 ms idle timeout drops when the -race test process is starved.
	for i := range 2 {
		if o := fetch(t, plainClient, "HEAD", tp.http.URL+"/files/big/"+cached.Filename); o.status != http.StatusOK {
			t.Fatalf("HEAD %d: %v; want 200", i+1, o)
		}
	}
	if got := tp.srv.gate.Lookups()[gate.LookupFile]; got.Hit != 1 || got.Miss != 1 {
		t.Fatalf("file lookups after two HEADs: %+v; want one miss (the fill), then one hit", got)
	}
	closed := make(chan net.Conn, 4)
	srv := httptest.NewUnstartedServer(tp.srv)
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- c
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	for _, d := range []pypitest.Dist{cached, missed} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.(*net.TCPConn).SetReadBuffer(16 << 10)
		fmt.Fprintf(conn, "GET /files/big/%s HTTP/1.1\r\nHost: pipgate\r\n\r\n", d.Filename)
		start := time.Now()
		select {
		case <-closed:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: a client that never reads is still connected after 15s", d.Filename)
		}
		t.Logf("%s: dropped after %v", d.Filename, time.Since(start).Round(time.Millisecond))
		// What the client could still read is not the whole response.
		n, _ := io.Copy(io.Discard, bufio.NewReader(conn))
		conn.Close()
		if n >= size {
			t.Errorf("%s: the dropped client still received %d bytes", d.Filename, n)
		}
	}
}

// TestDeliveryChangedBlobHealed: a cached file changed on disk is not
// served: it is quarantined and fetched again, so the client gets the real
// file with its true ETag; with the upstream gone it gets an error, never
// the changed bytes.
func TestDeliveryChangedBlobHealed(t *testing.T) {
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
	d := signedDist(t, up, tp, "demo", "1.0", nil, nil)
	url := tp.http.URL + "/files/demo/" + d.Filename
	if o := fetch(t, plainClient, "GET", url); !o.delivered() {
		t.Fatal(o)
	}
	p := filepath.Join(tp.dir, "blobs", "sha256", sha(d.Content)[:2], sha(d.Content))
	corrupt := func() {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		evil := bytes.Clone(d.Content)
		evil[len(evil)/2] ^= 0xff
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, evil, 0o400); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, fi.ModTime(), fi.ModTime())
	}
	corrupt()
	o := fetch(t, plainClient, "GET", url)
	if !o.delivered() || o.sum != sha(d.Content) || o.header.Get("ETag") != `"`+sha(d.Content)+`"` ||
		o.header.Get(headerVerdict) != "verified" {
		t.Errorf("after the blob changed: %v, ETag %q; want the real file", o, o.header.Get("ETag"))
	}
	if n := up.Hits("/files/"); n != 2 {
		t.Errorf("upstream fetches = %d; want 2 (the changed blob refetched)", n)
	}
	if q, _ := filepath.Glob(filepath.Join(tp.dir, "blobs", "quarantine", "*")); len(q) != 1 {
		t.Errorf("quarantine holds %v; want the changed blob", q)
	}
	if got := tp.store.QuarantinedBlobs(); got != 1 {
		t.Errorf("quarantined blobs = %v; want 1", got)
	}
	// Changed again, and no upstream to heal from.
	corrupt()
	up.Close()
	for _, m := range []string{"GET", "HEAD"} {
		o = fetch(t, plainClient, m, url)
		if o.status == 200 || o.header.Get("ETag") != "" {
			t.Errorf("%s with the blob changed and the upstream down: %v, ETag %q; want an error", m, o, o.header.Get("ETag"))
		}
	}
}

// TestDeliveryMetadata: a .metadata is decided like its file (403 when the
// file is blocked; the file's verdict on every answer), and never served or
// advertised without a sha256 in the index (metadata_test.go has the rest).
func TestDeliveryMetadata(t *testing.T) {
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, demoTrustsGoodRepo, func(o *Options) { o.EagerReleases = 0 })
	good := signedDist(t, up, tp, "demo", "1.0", nil, nil)
	blocked := signedDist(t, up, tp, "demo", "2.0", nil, nil)
	tp.verifier.set(blocked.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork", Workflow: "release.yml"}})
	unhashed := signedDist(t, up, tp, "demo", "3.0", nil, func(d *pypitest.Dist) { d.MetadataNoHash = true })
	tampered := signedDist(t, up, tp, "demo", "4.0", nil, nil)
	base := tp.http.URL + "/files/demo/"

	o := fetch(t, plainClient, "GET", base+good.Filename+".metadata")
	if !o.delivered() || !bytes.Contains(o.body, []byte("Name: demo")) || o.header.Get(headerVerdict) != "verified" {
		t.Errorf("metadata of a verified file: %v", o)
	}
	o = fetch(t, plainClient, "GET", base+blocked.Filename+".metadata")
	if o.status != 403 || o.header.Get(headerVerdict) != string(pypi.VerdictUntrustedPublisher) || bytes.Contains(o.body, []byte("Name: demo")) {
		t.Errorf("metadata of a blocked file: %v; want 403 with the file's verdict", o)
	}
	_ = tp.auditLog.Flush()
	if !strings.Contains(tp.audit.String(), blocked.Filename) {
		t.Errorf("the refused .metadata left no audit record (pip stops there):\n%s", tp.audit.String())
	}
	if n := up.Hits("/files/" + sha(blocked.Content)); n != 0 {
		t.Errorf("the blocked file's metadata was fetched %d times; want never", n)
	}
	// A verified wheel's metadata comes from the wheel: the upstream's
	// .metadata file is never fetched, so tampering with it changes nothing.
	up.SetFault("/files/"+sha(tampered.Content)+"/"+tampered.Filename+".metadata", pypitest.Fault{Tamper: true})
	o = fetch(t, plainClient, "GET", base+tampered.Filename+".metadata")
	if want := pypitest.Metadata("demo", "4.0", pypitest.WheelOptions{}); !o.delivered() || !bytes.Equal(o.body, want) {
		t.Errorf("metadata of a verified wheel whose upstream .metadata is tampered: %v; want the wheel's METADATA", o)
	}
	if n := up.Hits("/files/" + sha(tampered.Content) + "/" + tampered.Filename + ".metadata"); n != 0 {
		t.Errorf("the upstream .metadata of a verified wheel was fetched %d times; want never", n)
	}

	o = fetch(t, plainClient, "GET", base+unhashed.Filename+".metadata")
	if o.status != 404 || o.header.Get(headerVerdict) != "verified" {
		t.Errorf("metadata the index gives no sha256 for: %v; want 404 with the file's verdict", o)
	}
	for _, accept := range []string{pipAccept, "text/html"} {
		o = fetch(t, plainClient, "GET", tp.http.URL+"/simple/demo/", "Accept", accept)
		var page *pypi.ProjectPage
		if accept == pipAccept {
			page = parseJSONPage(t, o.body, tp.http.URL+"/simple/demo/")
		} else {
			page = parseHTMLPage(t, o.body, tp.http.URL+"/simple/demo/")
		}
		for _, f := range page.Files {
			if f.CoreMetadata != (f.Filename != unhashed.Filename) {
				t.Errorf("%s page: %s core-metadata %v; want it only with a sha256", accept, f.Filename, f.CoreMetadata)
			}
		}
	}
}

// TestDeliveryEgress: the same promises through the egress tunnel, on
// pypi.org and on files.pythonhosted.org URLs pipgate never wrote.
func TestDeliveryEgress(t *testing.T) {
	const large = 3 << 20
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0; o.CheckFirstMax = 1 << 20 })
	c := startTunnel(t, tp.srv).client(true)
	small := signedDist(t, up, tp, "demo", "1.0", nil, nil)
	big := signedDist(t, up, tp, "demo", "2.0", content(large, "egress"), nil)
	fine := signedDist(t, up, tp, "demo", "3.0", content(large, "fine"), nil)
	up.SetFault("/files/"+sha(small.Content)+"/", pypitest.Fault{Tamper: true})
	for _, host := range []string{"https://pypi.org/files/demo/", "https://files.pythonhosted.org/packages/ab/cd/"} {
		assertRefused(t, host+" small", fetch(t, c, "GET", host+small.Filename), small.Content)
		// The upstream holds the end of the tampered file until the client
		// has the streamed head: otherwise a fill that ends before the
		// handler looks (a loaded machine) is a clean 403 instead.
		gate := make(chan struct{})
		up.SetFault("/files/"+sha(big.Content)+"/", pypitest.Fault{Tamper: true, TruncateAfter: large - 512<<10, Gate: gate})
		resp, err := c.Get(host + big.Filename)
		if err != nil {
			t.Fatalf("%s large tampered: %v", host, err)
		}
		close(gate)
		o := readOutcome(resp)
		resp.Body.Close()
		if _, announced := o.trailer[headerVerdict]; o.delivered() || o.status != http.StatusOK || !announced {
			t.Errorf("%s large tampered: %v; want a streamed 200 announcing the verdict trailer, cut short", host, o)
		}
		assertAborted(t, host+" large", o, large)
	}
	// The good file is held the same way: a fill that ends before the
	// handler looks is served whole with the verdict in the header, not
	// streamed (the promise checked here).
	gate := make(chan struct{})
	up.SetFault("/files/"+sha(fine.Content)+"/", pypitest.Fault{TruncateAfter: large - 512<<10, Gate: gate})
	resp, err := c.Get("https://pypi.org/files/demo/" + fine.Filename)
	if err != nil {
		t.Fatalf("large good file: %v", err)
	}
	close(gate)
	o := readOutcome(resp)
	resp.Body.Close()
	if !o.delivered() || o.sum != sha(fine.Content) || o.trailer.Get(headerVerdict) != "verified" || o.header.Get(headerVerdict) != "" {
		t.Errorf("large good file through the tunnel: %v; want it complete, verdict in the trailer", o)
	}
	assertNothingLeft(t, tp, sha(fine.Content))
}

// TestDeliveryCurl runs curl itself: its exit status is what scripts and
// mirrors act on. A tampered small file fails (22 with --fail, 403), a
// tampered large one is a partial transfer (18), a good one succeeds (0).
func TestDeliveryCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	const large = 3 << 20
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0; o.CheckFirstMax = 1 << 20 })
	small := signedDist(t, up, tp, "demo", "1.0", nil, nil)
	big := signedDist(t, up, tp, "demo", "2.0", content(large, "curl"), nil)
	fine := signedDist(t, up, tp, "demo", "3.0", content(large, "ok"), nil)
	up.SetFault("/files/"+sha(small.Content)+"/", pypitest.Fault{Tamper: true})
	for _, c := range []struct {
		d    pypitest.Dist
		exit int
		code string
	}{{small, 22, "403"}, {big, 18, "200"}, {fine, 0, "200"}} {
		// The body on stdout, the status on stderr. For the large tampered
		// file the upstream holds its end until curl has the streamed
		// head (its first body bytes): otherwise a fill that ends before
		// the handler looks (a loaded machine) is a clean 403 instead.
		var gate chan struct{}
		if c.exit == 18 {
			gate = make(chan struct{})
			up.SetFault("/files/"+sha(c.d.Content)+"/", pypitest.Fault{Tamper: true, TruncateAfter: large - 512<<10, Gate: gate})
		}
		cmd := testbin.Command(t.Context(), t, curl, "--silent", "--fail", "--max-time", "20", "--output", "-",
			"--write-out", "%{stderr}%{http_code}", tp.http.URL+"/files/demo/"+c.d.Filename)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if gate != nil {
			if _, err := io.CopyN(&got, stdout, 1); err != nil {
				t.Errorf("curl %s: no streamed head: %v", c.d.Filename, err)
			}
			close(gate)
		}
		_, _ = io.Copy(&got, stdout)
		err = cmd.Wait()
		exit := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			exit = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if exit != c.exit || stderr.String() != c.code {
			t.Errorf("curl %s: exit %d, HTTP %s; want exit %d, HTTP %s", c.d.Filename, exit, stderr.String(), c.exit, c.code)
		}
		if c.exit != 0 && bytes.Equal(got.Bytes(), c.d.Content) || c.exit == 0 && !bytes.Equal(got.Bytes(), c.d.Content) {
			t.Errorf("curl %s: wrote %d bytes", c.d.Filename, got.Len())
		}
	}
}

func parseHTMLPage(t testing.TB, body []byte, base string) *pypi.ProjectPage {
	t.Helper()
	u, _ := url.Parse(base)
	p, err := pypi.ParseProjectHTML(body, u)
	if err != nil {
		t.Fatalf("parsing served HTML page: %v\n%s", err, body)
	}
	return p
}

// TestDeliveryPip runs real pip: a cached file corrupted on disk still
// installs (pipgate heals it from the upstream), metadata without a sha256
// is not offered (pip reads the checked wheel), and tampered files, small
// or streamed, fail pip's download.
func TestDeliveryPip(t *testing.T) {
	t.Parallel() // after the sequential tests (the heap measurements among them), beside the other slow ones
	if testing.Short() {
		t.Skip("-short: skipping the real-pip run")
	}
	pip := pypitest.NewPip(t)
	const large = 3 << 20
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0; o.CheckFirstMax = 1 << 20 })
	good := signedDist(t, up, tp, "healed", "1.0", nil, nil)
	unhashed := signedDist(t, up, tp, "nohash", "1.0", nil, func(d *pypitest.Dist) { d.MetadataNoHash = true })
	// The files are tampered, and listed without metadata, so pip goes to
	// the download (the metadata of a verified wheel is read from the wheel:
	// it would be refused first, see TestMetadataPip).
	noMeta := func(d *pypitest.Dist) { d.MetadataNoHash = true }
	small := signedDist(t, up, tp, "tampered", "1.0", nil, noMeta)
	big := signedDist(t, up, tp, "streamed", "1.0", pypitest.MakeWheel("streamed", "1.0", pypitest.WheelOptions{
		Files: map[string][]byte{"streamed/blob.bin": content(large, "pip")}, Stored: true}), noMeta)
	if len(big.Content) < large {
		t.Fatalf("the streamed wheel is %d bytes; want over %d", len(big.Content), large)
	}
	up.SetFault("/files/"+sha(small.Content)+"/"+small.Filename, pypitest.Fault{Tamper: true})
	// The streamed file's body waits 2 s after its headers: pipgate decides
	// to stream on the headers (its size is over CheckFirstMax) while the
	// fill is still running. Sent at once, a loaded machine could finish the
	// fill before the handler looked, and pip got the small file's 403.
	up.SetFault("/files/"+sha(big.Content)+"/"+big.Filename, pypitest.Fault{Tamper: true, Stall: 2 * time.Second})
	download := func(reqs ...string) (string, error) {
		return pip.Run(t.Context(), "", append([]string{"download", "--no-deps", "--index-url", tp.http.URL + "/simple/",
			"-d", t.TempDir()}, reqs...)...)
	}

	// The cache is filled as pip's download would fill it (a pip start
	// costs about 0.7 CPU-s), then the blob is corrupted on disk.
	if o := fetch(t, plainClient, "GET", tp.http.URL+"/files/healed/"+good.Filename); !o.delivered() || o.sum != sha(good.Content) {
		t.Fatalf("filling the cache: %v", o)
	}
	p := filepath.Join(tp.dir, "blobs", "sha256", sha(good.Content)[:2], sha(good.Content))
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, len(good.Content)), 0o400); err != nil {
		t.Fatal(err)
	}
	// One pip run downloads both good files: it fails if either fails (pip
	// checks each file's sha256 against the page), and it prints each
	// .metadata URL it uses.
	if out, err := download("healed==1.0", "nohash==1.0"); err != nil {
		t.Errorf("download after the cached blob was corrupted, and with unhashed metadata: %v\n%s", err, out)
	} else if strings.Contains(out, unhashed.Filename+".metadata") || !strings.Contains(out, good.Filename+".metadata") {
		t.Errorf("pip used the metadata of %s (the index gave no sha256 for it), or not that of %s:\n%s", unhashed.Filename, good.Filename, out)
	}
	if up.Hits("/files/"+sha(unhashed.Content)+"/"+unhashed.Filename+".metadata") != 0 {
		t.Error("pipgate fetched metadata the index gave no sha256 for")
	}
	out, err := download("tampered==1.0")
	if err == nil || !strings.Contains(out, "403 Client Error: digest-mismatch") || !strings.Contains(out, small.Filename) || strings.Contains(out, ".metadata") {
		t.Errorf("download of a tampered small file: %v; want pip to show the 403 digest-mismatch for the file\n%s", err, out)
	}
	out, err = download("streamed==1.0")
	if err == nil || !strings.Contains(out, "Connection broken") {
		t.Errorf("download of a tampered streamed file: %v; want pip's incomplete read\n%s", err, out)
	}
}

// TestDeliveryHTTP10: an HTTP/1.0 client cannot tell an aborted body from
// a complete one (no chunking), so a large miss is checked before the
// status line for it: a tampered file is a 403, a good one a 200 with its
// Content-Length.
func TestDeliveryHTTP10(t *testing.T) {
	const large = 3 << 20
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0; o.CheckFirstMax = 1 << 20 })
	bad := signedDist(t, up, tp, "demo", "1.0", content(large, "http10 bad"), nil)
	good := signedDist(t, up, tp, "demo", "2.0", content(large, "http10 good"), nil)
	up.SetFault("/files/"+sha(bad.Content)+"/", pypitest.Fault{Tamper: true})
	get10 := func(d pypitest.Dist) outcome {
		conn, err := net.Dial("tcp", tp.http.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /files/demo/%s HTTP/1.0\r\n\r\n", d.Filename)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return readOutcome(resp)
	}
	assertRefused(t, "HTTP/1.0 tampered", get10(bad), bad.Content)
	o := get10(good)
	if !o.delivered() || o.sum != sha(good.Content) || o.header.Get("Content-Length") != fmt.Sprint(large) ||
		o.header.Get(headerVerdict) != "verified" {
		t.Errorf("HTTP/1.0 good: %v; want the file with its length, verified", o)
	}
}

// TestDeliveryRenamedFile: the same bytes listed under another filename
// share the blob but not the verdict, in either order: each name is
// decided as itself.
func TestDeliveryRenamedFile(t *testing.T) {
	for _, renamedFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("renamed first %v", renamedFirst), func(t *testing.T) {
			up := pypitest.NewServer(t)
			tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
			d := signedDist(t, up, tp, "demo", "1.0", nil, nil)
			other := "demo-1.0.post1-py3-none-any.whl" // the fake verifier has no facts for it: invalid
			names := []string{d.Filename, other}
			if renamedFirst {
				up.RenameDist("demo", d.Filename, other)
				names = []string{other, d.Filename}
			}
			for i, name := range names {
				if i == 1 {
					up.RenameDist("demo", names[0], name)
				}
				o := fetch(t, plainClient, "GET", tp.http.URL+"/files/demo/"+name)
				switch name {
				case d.Filename:
					if !o.delivered() || o.sum != sha(d.Content) || o.header.Get(headerVerdict) != "verified" {
						t.Errorf("%s: %v; want the file, verified", name, o)
					}
				default:
					if o.status != 403 || o.header.Get(headerVerdict) != string(pypi.VerdictInvalid) || o.sum == sha(d.Content) {
						t.Errorf("%s (same bytes, another name): %v; want 403 invalid", name, o)
					}
				}
			}
		})
	}
}

// TestDeliverySlowReaderKept: a client that reads slowly but steadily is
// not dropped: the write deadline moves with every chunk, so a download
// may take many times WriteIdleTimeout. (pipgate's socket send buffer is
// kept small here, so the kernel cannot absorb the file.)
func TestDeliverySlowReaderKept(t *testing.T) {
	const (
		size = 6 << 20
		// A second of idle timeout: the reader needs only sendChunk (256 KiB)
		// of it per second, 8 times less than it reads, and a test process
		// starved for a few hundred milliseconds (-race on a loaded 2-core
		// machine: seen at 400 ms) is not taken for a client that stopped.
		idle = time.Second
		rate = 2 << 20 // bytes per second: 3 s for the file
	)
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0; o.WriteIdleTimeout = idle })
	d := signedDist(t, up, tp, "big", "1.0", content(size, "slow"), nil)
	if o := fetch(t, plainClient, "GET", tp.http.URL+"/files/big/"+d.Filename); !o.delivered() {
		t.Fatal(o)
	}
	srv := httptest.NewUnstartedServer(tp.srv)
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	fmt.Fprintf(conn, "GET /files/big/%s HTTP/1.1\r\nHost: pipgate\r\n\r\n", d.Filename)
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReaderSize(&pacedReader{r: conn, rate: rate, start: start}, 64<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := readOutcome(resp)
	resp.Body.Close()
	took := time.Since(start)
	if !o.delivered() || o.sum != sha(d.Content) {
		t.Fatalf("slow reader: %v after %v; want the whole file", o, took)
	}
	if took < 2*idle {
		t.Errorf("the download took %v, less than twice the idle timeout: the test proves nothing", took)
	}
}

// pacedReader reads at about rate bytes per second on average.
type pacedReader struct {
	r     io.Reader
	rate  int64
	start time.Time
	n     int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	// The pace itself is what is tested: there is no signal to wait for.
	if ahead := time.Duration(p.n*int64(time.Second)/p.rate) - time.Since(p.start); ahead > 0 {
		time.Sleep(ahead)
	}
	n, err := p.r.Read(b[:min(len(b), 32<<10)])
	p.n += int64(n)
	return n, err
}

// smallSendBuffers gives every accepted connection a 128 KiB send buffer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(128 << 10)
	}
	return c, err
}

// tailHoldback is the gate's hold-back of a streamed fill's last bytes.
const tailHoldback = gate.TailHoldback
