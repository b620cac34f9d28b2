package upstream_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

const provJSON = `{"version":1,"attestation_bundles":[]}`

// fixture is a fake index with project foo-bar: a wheel with provenance
// and an sdist without.
type fixture struct {
	srv   *pypitest.Server
	c     *upstream.Client
	reg   *prometheus.Registry
	whl   []byte
	sdist []byte
}

func newFixture(t *testing.T, timeout time.Duration) *fixture {
	t.Helper()
	f := &fixture{srv: pypitest.NewServer(t), reg: prometheus.NewRegistry()}
	f.whl = pypitest.MakeWheel("foo-bar", "1.0", pypitest.WheelOptions{RequiresPython: ">=3.8"})
	f.sdist = pypitest.MakeSdist("foo-bar", "1.0")
	f.srv.AddDist("Foo.Bar", pypitest.Dist{Filename: "foo_bar-1.0-py3-none-any.whl", Content: f.whl, RequiresPython: ">=3.8", Provenance: []byte(provJSON)})
	f.srv.AddDist("Foo.Bar", pypitest.Dist{Filename: "foo_bar-1.0.tar.gz", Content: f.sdist, Yanked: true, YankedReason: "bad"})
	c, err := upstream.New(upstream.Options{URL: f.srv.URL(), Timeout: timeout, Registerer: f.reg, UserAgent: "pipgate-test"})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	return f
}

