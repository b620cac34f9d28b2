// Package upstream is pipgate's client for the upstream package indexes:
// simple pages in either format, distribution files and their .metadata
// siblings, and PEP 740 provenance from the Integrity API. A [Client] talks
// to one index (optionally with HTTP basic auth, sent to its own origin
// only); a [Router] sends each project to the one index that owns it.
//
// It fetches only from the upstream's origin and the configured file hosts
// (no SSRF through index pages), never reads proxy settings from the
// environment, and reports failures as errors the proxy can map once:
// [ErrNotFound], [ErrNoProvenance], [ErrHostNotAllowed], [ErrBadResponse],
// [*StatusError], and timeouts that satisfy net.Error with Timeout() true.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Kind is the kind of an upstream request: what is fetched. Its values are
// the "kind" metric label and log attribute; [Client.Open] takes [KindFile]
// or [KindMetadata].
type Kind string

// The request kinds.
const (
	KindIndex      Kind = "index"
	KindFile       Kind = "file"
	KindMetadata   Kind = "metadata"
	KindProvenance Kind = "provenance"
)

// Size limits for bodies read into memory.
const (
	// MaxPageBytes bounds a simple index page (the largest real PyPI pages
	// are a few tens of MiB).
	MaxPageBytes = 64 << 20
	// MaxProvenanceBytes bounds an Integrity API answer.
	MaxProvenanceBytes = 4 << 20
	// maxErrorBody bounds what is read of a non-200 answer.
	maxErrorBody = 64 << 10
	// maxRedirects is how many redirects one request follows.
	maxRedirects = 5
)

// acceptSimple is what pip sends: JSON preferred, then HTML.
const acceptSimple = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"

const acceptIntegrity = "application/vnd.pypi.integrity.v1+json"

var (
	// ErrNotFound means the upstream answered 404: no such project or file.
	ErrNotFound = errors.New("not found upstream")
	// ErrNoProvenance means the Integrity API answered its JSON 404: the
	// file exists and has no provenance.
	ErrNoProvenance = errors.New("no provenance available upstream")
	// ErrHostNotAllowed means a URL points outside the upstream origin and
	// the file hosts, or uses plain http where https is required.
	ErrHostNotAllowed = errors.New("host not allowed")
	// ErrBadResponse means the upstream answered 200 with something
	// unusable: an unexpected content type, an oversized or unparsable body.
	ErrBadResponse = errors.New("bad upstream response")
)

// ErrAuth is the family of upstream authentication failures: a
// [*StatusError] with code 401 or 403 satisfies errors.Is(err, ErrAuth).
var ErrAuth = errors.New("upstream authentication failed")

// StatusError is an upstream answer other than 200 and 404 (and other than
// the Integrity API's JSON 404).
type StatusError struct {
	// Code is the HTTP status code.
	Code int
	// URL is the URL requested (the last one, after redirects).
	URL string
	// Upstream is the name of the upstream that answered.
	Upstream string
}

// Error implements error.
func (e *StatusError) Error() string {
	if e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden {
		return fmt.Sprintf("upstream %s: authentication failed: answered %d %s for %s (check its username and password)",
			e.Upstream, e.Code, http.StatusText(e.Code), e.URL)
	}
	return fmt.Sprintf("upstream %s answered %d %s for %s", e.Upstream, e.Code, http.StatusText(e.Code), e.URL)
}

// Is makes errors.Is(err, ErrAuth) true for a 401 or 403.
func (e *StatusError) Is(target error) bool {
	return target == ErrAuth && (e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden)
}

// TimeoutError is an upstream that did not answer, or stopped sending a
// body, within [Options.Timeout]. It is a net.Error whose Timeout() is true,
// and errors.Is(err, context.DeadlineExceeded) holds.
type TimeoutError struct {
	// Op says what timed out: "response headers" or "reading body".
	Op string
	// After is the timeout that expired.
	After time.Duration
}

// Error implements error.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("upstream timeout: no progress on %s for %v", e.Op, e.After)
}

