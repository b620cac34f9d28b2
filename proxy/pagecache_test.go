package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// bigUpstream serves one large project page and a large project list from
// memory, counting fetches.
type bigUpstream struct {
	page      *pypi.ProjectPage
	list      *pypi.ProjectList
	pageCalls atomic.Int64
	listCalls atomic.Int64
}

func (u *bigUpstream) Owner(string) (string, time.Duration) { return "default", 0 }

func (u *bigUpstream) Project(_ context.Context, name string) (*pypi.ProjectPage, error) {
	u.pageCalls.Add(1)
	if u.page == nil || name != u.page.Name {
		return nil, upstream.ErrNotFound
	}
	cp := *u.page
	return &cp, nil
}

func (u *bigUpstream) ProjectList(context.Context) (*pypi.ProjectList, error) {
	u.listCalls.Add(1)
	return u.list, nil
}

func (u *bigUpstream) Open(context.Context, string, string, upstream.Kind) (*upstream.Body, error) {
	return nil, upstream.ErrNotFound
}

func (u *bigUpstream) Provenance(context.Context, string, string) ([]byte, error) {
	return nil, upstream.ErrNoProvenance
}

// bigPage is a page of n attested files of about 400 bytes each when
// served as JSON.
func bigPage(name string, n int) *pypi.ProjectPage {
	p := &pypi.ProjectPage{Name: name, LastSerial: 7}
	for i := range n {
		fn := fmt.Sprintf("%s-%d.0.%d-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", name, i/100, i%100)
		p.Files = append(p.Files, pypi.File{
			Filename:   fn,
			URL:        "https://files.example/packages/" + fn,
			Hashes:     pypi.MakeHashes(map[string]string{"sha256": fmt.Sprintf("%064x", i)}),
			Size:       -1,
			Provenance: fmt.Sprintf("https://idx.example/integrity/%s/%d.0.%d/%s/provenance", name, i/100, i%100, fn),
		})
	}
	return p
}

// countingHash is a hash that counts the bytes written to it.
type countingHash struct {
	hash.Hash
	n int64
}

func (h *countingHash) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.Hash.Write(p)
}

// bigList is a project list of n projects.
func bigList(n int) *pypi.ProjectList {
	l := &pypi.ProjectList{LastSerial: int64(n)}
	for i := range n {
		l.Projects = append(l.Projects, pypi.ProjectEntry{Name: fmt.Sprintf("Project_%07d", i), LastSerial: int64(i)})
	}
	return l
}

