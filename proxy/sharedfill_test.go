package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/pipgate/pipgate/pypi/pypitest"
)

// fakeShared is an in-process shared store: objects by sha256, as stored
// (possibly not matching their name), and what the fill told it.
type fakeShared struct {
	mu       sync.Mutex
	objects  map[string][]byte
	breakAt  map[string]int  // sha -> body bytes after which a read fails
	noLength map[string]bool // sha -> answered without a Content-Length (size -1)
	rejected map[string]string
	uploads  []string
	gets     int
}

func newFakeShared() *fakeShared {
	return &fakeShared{objects: map[string][]byte{}, breakAt: map[string]int{}, noLength: map[string]bool{}, rejected: map[string]string{}}
}

var errFakeBroken = errors.New("fake shared store: connection reset")

type brokenReader struct {
	r   io.Reader
	n   int
	err error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, b.err
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= n
	return n, err
}

func (f *fakeShared) Get(_ context.Context, sha string) (io.ReadCloser, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	obj, ok := f.objects[sha]
	if !ok {
		return nil, 0, errors.New("fake shared store: not found")
	}
	var r io.Reader = bytes.NewReader(obj)
	if at, ok := f.breakAt[sha]; ok {
		r = &brokenReader{r: r, n: at, err: errFakeBroken}
	}
	if f.noLength[sha] {
		return io.NopCloser(r), -1, nil
	}
	return io.NopCloser(r), int64(len(obj)), nil
}

func (f *fakeShared) Rejected(sha, reason, _ string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejected[sha] = reason
}

func (f *fakeShared) Upload(sha string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uploads = append(f.uploads, sha)
}

func (f *fakeShared) Health() (bool, string) { return true, "shared store fake: up" }

func (f *fakeShared) state() (rejected map[string]string, uploads []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rejected, append([]string(nil), f.uploads...)
}

// TestSharedStoreFill: a file in the shared store is served from it and
// not fetched from the upstream; an object that does not match (other
// bytes of the same size, a truncated one, a body that breaks off) is never
// what the client receives, whether it is checked before the status line
// or streamed: the client gets the upstream's bytes, complete, the object
// is reported (not the broken body: that is the store's failure, not the
// object's), and the upstream blob is uploaded.
func TestSharedStoreFill(t *testing.T) {
	t.Parallel()
	up := pypitest.NewServer(t)
	sh := newFakeShared()
	type tc struct {
		name    string
		size    int
		object  func(good []byte) []byte // nil: not in the store
		breakAt int
		noLen   bool
		reject  string // the reason reported; "" none
		fromUp  bool
	}
	cases := []tc{
		{name: "hit", size: 100 << 10, object: bytes.Clone},
		{name: "hit-streamed", size: 9 << 20, object: bytes.Clone},
		{name: "missing", size: 100 << 10, fromUp: true},
		{name: "tampered", size: 100 << 10, object: flipLast, reject: "digest", fromUp: true},
		{name: "tampered-streamed", size: 9 << 20, object: flipLast, reject: "digest", fromUp: true},
		{name: "truncated", size: 100 << 10, object: func(b []byte) []byte { return bytes.Clone(b[:len(b)-1]) }, reject: "size", fromUp: true},
		{name: "longer", size: 100 << 10, object: func(b []byte) []byte { return append(bytes.Clone(b), 0) }, reject: "size", fromUp: true},
		{name: "broken-body", size: 9 << 20, object: bytes.Clone, breakAt: 5 << 20, fromUp: true},
		{name: "no-length", size: 100 << 10, object: bytes.Clone, noLen: true},
		{name: "no-length-longer", size: 100 << 10, object: func(b []byte) []byte { return append(bytes.Clone(b), 0) }, noLen: true, reject: "size", fromUp: true},
	}
	shas := map[string]string{}
	contents := map[string][]byte{}
	for _, c := range cases {
		content := make([]byte, c.size)
		if _, err := rand.Read(content); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		sha := hex.EncodeToString(sum[:])
		shas[c.name], contents[c.name] = sha, content
		up.AddDist("p"+c.name, pypitest.Dist{Filename: pypitest.WheelFilename("p"+c.name, "1.0"), Content: content})
		if c.object != nil {
			sh.objects[sha] = c.object(content)
		}
		if c.breakAt > 0 {
			sh.breakAt[sha] = c.breakAt
		}
		sh.noLength[sha] = c.noLen
	}
	tp := newTestProxy(t, up, "", func(o *Options) { o.Shared = sh })
	if o := fetch(t, plainClient, http.MethodGet, tp.http.URL+"/readyz"); o.status != http.StatusOK || !bytes.Contains(o.body, []byte("shared store fake: up\n")) {
		t.Errorf("/readyz: %d %q; want 200 with the shared store's line", o.status, o.body)
	}
	if o := fetch(t, plainClient, http.MethodGet, tp.http.URL+"/-/status", "Accept", "application/json"); !bytes.Contains(o.body, []byte(`"shared_store": "shared store fake: up"`)) {
		t.Errorf("/-/status JSON has no shared_store: %s", o.body)
	}
	if o := fetch(t, plainClient, http.MethodGet, tp.http.URL+"/-/status"); !bytes.Contains(o.body, []byte(`id="shared-store" class="muted">shared store fake: up`)) {
		t.Errorf("/-/status HTML has no shared store line")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			project, fn := "p"+c.name, pypitest.WheelFilename("p"+c.name, "1.0")
			o := fetch(t, plainClient, http.MethodGet, tp.http.URL+"/files/"+project+"/"+fn)
			if o.status != http.StatusOK || !o.complete || o.sum != shas[c.name] {
				t.Fatalf("GET: %d, complete %v, %d bytes, sha256 %s; want 200 and the file whole (%s)", o.status, o.complete, o.n, o.sum, shas[c.name])
			}
			hits := up.Hits("/files/" + shas[c.name] + "/" + fn)
			if c.fromUp != (hits == 1) || hits > 1 {
				t.Errorf("upstream fetches %d; want from the upstream: %v", hits, c.fromUp)
			}
			rejected, uploads := sh.state()
			if rejected[shas[c.name]] != c.reject {
				t.Errorf("reported %q; want %q", rejected[shas[c.name]], c.reject)
			}
			uploaded := slices.Contains(uploads, shas[c.name])
			if uploaded != c.fromUp {
				t.Errorf("uploaded %v; want %v (after an upstream fill only)", uploaded, c.fromUp)
			}
			// The committed local blob is the real file: a second GET is a
			// local hit with the same bytes.
			if o := fetch(t, plainClient, http.MethodGet, tp.http.URL+"/files/"+project+"/"+fn); o.status != http.StatusOK || o.sum != shas[c.name] {
				t.Errorf("second GET: %d, sha256 %s", o.status, o.sum)
			}
			if n := up.Hits("/files/" + shas[c.name] + "/" + fn); n != hits {
				t.Errorf("the second GET went to the upstream")
			}
		})
	}
}

func flipLast(b []byte) []byte {
	b = bytes.Clone(b)
	b[len(b)-1] ^= 1
	return b
}
