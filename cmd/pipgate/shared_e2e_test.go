package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipgate/pipgate/internal/s3test"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// sharedDist is one file of the shared-store scenario.
type sharedDist struct {
	project, filename string
	content           []byte
	sha               string
}

func (d sharedDist) path() string { return "/files/" + d.sha + "/" + d.filename }

// upstreamFetches counts the upstream requests for the file itself (not
// its .metadata).
func (d sharedDist) upstreamFetches(up *pypitest.Server) int {
	return up.Hits(d.path()) - up.Hits(d.path()+".metadata")
}

// TestE2ESharedStore runs three pipgate replicas (serve processes) on one
// bucket of a real S3-compatible server (versitygw), a fake upstream and
// real pip, and checks from pip's side:
//   - a file one replica fetched from the upstream is fetched from the
//     upstream by no other replica: they read it from the bucket;
//   - with the upstream refusing every file, a replica still serves the
//     files the bucket holds;
//   - two replicas asked for the same new file at once fetch it from the
//     upstream once (one claims the fill, the other waits for its upload);
//   - an object changed in the bucket is never served: the replica counts
//     it, fetches the file from the upstream, pip gets the real bytes, and
//     the object is replaced;
//   - with the S3 server killed, files are still served, /readyz stays 200
//     and says the shared store is down, and a replica started meanwhile
//     starts and serves.
func TestE2ESharedStore(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	pip := pypitest.NewPip(t)
	bucket := s3test.Start(t)
	up := pypitest.NewServer(t)
	var dists []sharedDist
	add := func(project string) sharedDist {
		fn := pypitest.WheelFilename(project, "1.0")
		content := pypitest.MakeWheel(project, "1.0", pypitest.WheelOptions{})
		up.AddDist(project, pypitest.Dist{Filename: fn, Content: content})
		sum := sha256.Sum256(content)
		d := sharedDist{project: project, filename: fn, content: content, sha: hex.EncodeToString(sum[:])}
		dists = append(dists, d)
		return d
	}
	alpha, beta, gamma := add("alpha"), add("beta"), add("gamma")
	dir := t.TempDir()
	root := provenancetest.New(t).WriteTrustedRoot(dir)
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("version: 1\ndefaults:\n  require: none\n  action: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	replica := func(name string) *proc {
		cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
upstream:
  url: %s
trust:
  trusted_root: %s
policy: %s
audit_log: ""
cache:
  shared:
    s3:
      endpoint: %s
      bucket: %s
      prefix: e2e/
      path_style: true
      timeout: 5s
      # Long enough that a loaded machine's fill still reaches the bucket
      # before a waiting replica gives up (step 4b counts upstream fetches).
      fill_wait: 60s
`, filepath.Join(dir, name), up.URL(), root, pol, bucket.Endpoint, bucket.Bucket)
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return startPipgateEnv(t, []string{"--config", path}, "", false, nil, bucket.Env())
	}
	a, b, c := replica("a"), replica("b"), replica("c")

	download := func(p *proc, ds ...sharedDist) {
		t.Helper()
		dest := t.TempDir()
		args := []string{"download", "--no-deps", "--no-cache-dir", "-d", dest, "--index-url", p.base + "/simple/"}
		for _, d := range ds {
			args = append(args, d.project+"==1.0")
		}
		out, err := pip.Run(context.Background(), "", args...)
		if err != nil {
			t.Fatalf("pip download %v through %s: %v\n%s", args[len(args)-len(ds):], p.base, err, out)
		}
		for _, d := range ds {
			got, err := os.ReadFile(filepath.Join(dest, d.filename))
			if err != nil || !bytes.Equal(got, d.content) {
				t.Fatalf("pip saved %s: %d bytes (%v); want the upstream's %d", d.filename, len(got), err, len(d.content))
			}
		}
	}
	// waitMetric polls p's series until it reaches want (uploads run in the
	// background).
	waitMetric := func(p *proc, want float64, name string, labels ...string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for p.metric(t, name, labels...) < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s%v = %v after a minute; want %v", name, labels, p.metric(t, name, labels...), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// 1. Replica a fills every file from the upstream and uploads it.
	download(a, dists...)
	for _, d := range dists {
		if n := d.upstreamFetches(up); n != 1 {
			t.Fatalf("%s fetched %d times from the upstream by replica a; want 1", d.filename, n)
		}
	}
	waitMetric(a, float64(len(dists)), "pipgate_shared_uploads_total", `result="stored"`)

	// 2. Someone changes alpha's object in the bucket.
	key := "e2e/blobs/sha256/" + alpha.sha[:2] + "/" + alpha.sha
	tampered := bytes.Clone(alpha.content)
	tampered[len(tampered)/2] ^= 0xff
	s3c := bucket.Client()
	if _, err := s3c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket.Bucket, Key: &key, Body: bytes.NewReader(tampered)}); err != nil {
		t.Fatal(err)
	}

	// 3. The upstream refuses every file: replica c, which knows the pages
	// but holds no file, serves beta and gamma from the bucket.
	for _, d := range []sharedDist{beta, gamma} {
		resp, err := http.Get(c.base + "/simple/" + d.project + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	up.SetFault("/files/", pypitest.Fault{Status: http.StatusServiceUnavailable})
	before := up.Hits("/files/")
	download(c, beta, gamma)
	if n := up.Hits("/files/") - before; n != 0 {
		t.Errorf("replica c asked the upstream for %d files; want 0 (the bucket holds them)", n)
	}
	up.ClearFaults()

	// 4. Replica b: beta and gamma from the bucket; alpha's object does not
	// match, so b fetches alpha from the upstream and replaces the object.
	download(b, dists...)
	for _, d := range []sharedDist{beta, gamma} {
		if n := d.upstreamFetches(up); n != 1 {
			t.Errorf("%s fetched %d times from the upstream across replicas; want 1", d.filename, n)
		}
	}
	if n := alpha.upstreamFetches(up); n != 2 {
		t.Errorf("alpha fetched %d times from the upstream; want 2 (a's fill, b's after the rejected object)", n)
	}
	if got := b.metric(t, "pipgate_shared_rejected_objects_total", `reason="digest"`); got != 1 {
		t.Errorf("replica b pipgate_shared_rejected_objects_total{reason=digest} = %v; want 1", got)
	}
	if got := b.metric(t, "pipgate_shared_lookups_total", `result="hit"`); got < 3 {
		t.Errorf("replica b pipgate_shared_lookups_total{result=hit} = %v; want at least 3", got)
	}
	if got, want := b.metric(t, "pipgate_served_bytes_total", `source="shared"`), float64(len(beta.content)+len(gamma.content)); got < want {
		t.Errorf("replica b pipgate_served_bytes_total{source=shared} = %v; want at least %v", got, want)
	}
	waitMetric(b, 1, "pipgate_shared_uploads_total", `result="replaced"`)
	obj, err := s3c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket.Bucket, Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if !bytes.Equal(got, alpha.content) {
		t.Error("alpha's object was not replaced with the verified bytes")
	}

	// 4b. Replicas b and c miss the same new files at the same moment: one
	// claims each fill, the other waits for its upload; the upstream is
	// asked once per file.
	same := []sharedDist{add("eta"), add("theta")}
	var wg sync.WaitGroup
	errs := make(chan string, 2)
	for _, p := range []*proc{b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"download", "--no-deps", "--no-cache-dir", "--timeout", "120", "-d", t.TempDir(), "--index-url", p.base + "/simple/", "eta==1.0", "theta==1.0"}
			if out, err := pip.Run(context.Background(), "", args...); err != nil {
				errs <- fmt.Sprintf("pip download through %s: %v\n%s", p.base, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	for _, d := range same {
		if n := d.upstreamFetches(up); n != 1 {
			t.Errorf("%s, asked of two replicas at once, fetched %d times from the upstream; want 1", d.filename, n)
		}
	}

	// 5. The S3 server dies: replica c still serves alpha (from the
	// upstream) and new files; once its breaker opens, /readyz stays 200 and
	// says why. One pip run asks for alpha first, then the new files: pip
	// fetches them in that order and download checks each file's bytes.
	bucket.Kill()
	late := []sharedDist{add("delta"), add("epsilon"), add("zeta")}
	download(c, append([]sharedDist{alpha}, late...)...)
	waitMetric(c, 1, "pipgate_shared_breaker_open")
	resp, err := http.Get(c.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "shared store") || !strings.Contains(string(body), "down") {
		t.Errorf("/readyz with the S3 server down: %d %q; want 200 naming the shared store as down", resp.StatusCode, body)
	}
	if st := c.status(t); !strings.Contains(fmt.Sprint(st), "shared store") {
		t.Errorf("/-/status says nothing of the shared store: %v", st)
	}

	// 6. A replica started while the S3 server is down starts, is ready
	// and serves (startPipgateEnv waits for /readyz 200).
	d := replica("d")
	download(d, beta)
	if !strings.Contains(d.stderr.String(), "the shared store does not answer") {
		t.Errorf("replica d did not log that the shared store does not answer:\n%s", tail(d.stderr.String(), 20))
	}
}
