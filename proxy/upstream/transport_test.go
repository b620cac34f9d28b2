package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestNoEnvironmentProxy shows that the default transport ignores
// HTTP(S)_PROXY: with both pointing at a dead address, a request for a
// non-loopback name (which Go would otherwise proxy) still dials the
// upstream itself.
func TestNoEnvironmentProxy(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	t.Setenv("NO_PROXY", "")
	srv := pypitest.NewServer(t)
	srv.AddDist("foo", pypitest.Dist{Filename: "foo-1.0.tar.gz", Content: []byte("sdist")})
	addr := srv.URL()[len("http://") : len(srv.URL())-1]

	c, err := New(Options{URL: "http://pypi.test/", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("default transport is %T; want *http.Transport", c.http.Transport)
	}
	if tr.Proxy != nil {
		t.Fatal("default transport has a Proxy function; want nil")
	}
	// Route the fake name to the fake server and record every dial.
	var mu sync.Mutex
	var dialed []string
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, a)
		mu.Unlock()
		if a == "pypi.test:80" {
			a = addr
		}
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}
	b, err := c.Open(context.Background(), "http://pypi.test/files/"+sha256hex("sdist")+"/foo-1.0.tar.gz", KindFile)
	if err != nil {
		t.Fatalf("Open with a dead environment proxy: %v", err)
	}
	got, err := io.ReadAll(b)
	b.Close()
	if err != nil || string(got) != "sdist" {
		t.Errorf("got %q, %v; want %q", got, err, "sdist")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialed) != 1 || dialed[0] != "pypi.test:80" {
		t.Errorf("dialed %q; want only the upstream pypi.test:80", dialed)
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