// Timeout reports true (net.Error).
func (*TimeoutError) Timeout() bool { return true }

// Temporary reports true (net.Error).
func (*TimeoutError) Temporary() bool { return true }

// Is makes errors.Is(err, context.DeadlineExceeded) true.
func (*TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Options configure a [Client]. URL is required; every other field works at
// its zero value.
type Options struct {
	// URL is the upstream base URL ending in "/", e.g. "https://pypi.org/":
	// the simple index is at <URL>simple/, the Integrity API at
	// <URL>integrity/. It may be plain http (a mirror, a test index); URLs
	// on that same origin are then fetched over http too.
	URL string
	// FileHosts are the hosts files may be fetched from besides URL's own
	// host, e.g. "files.pythonhosted.org" (https, default port) or
	// "host:port" for a specific port.
	FileHosts []string
	// Timeout bounds each page and provenance request as a whole, and for
	// file bodies the wait for response headers and each wait for more
	// body bytes (never the whole body: wheels can be large). Zero: 30s.
	Timeout time.Duration
	// Transport sends the requests. nil: a clone of http.DefaultTransport
	// with Proxy nil, so no environment proxy setting ever applies.
	Transport http.RoundTripper
	// Registerer receives pipgate_upstream_requests_total{upstream,kind,code}
	// and pipgate_upstream_request_duration_seconds{upstream,kind}; several
	// clients may share one registry. nil: no metrics.
	Registerer prometheus.Registerer
	// Logger receives a debug line per request. nil: discard.
	Logger *slog.Logger
	// UserAgent is sent on every request. "": "pipgate".
	UserAgent string
	// Name names this upstream in metrics (the "upstream" label), logs,
	// errors and cache keys: lower-case letters, digits, "-" and "_", at
	// most 64 bytes. "": "default".
	Name string
	// IndexTTL is how long a consumer may treat this upstream's pages and
	// provenance as fresh (the client itself caches nothing); reported by
	// [Router.Owner]. Zero: the consumer's default.
	IndexTTL time.Duration
	// Username and Password are HTTP basic-auth credentials, sent only on
	// requests to URL's own origin (scheme, host and port): never to a file
	// host on another origin, never after a redirect leaves the origin.
	// Both empty: no credentials. Password never appears in an error, a log
	// line or a metric.
	Username, Password string
	// PageMemory bounds the memory of the project pages parsed and still
	// in use; share one among the clients of a server. nil: no bound.
	PageMemory *PageMemory
	// Now is the clock that dates the upstream's health (last success, last
	// failure, last authentication failure); nil: time.Now. Request
	// durations are measured on the monotonic clock regardless.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		t.MaxIdleConns = 100
		t.MaxIdleConnsPerHost = 32
		t.IdleConnTimeout = 90 * time.Second
		t.TLSHandshakeTimeout = 10 * time.Second
		t.ExpectContinueTimeout = time.Second
		o.Transport = t
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.UserAgent == "" {
		o.UserAgent = "pipgate"
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Client fetches from the upstream index. It is safe for concurrent use.
type Client struct {
	name      string
	indexTTL  time.Duration
	auth      bool
	authState authState
	health    healthState
	base      *url.URL
	fileHosts map[string]bool // lower-case "host" (default https port) or "host:port"
	timeout   time.Duration
	http      *http.Client
	log       *slog.Logger
	ua        string
	m         *metrics
	pages     *PageMemory      // nil: no bound
	now       func() time.Time // Options.Now
}

// Body is an open upstream file or .metadata body. Close it.
type Body struct {
	io.ReadCloser
	// Size is the Content-Length; -1 when unknown.
	Size int64
	// ContentType is the upstream's Content-Type header.
	ContentType string
}

// New returns a client for opts.URL.
func New(opts Options) (*Client, error) {
	if opts.URL == "" {
		return nil, errors.New("upstream: Options.URL is required")
	}
	base, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream: Options.URL: %w", err)
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("upstream: Options.URL: want an absolute http(s) URL without credentials, query or fragment, got %q", opts.URL)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
		base.RawPath = ""
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("upstream: Options.Timeout: must not be negative, got %v", opts.Timeout)
	}
	if opts.IndexTTL < 0 {
		return nil, fmt.Errorf("upstream: Options.IndexTTL: must not be negative, got %v", opts.IndexTTL)
	}
	if opts.Name != "" && !ValidName(opts.Name) {
		return nil, fmt.Errorf("upstream: Options.Name: want lower-case letters, digits, '-' and '_' (at most 64), got %q", opts.Name)
	}
	if opts.Username == "" && opts.Password != "" {
		return nil, errors.New("upstream: Options.Password is set without Options.Username")
	}
	if strings.ContainsAny(opts.Username, ":\r\n") {
		return nil, errors.New("upstream: Options.Username: must not contain ':' or a line break")
	}
	opts = opts.withDefaults()
	c := &Client{
		name:      opts.Name,
		indexTTL:  opts.IndexTTL,
		auth:      opts.Username != "",
		base:      base,
		fileHosts: map[string]bool{},
		timeout:   opts.Timeout,
		log:       opts.Logger,
		ua:        opts.UserAgent,
		pages:     opts.PageMemory,
		now:       opts.Now,
	}
	for i, h := range opts.FileHosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, "/@?#") {
			return nil, fmt.Errorf("upstream: Options.FileHosts[%d]: want a host name, got %q", i, opts.FileHosts[i])
		}
		c.fileHosts[h] = true
	}
	if opts.Registerer != nil {
		if c.m, err = newMetrics(opts.Registerer); err != nil {
			return nil, fmt.Errorf("upstream: metrics: %w", err)
		}
		c.m.healthInit(c.name)
	}
	transport := opts.Transport
	if opts.Username != "" {
		transport = &basicAuth{next: transport, origin: originOf(base), user: opts.Username, pass: opts.Password}
	}
	c.http = &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			return c.checkURL(req.URL)
		},
	}
	return c, nil
}

