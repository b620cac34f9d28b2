package proxy

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestCacheLimitNeverNotFound: with cache.max_size far below what is asked
// for at once (GET, HEAD and Range requests of several files, each file
// larger than half the limit), every answer is the file, never a 404, and
// each file is fetched from the upstream once. The upstream holds every
// body until all requests have joined a fill, so the fills commit together
// and each commit would evict the others' blobs before their waiters open
// them, if the fills did not pin them.
func TestCacheLimitNeverNotFound(t *testing.T) {
	t.Parallel() // after the sequential tests (the heap measurements among them), beside the other slow ones
	for _, tc := range []struct {
		name         string
		files, size  int
		perFileEach  int // GETs, HEADs and Ranges per file
		limit        int64
		wantOverflow bool
	}{
		{name: "four 5MiB files, 8MiB limit", files: 4, size: 5 << 20, perFileEach: 10, limit: 8 << 20, wantOverflow: true},
		// Forty files at a quarter of the size: the same ratio to the limit
		// (all below CheckFirstMax: every GET waits for the check).
		{name: "forty 512KiB files, 2MiB limit", files: 40, size: 512 << 10, perFileEach: 2, limit: 2 << 20, wantOverflow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			store, err := cache.Open(cache.Options{Dir: t.TempDir(), MaxBlobBytes: tc.limit, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			up := pypitest.NewServer(t)
			// The upstream waits for every request to arrive: no timeout
			// runs out meanwhile, however slow the machine.
			client, err := upstream.New(upstream.Options{URL: up.URL(), Timeout: 10 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			tp := newTestProxy(t, up, "", func(o *Options) {
				o.EagerReleases, o.Store, o.Registerer, o.Upstream = 0, store, reg, upstream.Single(client)
				o.FileFetchTimeout, o.CheckWait = 10*time.Minute, 10*time.Minute
			})

			type file struct{ url, sum string }
			files := make([]file, tc.files)
			for i := range files {
				body := content(tc.size, fmt.Sprint("pressure", i))
				name := fmt.Sprintf("big%d", i)
				d := signedDist(t, up, tp, name, "1.0", body, nil)
				files[i] = file{url: tp.http.URL + "/files/" + name + "/" + d.Filename, sum: sha(body)}
				// The page first, so that every file request below finds it.
				if o := fetch(t, plainClient, "GET", tp.http.URL+"/simple/"+name+"/"); o.status != 200 {
					t.Fatalf("page %s: %v", name, o)
				}
			}
			gate := make(chan struct{})
			up.SetFault("/files/", pypitest.Fault{Gate: gate})
			requests := tc.files * 3 * tc.perFileEach
			var joins atomic.Int64
			allJoined := make(chan struct{})
			joined := func(string) {
				if joins.Add(1) == int64(requests) {
					close(allJoined)
				}
			}
			tp.fillJoined.Store(&joined)

			type answer struct {
				kind, url string
				o         outcome
			}
			answers := make(chan answer, requests)
			// Requests wait for the gate: no client timeout runs meanwhile.
			patient := &http.Client{Timeout: 10 * time.Minute}
			var wg sync.WaitGroup
			for _, f := range files {
				for range tc.perFileEach {
					for _, kind := range []string{"GET", "HEAD", "Range"} {
						wg.Go(func() {
							var o outcome
							switch kind {
							case "Range":
								o = fetch(t, patient, "GET", f.url, "Range", "bytes=1000-1999")
							default:
								o = fetch(t, patient, kind, f.url)
							}
							answers <- answer{kind, f.url, o}
						})
					}
				}
			}
			// Every request is waiting on a fill before any body goes out.
			<-allJoined
			close(gate)
			wg.Wait()
			close(answers)

			sums := map[string]string{}
			for _, f := range files {
				sums[f.url] = f.sum
			}
			statuses := map[int]int{}
			bad := 0
			for a := range answers {
				o := a.o
				statuses[o.status]++
				ok := false
				switch a.kind {
				case "HEAD":
					ok = o.status == http.StatusOK && o.header.Get("Content-Length") == fmt.Sprint(tc.size)
				case "Range":
					ok = o.status == http.StatusPartialContent && o.complete && o.n == 1000
				default:
					ok = o.delivered() && o.n == int64(tc.size) && o.sum == sums[a.url]
				}
				if !ok {
					bad++
					if bad <= 5 {
						t.Errorf("%s %s: %v", a.kind, a.url, o)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d answers were not the file (statuses %v)", bad, requests, statuses)
			}
			if n := up.Hits("/files/"); n != tc.files {
				t.Errorf("upstream file fetches = %d; want %d, one per file", n, tc.files)
			}
			if tc.wantOverflow {
				if n := gathered(t, reg, "pipgate_cache_over_limit_total"); n == 0 {
					t.Errorf("pipgate_cache_over_limit_total = 0; the pinned blobs exceed the limit")
				}
			}
			// The pins are gone once every handler is done: the store
			// goes back under its limit at the next commit or close.
		})
	}
}

// gathered returns the value of the unlabelled counter or gauge name.
func gathered(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s not gathered", name)
	return 0
}
