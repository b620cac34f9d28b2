package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/audit"
	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/internal/logbuf"
	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// BenchmarkCachedProjectPage measures the server time of a cached project
// page of 200 files (no network: the handler is called directly), in both
// formats, policy decisions from cached facts included.
func BenchmarkCachedProjectPage(b *testing.B) {
	up := pypitest.NewServer(b)
	for i := 0; i < 100; i++ {
		v := fmt.Sprintf("1.%d", i)
		addWheel(up, "big", v, func(d *pypitest.Dist) { d.RequiresPython = ">=3.8" })
		up.AddDist("big", pypitest.Dist{Filename: pypitest.SdistFilename("big", v), Content: []byte(v)})
	}
	tp := newTestProxy(b, up, "", func(o *Options) { o.IndexTTL = time.Hour; o.EagerReleases = 0 })
	if resp, _ := tp.get("/simple/big/", "Accept", pipAccept); resp.StatusCode != 200 {
		b.Fatalf("warm-up = %d", resp.StatusCode)
	}
	for _, c := range []struct{ name, accept string }{{"json", pipAccept}, {"html", "text/html"}} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/simple/big/", nil)
			req.Header.Set("Accept", c.accept)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := httptest.NewRecorder()
				tp.srv.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkCachedFileDownload compares a cache-hit download through pipgate
// with the fake upstream serving the same bytes directly, both over loopback
// HTTP: the ratio of the MB/s figures is the proxy's overhead.
func BenchmarkCachedFileDownload(b *testing.B) {
	const size = 64 << 20
	content := make([]byte, size)
	if _, err := rand.Read(content); err != nil {
		b.Fatal(err)
	}
	up := pypitest.NewServer(b)
	fn := pypitest.WheelFilename("huge", "1.0")
	up.AddDist("huge", pypitest.Dist{Filename: fn, Content: content})
	tp := newTestProxy(b, up, "")
	if resp, body := tp.get("/files/huge/" + fn); resp.StatusCode != 200 || len(body) != size {
		b.Fatalf("warm-up = %d, %d bytes", resp.StatusCode, len(body))
	}
	fetch := func(b *testing.B, url string) {
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || n != size {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
	}
	b.Run("upstream-direct", func(b *testing.B) { fetch(b, up.FileURL("huge", fn)) })
	b.Run("pipgate-cache-hit", func(b *testing.B) { fetch(b, tp.http.URL+"/files/huge/"+fn) })
}

// BenchmarkVerdictLookupAndDecision is the per-download cost once a file is
// verified: cached provenance entry + cached facts + the policy decision.
func BenchmarkVerdictLookupAndDecision(b *testing.B) {
	up := pypitest.NewServer(b)
	d := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = []byte(`{"version":1,"attestation_bundles":[]}`) })
	tp := newTestProxy(b, up, demoTrustsGoodRepo)
	tp.verifier.set(d.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}})
	if resp, _ := tp.get("/files/demo/" + d.Filename); resp.StatusCode != 200 {
		b.Fatalf("warm-up = %d", resp.StatusCode)
	}
	f, err := tp.srv.gate.FindFile(context.Background(), "demo", d.Filename)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		facts, ok := tp.srv.gate.CachedFacts("demo", f)
		if !ok {
			b.Fatal("facts not cached")
		}
		if dec := tp.srv.policy.Current().Decide("demo", facts); dec.Action != "allow" {
			b.Fatalf("decision %+v", dec)
		}
	}
}

// realVerifier adapts a provenance.Verifier trusting a fake Sigstore.
type realVerifier struct{ v *provenance.Verifier }

func (r realVerifier) Facts(prov []byte, filename, sha string) pypi.Facts {
	return r.v.Facts(prov, provenance.Dist{Filename: filename, SHA256: sha})
}
func (r realVerifier) TrustRootDigest() string { return strings.Repeat("cd", 32) }

