package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pipgate/pipgate/internal/s3test"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestSharedStoreScale fetches M files through N replicas (serve
// processes, one after the other) on one bucket of a real S3 server, then
// through N replicas without a shared store, and holds the upstream file
// fetches to M and N×M. It logs the hit throughput of the second replica
// reading every file from the bucket (local misses) and then again from its
// local disk, in the same run. Small by default; PIPGATE_SCALE_FILES,
// PIPGATE_SCALE_FILE_KB and PIPGATE_SCALE_REPLICAS scale it for the README's
// figures (go test -run TestSharedStoreScale -v ./cmd/pipgate).
func TestSharedStoreScale(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	env := func(name string, def int) int {
		if s := os.Getenv(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q: want a positive integer", name, s)
			}
			return n
		}
		return def
	}
	m, kb, n := env("PIPGATE_SCALE_FILES", 8), env("PIPGATE_SCALE_FILE_KB", 256), env("PIPGATE_SCALE_REPLICAS", 3)
	bucket := s3test.Start(t)
	up := pypitest.NewServer(t)
	type file struct{ project, name string }
	var files []file
	for i := range m {
		content := make([]byte, kb<<10)
		if _, err := rand.Read(content); err != nil {
			t.Fatal(err)
		}
		project := fmt.Sprintf("scale%d", i)
		fn := pypitest.WheelFilename(project, "1.0")
		up.AddDist(project, pypitest.Dist{Filename: fn, Content: content})
		files = append(files, file{project, fn})
	}
	dir := t.TempDir()
	root := provenancetest.New(t).WriteTrustedRoot(dir)
	replica := func(name string, shared bool) *proc {
		cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\naudit_log: \"\"\nupstream:\n  url: %s\ntrust:\n  trusted_root: %s\n",
			filepath.Join(dir, name), up.URL(), root)
		if shared {
			cfg += fmt.Sprintf("cache:\n  shared:\n    s3: {endpoint: %q, bucket: %s, prefix: scale/, path_style: true}\n", bucket.Endpoint, bucket.Bucket)
		}
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return startPipgateEnv(t, []string{"--config", path}, "", false, nil, bucket.Env())
	}
	// fetchAll gets every file and returns the bytes and the time taken.
	fetchAll := func(p *proc) (int64, time.Duration) {
		t.Helper()
		start := time.Now()
		var total int64
		for _, f := range files {
			resp, err := http.Get(p.base + "/files/" + f.project + "/" + f.name)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || n != int64(kb<<10) {
				t.Fatalf("%s: %d, %d bytes, %v", f.name, resp.StatusCode, n, err)
			}
			total += n
		}
		return total, time.Since(start)
	}
	mbps := func(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }
	waitUploads := func(p *proc) {
		deadline := time.Now().Add(time.Minute)
		for p.metric(t, "pipgate_shared_uploads_total", `result="stored"`) < float64(m) {
			if time.Now().After(deadline) {
				t.Fatalf("uploads stored %v after a minute; want %d", p.metric(t, "pipgate_shared_uploads_total", `result="stored"`), m)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// With the shared store: the first replica fills from the upstream
	// and uploads; every other reads the bucket.
	var bucketRate, localRate float64
	for i := range n {
		p := replica(fmt.Sprintf("shared%d", i), true)
		if i == 1 { // pages first, so that the timed run is the files alone
			for _, f := range files {
				resp, err := http.Get(p.base + "/simple/" + f.project + "/")
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		bytes, took := fetchAll(p)
		switch i {
		case 0:
			waitUploads(p)
		case 1:
			bucketRate = mbps(bytes, took)
			bytes, took = fetchAll(p) // the same files, now on its local disk
			localRate = mbps(bytes, took)
		}
	}
	withShared := up.Hits("/files/")
	if withShared != m {
		t.Errorf("with a shared store, %d replicas × %d files made %d upstream file fetches; want %d", n, m, withShared, m)
	}
	for i := range n {
		fetchAll(replica(fmt.Sprintf("alone%d", i), false))
	}
	without := up.Hits("/files/") - withShared
	if without != n*m {
		t.Errorf("without a shared store, %d replicas × %d files made %d upstream file fetches; want %d", n, m, without, n*m)
	}
	t.Logf("%d replicas × %d files of %d KiB: upstream file fetches %d with the shared store, %d without", n, m, kb, withShared, without)
	t.Logf("hits on replica 2 (sequential GETs): from the bucket %.1f MiB/s, from local disk %.1f MiB/s (local/bucket %.1fx)",
		bucketRate, localRate, localRate/bucketRate)
}
