package upstream_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// twoIndexes is a private index owning internal-lib and acme-*, and a
// public one carrying a higher internal-lib (a dependency-confusion
// attempt) and everything else.
type twoIndexes struct {
	private, public *pypitest.Server
	r               *upstream.Router
	reg             *prometheus.Registry
}

func newTwoIndexes(t *testing.T) *twoIndexes {
	t.Helper()
	x := &twoIndexes{private: pypitest.NewServer(t), public: pypitest.NewServer(t), reg: prometheus.NewRegistry()}
	x.private.RequireBasicAuth("ci", "s3cret-pw")
	x.private.AddDist("internal-lib", pypitest.Dist{Filename: "internal_lib-1.0.tar.gz", Content: pypitest.MakeSdist("internal-lib", "1.0")})
	x.private.AddDist("Acme.Tools", pypitest.Dist{Filename: "acme_tools-2.0.tar.gz", Content: pypitest.MakeSdist("acme-tools", "2.0")})
	x.public.AddDist("internal-lib", pypitest.Dist{Filename: "internal_lib-9.9.tar.gz", Content: pypitest.MakeSdist("internal-lib", "9.9")})
	x.public.AddDist("acme-missing", pypitest.Dist{Filename: "acme_missing-1.0.tar.gz", Content: pypitest.MakeSdist("acme-missing", "1.0")})
	x.public.AddDist("requests", pypitest.Dist{Filename: "requests-2.0.tar.gz", Content: pypitest.MakeSdist("requests", "2.0")})
	// The timeouts bound a broken test; no test here waits for one (both
	// indexes answer at once, a stopped one refuses the connection), and a
	// loaded machine can take seconds to schedule an answer.
	priv, err := upstream.New(upstream.Options{Name: "internal", URL: x.private.URL(), Username: "ci", Password: "s3cret-pw",
		Timeout: time.Minute, Registerer: x.reg, IndexTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := upstream.New(upstream.Options{Name: "pypi", URL: x.public.URL(), Timeout: time.Minute, Registerer: x.reg})
	if err != nil {
		t.Fatal(err)
	}
	x.r, err = upstream.NewRouter(upstream.RouterOptions{Routes: []upstream.Route{
		{Client: priv, Projects: []string{"Internal_Lib", "acme-*"}},
		{Client: pub},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestRouterOwnership(t *testing.T) {
	x := newTwoIndexes(t)
	ctx := context.Background()
	for _, c := range []struct{ project, owner, file string }{
		{"internal-lib", "internal", "internal_lib-1.0.tar.gz"}, // exact, spelled differently in the config
		{"INTERNAL.lib", "internal", "internal_lib-1.0.tar.gz"},
		{"acme-tools", "internal", "acme_tools-2.0.tar.gz"}, // glob
		{"requests", "pypi", "requests-2.0.tar.gz"},         // unowned: the default
	} {
		name, ttl := x.r.Owner(c.project)
		if name != c.owner {
			t.Errorf("Owner(%q) = %q; want %q", c.project, name, c.owner)
		}
		if c.owner == "internal" && ttl != time.Minute {
			t.Errorf("Owner(%q) ttl = %v; want the owner's 1m", c.project, ttl)
		}
		p, err := x.r.Project(ctx, pypi.NormalizeName(c.project))
		if err != nil {
			t.Fatalf("Project(%q): %v", c.project, err)
		}
		if len(p.Files) != 1 || p.Files[0].Filename != c.file {
			t.Errorf("Project(%q) files = %+v; want only %s", c.project, p.Files, c.file)
		}
	}
	if n := x.public.Hits("/simple/internal-lib/") + x.public.Hits("/simple/acme-tools/"); n != 0 {
		t.Errorf("the public index saw %d requests for owned names; want 0", n)
	}
}

func TestRouterOwnedButMissingIsNotFoundWithoutAskingElsewhere(t *testing.T) {
	x := newTwoIndexes(t)
	_, err := x.r.Project(context.Background(), "acme-missing")
	if !errors.Is(err, upstream.ErrNotFound) {
		t.Fatalf("Project(acme-missing): got %v; want ErrNotFound", err)
	}
	if n := x.public.Hits(""); n != 0 {
		t.Errorf("the public index saw %d requests; want 0 (acme-missing is owned by internal)", n)
	}
	if n := x.private.Hits("/simple/acme-missing/"); n != 1 {
		t.Errorf("the private index saw %d requests for acme-missing; want 1", n)
	}
}

func TestRouterFilesGoToTheOwnerOnly(t *testing.T) {
	x := newTwoIndexes(t)
	ctx := context.Background()
	pubURL := x.public.FileURL("internal-lib", "internal_lib-9.9.tar.gz")
	// The public index's file URL, asked for as internal-lib: refused by the
	// owner's host check, and never fetched.
	if _, err := x.r.Open(ctx, "internal-lib", pubURL, upstream.KindFile); !errors.Is(err, upstream.ErrHostNotAllowed) {
		t.Fatalf("Open(public URL as internal-lib): got %v; want ErrHostNotAllowed", err)
	}
	if _, err := x.r.Provenance(ctx, "internal-lib", x.public.ProvenanceURL("internal-lib", "internal_lib-9.9.tar.gz")); !errors.Is(err, upstream.ErrHostNotAllowed) {
		t.Fatalf("Provenance(public URL as internal-lib): got %v; want ErrHostNotAllowed", err)
	}
	// And the other way round: the private URL is not the public upstream's.
	privURL := x.private.FileURL("internal-lib", "internal_lib-1.0.tar.gz")
	if _, err := x.r.Open(ctx, "requests", privURL, upstream.KindFile); !errors.Is(err, upstream.ErrHostNotAllowed) {
		t.Fatalf("Open(private URL as requests): got %v; want ErrHostNotAllowed", err)
	}
	if n := x.public.Hits("/files/"); n != 0 {
		t.Errorf("the public index saw %d file requests; want 0", n)
	}
	b, err := x.r.Open(ctx, "internal-lib", privURL, upstream.KindFile)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(b)
	b.Close()
	if err != nil || len(data) == 0 {
		t.Fatalf("reading the private file: %d bytes, %v", len(data), err)
	}
	// The "upstream" label says who served what.
	want := `
# HELP pipgate_upstream_requests_total Requests to the upstream indexes, by upstream (the configured name), kind (index, file, metadata, provenance) and HTTP status code (or error, timeout, refused).
# TYPE pipgate_upstream_requests_total counter
pipgate_upstream_requests_total{code="200",kind="file",upstream="internal"} 1
`
	if err := testutil.GatherAndCompare(x.reg, strings.NewReader(want), "pipgate_upstream_requests_total"); err != nil {
		t.Error(err)
	}
}

func TestRouterProjectListUnion(t *testing.T) {
	x := newTwoIndexes(t)
	l, err := x.r.ProjectList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range l.Projects {
		got = append(got, pypi.NormalizeName(p.Name))
	}
	// internal-lib once (from its owner), acme-missing not at all (owned by
	// internal, which lacks it), requests from the default.
	want := "acme-tools,internal-lib,requests"
	if strings.Join(got, ",") != want {
		t.Errorf("ProjectList = %q; want %q", strings.Join(got, ","), want)
	}
}

func TestRouterWithoutDefault(t *testing.T) {
	srv := pypitest.NewServer(t)
	srv.AddDist("requests", pypitest.Dist{Filename: "requests-2.0.tar.gz", Content: []byte("x")})
	c, err := upstream.New(upstream.Options{Name: "only", URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := upstream.NewRouter(upstream.RouterOptions{Routes: []upstream.Route{{Client: c, Projects: []string{"acme-*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := r.Owner("requests"); name != "" {
		t.Errorf("Owner(requests) = %q; want none", name)
	}
	if _, err := r.Project(context.Background(), "requests"); !errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("Project(requests): got %v; want ErrNotFound", err)
	}
	if n := srv.Hits(""); n != 0 {
		t.Errorf("%d requests for an unowned name; want 0", n)
	}
}

func TestNewRouterRejects(t *testing.T) {
	c1, _ := upstream.New(upstream.Options{Name: "a", URL: "https://a.example/"})
	c2, _ := upstream.New(upstream.Options{Name: "a", URL: "https://b.example/"})
	for _, c := range []struct {
		name string
		opts upstream.RouterOptions
		want string
	}{
		{"none", upstream.RouterOptions{}, "want at least one route"},
		{"nil client", upstream.RouterOptions{Routes: []upstream.Route{{}}}, "Routes[0].Client is required"},
		{"same name", upstream.RouterOptions{Routes: []upstream.Route{{Client: c1}, {Client: c2}}}, `name "a" used twice`},
		{"bad glob", upstream.RouterOptions{Routes: []upstream.Route{{Client: c1, Projects: []string{"acme-[x"}}}}, `Projects[0] "acme-[x": invalid glob`},
		{"never-matching glob", upstream.RouterOptions{Routes: []upstream.Route{{Client: c1, Projects: []string{"internal[_]lib"}}}}, `glob never matches`},
		{"bad name", upstream.RouterOptions{Routes: []upstream.Route{{Client: c1, Projects: []string{"a b"}}}}, `Projects[0] "a b": invalid project name`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := upstream.NewRouter(c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v; want an error containing %q", err, c.want)
			}
		})
	}
}

// recorder is an origin that records the Authorization header it receives.
type recorder struct {
	srv  *httptest.Server
	auth []string
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.auth = append(rec.auth, r.Header.Get("Authorization"))
		h(w, r)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func TestCredentialsStayOnTheOrigin(t *testing.T) {
	const pw = "hunter2-very-secret"
	other := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "file bytes") })
	// The other origin is an allowed file host, which must be https; the
	// test servers speak plain http, so httpsToHTTP carries https requests.
	var own *recorder
	own = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-other":
			http.Redirect(w, r, "https://"+strings.TrimPrefix(other.srv.URL, "http://")+"/file", http.StatusFound)
		case "/to-self":
			http.Redirect(w, r, own.srv.URL+"/file", http.StatusFound)
		default:
			_, _ = io.WriteString(w, "file bytes")
		}
	})
	otherHost := strings.TrimPrefix(other.srv.URL, "http://")
	c, err := upstream.New(upstream.Options{Name: "internal", URL: own.srv.URL + "/", Username: "ci", Password: pw,
		FileHosts: []string{otherHost}, Transport: httpsToHTTP{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	open := func(u string) error {
		b, err := c.Open(ctx, u, upstream.KindFile)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, b)
		return b.Close()
	}
	if err := open(own.srv.URL + "/to-self"); err != nil {
		t.Fatal(err)
	}
	if len(own.auth) != 2 || !strings.HasPrefix(own.auth[0], "Basic ") || own.auth[1] != own.auth[0] {
		t.Errorf("own origin got Authorization %q; want basic auth on both hops", own.auth)
	}
	// A redirect to another origin (an allowed file host) drops them.
	if err := open(own.srv.URL + "/to-other"); err != nil {
		t.Fatal(err)
	}
	// A file host on another origin never gets them.
	if err := open("https://" + otherHost + "/direct"); err != nil {
		t.Fatal(err)
	}
	if len(other.auth) != 2 || other.auth[0] != "" || other.auth[1] != "" {
		t.Errorf("the other origin got Authorization %q; want none on every request", other.auth)
	}
}

// httpsToHTTP sends https requests as plain http (test servers speak http).
type httpsToHTTP struct{}

func (httpsToHTTP) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "https" {
		r = r.Clone(r.Context())
		r.URL.Scheme = "http"
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestAuthFailure(t *testing.T) {
	const pw = "wrong-password-123"
	srv := pypitest.NewServer(t)
	srv.RequireBasicAuth("ci", "right")
	srv.AddDist("internal-lib", pypitest.Dist{Filename: "internal_lib-1.0.tar.gz", Content: []byte("x")})
	for _, c := range []struct {
		name, user, pass string
	}{{"no credentials", "", ""}, {"wrong password", "ci", pw}} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := upstream.New(upstream.Options{Name: "internal", URL: srv.URL(), Username: c.user, Password: c.pass})
			if err != nil {
				t.Fatal(err)
			}
			_, err = cl.Project(context.Background(), "internal-lib")
			var se *upstream.StatusError
			if !errors.Is(err, upstream.ErrAuth) || !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
				t.Fatalf("got %v; want a 401 StatusError satisfying ErrAuth", err)
			}
			if !strings.Contains(err.Error(), "upstream internal: authentication failed") || strings.Contains(err.Error(), pw) {
				t.Errorf("error %q: want it to name the upstream and the failure, never the password", err)
			}
			in := cl.Info()
			if in.AuthFailure == nil || in.AuthFailure.Code != 401 || in.Auth != (c.user != "") {
				t.Errorf("Info() = %+v; want the 401 recorded", in)
			}
		})
	}
	// Right credentials: the failure clears on the next success.
	cl, err := upstream.New(upstream.Options{Name: "internal", URL: srv.URL(), Username: "ci", Password: "right"})
	if err != nil {
		t.Fatal(err)
	}
	srv.RequireBasicAuth("ci", "other")
	if _, err := cl.Project(context.Background(), "internal-lib"); !errors.Is(err, upstream.ErrAuth) {
		t.Fatalf("got %v; want ErrAuth", err)
	}
	srv.RequireBasicAuth("ci", "right")
	if _, err := cl.Project(context.Background(), "internal-lib"); err != nil {
		t.Fatal(err)
	}
	if in := cl.Info(); in.AuthFailure != nil {
		t.Errorf("Info().AuthFailure = %+v after a success; want nil", in.AuthFailure)
	}
}

func TestUserinfoInPageURLsIsDropped(t *testing.T) {
	srv := pypitest.NewServer(t)
	host := strings.TrimPrefix(strings.TrimSuffix(srv.URL(), "/"), "http://")
	page := `<!DOCTYPE html><html><body><a href="http://leak:pw-in-page@` + host + `/files/x/demo-1.0.tar.gz#sha256=` +
		strings.Repeat("a", 64) + `">demo-1.0.tar.gz</a></body></html>`
	srv.SetRawPage("demo", "text/html", []byte(page))
	c, err := upstream.New(upstream.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Project(context.Background(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 1 || strings.Contains(p.Files[0].URL, "pw-in-page") || strings.Contains(p.Files[0].URL, "@") {
		t.Errorf("file URL %q; want the credentials dropped", p.Files[0].URL)
	}
}

func TestNewValidatesNameAndCredentials(t *testing.T) {
	for _, c := range []struct {
		opts upstream.Options
		want string
	}{
		{upstream.Options{URL: "https://x/", Name: "Bad Name"}, "Options.Name"},
		{upstream.Options{URL: "https://x/", Password: "p"}, "Password is set without Options.Username"},
		{upstream.Options{URL: "https://x/", Username: "a:b", Password: "p"}, "Options.Username"},
	} {
		_, err := upstream.New(c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): got %v; want %q", c.opts.Name, err, c.want)
		}
	}
}
