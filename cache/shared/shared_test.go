package shared

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/internal/s3test"
)

// blobs is a local blob store for Options.Open.
type blobs struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (b *blobs) add(data []byte) string {
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string][]byte{}
	}
	b.m[sha] = data
	return sha
}

func (b *blobs) open(sha string) (io.ReaderAt, int64, func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.m[sha]
	if !ok {
		return nil, 0, nil, errors.New("no such blob")
	}
	return bytes.NewReader(data), int64(len(data)), func() {}, nil
}

type fixture struct {
	srv   *s3test.Server
	store *Store
	reg   *prometheus.Registry
	local *blobs
}

func newFixture(t *testing.T, srv *s3test.Server, tune func(*Options)) *fixture {
	t.Helper()
	f := &fixture{srv: srv, reg: prometheus.NewRegistry(), local: &blobs{}}
	opts := Options{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: "team/pipgate", PathStyle: true,
		Credentials: srv.Credentials(), Open: f.local.open, Registerer: f.reg,
	}
	if tune != nil {
		tune(&opts)
	}
	st, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	f.store = st
	return f
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// waitUploads waits until no upload is queued or running.
func (f *fixture) waitUploads(t *testing.T) {
	t.Helper()
	for {
		f.store.mu.Lock()
		n := len(f.store.pending)
		f.store.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) get(t *testing.T, sha string) ([]byte, error) {
	t.Helper()
	body, size, err := f.store.Get(context.Background(), sha)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != size {
		t.Fatalf("Get returned size %d for %d bytes", size, len(data))
	}
	return data, nil
}

func counter(t *testing.T, c *prometheus.CounterVec, label string) float64 {
	t.Helper()
	return testutil.ToFloat64(c.WithLabelValues(label))
}

// TestRoundTrip: a miss, an upload under <prefix>blobs/sha256/ab/<sha>, a
// hit with the same bytes, and a second upload that finds it stored.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, s3test.Start(t), nil)
	data := randomBytes(t, 100<<10)
	sha := f.local.add(data)
	if _, err := f.get(t, sha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before upload: %v, want ErrNotFound", err)
	}
	f.store.Upload(sha)
	f.waitUploads(t)
	if got := counter(t, f.store.m.uploads, "stored"); got != 1 {
		t.Fatalf("uploads stored = %v, want 1", got)
	}
	// The key layout is the documented one.
	key := "team/pipgate/blobs/sha256/" + sha[:2] + "/" + sha
	if _, err := f.srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &f.srv.Bucket, Key: &key}); err != nil {
		t.Fatalf("object %s: %v", key, err)
	}
	got, err := f.get(t, sha)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after upload: %d bytes, %v; want the %d uploaded", len(got), err, len(data))
	}
	f.store.Upload(sha)
	f.waitUploads(t)
	if got := counter(t, f.store.m.uploads, "exists"); got != 1 {
		t.Fatalf("uploads exists = %v, want 1", got)
	}
	if hits, misses := counter(t, f.store.m.lookups, "hit"), counter(t, f.store.m.lookups, "miss"); hits != 1 || misses != 1 {
		t.Fatalf("lookups hit %v miss %v, want 1 and 1", hits, misses)
	}
	if _, _, err := f.store.Get(context.Background(), "../../etc/passwd"); err == nil {
		t.Fatal("Get of an invalid sha256 succeeded")
	}
}

