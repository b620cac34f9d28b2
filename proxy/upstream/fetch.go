package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pipgate/pipgate/pypi"
)

// Project fetches and parses the simple page of the project name (sent as
// given: pass the normalised name; an invalid name is [ErrNotFound] without
// a request). It asks with pip's Accept header (JSON
// preferred) and parses by the response Content-Type. A 404 is
// [ErrNotFound]; a non-index content type or an unparsable page is
// [ErrBadResponse].
func (c *Client) Project(ctx context.Context, name string) (*pypi.ProjectPage, error) {
	if !pypi.ValidProjectName(name) {
		// PyPI has no page for an invalid name; never let one shape the path.
		return nil, fmt.Errorf("project %q: %w", name, ErrNotFound)
	}
	var page *pypi.ProjectPage
	final, err := c.streamPage(ctx, c.base.String()+"simple/"+name+"/", func(ct string, body io.Reader, size int64, final *url.URL) error {
		var res *reservation
		if m := c.pages; m != nil {
			var err error
			if res, err = m.reserve(ctx, m.estimate(size)); err != nil {
				return err
			}
		}
		// Parsed as it arrives: the body is never held whole.
		p, err := parseProjectFrom(ct, body, final)
		if err == nil && res != nil {
			err = res.keepFor(p)
		}
		if err != nil {
			if res != nil {
				res.release(res.n)
			}
			return err
		}
		page = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A file pipgate cannot place in the project's history (its name does
	// not parse as one of the project's distributions) is never served.
	page.KeepDistributions(pypi.NormalizeName(name))
	c.reportDropped(ctx, final.String(), page.Dropped, page.DroppedCount)
	for i := range page.Files {
		// A URL with user:password@ is never fetched (CheckURL refuses it)
		// and must never be cached or shown: drop the credentials here.
		page.Files[i].URL = stripUserinfo(page.Files[i].URL)
		page.Files[i].Provenance = stripUserinfo(page.Files[i].Provenance)
	}
	return page, nil
}

// maxDroppedLogs bounds the log lines for the dropped links of one page.
const maxDroppedLogs = 10

// reportDropped logs (the first few) and counts the file links the parser
// left out of the page at pageURL: one unusable link (an ftp: URL, say)
// costs that link, never the whole page.
func (c *Client) reportDropped(ctx context.Context, pageURL string, dropped []pypi.DroppedFile, count int) {
	if count == 0 {
		return
	}
	c.m.droppedLinks(c.name, count)
	for i, d := range dropped {
		if i == maxDroppedLogs {
			break
		}
		c.log.LogAttrs(ctx, slog.LevelWarn, "unusable file link dropped", attrUpstream(c.name), attrURL(pageURL),
			slog.Int("index", d.Index), slog.String("filename", redactUserinfo(d.Filename)),
			slog.String("reason", redactUserinfo(d.Reason)))
	}
	if logged := min(len(dropped), maxDroppedLogs); count > logged {
		c.log.LogAttrs(ctx, slog.LevelWarn, "more unusable file links dropped", attrUpstream(c.name), attrURL(pageURL),
			slog.Int("count", count-logged))
	}
}

// userinfoRE matches the user:password@ part of any URL in a text.
var userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s"]*@`)

// redactUserinfo hides credentials in URLs quoted in s (a dropped link's
// href or parse error), so that none reaches a log line.
func redactUserinfo(s string) string { return userinfoRE.ReplaceAllString(s, "${1}REDACTED@") }

// stripUserinfo removes the user:password@ part of an absolute URL.
func stripUserinfo(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw // CheckURL refuses it later; an unparsable URL is never fetched
	}
	if u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// ProjectList fetches and parses the root page of the simple index.
func (c *Client) ProjectList(ctx context.Context) (*pypi.ProjectList, error) {
	body, ct, final, err := c.getPage(ctx, c.base.String()+"simple/")
	if err != nil {
		return nil, err
	}
	list, err := parseProjectList(ct, body, final)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w: %w", final, ErrBadResponse, err)
	}
	return list, nil
}

// streamPage GETs a simple index page within the timeout and hands its
// body, as it arrives, to parse with its media type and final URL (after
// redirects); it returns the final URL. A parse error is [ErrBadResponse];
// a failure to read the body is returned as such (a timeout stays a
// timeout).
func (c *Client) streamPage(ctx context.Context, rawURL string, parse func(ct string, body io.Reader, size int64, final *url.URL) error) (*url.URL, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.do(ctx, KindIndex, rawURL, acceptSimple)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	final := resp.Request.URL
	if err := c.checkStatus(resp); err != nil {
		return nil, err
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch ct {
	case pypi.ContentTypeV1JSON, pypi.ContentTypeV1HTML, pypi.ContentTypeHTML:
	default:
		return nil, fmt.Errorf("fetching %s: %w: content type %q is not a simple index", final, ErrBadResponse, resp.Header.Get("Content-Type"))
	}
	body := &readErrs{r: resp.Body}
	if err := parse(ct, body, resp.ContentLength, final); err != nil {
		switch {
		case body.err != nil:
			return nil, fmt.Errorf("reading %s: %w", final, body.err)
		case errors.Is(err, ErrBusy):
			return nil, fmt.Errorf("parsing %s: %w", final, err)
		}
		return nil, fmt.Errorf("parsing %s: %w: %w", final, ErrBadResponse, err)
	}
	return final, nil
}

// readErrs remembers the first read error other than io.EOF.
type readErrs struct {
	r   io.Reader
	err error
}

func (e *readErrs) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// getPage GETs a simple index page within the timeout and returns its body,
// media type and final URL (after redirects).
func (c *Client) getPage(ctx context.Context, rawURL string) ([]byte, string, *url.URL, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.do(ctx, KindIndex, rawURL, acceptSimple)
	if err != nil {
		return nil, "", nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	final := resp.Request.URL
	if err := c.checkStatus(resp); err != nil {
		return nil, "", nil, err
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch ct {
	case pypi.ContentTypeV1JSON, pypi.ContentTypeV1HTML, pypi.ContentTypeHTML:
	default:
		return nil, "", nil, fmt.Errorf("fetching %s: %w: content type %q is not a simple index", final, ErrBadResponse, resp.Header.Get("Content-Type"))
	}
	body, err := readLimited(resp.Body, MaxPageBytes)
	if err != nil {
		return nil, "", nil, fmt.Errorf("reading %s: %w", final, err)
	}
	return body, ct, final, nil
}

// Provenance fetches a PEP 740 provenance object from the Integrity API.
// rawURL is the provenance URL the index gave. A 200 returns the body (at
// most [MaxProvenanceBytes]); the API's JSON 404 is [ErrNoProvenance]; any
// other 404 is [ErrNotFound]; 403, 406, 5xx and the rest are
// [*StatusError] (could not check, which is not "no provenance").
func (c *Client) Provenance(ctx context.Context, rawURL string) ([]byte, error) {
	if err := c.CheckURL(rawURL); err != nil {
		return nil, fmt.Errorf("provenance %s: %w", rawURL, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.do(ctx, KindProvenance, rawURL, acceptIntegrity)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	final := resp.Request.URL
	if resp.StatusCode == http.StatusNotFound {
		body, _ := readLimited(resp.Body, maxErrorBody)
		var msg struct {
			Message *string `json:"message"`
		}
		if json.Unmarshal(body, &msg) == nil && msg.Message != nil {
			return nil, fmt.Errorf("provenance %s: %w: %s", final, ErrNoProvenance, *msg.Message)
		}
		return nil, fmt.Errorf("provenance %s: %w", final, ErrNotFound)
	}
	if err := c.checkStatus(resp); err != nil {
		return nil, err
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct != pypi.ContentTypeIntegrity && ct != "application/json" {
		return nil, fmt.Errorf("provenance %s: %w: content type %q", final, ErrBadResponse, resp.Header.Get("Content-Type"))
	}
	body, err := readLimited(resp.Body, MaxProvenanceBytes)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", final, err)
	}
	return body, nil
}

// Open starts fetching a distribution file (kind [KindFile]) or its
// .metadata (kind [KindMetadata]) after [Client.CheckURL]. The body streams:
// Options.Timeout bounds the wait for the response headers and each wait
// for more bytes, not the whole transfer. A 404 is [ErrNotFound], another
// non-200 a [*StatusError]; a body cut short reads as an error
// (io.ErrUnexpectedEOF), a stalled one as a [*TimeoutError].
func (c *Client) Open(ctx context.Context, rawURL string, kind Kind) (*Body, error) {
	if kind != KindFile && kind != KindMetadata {
		return nil, fmt.Errorf("upstream: Open: kind %q, want %q or %q", kind, KindFile, KindMetadata)
	}
	if err := c.CheckURL(rawURL); err != nil {
		return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &watchdog{timeout: c.timeout, cancel: cancel}
	w.start("response headers")
	resp, err := c.do(ctx, kind, rawURL, "")
	if w.stop() {
		err = fmt.Errorf("fetching %s: %w", rawURL, c.unreachable(w.err))
		c.recordFailure(err)
		if resp != nil {
			_ = resp.Body.Close()
		}
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if err := c.checkStatus(resp); err != nil {
		resp.Body.Close()
		cancel()
		return nil, err
	}
	return &Body{
		ReadCloser:  &watchedBody{rc: resp.Body, w: w, url: resp.Request.URL.String()},
		Size:        resp.ContentLength,
		ContentType: resp.Header.Get("Content-Type"),
	}, nil
}

// do sends one GET and records its metrics. On success the caller owns
// resp.Body.
func (c *Client) do(ctx context.Context, kind Kind, rawURL, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	req.Header.Set("User-Agent", c.ua)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	d := time.Since(start)
	code := "error"
	switch {
	case err == nil:
		code = strconv.Itoa(resp.StatusCode)
	case errors.Is(err, ErrHostNotAllowed):
		code = "refused"
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		code = "timeout"
	}
	c.m.observe(c.name, kind, code, d)
	if err != nil {
		c.log.LogAttrs(ctx, slogDebug, "upstream request failed", attrUpstream(c.name), attrKind(kind), attrURL(rawURL), attrDuration(d), attrErr(err))
		if errors.Is(err, ErrHostNotAllowed) || errors.Is(ctx.Err(), context.Canceled) {
			// A refused redirect is not the upstream's failure; a cancelled
			// request (the client left, or Open's watchdog) is judged by
			// its caller.
			return nil, err // *url.Error already names the method and URL
		}
		err = c.unreachable(err)
		c.recordFailure(err)
		return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	switch sc := resp.StatusCode; {
	case sc == http.StatusUnauthorized || sc == http.StatusForbidden:
		final := resp.Request.URL.String()
		c.authState.fail(sc, final, c.now())
		c.recordFailure(&StatusError{Code: sc, URL: final, Upstream: c.name})
		c.log.LogAttrs(ctx, slog.LevelWarn, "upstream authentication failed", attrUpstream(c.name), attrKind(kind),
			attrURL(final), attrStatus(sc), slog.Bool("credentials_configured", c.auth))
	case sc >= 500:
		c.recordFailure(&StatusError{Code: sc, URL: resp.Request.URL.String(), Upstream: c.name})
	case sc >= 200 && sc < 300:
		c.authState.ok()
		c.recordSuccess()
	default: // 3xx, 404 and the other 4xx: the index answered
		c.recordSuccess()
	}
	c.log.LogAttrs(ctx, slogDebug, "upstream request", attrUpstream(c.name), attrKind(kind), attrURL(rawURL), attrStatus(resp.StatusCode), attrDuration(d))
	return resp, nil
}

// checkStatus maps a non-200 answer to ErrNotFound or *StatusError and
// drains a little of its body so the connection can be reused.
func (c *Client) checkStatus(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	u := resp.Request.URL.String()
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("fetching %s: %w", u, ErrNotFound)
	}
	return &StatusError{Code: resp.StatusCode, URL: u, Upstream: c.name}
}

// readLimited reads all of r, failing with ErrBadResponse beyond limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrBadResponse, limit)
	}
	return buf.Bytes(), nil
}

// watchdog cancels a request when one wait (for headers, or inside one
// Read) lasts longer than timeout. Time between reads does not count: a
// slow consumer is not an idle upstream.
type watchdog struct {
	timeout time.Duration
	cancel  context.CancelFunc

	mu       sync.Mutex
	timer    *time.Timer
	op       string
	deadline time.Time
	waiting  bool
	err      *TimeoutError // set once it fired
}

// start begins a wait for op.
func (w *watchdog) start(op string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	w.op, w.waiting, w.deadline = op, true, time.Now().Add(w.timeout)
	if w.timer == nil {
		w.timer = time.AfterFunc(w.timeout, w.fire)
		return
	}
	w.timer.Reset(w.timeout)
}

func (w *watchdog) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	// A callback from an earlier wait may run late: the deadline tells.
	if !w.waiting || w.err != nil || time.Now().Before(w.deadline) {
		return
	}
	w.err = &TimeoutError{Op: w.op, After: w.timeout}
	w.cancel()
}

// stop ends a wait; it reports whether the watchdog has fired.
func (w *watchdog) stop() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waiting = false
	if w.timer != nil {
		w.timer.Stop()
	}
	return w.err != nil
}

// watchedBody is a response body under a watchdog.
type watchedBody struct {
	rc   io.ReadCloser
	w    *watchdog
	url  string
	once sync.Once
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.w.start("reading body")
	n, err := b.rc.Read(p)
	if b.w.stop() && err != nil {
		return n, fmt.Errorf("reading %s: %w", b.url, b.w.err)
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("reading %s: %w", b.url, err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() {
		b.w.stop()
		b.w.cancel()
	})
	return err
}
