package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipgate/pipgate/internal/testbin"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestE2EServeFromFlags runs pipgate with no config file at all, in front
// of the fake upstream given as a pip-style .../simple/ URL, and installs
// through it with real pip.
func TestE2EServeFromFlags(t *testing.T) {
	t.Parallel() // its own server and data dir: runs beside the other end-to-end tests
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	pip := pypitest.NewPip(t)
	up := pypitest.NewServer(t)
	fn := pypitest.WheelFilename("hello", "1.0")
	up.AddDist("hello", pypitest.Dist{Filename: fn, Content: pypitest.MakeWheel("hello", "1.0", pypitest.WheelOptions{})})
	dir := t.TempDir()
	root := provenancetest.New(t).WriteTrustedRoot(dir)
	touched := time.Now().Add(-10 * 24 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(root, touched, touched); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("version: 1\ndefaults:\n  require: none\n  action: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPipgateArgs(t, []string{"--listen", "127.0.0.1:0", "--upstream", strings.TrimSuffix(up.URL(), "/") + "/simple/",
		"--trusted-root", root, "--data-dir", filepath.Join(dir, "data"), "--policy", pol, "--config", ""}, "", false, nil)
	if !strings.Contains(p.stderr.String(), `is a simple index (the URL pip takes); using its base`) {
		t.Errorf("no log line about the normalised upstream URL:\n%s", tail(p.stderr.String(), 20))
	}
	out, err := pip.Run(context.Background(), "", "download", "--no-deps", "-d", filepath.Join(dir, "dl"),
		"--index-url", p.base+"/simple/", "hello==1.0")
	if err != nil {
		t.Fatalf("pip download through a flags-only pipgate: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "dl", fn)); err != nil {
		t.Errorf("pip did not save %s: %v\n%s", fn, err, out)
	}
	// The pinned root's age is the file's: touched 10 days ago.
	if got := p.metricTLS(t, "pipgate_trust_root_last_refresh_timestamp_seconds"); got != float64(touched.Unix()) {
		t.Errorf("pipgate_trust_root_last_refresh_timestamp_seconds = %v; want the file's mtime %d", got, touched.Unix())
	}
}

// TestE2EHTTPSAndCacheLimit serves the index over HTTPS with a size-limited
// cache: real pip with only --cert installs through it; four 3 MiB files
// under max_size 8MiB each arrive whole while the cache stays within the
// limit; 'pipgate cache stats' works while the server runs; SIGHUP swaps in
// a new certificate and keeps the old one when the new pair is broken.
func TestE2EHTTPSAndCacheLimit(t *testing.T) {
	t.Parallel() // its own server and data dir: runs beside the other end-to-end tests
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	pip := pypitest.NewPip(t)
	up := pypitest.NewServer(t)
	fn := pypitest.WheelFilename("hello", "1.0")
	up.AddDist("hello", pypitest.Dist{Filename: fn, Content: pypitest.MakeWheel("hello", "1.0", pypitest.WheelOptions{})})
	const size = 3 << 20
	var big []string
	contents := map[string][]byte{}
	for i := 1; i <= 4; i++ {
		name := fmt.Sprintf("big-%d.0.tar.gz", i)
		b := make([]byte, size)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		up.AddDist("big", pypitest.Dist{Filename: name, Content: b})
		big = append(big, name)
		contents[name] = b
	}

	dir := t.TempDir()
	ca := newTestCA(t, dir)
	certA, keyA := ca.issue(t, dir, "first", time.Now().Add(-time.Hour))
	root := provenancetest.New(t).WriteTrustedRoot(dir)
	dataDir := filepath.Join(dir, "data")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: data\nupstream:\n  url: %s\ntrust:\n  trusted_root: %s\n"+
		"audit_log: \"\"\ntls:\n  cert: server.pem\n  key: server-key.pem\n  server_name: localhost\ncache:\n  max_size: 8MiB\n", up.URL(), root)
	cfgPath := filepath.Join(dir, "pipgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	install := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	install(certA, "server.pem")
	install(keyA, "server-key.pem")
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	p := startPipgateArgs(t, []string{"--config", cfgPath}, "", false, pool)
	if !strings.HasPrefix(p.base, "https://") {
		t.Fatalf("base %s", p.base)
	}

	// pip over HTTPS with only --cert (the harness clears REQUESTS_CA_BUNDLE,
	// which would override it, and every other CA variable).
	out, err := pip.Run(context.Background(), "", "download", "--no-deps", "-d", filepath.Join(dir, "dl"),
		"--cert", ca.path, "--index-url", p.base+"/simple/", "hello==1.0")
	if err != nil {
		t.Fatalf("pip download over HTTPS with --cert: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "dl", fn)); err != nil {
		t.Errorf("pip did not save %s: %v\n%s", fn, err, out)
	}
	// Without --cert, pip refuses the certificate: the test is not passing by
	// some other trust path.
	if out, err := pip.Run(context.Background(), "", "download", "--no-deps", "-d", filepath.Join(dir, "dl2"),
		"--retries", "0", "--index-url", p.base+"/simple/", "hello==1.0"); err == nil {
		t.Errorf("pip without --cert succeeded:\n%s", out)
	}

	// Four 3 MiB files under an 8 MiB limit, each delivered whole.
	for _, name := range big {
		resp, err := p.client.Get(p.base + "/files/big/" + name)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", name, resp.Status, err)
		}
		if !bytes.Equal(body, contents[name]) {
			t.Fatalf("GET %s: %d bytes, not the upstream's %d", name, len(body), size)
		}
	}
	if n := blobBytesOnDisk(t, dataDir); n > 8<<20 {
		t.Errorf("blobs on disk after four 3 MiB fetches: %d bytes; want <= 8 MiB", n)
	}
	// A hit on an evicted file refetches it, whole.
	resp, err := p.client.Get(p.base + "/files/big/" + big[0])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if sha256.Sum256(body) != sha256.Sum256(contents[big[0]]) {
		t.Errorf("refetch of an evicted file: %d bytes, wrong content", len(body))
	}
	if n := blobBytesOnDisk(t, dataDir); n > 8<<20 {
		t.Errorf("blobs on disk: %d bytes; want <= 8 MiB", n)
	}
	if got := p.metricTLS(t, "pipgate_cache_evictions_total"); got < 3 {
		t.Errorf("pipgate_cache_evictions_total = %v; want >= 3", got)
	}
	if got := p.metricTLS(t, "pipgate_cache_max_size_bytes"); got != 8<<20 {
		t.Errorf("pipgate_cache_max_size_bytes = %v; want %d", got, 8<<20)
	}

	// cache stats while the server holds the database.
	cmd := testbin.Command(t.Context(), t, pipgateBinary(t), "cache", "stats", "--json", "--data-dir", dataDir)
	statsOut, err := cmd.Output()
	if err != nil {
		t.Fatalf("pipgate cache stats while serving: %v\n%s", err, statsOut)
	}
	var st dirStats
	if err := json.Unmarshal(statsOut, &st); err != nil {
		t.Fatalf("cache stats --json: %v\n%s", err, statsOut)
	}
	if st.Source != "server" || st.MaxBlobBytes != 8<<20 || st.BlobBytes > 8<<20 || st.Blobs == 0 {
		t.Errorf("cache stats: %+v; want source server, limit 8 MiB, blobs within it", st)
	}
	// One figure: the gauge the dashboard compares with the limit is the
	// blob bytes cache stats prints.
	if got := p.metricTLS(t, "pipgate_cache_blob_bytes"); got != float64(st.BlobBytes) {
		t.Errorf("pipgate_cache_blob_bytes = %v; want cache stats' blob bytes %d", got, st.BlobBytes)
	}

	// SIGHUP: a new certificate is served; a broken one keeps it.
	certB, keyB := ca.issue(t, dir, "second", time.Now().Add(-time.Hour))
	install(certB, "server.pem")
	install(keyB, "server-key.pem")
	hupAndWait(t, p, "tls certificate loaded", 2)
	if got := servedName(t, strings.TrimPrefix(p.base, "https://"), ca); got != "second" {
		t.Errorf("after SIGHUP the server presents %q; want second", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "server.pem"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	hupAndWait(t, p, "tls certificate reload failed; keeping the old certificate", 1)
	if got := servedName(t, strings.TrimPrefix(p.base, "https://"), ca); got != "second" {
		t.Errorf("after a broken reload the server presents %q; want second", got)
	}
	// A pair no client could use keeps it too, and the log and the metric
	// say so: one for another host than tls.server_name, one for clients only.
	for i, edit := range []func(*x509.Certificate){
		func(c *x509.Certificate) { c.DNSNames, c.IPAddresses = []string{"other.example"}, nil },
		func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} },
	} {
		cert, key := ca.issueWith(t, dir, "unusable", edit)
		install(cert, "server.pem")
		install(key, "server-key.pem")
		hupAndWait(t, p, "tls certificate reload failed; keeping the old certificate", 2+i)
		if got := servedName(t, strings.TrimPrefix(p.base, "https://"), ca); got != "second" {
			t.Errorf("after an unusable reload the server presents %q; want second", got)
		}
	}
	for _, want := range []string{`certificate does not cover the server name \"localhost\"`, "its extended key usage (clientAuth) lacks serverAuth"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, tail(p.stderr.String(), 10))
		}
	}
	if got := p.metricTLS(t, "pipgate_tls_certificate_last_reload_successful"); got != 0 {
		t.Errorf("pipgate_tls_certificate_last_reload_successful = %v after a refused reload; want 0", got)
	}

	// Plain HTTP on the HTTPS port: a whole, readable 400 naming the fix.
	hostport := strings.TrimPrefix(p.base, "https://")
	plain, err := http.Get("http://" + hostport + "/simple/hello/")
	if err != nil {
		t.Fatal(err)
	}
	plainBody, _ := io.ReadAll(plain.Body)
	plain.Body.Close()
	if want := "400 this listener speaks HTTPS: use https://" + hostport + "/simple/"; plain.Status != want || !strings.Contains(string(plainBody), "https://"+hostport+"/simple/") {
		t.Errorf("plain HTTP: %q, %q; want %q", plain.Status, plainBody, want)
	}
}

// hupAndWait sends SIGHUP and waits until msg has appeared n times in the log.
func hupAndWait(t *testing.T, p *proc, msg string, n int) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !p.stderr.WaitFor(10*time.Second, func(s string) bool { return strings.Count(s, `"msg":"`+msg+`"`) >= n }) {
		t.Fatalf("no %q in the log after SIGHUP:\n%s", msg, tail(p.stderr.String(), 20))
	}
}

// metricTLS reads one unlabelled sample from /metrics with p's client.
func (p *proc) metricTLS(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := p.client.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	t.Fatalf("no sample %s in /metrics", name)
	return 0
}

// blobBytesOnDisk sums the files under DIR/blobs/sha256.
func blobBytesOnDisk(t *testing.T, dataDir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(filepath.Join(dataDir, "blobs", "sha256"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