// TestConditionalWrites: a second write of an existing key, plain or
// multipart, is refused by the server (If-None-Match: *) and read as a
// conflict, and the object keeps the first writer's bytes.
func TestConditionalWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t, s3test.Start(t), func(o *Options) { o.PartSize = 5 << 20 })
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
		put  func(ctx context.Context, sha string, r io.ReaderAt, size int64, replace bool) error
	}{
		{"single", 64 << 10, f.store.put},
		{"multipart", 11 << 20, f.store.putMultipart}, // three parts
	} {
		data := randomBytes(t, tc.size)
		sha := f.local.add(data)
		if err := tc.put(ctx, sha, bytes.NewReader(data), int64(len(data)), false); err != nil {
			t.Fatalf("%s: first write: %v", tc.name, err)
		}
		other := randomBytes(t, tc.size)
		err := tc.put(ctx, sha, bytes.NewReader(other), int64(len(other)), false)
		if err == nil || !isConflict(err) {
			t.Fatalf("%s: second conditional write: %v, want a 412/409 conflict", tc.name, err)
		}
		got, err := f.get(t, sha)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: object after the refused write: %d bytes, %v; want the first writer's", tc.name, len(got), err)
		}
	}
}

// TestMultipartUpload: a blob above MultipartAbove goes up in parts through
// the background uploader and reads back whole.
func TestMultipartUpload(t *testing.T) {
	t.Parallel()
	f := newFixture(t, s3test.Start(t), func(o *Options) { o.MultipartAbove, o.PartSize = 6<<20, 5<<20 })
	data := randomBytes(t, 12<<20+123)
	sha := f.local.add(data)
	f.store.Upload(sha)
	f.waitUploads(t)
	if got := counter(t, f.store.m.uploads, "stored"); got != 1 {
		t.Fatalf("uploads stored = %v, want 1 (errors %v)", got, counter(t, f.store.m.uploads, "error"))
	}
	got, err := f.get(t, sha)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("multipart object: %d bytes, %v; want %d", len(got), err, len(data))
	}
}

// TestConcurrentReplicas: three replicas upload the same blob at once;
// exactly one stores it, the others find it there or lose the conditional
// write, and the bucket holds the blob's bytes.
func TestConcurrentReplicas(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	data := randomBytes(t, 256<<10)
	var fs []*fixture
	var sha string
	for range 3 {
		f := newFixture(t, srv, nil)
		sha = f.local.add(data)
		fs = append(fs, f)
	}
	for _, f := range fs {
		f.store.Upload(sha)
	}
	var stored, other float64
	for _, f := range fs {
		f.waitUploads(t)
		stored += counter(t, f.store.m.uploads, "stored")
		other += counter(t, f.store.m.uploads, "exists") + counter(t, f.store.m.uploads, "conflict")
	}
	if stored != 1 || other != 2 {
		t.Fatalf("stored %v, exists+conflict %v; want 1 and 2", stored, other)
	}
	got, err := fs[0].get(t, sha)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object: %v", err)
	}
}

// TestRejectedReplaced: an object changed in the bucket, once reported
// with Rejected, is overwritten by the next upload of the verified blob
// (which a conditional write would refuse).
func TestRejectedReplaced(t *testing.T) {
	t.Parallel()
	f := newFixture(t, s3test.Start(t), nil)
	data := randomBytes(t, 32<<10)
	sha := f.local.add(data)
	bad := append(bytes.Clone(data[:len(data)-1]), data[len(data)-1]^1)
	key := f.store.Key(sha)
	if _, err := f.srv.Client().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &f.srv.Bucket, Key: &key, Body: bytes.NewReader(bad)}); err != nil {
		t.Fatal(err)
	}
	f.store.Upload(sha)
	f.waitUploads(t)
	if got := counter(t, f.store.m.uploads, "exists"); got != 1 {
		t.Fatalf("upload of a blob whose key exists: exists = %v, want 1", got)
	}
	f.store.Rejected(sha, "digest", "test")
	f.store.Upload(sha)
	f.waitUploads(t)
	if got := counter(t, f.store.m.uploads, "replaced"); got != 1 {
		t.Fatalf("uploads replaced = %v, want 1", got)
	}
	if got := counter(t, f.store.m.rejected, "digest"); got != 1 {
		t.Fatalf("rejected = %v, want 1", got)
	}
	got, err := f.get(t, sha)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object after replacement: %v (equal %v)", err, bytes.Equal(got, data))
	}
}

