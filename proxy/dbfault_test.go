package proxy

import (
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestDatabaseFaultWhileServing: pipgate.db damaged under a running server
// (every page but the meta pages overwritten) never gives a client an empty
// reply: the requests that find it are served from the upstream, the fault
// is logged and counted, /readyz says not ready until the store has moved
// the file aside and opened a fresh one, then ready, and the next requests
// are cached again.
func TestDatabaseFaultWhileServing(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	storeLogs := &pypitest.LogBuffer{}
	store, err := cache.Open(cache.Options{Dir: dir, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(storeLogs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases, o.Store, o.Registerer = 0, store, reg })
	tp.srv.SetReady(true)
	a := signedDist(t, up, tp, "alpha", "1.0", nil, nil)
	b := signedDist(t, up, tp, "beta", "1.0", nil, nil)
	if o := fetch(t, plainClient, "GET", tp.http.URL+"/files/alpha/"+a.Filename); !o.delivered() {
		t.Fatalf("before the damage: %v", o)
	}
	if o := fetch(t, plainClient, "GET", tp.http.URL+"/readyz"); o.status != http.StatusOK {
		t.Fatalf("readyz before the damage: %v", o)
	}

	f, err := os.OpenFile(filepath.Join(dir, "pipgate.db"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	buf := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // reproducible garbage, not a secret
	for off := int64(2 * 4096); off < fi.Size(); off += 4096 {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	// Pages and files never seen before: each reads the database first.
	for _, path := range []string{"/simple/beta/", "/files/beta/" + b.Filename} {
		o := fetch(t, plainClient, "GET", tp.http.URL+path)
		if o.err != nil || !o.complete || o.n == 0 {
			t.Errorf("GET %s after the damage: %v; want an answer with a body", path, o)
		}
		if o.status != http.StatusOK && (o.status != http.StatusServiceUnavailable || !strings.Contains(string(o.body), "database")) {
			t.Errorf("GET %s after the damage: %v; want the file from the upstream, or a 503 naming the database", path, o)
		}
	}
	ready := fetch(t, plainClient, "GET", tp.http.URL+"/readyz")
	if ready.status != http.StatusOK && (ready.status != http.StatusServiceUnavailable || !strings.Contains(string(ready.body), "cache database")) {
		t.Errorf("readyz while the database is replaced: %v %q", ready, ready.body)
	}
	store.Settle()
	if ready := fetch(t, plainClient, "GET", tp.http.URL+"/readyz"); ready.status != http.StatusOK {
		t.Errorf("readyz after the replacement: %v %q", ready, ready.body)
	}
	if n := gatheredLabeled(t, reg, "pipgate_cache_db_moved_aside_total", "fault"); n != 1 {
		t.Errorf("pipgate_cache_db_moved_aside_total{reason=fault} = %v; want 1", n)
	}
	if !strings.Contains(storeLogs.String(), "database fault while serving") {
		t.Error("the fault was not logged")
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "pipgate.db.fault-*")); len(aside) != 1 {
		t.Errorf("moved aside: %v; want one pipgate.db.fault-<time>", aside)
	}
	// The fresh database serves: the file is a cache hit.
	hits := up.Hits("/files/")
	for range 2 {
		if o := fetch(t, plainClient, "GET", tp.http.URL+"/files/beta/"+b.Filename); !o.delivered() {
			t.Errorf("after the replacement: %v", o)
		}
	}
	if n := up.Hits("/files/") - hits; n != 0 {
		t.Errorf("the cached file was fetched %d more times after the replacement; want a hit", n)
	}
}

// gatheredLabeled returns the counter name with one label equal to value.
func gatheredLabeled(t testing.TB, reg *prometheus.Registry, name, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{%s} not gathered", name, value)
	return 0
}