func newServerWith(t testing.TB, up gate.Upstream, mod func(*Options)) (*Server, *httptest.Server) {
	t.Helper()
	store, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pol := &staticPolicy{}
	pol.p.Store(mustPolicy(t, ""))
	o := Options{Options: gate.Options{Upstream: up, Store: store, Verifier: &fakeVerifier{facts: map[string]pypi.Facts{}}, Policy: pol,
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), IndexTTL: time.Hour}}
	if mod != nil {
		mod(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	h := httptest.NewServer(srv)
	t.Cleanup(h.Close)
	return srv, h
}

// heapInuse returns HeapInuse after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

const mib = 1 << 20

// TestPageCacheManyHosts requests a multi-MB page with many Host values:
// every client gets the page with its own origin in the provenance URLs,
// and the heap holds one render, not one per Host. Six Host values are
// enough to tell (a render per Host would be six renders, over 27 MB):
// each costs about half a CPU-second under -race.
func TestPageCacheManyHosts(t *testing.T) {
	const budget, nFiles, nHosts = 16 * mib, 12000, 6
	up := &bigUpstream{page: bigPage("big", nFiles)}
	reg := prometheus.NewRegistry()
	srv, h := newServerWith(t, up, func(o *Options) { o.PageCacheBytes, o.Registerer = budget, reg })
	client := h.Client()
	get := func(host, accept string) []byte {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.URL+"/simple/big/", nil)
		req.Host = host
		req.Header.Set("Accept", accept)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// Read into one buffer of the announced length (io.ReadAll's
		// doubling copied each page about a dozen times under -race).
		var body bytes.Buffer
		body.Grow(int(max(resp.ContentLength, 0)) + bytes.MinRead)
		_, err = body.ReadFrom(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("Host %s: %d, %v", host, resp.StatusCode, err)
		}
		if resp.ContentLength != int64(body.Len()) {
			t.Fatalf("Host %s: Content-Length %d for %d bytes", host, resp.ContentLength, body.Len())
		}
		return body.Bytes()
	}
	base := heapInuse()
	first := get("h0.example", pipAccept)
	if len(first) < 4*mib {
		t.Fatalf("page of %d bytes; want a multi-MB page", len(first))
	}
	// Every file's provenance URL is on the client's origin: counted in the
	// bytes, as for the other Hosts below (a full parse of the 6 MB page
	// cost over a CPU-second under -race; the page format is
	// TestProjectPageBothFormats' and TestLargePageStreamed's).
	if n := bytes.Count(first, []byte(`"provenance":"http://h0.example/integrity/big/`)); n != nFiles ||
		bytes.Count(first, []byte(`"provenance":`)) != nFiles {
		t.Fatalf("%d of %d provenance URLs on the client's origin; want %d", n, bytes.Count(first, []byte(`"provenance":`)), nFiles)
	}
	start := time.Now()
	for i := 1; i < nHosts; i++ {
		host := fmt.Sprintf("h%d.example:8%03d", i, i)
		got := get(host, pipAccept)
		// The same page, with this client's origin in every provenance URL.
		if n := bytes.Count(got, []byte(`"provenance":"http://`+host+`/integrity/big/`)); n != nFiles ||
			len(got) != len(first)+nFiles*(len(host)-len("h0.example")) {
			t.Fatalf("Host %s: %d provenance URLs on its origin, %d bytes; want %d, %d", host, n, len(got),
				nFiles, len(first)+nFiles*(len(host)-len("h0.example")))
		}
	}
	html := get("h1.example", "text/html")
	if !bytes.Contains(html, []byte(`data-provenance="http://h1.example/integrity/big/`)) {
		t.Errorf("HTML page lacks provenance on the client's origin")
	}
	elapsed := time.Since(start)
	grown := int64(heapInuse()) - int64(base)
	t.Logf("%d Host values on a %.1f MB page: heap in use grew %.1f MB; page cache holds %.1f MB; %v",
		nHosts, float64(len(first))/mib, float64(grown)/mib, float64(srv.gate.PageCacheBytes())/mib, elapsed)
	if got := srv.gate.PageCacheBytes(); got > budget || got <= 0 {
		t.Errorf("page cache holds %d bytes; bound %d", got, budget)
	}
	if got := gathered(t, reg, "pipgate_page_cache_bytes"); got != float64(srv.gate.PageCacheBytes()) {
		t.Errorf("pipgate_page_cache_bytes = %v; want %d", got, srv.gate.PageCacheBytes())
	}
	if limit := int64(budget + 32*mib); grown > limit {
		t.Errorf("heap in use grew %.1f MB after %d Host values; want at most %.1f MB", float64(grown)/mib, nHosts, float64(limit)/mib)
	}
	if n := up.pageCalls.Load(); n != 1 {
		t.Errorf("upstream page fetched %d times; want 1", n)
	}
	if n := srv.gate.Renders(); n != 2 {
		t.Errorf("%d renders for %d Host values; want 2 (JSON and HTML)", n, nHosts)
	}
	runtime.KeepAlive(first)
}

// TestPageLargerThanCache serves a page bigger than the whole page cache:
// correct every time, and nothing kept.
func TestPageLargerThanCache(t *testing.T) {
	up := &bigUpstream{page: bigPage("big", 200)}
	srv, h := newServerWith(t, up, func(o *Options) { o.PageCacheBytes = 4096 })
	tp := &testProxy{t: t, http: h}
	var first []byte
	for i := range 3 {
		resp, body := tp.get("/simple/big/", "Accept", pipAccept)
		if resp.StatusCode != 200 || len(parseJSONPage(t, body, h.URL+"/simple/big/").Files) != 200 {
			t.Fatalf("request %d: %d, %d bytes", i, resp.StatusCode, len(body))
		}
		if i == 0 {
			first = body
		} else if !bytes.Equal(body, first) {
			t.Errorf("request %d: another page", i)
		}
	}
	if got := srv.gate.PageCacheBytes(); got > 4096 {
		t.Errorf("page cache holds %d bytes; bound 4096", got)
	}
}