// TestBreaker: with the server killed, lookups fail until the breaker
// opens, then are skipped without a request; Health says so; once the
// server is back, the prober closes the breaker and lookups go through.
func TestBreaker(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	f := newFixture(t, srv, func(o *Options) { o.Failures, o.Cooldown = 2, 20*time.Millisecond })
	sha := f.local.add([]byte("blob"))
	if up, detail := f.store.Health(); !up {
		t.Fatalf("Health before any failure: down (%s)", detail)
	}
	srv.Kill()
	for i := range 2 {
		if _, err := f.get(t, sha); err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrSkipped) {
			t.Fatalf("Get %d with the server down: %v, want a request error", i, err)
		}
	}
	if _, err := f.get(t, sha); !errors.Is(err, ErrSkipped) {
		t.Fatalf("Get after 2 failures: %v, want ErrSkipped", err)
	}
	up, detail := f.store.Health()
	if up || !strings.Contains(detail, "down since") || !strings.Contains(detail, srv.Endpoint) {
		t.Fatalf("Health with the breaker open: %v %q", up, detail)
	}
	if got := testutil.ToFloat64(f.store.m.open); got != 1 {
		t.Fatalf("pipgate_shared_breaker_open = %v, want 1", got)
	}
	f.store.Upload(sha)
	f.waitUploads(t)
	if got := counter(t, f.store.m.uploads, "skipped"); got != 1 {
		t.Fatalf("uploads skipped = %v, want 1", got)
	}
	srv.Restart()
	for !f.store.breaker.allow() {
		time.Sleep(10 * time.Millisecond)
	}
	if up, detail := f.store.Health(); !up {
		t.Fatalf("Health after the prober closed the breaker: %s", detail)
	}
	if _, err := f.get(t, sha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after recovery: %v, want ErrNotFound", err)
	}
	if got := testutil.ToFloat64(f.store.m.open); got != 0 {
		t.Fatalf("pipgate_shared_breaker_open = %v, want 0", got)
	}
}

// TestStalledBody: an object whose body stops flowing fails the read after
// Timeout (not the client's whole wait) and counts towards the breaker; a
// server that never sends headers fails the same way. (A fake server: a
// real one does not stall on demand.)
func TestStalledBody(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "noheaders") || strings.HasSuffix(r.URL.Path, strings.Repeat("b", 64)) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	reg := prometheus.NewRegistry()
	st, err := New(context.Background(), Options{
		Endpoint: srv.URL, Bucket: "b", PathStyle: true, Region: "us-east-1",
		Credentials: (&s3test.Server{AccessKey: "a", SecretKey: "s"}).Credentials(),
		Open:        (&blobs{}).open, Registerer: reg, Timeout: 200 * time.Millisecond, Failures: 2, Cooldown: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	body, _, err := st.Get(context.Background(), strings.Repeat("a", 64))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(body)
	body.Close()
	if !errors.Is(err, errStalled) {
		t.Fatalf("reading a stalled body: %v, want errStalled", err)
	}
	if _, _, err := st.Get(context.Background(), strings.Repeat("b", 64)); err == nil {
		t.Fatal("Get from a server that sends no headers succeeded")
	}
	if _, _, err := st.Get(context.Background(), strings.Repeat("c", 64)); !errors.Is(err, ErrSkipped) {
		t.Fatalf("third Get: %v, want ErrSkipped after two failures", err)
	}
	if got := counter(t, st.m.errors, "get"); got != 2 {
		t.Fatalf("errors{op=get} = %v, want 2", got)
	}
}

// TestCallerCancelIsNotAFailure: a lookup whose client left says nothing
// about the bucket.
func TestCallerCancelIsNotAFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, s3test.Start(t), func(o *Options) { o.Failures = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.store.Get(ctx, strings.Repeat("d", 64)); err == nil {
		t.Fatal("Get on a canceled context succeeded")
	}
	if !f.store.breaker.allow() {
		t.Fatal("a canceled lookup opened the breaker")
	}
	// A client that leaves in the middle of a body.
	data := randomBytes(t, 4<<20)
	sha := f.local.add(data)
	f.store.Upload(sha)
	f.waitUploads(t)
	ctx, cancel = context.WithCancel(context.Background())
	body, _, err := f.store.Get(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(body)
	body.Close()
	if err == nil {
		t.Fatal("reading on after the caller's context ended succeeded")
	}
	if !f.store.breaker.allow() || counter(t, f.store.m.errors, "get") != 0 {
		t.Fatalf("a body whose caller left counted as a bucket failure (errors %v)", counter(t, f.store.m.errors, "get"))
	}
}

func ExampleStore_Key() {
	st := &Store{opts: Options{Prefix: "pipgate/"}}
	fmt.Println(st.Key("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"))
	// Output: pipgate/blobs/sha256/01/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
}

// TestCloseDrainsUploads: a replica stopped right after its fills still
// shares them: Close lets the queued uploads finish.
func TestCloseDrainsUploads(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	f := newFixture(t, srv, func(o *Options) { o.Uploaders = 1 })
	var shas []string
	for range 6 {
		sha := f.local.add(randomBytes(t, 64<<10))
		shas = append(shas, sha)
		f.store.Upload(sha)
	}
	f.store.Close()
	for _, sha := range shas {
		key := f.store.Key(sha)
		if _, err := srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &srv.Bucket, Key: &key}); err != nil {
			t.Errorf("%s after Close: %v", key, err)
		}
	}
	f.store.Upload(shas[0]) // after Close: ignored, no panic
}