// URL returns the upstream base URL, ending in "/" (it never carries
// credentials).
func (c *Client) URL() string { return c.base.String() }

// Name returns the upstream's name ([Options.Name]).
func (c *Client) Name() string { return c.name }

// IndexTTL returns [Options.IndexTTL].
func (c *Client) IndexTTL() time.Duration { return c.indexTTL }

// CheckURL returns nil when rawURL may be fetched: an http(s) URL without
// credentials on the upstream's own origin, or an https URL on one of the
// file hosts. Otherwise it returns an error wrapping [ErrHostNotAllowed].
func (c *Client) CheckURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHostNotAllowed, err)
	}
	return c.checkURL(u)
}

func (c *Client) checkURL(u *url.URL) error {
	if u.User != nil {
		return fmt.Errorf("%w: URL carries credentials", ErrHostNotAllowed)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q", ErrHostNotAllowed, u.Scheme)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return fmt.Errorf("%w: no host", ErrHostNotAllowed)
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	bport := c.base.Port()
	if bport == "" {
		bport = defaultPort(c.base.Scheme)
	}
	if u.Scheme == c.base.Scheme && host == strings.ToLower(c.base.Hostname()) && port == bport {
		return nil // the upstream's own origin, http included when the upstream is http
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: %s://%s (https required off the upstream origin)", ErrHostNotAllowed, u.Scheme, u.Host)
	}
	if (port == "443" && c.fileHosts[host]) || c.fileHosts[net.JoinHostPort(host, port)] {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrHostNotAllowed, u.Host)
}

// DefaultName is the name of an upstream configured without one (the
// single "upstream:" of the config file).
const DefaultName = "default"

// ValidName reports whether name can name an upstream: 1 to 64 lower-case
// ASCII letters, digits, "-" and "_", starting with a letter or digit. Such
// a name is safe as a metric label value, in a log line and in a cache key.
func ValidName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// origin is a URL's scheme, lower-case host and port (explicit or default).
type origin struct{ scheme, host, port string }

func originOf(u *url.URL) origin {
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	return origin{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: port}
}

func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}
