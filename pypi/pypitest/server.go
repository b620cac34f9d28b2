// Package pypitest is a fake upstream package index and a harness for real
// pip, for pipgate's tests.
//
// [Server] imitates PyPI closely: the simple index in both formats with
// PyPI's content negotiation, redirects and headers, files with
// Content-Length and Range, PEP 658 metadata files and the PEP 740
// Integrity API. Its pages come from its own templates, written after
// PyPI's, never from package pypi's writers, so that pipgate's parsers are
// tested against an independent writer. It can inject faults: a status, a
// delay, a stall, a truncated body, a wrong-hash file, a raw hostile page.
//
// [MakeWheel] and [MakeSdist] build distributions pip really installs, and
// [Pip] runs `python3 -m pip` in a clean, hermetic environment.
package pypitest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Content types the fake index serves.
const (
	typeHTML      = "text/html"
	typeV1HTML    = "application/vnd.pypi.simple.v1+html"
	typeV1JSON    = "application/vnd.pypi.simple.v1+json"
	typeIntegrity = "application/vnd.pypi.integrity.v1+json"
	typeJSON      = "application/json"
)

// apiVersion is the repository version the fake index reports (PyPI's).
const apiVersion = "1.4"

// defaultUploadTime is the upload time of a [Dist] that gives none.
var defaultUploadTime = time.Date(2024, 11, 6, 22, 37, 7, 0, time.UTC)

// Dist is one distribution file registered with [Server.AddDist].
type Dist struct {
	// Filename is the file's name: a wheel or an sdist of the project.
	Filename string
	// Content is the file's bytes; the index promises their sha256.
	Content []byte
	// RequiresPython is the requires-python specifier; "" for none.
	RequiresPython string
	// Yanked marks the file as yanked (PEP 592), with YankedReason ("" for none).
	Yanked       bool
	YankedReason string
	// Metadata is the PEP 658 core metadata served at <file-url>.metadata.
	// nil: extracted from a wheel's METADATA (sdists then have none).
	Metadata []byte
	// Provenance is the Integrity API JSON for the file. nil: the index
	// says provenance null and the Integrity API answers the JSON 404.
	Provenance []byte
	// UploadTime is the PEP 700 upload time; zero: a fixed time in 2024.
	UploadTime time.Time
	// ServeContent, when set, is what the file URL serves instead of
	// Content while the index still promises sha256(Content): the
	// wrong-hash fault.
	ServeContent []byte
}

// Fault is an injected failure, set with [Server.SetFault].
type Fault struct {
	// Status, when non-zero, replaces the response: this status with Body
	// and ContentType (default "text/plain; charset=utf-8").
	Status int
	// Delay is a wait before anything is sent (slowness; a header timeout).
	Delay time.Duration
	// TruncateAfter, when positive, sends the headers (with the full
	// Content-Length) and only this many bytes of the body, then aborts
	// the connection.
	TruncateAfter int
	// Body and ContentType are the body and type of a Status response.
	Body        []byte
	ContentType string
	// Stall, when positive, sends the headers and the first TruncateAfter
	// bytes of the body (none when TruncateAfter is 0), flushes them, then
	// waits this long before going on (an idle-read timeout). It is an
	// addition to the fault set the lead specified.
	Stall time.Duration
}

type fault struct {
	prefix string
	Fault
}

type rawPage struct {
	contentType string
	body        []byte
}

type dist struct {
	Dist
	project  string // normalised
	version  string
	wheel    bool
	sha256   string
	metadata []byte
}

type project struct {
	display string
	serial  int64
	dists   []*dist
}

// Server is a fake PyPI: the simple index, files, metadata files and the
// Integrity API on one httptest server. Its methods are safe for
// concurrent use.
type Server struct {
	srv  *httptest.Server
	done chan struct{}
	once sync.Once

	mu       sync.Mutex
	serial   int64
	projects map[string]*project // by normalised name
	byFile   map[string]*dist    // by "<sha256>/<filename>": the same bytes may be listed under several names
	raw      map[string]rawPage  // by normalised name
	faults   []fault
	htmlOnly bool
	hits     map[string]int // by request path
	user     string         // basic auth required when user != ""
	pass     string
	authSeen map[string]int // Authorization header values received
}

// NewServer starts a fake index on a loopback port; t.Cleanup closes it.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		done:     make(chan struct{}),
		projects: map[string]*project{},
		byFile:   map[string]*dist{},
		raw:      map[string]rawPage{},
		hits:     map[string]int{},
		authSeen: map[string]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.Close)
	return s
}