// TestConcurrentMissWaitsForTheFiller: two replicas miss the same blob;
// the first claims its fill, the second waits for the first one's upload
// and reads it from the bucket instead of the upstream. A claim whose
// upload never comes costs the waiter at most Wait; a replica never waits
// for its own claim.
func TestConcurrentMissWaitsForTheFiller(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	a := newFixture(t, srv, nil)
	b := newFixture(t, srv, func(o *Options) { o.Wait = time.Hour }) // the test decides when the upload comes
	data := randomBytes(t, 200<<10)
	sha := a.local.add(data)
	if _, err := a.get(t, sha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("first replica: %v, want ErrNotFound (it fills)", err)
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		body, _, err := b.store.Get(context.Background(), sha)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer body.Close()
		got, err := io.ReadAll(body)
		done <- result{got, err}
	}()
	for testutil.ToFloat64(b.store.m.waits) < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	a.store.Upload(sha)
	a.waitUploads(t)
	r := <-done
	if r.err != nil || !bytes.Equal(r.data, data) {
		t.Fatalf("second replica: %d bytes, %v; want the first one's upload", len(r.data), r.err)
	}
	if got := counter(t, b.store.m.lookups, "waited"); got != 1 {
		t.Errorf("lookups{result=waited} = %v, want 1", got)
	}
	// The filler removed its claim once the blob was in: the prefix holds
	// blobs alone.
	claim := a.store.claimKey(sha)
	if _, err := srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &srv.Bucket, Key: &claim}); !isNotFound(err) {
		t.Errorf("claim %s after the upload: %v, want 404", claim, err)
	}
	// The first replica's own claim: no wait.
	other := randomBytes(t, 1<<10)
	osha := a.local.add(other)
	for range 2 {
		if _, err := a.get(t, osha); !errors.Is(err, ErrNotFound) {
			t.Fatalf("own claim: %v, want ErrNotFound", err)
		}
	}
	if got := testutil.ToFloat64(a.store.m.waits); got != 0 {
		t.Errorf("the claiming replica waited %v times for itself", got)
	}
	// A claim whose upload never comes: the waiter gives up after Wait.
	c := newFixture(t, srv, func(o *Options) { o.Wait = 200 * time.Millisecond })
	if _, err := c.get(t, osha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("waiting for an upload that never comes: %v, want ErrNotFound", err)
	}
	if got := testutil.ToFloat64(c.store.m.waits); got != 1 {
		t.Errorf("waits = %v, want 1", got)
	}
}