func (f *fixture) wheelURL() string { return f.srv.FileURL("foo-bar", "foo_bar-1.0-py3-none-any.whl") }
func (f *fixture) sdistURL() string { return f.srv.FileURL("foo-bar", "foo_bar-1.0.tar.gz") }

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opts upstream.Options
		want string
	}{
		{"no url", upstream.Options{}, "upstream: Options.URL is required"},
		{"relative", upstream.Options{URL: "/simple/"}, `want an absolute http(s) URL`},
		{"ftp", upstream.Options{URL: "ftp://x/"}, `want an absolute http(s) URL`},
		{"credentials", upstream.Options{URL: "https://u:p@x/"}, `without credentials`},
		{"negative timeout", upstream.Options{URL: "https://x/", Timeout: -time.Second}, "Options.Timeout: must not be negative"},
		{"bad file host", upstream.Options{URL: "https://x/", FileHosts: []string{"a/b"}}, `Options.FileHosts[0]: want a host name, got "a/b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := upstream.New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
	c, err := upstream.New(upstream.Options{URL: "https://mirror.example/pypi"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.URL(), "https://mirror.example/pypi/"; got != want {
		t.Errorf("URL() = %q; want %q", got, want)
	}
}

func TestCheckURL(t *testing.T) {
	https, err := upstream.New(upstream.Options{URL: "https://pypi.org/", FileHosts: []string{"files.pythonhosted.org", "Mirror.Example:8443"}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := upstream.New(upstream.Options{URL: "http://127.0.0.1:8080/", FileHosts: []string{"files.pythonhosted.org"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		c    *upstream.Client
		url  string
		want bool
	}{
		{https, "https://pypi.org/integrity/x/1/x-1.tar.gz/provenance", true},
		{https, "https://PYPI.org:443/simple/x/", true},
		{https, "https://files.pythonhosted.org/packages/aa/x.whl", true},
		{https, "https://files.pythonhosted.org:443/packages/aa/x.whl", true},
		{https, "https://mirror.example:8443/x.whl", true},
		{https, "https://mirror.example/x.whl", false},
		{https, "https://files.pythonhosted.org:8443/x.whl", false},
		{https, "http://files.pythonhosted.org/x.whl", false},
		{https, "http://pypi.org/simple/x/", false},
		{https, "https://evil.example/x.whl", false},
		{https, "https://pypi.org.evil.example/x.whl", false},
		{https, "https://user:pw@pypi.org/x.whl", false},
		{https, "file:///etc/passwd", false},
		{https, "/relative/x.whl", false},
		{https, "https://%zz/", false},
		{plain, "http://127.0.0.1:8080/files/x.whl", true},
		{plain, "http://127.0.0.1:8081/files/x.whl", false},
		{plain, "https://127.0.0.1:8080/files/x.whl", false},
		{plain, "http://localhost:8080/files/x.whl", false},
		{plain, "https://files.pythonhosted.org/x.whl", true},
		{plain, "http://files.pythonhosted.org/x.whl", false},
	}
	for _, tt := range tests {
		err := tt.c.CheckURL(tt.url)
		if got := err == nil; got != tt.want {
			t.Errorf("CheckURL(%q) with upstream %s = %v; want allowed %v", tt.url, tt.c.URL(), err, tt.want)
		}
		if err != nil && !errors.Is(err, upstream.ErrHostNotAllowed) {
			t.Errorf("CheckURL(%q) = %v; want ErrHostNotAllowed", tt.url, err)
		}
	}
}

func TestProject(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	for _, htmlOnly := range []bool{false, true} {
		f.srv.HTMLOnly(htmlOnly)
		for _, name := range []string{"foo-bar", "Foo.Bar"} { // the second follows PyPI's 301
			p, err := f.c.Project(context.Background(), name)
			if err != nil {
				t.Fatalf("htmlOnly=%v Project(%q): %v", htmlOnly, name, err)
			}
			if p.Name != "foo-bar" || len(p.Files) != 2 {
				t.Fatalf("htmlOnly=%v: got name %q and %d files; want foo-bar and 2", htmlOnly, p.Name, len(p.Files))
			}
			w, s := p.Files[0], p.Files[1]
			checks := []struct{ what, got, want string }{
				{"wheel filename", w.Filename, "foo_bar-1.0-py3-none-any.whl"},
				{"wheel url", w.URL, f.wheelURL()},
				{"wheel sha256", w.SHA256(), sha(f.whl)},
				{"requires-python", w.RequiresPython, ">=3.8"},
				{"provenance", w.Provenance, f.srv.ProvenanceURL("foo-bar", w.Filename)},
				{"sdist provenance", s.Provenance, ""},
				{"sdist yank reason", s.YankedReason, "bad"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("htmlOnly=%v %s: got %q; want %q", htmlOnly, c.what, c.got, c.want)
				}
			}
			if !w.CoreMetadata || w.Yanked || !s.Yanked || s.CoreMetadata {
				t.Errorf("htmlOnly=%v: got wheel metadata %v yanked %v, sdist metadata %v yanked %v; want true false false true",
					htmlOnly, w.CoreMetadata, w.Yanked, s.CoreMetadata, s.Yanked)
			}
		}
	}
	if got := f.srv.Hits("/simple/Foo.Bar/"); got != 2 {
		t.Errorf("got %d requests for the unnormalised name; want 2 (one per format)", got)
	}
}

func TestProjectList(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	f.srv.AddDist("Zed", pypitest.Dist{Filename: "zed-1.0.tar.gz", Content: []byte("z")})
	for _, htmlOnly := range []bool{false, true} {
		f.srv.HTMLOnly(htmlOnly)
		l, err := f.c.ProjectList(context.Background())
		if err != nil {
			t.Fatalf("htmlOnly=%v: %v", htmlOnly, err)
		}
		var names []string
		for _, p := range l.Projects {
			names = append(names, p.Name)
		}
		if got, want := strings.Join(names, ","), "Foo.Bar,Zed"; got != want {
			t.Errorf("htmlOnly=%v: got projects %q; want %q", htmlOnly, got, want)
		}
	}
}

func TestProjectErrors(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	f.srv.SetRawPage("text", "text/plain", []byte("hello"))
	f.srv.SetRawPage("badjson", "application/vnd.pypi.simple.v1+json", []byte("{"))
	f.srv.SetRawPage("v2", "application/vnd.pypi.simple.v1+json", []byte(`{"meta":{"api-version":"2.0"},"name":"v2","files":[]}`))
	tests := []struct {
		name  string
		fault *pypitest.Fault
		want  error
		code  int
	}{
		{"nope", nil, upstream.ErrNotFound, 0},
		{"text", nil, upstream.ErrBadResponse, 0},
		{"badjson", nil, upstream.ErrBadResponse, 0},
		{"v2", nil, upstream.ErrBadResponse, 0},
		{"foo-bar", &pypitest.Fault{Status: 500}, nil, 500},
		{"foo-bar", &pypitest.Fault{Status: 403}, nil, 403},
	}
	for _, name := range []string{"", "../integrity", "a/b", "a%2fb", "-x", "ünï"} {
		before := f.srv.Hits("")
		if _, err := f.c.Project(context.Background(), name); !errors.Is(err, upstream.ErrNotFound) || f.srv.Hits("") != before {
			t.Errorf("Project(%q): got %v after %d requests; want ErrNotFound and no request", name, err, f.srv.Hits("")-before)
		}
	}
	for _, tt := range tests {
		f.srv.ClearFaults()
		if tt.fault != nil {
			f.srv.SetFault("/simple/", *tt.fault)
		}
		_, err := f.c.Project(context.Background(), tt.name)
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("Project(%q): got %v; want %v", tt.name, err, tt.want)
		}
		var se *upstream.StatusError
		if tt.code != 0 && (!errors.As(err, &se) || se.Code != tt.code) {
			t.Errorf("Project(%q) with fault %d: got %v; want *StatusError %d", tt.name, tt.code, err, tt.code)
		}
	}
}

func TestRedirectToForeignHostRefused(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://evil.example/simple/x/", http.StatusFound)
	}))
	t.Cleanup(ts.Close)
	c, err := upstream.New(upstream.Options{URL: ts.URL + "/", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Project(context.Background(), "x"); !errors.Is(err, upstream.ErrHostNotAllowed) {
		t.Errorf("got %v; want ErrHostNotAllowed", err)
	}
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
	}))
	t.Cleanup(loop.Close)
	c, err = upstream.New(upstream.Options{URL: loop.URL + "/", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(context.Background(), loop.URL+"/f", upstream.KindFile); err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("got %v; want a too-many-redirects error", err)
	}
}

func TestProvenance(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	wprov := f.srv.ProvenanceURL("foo-bar", "foo_bar-1.0-py3-none-any.whl")
	sprov := f.srv.ProvenanceURL("foo-bar", "foo_bar-1.0.tar.gz")
	tests := []struct {
		name  string
		url   string
		fault *pypitest.Fault
		want  error
		code  int
	}{
		{"ok", wprov, nil, nil, 0},
		{"no provenance", sprov, nil, upstream.ErrNoProvenance, 0},
		{"unknown file", strings.Replace(sprov, "foo_bar-1.0.tar.gz", "nope-1.0.tar.gz", 1), nil, upstream.ErrNotFound, 0},
		{"disabled", wprov, &pypitest.Fault{Status: 403, Body: []byte(`{"message":"Attestations temporarily disabled"}`), ContentType: "application/json"}, nil, 403},
		{"not acceptable", wprov, &pypitest.Fault{Status: 406, Body: []byte(`{"message": "Request not acceptable"}`), ContentType: "application/json"}, nil, 406},
		{"server error", wprov, &pypitest.Fault{Status: 503}, nil, 503},
		{"wrong type", wprov, &pypitest.Fault{Status: 200, Body: []byte("<html>"), ContentType: "text/html"}, upstream.ErrBadResponse, 0},
		{"too large", wprov, &pypitest.Fault{Status: 200, Body: bytes.Repeat([]byte(" "), upstream.MaxProvenanceBytes+1), ContentType: "application/vnd.pypi.integrity.v1+json"}, upstream.ErrBadResponse, 0},
		{"truncated", wprov, &pypitest.Fault{TruncateAfter: 5}, io.ErrUnexpectedEOF, 0},
		{"foreign host", "https://evil.example/integrity/x/1/x/provenance", nil, upstream.ErrHostNotAllowed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.srv.ClearFaults()
			if tt.fault != nil {
				f.srv.SetFault("/integrity/", *tt.fault)
			}
			body, err := f.c.Provenance(context.Background(), tt.url)
			switch {
			case tt.code != 0:
				var se *upstream.StatusError
				if !errors.As(err, &se) || se.Code != tt.code || errors.Is(err, upstream.ErrNoProvenance) {
					t.Errorf("got %v; want *StatusError %d", err, tt.code)
				}
			case tt.want != nil:
				if !errors.Is(err, tt.want) {
					t.Errorf("got %v; want %v", err, tt.want)
				}
			default:
				if err != nil || string(body) != provJSON {
					t.Errorf("got %q, %v; want %q", body, err, provJSON)
				}
			}
		})
	}
}

func TestOpen(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	tests := []struct {
		url  string
		kind upstream.Kind
		want []byte
	}{
		{f.wheelURL(), upstream.KindFile, f.whl},
		{f.sdistURL(), upstream.KindFile, f.sdist},
		{f.wheelURL() + ".metadata", upstream.KindMetadata, pypitest.Metadata("foo-bar", "1.0", pypitest.WheelOptions{RequiresPython: ">=3.8"})},
	}
	for _, tt := range tests {
		b, err := f.c.Open(context.Background(), tt.url, tt.kind)
		if err != nil {
			t.Fatalf("Open(%q): %v", tt.url, err)
		}
		got, err := io.ReadAll(b)
		b.Close()
		if err != nil || !bytes.Equal(got, tt.want) || b.Size != int64(len(tt.want)) || b.ContentType != "application/octet-stream" {
			t.Errorf("Open(%q): got %d bytes (Size %d, %q), err %v; want %d bytes", tt.url, len(got), b.Size, b.ContentType, err, len(tt.want))
		}
	}
	for _, tt := range []struct {
		url  string
		kind upstream.Kind
		want error
	}{
		{f.sdistURL() + ".metadata", upstream.KindMetadata, upstream.ErrNotFound},
		{"https://evil.example/x.whl", upstream.KindFile, upstream.ErrHostNotAllowed},
		{strings.Replace(f.wheelURL(), "http://", "https://", 1), upstream.KindFile, upstream.ErrHostNotAllowed},
	} {
		if _, err := f.c.Open(context.Background(), tt.url, tt.kind); !errors.Is(err, tt.want) {
			t.Errorf("Open(%q): got %v; want %v", tt.url, err, tt.want)
		}
	}
	if _, err := f.c.Open(context.Background(), f.wheelURL(), upstream.KindIndex); err == nil {
		t.Error("Open with kind index: got nil error; want one")
	}
	f.srv.SetFault("/files/", pypitest.Fault{Status: 502})
	var se *upstream.StatusError
	if _, err := f.c.Open(context.Background(), f.wheelURL(), upstream.KindFile); !errors.As(err, &se) || se.Code != 502 {
		t.Errorf("got %v; want *StatusError 502", err)
	}
}

func TestOpenTruncated(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	f.srv.SetFault("/files/", pypitest.Fault{TruncateAfter: 100})
	b, err := f.c.Open(context.Background(), f.wheelURL(), upstream.KindFile)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if len(got) != 100 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("got %d bytes, err %v; want 100 bytes and %v", len(got), err, io.ErrUnexpectedEOF)
	}
}

// isTimeout reports what the proxy checks to answer 504.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, context.Canceled)
}

func TestTimeouts(t *testing.T) {
	const timeout = 150 * time.Millisecond
	f := newFixture(t, timeout)
	ctx := context.Background()
	t.Run("page", func(t *testing.T) {
		f.srv.SetFault("/simple/", pypitest.Fault{Delay: 5 * time.Second})
		defer f.srv.ClearFaults()
		start := time.Now()
		_, err := f.c.Project(ctx, "foo-bar")
		if !isTimeout(err) || time.Since(start) > 2*time.Second {
			t.Errorf("got %v after %v; want a timeout after about %v", err, time.Since(start), timeout)
		}
	})
	t.Run("provenance", func(t *testing.T) {
		f.srv.SetFault("/integrity/", pypitest.Fault{Delay: 5 * time.Second})
		defer f.srv.ClearFaults()
		_, err := f.c.Provenance(ctx, f.srv.ProvenanceURL("foo-bar", "foo_bar-1.0-py3-none-any.whl"))
		if !isTimeout(err) || errors.Is(err, upstream.ErrNoProvenance) {
			t.Errorf("got %v; want a timeout", err)
		}
	})
	t.Run("file headers", func(t *testing.T) {
		f.srv.SetFault("/files/", pypitest.Fault{Delay: 5 * time.Second})
		defer f.srv.ClearFaults()
		_, err := f.c.Open(ctx, f.wheelURL(), upstream.KindFile)
		if !isTimeout(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v; want a timeout matching context.DeadlineExceeded", err)
		}
	})
	t.Run("file body stalls", func(t *testing.T) {
		f.srv.SetFault("/files/", pypitest.Fault{TruncateAfter: 10, Stall: 5 * time.Second})
		defer f.srv.ClearFaults()
		b, err := f.c.Open(ctx, f.wheelURL(), upstream.KindFile)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		got, err := io.ReadAll(b)
		var te *upstream.TimeoutError
		if len(got) != 10 || !isTimeout(err) || !errors.As(err, &te) || te.Op != "reading body" {
			t.Errorf("got %d bytes, err %v; want 10 bytes then a body timeout", len(got), err)
		}
	})
	t.Run("slow consumer is no timeout", func(t *testing.T) {
		b, err := f.c.Open(ctx, f.wheelURL(), upstream.KindFile)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var got []byte
		buf := make([]byte, len(f.whl)/3+1)
		for {
			n, err := b.Read(buf)
			got = append(got, buf[:n]...)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read after a pause: %v", err)
			}
			time.Sleep(2 * timeout)
		}
		if !bytes.Equal(got, f.whl) {
			t.Errorf("got %d bytes; want %d", len(got), len(f.whl))
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		f.srv.SetFault("/files/", pypitest.Fault{Delay: 5 * time.Second})
		defer f.srv.ClearFaults()
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err := f.c.Open(cctx, f.wheelURL(), upstream.KindFile)
		if !errors.Is(err, context.Canceled) || isTimeout(err) {
			t.Errorf("got %v; want context.Canceled, not a timeout", err)
		}
	})
}

func TestUpstreamDown(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	url := f.wheelURL()
	f.srv.Close()
	_, err := f.c.Open(context.Background(), url, upstream.KindFile)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || ne.Timeout() || errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("got %v; want a plain (non-timeout) network error", err)
	}
	if _, err := f.c.Project(context.Background(), "foo-bar"); err == nil || isTimeout(err) {
		t.Errorf("Project: got %v; want a plain network error", err)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	ctx := context.Background()
	if _, err := f.c.Project(ctx, "foo-bar"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Project(ctx, "nope"); !errors.Is(err, upstream.ErrNotFound) {
		t.Fatal(err)
	}
	b, err := f.c.Open(ctx, f.wheelURL(), upstream.KindFile)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := f.c.Provenance(ctx, f.srv.ProvenanceURL("foo-bar", "foo_bar-1.0.tar.gz")); !errors.Is(err, upstream.ErrNoProvenance) {
		t.Fatal(err)
	}
	want := `
# HELP pipgate_upstream_requests_total Requests to the upstream indexes, by upstream (the configured name), kind (index, file, metadata, provenance) and HTTP status code (or error, timeout, refused).
# TYPE pipgate_upstream_requests_total counter
pipgate_upstream_requests_total{code="200",kind="file",upstream="default"} 1
pipgate_upstream_requests_total{code="200",kind="index",upstream="default"} 1
pipgate_upstream_requests_total{code="404",kind="index",upstream="default"} 1
pipgate_upstream_requests_total{code="404",kind="provenance",upstream="default"} 1
`
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "pipgate_upstream_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(f.reg, "pipgate_upstream_request_duration_seconds"); n != 3 {
		t.Errorf("got %d duration series; want 3 (index, file, provenance)", n)
	}
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	// A second client on the same registry shares the instruments.
	if _, err := upstream.New(upstream.Options{URL: f.srv.URL(), Registerer: f.reg}); err != nil {
		t.Errorf("second client on one registry: %v", err)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://files.pythonhosted.org/packages/aa/x.whl", "https://pypi.org:443/x", "http://pypi.org/x",
		"https://evil.example/x", "https://user@pypi.org/", "//pypi.org/x", "https://[::1]:443/", "https://pypi.org%2eevil/",
		"HTTPS://FILES.PYTHONHOSTED.ORG/x", "https://files.pythonhosted.org.:443/x",
	} {
		f.Add(s)
	}
	c, err := upstream.New(upstream.Options{URL: "https://pypi.org/", FileHosts: []string{"files.pythonhosted.org"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := c.CheckURL(raw)
		if err != nil {
			if !errors.Is(err, upstream.ErrHostNotAllowed) {
				t.Errorf("CheckURL(%q) = %v; want ErrHostNotAllowed", raw, err)
			}
			return
		}
		// Whatever passes must be what net/http would dial: https to an allowed host on 443.
		req, err := http.NewRequest(http.MethodGet, raw, nil)
		if err != nil {
			t.Fatalf("CheckURL(%q) allowed a URL net/http rejects: %v", raw, err)
		}
		host, port := strings.ToLower(req.URL.Hostname()), req.URL.Port()
		if req.URL.Scheme != "https" || (port != "" && port != "443") || (host != "pypi.org" && host != "files.pythonhosted.org") || req.URL.User != nil {
			t.Errorf("CheckURL(%q) allowed scheme %q host %q port %q", raw, req.URL.Scheme, host, port)
		}
	})
}

func TestLogsRequests(t *testing.T) {
	srv := pypitest.NewServer(t)
	srv.AddDist("foo", pypitest.Dist{Filename: "foo-1.0.tar.gz", Content: []byte("x")})
	var buf bytes.Buffer
	c, err := upstream.New(upstream.Options{URL: srv.URL(), Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Project(context.Background(), "foo"); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.NewDecoder(&buf).Decode(&line); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"msg": "upstream request", "kind": "index", "upstream_url": srv.URL() + "simple/foo/", "status": 200.0}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log attribute %s: got %v; want %v", k, line[k], v)
		}
	}
	if _, ok := line["duration_seconds"].(float64); !ok {
		t.Errorf("log line %v lacks duration_seconds", line)
	}
}