// URL returns the base URL with a trailing slash, for example
// "http://127.0.0.1:41234/": pipgate's upstream.url. The simple index is at
// URL()+"simple/".
func (s *Server) URL() string { return s.srv.URL + "/" }

// Close stops the server (the upstream-outage scenario): requests in flight
// are cut off, new connections are refused. It is safe to call twice.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// AddDist registers a file of project (any spelling; the first spelling
// seen is the display name). Adding a filename twice replaces the file.
func (s *Server) AddDist(projectName string, d Dist) {
	sum := sha256.Sum256(d.Content)
	dd := &dist{Dist: d, project: normalize(projectName), sha256: hex.EncodeToString(sum[:])}
	dd.version, dd.wheel = splitFilename(d.Filename)
	dd.metadata = d.Metadata
	if dd.metadata == nil && dd.wheel {
		dd.metadata = wheelMetadata(d.Content)
	}
	if dd.UploadTime.IsZero() {
		dd.UploadTime = defaultUploadTime
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[dd.project]
	if p == nil {
		p = &project{display: projectName}
		s.projects[dd.project] = p
	}
	p.dists = slices.DeleteFunc(p.dists, func(o *dist) bool { return o.Filename == d.Filename })
	p.dists = append(p.dists, dd)
	slices.SortStableFunc(p.dists, func(a, b *dist) int {
		return cmp.Or(compareVersions(a.version, b.version), strings.Compare(a.Filename, b.Filename))
	})
	s.serial++
	p.serial = s.serial
	s.byFile[dd.sha256+"/"+dd.Filename] = dd
}

// SetFault injects f into every request whose path starts with pathPrefix
// ("" matches all). A later fault on the same prefix replaces the earlier;
// among several matching prefixes the longest wins.
func (s *Server) SetFault(pathPrefix string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = slices.DeleteFunc(s.faults, func(o fault) bool { return o.prefix == pathPrefix })
	s.faults = append(s.faults, fault{prefix: pathPrefix, Fault: f})
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetRawPage makes /simple/<project>/ serve body with contentType whatever
// the Accept header says: for hostile or malformed pages. A nil body
// removes the raw page.
func (s *Server) SetRawPage(projectName, contentType string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if body == nil {
		delete(s.raw, normalize(projectName))
		return
	}
	s.raw[normalize(projectName)] = rawPage{contentType: contentType, body: bytes.Clone(body)}
}

// HTMLOnly makes the index ignore Accept and serve text/html only, like an
// old mirror.
func (s *Server) HTMLOnly(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.htmlOnly = on
}

// Hits returns how many requests arrived for paths starting with pathPrefix
// ("" counts all). Faulted requests count too.
func (s *Server) Hits(pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.hits {
		if strings.HasPrefix(p, pathPrefix) {
			n += c
		}
	}
	return n
}

// FileURL returns the absolute URL the index gives for project's file
// filename, or "" when there is none.
func (s *Server) FileURL(projectName, filename string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findLocked(normalize(projectName), filename)
	if d == nil {
		return ""
	}
	return s.fileURL(d)
}

// ProvenanceURL returns the absolute Integrity API URL of project's file
// filename, as the index writes it (also when the file has no provenance),
// or "" when there is no such file.
func (s *Server) ProvenanceURL(projectName, filename string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.findLocked(normalize(projectName), filename)
	if d == nil {
		return ""
	}
	return s.provenanceURL(d)
}

func (s *Server) findLocked(name, filename string) *dist {
	p := s.projects[name]
	if p == nil {
		return nil
	}
	for _, d := range p.dists {
		if d.Filename == filename {
			return d
		}
	}
	return nil
}

func (s *Server) fileURL(d *dist) string {
	return s.srv.URL + "/files/" + d.sha256 + "/" + d.Filename
}

func (s *Server) provenanceURL(d *dist) string {
	return s.srv.URL + "/integrity/" + d.project + "/" + d.version + "/" + d.Filename + "/provenance"
}

// RequireBasicAuth makes every request need HTTP basic auth with user and
// pass (a private index); a request without them gets 401 with a
// WWW-Authenticate challenge. An empty user turns it off.
func (s *Server) RequireBasicAuth(user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, pass
}

// AuthorizationHeaders returns how many requests carried each distinct
// Authorization header value ("" for none).
func (s *Server) AuthorizationHeaders() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.authSeen)
}

