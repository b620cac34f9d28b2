package shared

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/internal/s3test"
)

// TestServerWithoutConditionalWrites: an S3-compatible server that answers
// If-None-Match with 501 Not Implemented (a fake: versitygw implements it)
// still works as a shared store: uploads are written unconditionally after
// the HEAD, fills are not claimed, and nothing counts as a failure.
func TestServerWithoutConditionalWrites(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	objects := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodPut:
			if r.Header.Get("If-None-Match") != "" {
				w.WriteHeader(http.StatusNotImplemented)
				_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>If-None-Match</Message></Error>`)
				return
			}
			b, _ := io.ReadAll(r.Body)
			objects[r.URL.Path] = b
			w.Header().Set("ETag", `"x"`)
		case http.MethodGet, http.MethodHead:
			b, ok := objects[r.URL.Path]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				if r.Method == http.MethodGet {
					_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code></Error>`)
				}
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			if r.Method == http.MethodGet {
				_, _ = w.Write(b)
			}
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}))
	defer srv.Close()
	local := &blobs{}
	st, err := New(context.Background(), Options{
		Endpoint: srv.URL, Bucket: "b", PathStyle: true, Region: "us-east-1",
		Credentials: (&s3test.Server{AccessKey: "a", SecretKey: "s"}).Credentials(), Open: local.open,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := []byte("a blob on a server without conditional writes")
	sha := local.add(data)
	if _, _, err := st.Get(context.Background(), sha); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before upload: %v, want ErrNotFound", err)
	}
	st.Upload(sha)
	for {
		st.mu.Lock()
		n := len(st.pending)
		st.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := counter(t, st.m.uploads, "stored"); got != 1 {
		t.Fatalf("uploads stored = %v, want 1 (error %v)", got, counter(t, st.m.uploads, "error"))
	}
	body, _, err := st.Get(context.Background(), sha)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("object %q", got)
	}
	for _, op := range errorOps {
		if n := counter(t, st.m.errors, op); n != 0 {
			t.Errorf("errors{op=%s} = %v, want 0", op, n)
		}
	}
	if testutil.ToFloat64(st.m.waits) != 0 || !st.noConditional.Load() {
		t.Errorf("waits %v, noConditional %v", testutil.ToFloat64(st.m.waits), st.noConditional.Load())
	}
}