// BenchmarkEagerFirstView is the first view of a project page with 3
// releases × 20 files, each attested, with eager verification of all 3
// releases (real Sigstore verification, fresh cache every iteration).
func BenchmarkEagerFirstView(b *testing.B) {
	ss := provenancetest.New(b)
	up := pypitest.NewServer(b)
	for r := 0; r < 3; r++ {
		for i := 0; i < 20; i++ {
			v := fmt.Sprintf("%d.0", r+1)
			fn := fmt.Sprintf("eager-%s-cp3%d-none-any.whl", v, i)
			content := []byte(fn)
			up.AddDist("eager", pypitest.Dist{Filename: fn, Content: content,
				Provenance: ss.ProvenanceFor(fn, content, provenancetest.GitHub("good/repo", "release.yml"))})
		}
	}
	client, err := upstream.New(upstream.Options{URL: up.URL(), Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	verifier := realVerifier{ss.Verifier()}
	var verified int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		store, err := cache.Open(cache.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		pol := &staticPolicy{}
		pol.p.Store(mustPolicy(b, ""))
		srv, err := New(Options{Options: gate.Options{Upstream: upstream.Single(client), Store: store, Verifier: verifier, Policy: pol,
			Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
			EagerReleases: 3, EagerBudget: time.Minute}})
		if err != nil {
			b.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/simple/eager/", nil)
		req.Header.Set("Accept", pipAccept)
		w := httptest.NewRecorder()
		b.StartTimer()
		srv.ServeHTTP(w, req)
		b.StopTimer()
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
		pg, _, err := store.Page("default", "eager")
		if err != nil {
			b.Fatal(err)
		}
		verified = 0
		for j := range pg.Files {
			if f, ok := srv.gate.CachedFacts("eager", &pg.Files[j]); ok && f.Verdict == pypi.VerdictVerified {
				verified++
			}
		}
		store.Close()
		b.StartTimer()
	}
	if verified != 60 {
		b.Fatalf("verified %d of 60 files on first view", verified)
	}
}

// BenchmarkCacheHitHandler is the server side of one cache-hit download of
// a verified 100 KB file, every per-download duty included (facts, decision,
// verdict header, audit record, status entry, metrics, access log), without
// the network: the handler writes to a recorder. scripts/bench-serve.sh
// measures the same path over loopback against nginx.
func BenchmarkCacheHitHandler(b *testing.B) {
	up, d := benchWheel(b)
	content := d.Content
	tp := newTestProxy(b, up, demoTrustsGoodRepo, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil)) //nolint:sloglint // the access log's JSON formatting is part of what is measured
	})
	tp.verifier.set(d.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}})
	for range 2 { // fill, then a first hit that loads the memory caches
		if resp, _ := tp.get("/files/demo/" + d.Filename); resp.StatusCode != 200 {
			b.Fatalf("warm-up = %d", resp.StatusCode)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/files/demo/"+d.Filename, nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		w := httptest.NewRecorder()
		tp.srv.ServeHTTP(w, req)
		if w.Code != 200 || w.Body.Len() != len(content) {
			b.Fatalf("status %d, %d bytes", w.Code, w.Body.Len())
		}
	}
}

// sinkWriter is a ResponseWriter that keeps nothing: its ReadFrom counts a
// file body without reading it, as sendfile leaves the copy to the kernel,
// so a benchmark through it measures the server's own work per request.
type sinkWriter struct {
	h    http.Header
	code int
	n    int64
}

func (w *sinkWriter) Header() http.Header { return w.h }
func (w *sinkWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *sinkWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += int64(len(p))
	return len(p), nil
}

// SetWriteDeadline is what the bodyWriter's deadlines call (through
// http.ResponseController), as on a real connection.
func (w *sinkWriter) SetWriteDeadline(time.Time) error { return nil }

func (w *sinkWriter) ReadFrom(r io.Reader) (int64, error) {
	w.WriteHeader(http.StatusOK)
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		return io.Copy(io.Discard, r)
	}
	n := lr.N
	lr.N = 0
	w.n += n
	return n, nil
}

// BenchmarkCacheHitDuties is one cache-hit download of a verified 100 KB
// file through the whole handler (every duty: decision, verdict header,
// audit record, status entry, history, metrics, access log in JSON), next
// to the bare floor (os.Open + http.ServeContent of the same blob, as
// scripts/bench-serve.sh's go-floor), both into a sinkWriter: the figures
// are the server's own CPU and allocations per request, the body's copy
// left out as sendfile leaves it to the kernel.
func BenchmarkCacheHitDuties(b *testing.B) {
	up, d := benchWheel(b)
	content := d.Content
	auditLog, err := audit.New(audit.Options{Path: filepath.Join(b.TempDir(), "audit.jsonl")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { auditLog.Close() })
	lw := logbuf.New(io.Discard, logbuf.Interval)
	b.Cleanup(func() { lw.Close() })
	tp := newTestProxy(b, up, demoTrustsGoodRepo, func(o *Options) {
		// The server's log handler, as serve makes it, is part of what is measured.
		o.Logger = slog.New(logbuf.NewJSON(lw, nil)).With("component", "proxy")
		o.Audit = auditLog
	})
	tp.verifier.set(d.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}})
	for range 2 { // fill, then a first hit that loads the memory caches
		if resp, _ := tp.get("/files/demo/" + d.Filename); resp.StatusCode != 200 {
			b.Fatalf("warm-up = %d", resp.StatusCode)
		}
	}
	sum := sha256.Sum256(content)
	blob, err := tp.store.OpenBlob(hex.EncodeToString(sum[:]))
	if err != nil {
		b.Fatal(err)
	}
	blobPath := blob.Name()
	blob.Close()
	req := httptest.NewRequest(http.MethodGet, "/files/demo/"+d.Filename, nil)
	req.RemoteAddr = "127.0.0.1:40000"
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			w := &sinkWriter{h: http.Header{}}
			h.ServeHTTP(w, req)
			if w.code != 200 || w.n != int64(len(content)) {
				b.Fatalf("status %d, %d bytes", w.code, w.n)
			}
		}
		// CPU time of the whole process (the audit writer, the collector):
		// steadier than wall time on a shared machine.
		b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
	b.Run("pipgate", func(b *testing.B) { run(b, tp.srv) })
	b.Run("floor", func(b *testing.B) {
		run(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f, err := os.Open(blobPath)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(w, r, "", time.Time{}, f)
		}))
	})
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchWheel is an upstream listing demo 1.0, a random 100 KB wheel with a
// provenance body (its facts are set on the test verifier).
func benchWheel(b *testing.B) (*pypitest.Server, pypitest.Dist) {
	b.Helper()
	up := pypitest.NewServer(b)
	content := make([]byte, 100<<10)
	if _, err := rand.Read(content); err != nil {
		b.Fatal(err)
	}
	d := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) {
		d.Content = content
		d.Provenance = []byte(`{"version":1,"attestation_bundles":[]}`)
	})
	return up, d
}