// serveHTTP counts the request, checks credentials, applies a matching
// fault, then routes.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	s.authSeen[r.Header.Get("Authorization")]++
	if s.user != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.user || p != s.pass {
			s.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Basic realm="pypitest"`)
			http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
			return
		}
	}
	var f *fault
	for i := range s.faults {
		c := &s.faults[i]
		if strings.HasPrefix(r.URL.Path, c.prefix) && (f == nil || len(c.prefix) >= len(f.prefix)) {
			f = c
		}
	}
	var ff Fault
	if f != nil {
		ff = f.Fault
	}
	s.mu.Unlock()
	if f == nil {
		s.route(w, r)
		return
	}
	if !s.wait(r, ff.Delay) {
		return
	}
	rec := httptest.NewRecorder()
	if ff.Status != 0 {
		ct := cmp.Or(ff.ContentType, "text/plain; charset=utf-8")
		rec.Header().Set("Content-Type", ct)
		rec.WriteHeader(ff.Status)
		rec.Body.Write(ff.Body)
	} else {
		s.route(rec, r)
	}
	s.replay(w, r, rec, ff)
}

// replay writes a recorded response, truncating or stalling it as f says.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, rec *httptest.ResponseRecorder, f Fault) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	body := rec.Body.Bytes()
	if r.Method == http.MethodHead {
		body = nil
	}
	if w.Header().Get("Content-Length") == "" && r.Method != http.MethodHead {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	}
	w.WriteHeader(rec.Code)
	head := body
	if f.TruncateAfter > 0 && f.TruncateAfter < len(body) {
		head = body[:f.TruncateAfter]
	}
	if f.Stall > 0 && f.TruncateAfter == 0 {
		head = nil
	}
	_, _ = w.Write(head)
	if f.Stall > 0 {
		_ = http.NewResponseController(w).Flush()
		if !s.wait(r, f.Stall) {
			return
		}
	}
	if f.TruncateAfter > 0 && f.TruncateAfter < len(body) {
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // net/http closes the connection mid-body
	}
	_, _ = w.Write(body[len(head):])
}

// wait sleeps for d; it returns false when the client or the server went away.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	path := r.URL.Path
	switch {
	case path == "/simple":
		redirect(w, "/simple/")
	case path == "/simple/":
		s.serveList(w, r)
	case strings.HasPrefix(path, "/simple/"):
		s.serveProject(w, r, strings.TrimPrefix(path, "/simple/"))
	case strings.HasPrefix(path, "/files/"):
		s.serveFile(w, r, strings.TrimPrefix(path, "/files/"))
	case strings.HasPrefix(path, "/integrity/"):
		s.serveIntegrity(w, r, strings.TrimPrefix(path, "/integrity/"))
	default:
		notFound(w)
	}
}

func redirect(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusMovedPermanently)
}

// notFound is PyPI's generic (not JSON) 404.
func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte("<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not Found</h1>\n  The resource could not be found.<br/><br/>\n\n\n\n </body>\n</html>"))
}

// simpleHeaders sets the headers PyPI sends on /simple responses.
func simpleHeaders(w http.ResponseWriter, contentType string, serial int64) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Vary", "Accept")
	h.Set("X-PyPI-Last-Serial", fmt.Sprint(serial))
	h.Set("Cache-Control", "max-age=600, public")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET")
	h.Set("Access-Control-Expose-Headers", "X-PyPI-Last-Serial")
}

func (s *Server) negotiate(r *http.Request) string {
	s.mu.Lock()
	htmlOnly := s.htmlOnly
	s.mu.Unlock()
	if htmlOnly {
		return typeHTML
	}
	return negotiate(r.Header.Values("Accept"), []string{typeHTML, typeV1HTML, typeV1JSON}, typeHTML)
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request) {
	ct := s.negotiate(r)
	s.mu.Lock()
	entries := make([]listEntry, 0, len(s.projects))
	for name, p := range s.projects {
		entries = append(entries, listEntry{Name: p.display, Normalized: name, Serial: p.serial})
	}
	serial := s.serial
	s.mu.Unlock()
	slices.SortFunc(entries, func(a, b listEntry) int { return strings.Compare(a.Normalized, b.Normalized) })
	var buf bytes.Buffer
	if ct == typeV1JSON {
		renderListJSON(&buf, entries, serial)
	} else {
		renderListHTML(&buf, entries)
	}
	simpleHeaders(w, ct, serial)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) serveProject(w http.ResponseWriter, r *http.Request, rest string) {
	name, tail, hasSlash := strings.Cut(rest, "/")
	if !hasSlash {
		redirect(w, "/simple/"+name+"/")
		return
	}
	if tail != "" || name == "" {
		notFound(w)
		return
	}
	if n := normalize(name); n != name {
		redirect(w, "/simple/"+n+"/")
		return
	}
	ct := s.negotiate(r)
	s.mu.Lock()
	raw, isRaw := s.raw[name]
	p := s.projects[name]
	var page projectPage
	if p != nil {
		page = s.pageLocked(name, p)
	}
	s.mu.Unlock()
	if isRaw {
		w.Header().Set("Content-Type", raw.contentType)
		w.Header().Set("Vary", "Accept")
		_, _ = w.Write(raw.body)
		return
	}
	if p == nil {
		notFound(w)
		return
	}
	var buf bytes.Buffer
	if ct == typeV1JSON {
		renderProjectJSON(&buf, page)
	} else {
		renderProjectHTML(&buf, page)
	}
	simpleHeaders(w, ct, page.Serial)
	_, _ = w.Write(buf.Bytes())
}

// pageLocked snapshots a project for rendering; s.mu must be held.
func (s *Server) pageLocked(name string, p *project) projectPage {
	page := projectPage{Name: name, Serial: p.serial}
	seen := map[string]bool{}
	for _, d := range p.dists {
		if d.version != "" && !seen[d.version] {
			seen[d.version] = true
			page.Versions = append(page.Versions, d.version)
		}
		f := pageFile{
			Filename:       d.Filename,
			URL:            s.fileURL(d),
			SHA256:         d.sha256,
			RequiresPython: d.RequiresPython,
			Yanked:         d.Yanked,
			YankedReason:   d.YankedReason,
			Size:           int64(len(d.Content)),
			UploadTime:     d.UploadTime,
		}
		if d.metadata != nil {
			sum := sha256.Sum256(d.metadata)
			f.MetadataSHA256 = hex.EncodeToString(sum[:])
		}
		if d.Provenance != nil {
			f.Provenance = s.provenanceURL(d)
		}
		page.Files = append(page.Files, f)
	}
	slices.SortFunc(page.Versions, compareVersions)
	return page
}

// serveFile serves /files/<sha256>/<filename> and its .metadata sibling.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, rest string) {
	sha, filename, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(filename, "/") {
		notFound(w)
		return
	}
	s.mu.Lock()
	d := s.byFile[sha+"/"+strings.TrimSuffix(filename, ".metadata")]
	s.mu.Unlock()
	if d == nil {
		notFound(w)
		return
	}
	var content []byte
	switch {
	case filename == d.Filename:
		content = d.Content
		if d.ServeContent != nil {
			content = d.ServeContent
		}
	case filename == d.Filename+".metadata" && d.metadata != nil:
		content = d.metadata
	default:
		notFound(w)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+sha+`"`)
	http.ServeContent(w, r, "", d.UploadTime, bytes.NewReader(content))
}

// serveIntegrity serves /integrity/<project>/<version>/<filename>/provenance.
func (s *Server) serveIntegrity(w http.ResponseWriter, r *http.Request, rest string) {
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[3] != "provenance" {
		notFound(w)
		return
	}
	name, version, filename := normalize(parts[0]), canonicalVersion(parts[1]), parts[2]
	s.mu.Lock()
	d := s.findLocked(name, filename)
	s.mu.Unlock()
	if d == nil || canonicalVersion(d.version) != version {
		notFound(w)
		return
	}
	ct := typeIntegrity
	if accept := r.Header.Values("Accept"); len(accept) > 0 {
		ct = negotiate(accept, []string{typeIntegrity, typeJSON}, "")
		if ct == "" {
			w.Header().Set("Content-Type", typeJSON)
			w.Header().Set("Vary", "Accept")
			w.WriteHeader(http.StatusNotAcceptable)
			_, _ = w.Write([]byte(`{"message": "Request not acceptable"}`))
			return
		}
	}
	w.Header().Set("Vary", "Accept")
	if d.Provenance == nil {
		w.Header().Set("Content-Type", typeJSON)
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprintf(w, `{"message":"No provenance available for %s"}`, filename)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "max-age=600, public")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(d.Provenance)
}