// TestProjectListHammered has 50 clients fetch a large /simple/ at once,
// in both formats: one upstream fetch, one render per format, every client
// the right bytes, and the heap bounded throughout.
func TestProjectListHammered(t *testing.T) {
	const clients, rounds = 24, 2
	list := bigList(150000)
	// The expected bytes are hashed as they are written, not kept.
	sum := func(write func(io.Writer, *pypi.ProjectList) error) ([32]byte, float64) {
		h := &countingHash{Hash: sha256.New()}
		if err := write(h, list); err != nil {
			t.Fatal(err)
		}
		var s [32]byte
		h.Sum(s[:0])
		return s, float64(h.n) / mib
	}
	wantJSON, mbJSON := sum(pypi.WriteProjectListJSON)
	wantHTML, mbHTML := sum(pypi.WriteProjectListHTML)
	want := map[string][32]byte{pypi.ContentTypeV1JSON: wantJSON, pypi.ContentTypeHTML: wantHTML}
	t.Logf("list: %d projects, %.1f MB JSON, %.1f MB HTML", len(list.Projects), mbJSON, mbHTML)

	up := &bigUpstream{list: list}
	_, h := newServerWith(t, up, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()

	base := heapInuse()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var mu sync.Mutex
	var latencies []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				accept, ct := pipAccept, pypi.ContentTypeV1JSON
				if (c+r)%2 == 1 {
					accept, ct = "text/html", pypi.ContentTypeHTML
				}
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodGet, h.URL+"/simple/", nil)
				req.Header.Set("Accept", accept)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				hash := sha256.New()
				_, err = io.Copy(hash, resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				var sum [32]byte
				hash.Sum(sum[:0])
				switch {
				case err != nil:
					errs <- err
				case resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct:
					errs <- fmt.Errorf("%s: %d %s", accept, resp.StatusCode, resp.Header.Get("Content-Type"))
				case sum != want[ct]:
					errs <- fmt.Errorf("%s: wrong list bytes", accept)
				}
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	elapsed := time.Since(start)
	slices.Sort(latencies)
	p99 := latencies[len(latencies)*99/100]
	grown := int64(peak.Load()) - int64(base)
	t.Logf("%d clients x %d requests: peak heap in use +%.1f MB, p99 %v, total %v", clients, rounds,
		float64(grown)/mib, p99, elapsed)
	if n := up.listCalls.Load(); n != 1 {
		t.Errorf("upstream list fetched %d times; want 1", n)
	}
	if limit := int64(128 * mib); grown > limit { // below clients x 7 MB: no per-client copy
		t.Errorf("peak heap in use grew %.1f MB; want at most %.1f MB", float64(grown)/mib, float64(limit)/mib)
	}
	if p99 > 20*time.Second {
		t.Errorf("p99 %v; want under 20s", p99)
	}
}

// TestRendersFollowSnapshots: a cached render is served while its page is
// fresh, and replaced when the page is refetched, on its TTL or when a
// download finds a file the page lacks; /simple/ likewise, stale when the
// upstream fails.
func TestRendersFollowSnapshots(t *testing.T) {
	up := pypitest.NewServer(t)
	addWheel(up, "demo", "1.0", nil)
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	tp := newTestProxy(t, up, "", func(o *Options) {
		o.IndexTTL = time.Minute
		o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	files := func(want int, wantCache gate.CacheState) {
		t.Helper()
		resp, body := tp.get("/simple/demo/", "Accept", pipAccept)
		if n := len(parseJSONPage(t, body, tp.http.URL+"/simple/demo/").Files); n != want || resp.Header.Get(headerCache) != string(wantCache) {
			t.Errorf("page: %d files, %s %q; want %d, %q", n, headerCache, resp.Header.Get(headerCache), want, wantCache)
		}
	}
	projects := func(want int, wantCache gate.CacheState) {
		t.Helper()
		resp, body := tp.get("/simple/", "Accept", pipAccept)
		l, err := pypi.ParseProjectListJSON(body)
		if err != nil || len(l.Projects) != want || resp.Header.Get(headerCache) != string(wantCache) {
			t.Errorf("list: %v, %d projects, %s %q; want %d, %q", err, len(l.Projects), headerCache, resp.Header.Get(headerCache), want, wantCache)
		}
	}
	files(1, gate.CacheMiss)
	files(1, gate.CacheHit)
	projects(1, gate.CacheMiss)
	projects(1, gate.CacheHit)
	addWheel(up, "demo", "2.0", nil)
	addWheel(up, "other", "1.0", nil)
	files(1, gate.CacheHit) // fresh: the render is served as is
	projects(1, gate.CacheHit)
	if n := up.Hits("/simple/demo/"); n != 1 {
		t.Errorf("upstream page fetched %d times within its TTL; want 1", n)
	}

	now.Add(int64(time.Minute))
	files(2, gate.CacheMiss)
	projects(2, gate.CacheMiss)

	// A download of a file the page lacks refetches the page: the next
	// view within the TTL shows the new snapshot.
	d := addWheel(up, "demo", "3.0", nil)
	if resp, _ := tp.get("/files/demo/" + d.Filename); resp.StatusCode != 200 {
		t.Fatalf("new file = %d", resp.StatusCode)
	}
	files(3, gate.CacheHit)

	up.SetFault("/simple/", pypitest.Fault{Status: 503})
	now.Add(int64(time.Minute))
	files(3, gate.CacheStale)
	renders := tp.srv.gate.Renders()
	files(3, gate.CacheStale) // retried, still failing: the stale page is not rendered again
	if n := tp.srv.gate.Renders() - renders; n != 0 {
		t.Errorf("the same stale page rendered %d more times", n)
	}
	projects(2, gate.CacheStale)
	projects(2, gate.CacheStale) // retried, still failing: still the last good list
	up.ClearFaults()
	projects(2, gate.CacheMiss)
}
