package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

const metadataSuffix = ".metadata"

// serveFileRoute serves /files/<project>/<filename> and its .metadata.
func (s *Server) serveFileRoute(w http.ResponseWriter, r *http.Request) error {
	project := r.PathValue("project")
	if !pypi.ValidProjectName(project) || pypi.NormalizeName(project) != project {
		return errorf(http.StatusBadRequest, "pipgate: invalid project name %q", project)
	}
	return s.serveFile(w, r, project, r.PathValue("filename"))
}

// serveNotFound answers every path the index listener does not route.
func (s *Server) serveNotFound(_ http.ResponseWriter, r *http.Request) error {
	return errorf(http.StatusNotFound, "pipgate: no such route %s", r.URL.Path)
}

// serveTunnelOther answers every other path inside the egress tunnel: a file
// URL on an intercepted host that pipgate did not write (pip's cache, a
// pinned URL on files.pythonhosted.org) is still served, and verified: the
// project comes from the filename and the file from its index page.
func (s *Server) serveTunnelOther(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		name := path.Base(r.URL.Path)
		if fn, err := pypi.ParseFilename(strings.TrimSuffix(name, metadataSuffix)); err == nil {
			info(r.Context()).route = routeEgressFile
			return s.serveFile(w, r, fn.Name, name)
		}
	}
	return s.serveNotFound(w, r)
}

func validFilename(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.HasPrefix(name, ".") &&
		!strings.ContainsAny(name, "/\\\x00")
}

// serveFile decides and serves one distribution file (or its metadata).
// The decision comes first, so a blocked file is never even downloaded.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, project, name string) error {
	ctx := r.Context()
	ri := info(ctx)
	metadata := strings.HasSuffix(name, metadataSuffix)
	filename := strings.TrimSuffix(name, metadataSuffix)
	if !validFilename(filename) {
		return errorf(http.StatusBadRequest, "pipgate: invalid filename %q", name)
	}
	ri.project, ri.file = project, filename
	f, err := s.findFile(ctx, project, filename)
	if err != nil {
		return err
	}
	if metadata {
		ri.route = routeMetadata
		return s.serveMetadata(w, r, project, f)
	}
	sha := f.SHA256()
	if sha == "" {
		return fmt.Errorf("%s: %w", filename, errUpstreamNoHash)
	}
	facts, verdictCache := s.facts(ctx, project, f)
	d := s.decide(project, facts)
	ri.verdict = string(d.Verdict)
	if verdictCache != "" {
		ri.cache = verdictCache
	}
	w.Header().Set(headerVerdict, string(d.Verdict))
	if d.Action != policy.ActionAllow {
		w.Header().Set(headerReason, headerSafe(d.Reason))
	}
	if r.Method == http.MethodGet {
		s.recordDecision(ctx, r.RemoteAddr, project, f, facts, d)
	}
	if err := d.Err(); err != nil {
		w.Header().Set("Cache-Control", "no-store")
		return fmt.Errorf("%s: %w", describe(facts), err)
	}
	return s.serveBlob(w, r, sha, filename, "file", func(ctx context.Context) (io.ReadCloser, int64, error) {
		b, err := s.up.Open(ctx, project, f.URL, "file")
		if err != nil {
			return nil, 0, err
		}
		return b, b.Size, nil
	}, nil)
}

// serveMetadata serves the PEP 658 metadata of f from the blob store,
// filling it from <file-url>.metadata once.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request, project string, f *pypi.File) error {
	if !f.CoreMetadata {
		return errorf(http.StatusNotFound, "pipgate: the index lists no metadata for %s", f.Filename)
	}
	want := f.CoreMetadataHashes["sha256"]
	up, _ := s.up.Owner(project)
	// The ref is per upstream: what one upstream said a file's metadata is
	// never answers for another's copy of the file.
	ref := "metadata:" + up + ":" + f.SHA256()
	if want == "" && f.SHA256() != "" {
		if sha, err := s.store.Ref(ref); err == nil {
			want = sha
		}
	}
	var onDone func(string)
	if f.SHA256() != "" {
		onDone = func(sha string) {
			if err := s.store.PutRef(ref, sha); err != nil {
				s.log.Error("caching metadata ref", "filename", f.Filename, "err", err)
			}
		}
	}
	return s.serveBlob(w, r, want, f.Filename+metadataSuffix, "metadata", func(ctx context.Context) (io.ReadCloser, int64, error) {
		b, err := s.up.Open(ctx, project, f.URL+metadataSuffix, "metadata")
		if err != nil {
			return nil, 0, err
		}
		return b, b.Size, nil
	}, onDone)
}

// serveBlob serves the blob sha256 (filled from open when missing; want ""
// means unknown: the fill accepts what it gets and reports it via onDone).
// A GET during a fill streams the growing file; HEAD and Range wait for the
// committed blob, which http.ServeContent serves.
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, sha, name, kind string, open fillSource, onDone func(string)) error {
	ctx := r.Context()
	ri := info(ctx)
	if sha != "" {
		if f, err := s.store.OpenBlob(sha); err == nil {
			defer f.Close()
			ri.cache = cacheHit
			s.metrics.cacheLookup("file", cacheHit)
			setBlobHeaders(w, sha, kind)
			cw := &countingWriter{ResponseWriter: w}
			http.ServeContent(cw, r, name, time.Time{}, f)
			s.metrics.served("cache", cw.n)
			return nil
		}
	}
	ri.cache = cacheMiss
	s.metrics.cacheLookup("file", cacheMiss)
	key := sha
	if key == "" {
		key = kind + ":" + name
	}
	fl := s.startFill(key, sha, open, onDone)
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" {
		rd, size, ok, err := fl.attach(ctx)
		if err != nil {
			return err
		}
		if ok {
			defer rd.Close()
			setBlobHeaders(w, sha, kind)
			if size >= 0 {
				w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			}
			w.WriteHeader(http.StatusOK)
			if _, err := io.Copy(w, rd); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.log.Error("stream failed after headers; aborting the response", "filename", name,
					"request_id", ri.id, "err", err)
				panic(http.ErrAbortHandler)
			}
			return nil
		}
	}
	got, err := fl.wait(ctx)
	if err != nil {
		return err
	}
	f, err := s.store.OpenBlob(got)
	if err != nil {
		return fmt.Errorf("opening committed blob: %w", err)
	}
	defer f.Close()
	setBlobHeaders(w, got, kind)
	http.ServeContent(w, r, name, time.Time{}, f)
	return nil
}

func setBlobHeaders(w http.ResponseWriter, sha, kind string) {
	h := w.Header()
	if kind == "metadata" {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	if sha != "" {
		h.Set("ETag", `"`+sha+`"`)
	}
	h.Set("X-Content-Type-Options", "nosniff")
}

// headerSafe makes s a single-line header value of bounded length.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}

// countingWriter counts the body bytes http.ServeContent writes.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

// ReadFrom keeps the underlying writer's sendfile path.
func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(w.ResponseWriter, r)
	w.n += n
	return n, err
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// serveProvenance serves /integrity/<project>/<version>/<filename>/provenance:
// pipgate's cached copy of the upstream's provenance for that file.
func (s *Server) serveProvenance(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	project, filename := r.PathValue("project"), r.PathValue("filename")
	if !pypi.ValidProjectName(project) {
		return errorf(http.StatusBadRequest, "pipgate: invalid project name %q", project)
	}
	if !validFilename(filename) {
		return errorf(http.StatusBadRequest, "pipgate: invalid filename %q", filename)
	}
	project = pypi.NormalizeName(project)
	info(ctx).project, info(ctx).file = project, filename
	f, err := s.findFile(ctx, project, filename)
	if err != nil {
		return err
	}
	noProvenance := func() error {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, err := fmt.Fprintf(w, `{"message":%q}`, "No provenance available for "+filename)
		return err
	}
	if f.Provenance == "" {
		return noProvenance()
	}
	e, c, err := s.provenance(ctx, project, f.Provenance)
	if err != nil {
		return err
	}
	info(ctx).cache = c
	if e.Absent {
		return noProvenance()
	}
	w.Header().Set("Content-Type", pypi.ContentTypeIntegrity)
	w.Header().Set("Vary", "Accept")
	w.Header().Set("Content-Length", strconv.Itoa(len(e.Body)))
	if c != "" {
		w.Header().Set(headerCache, c)
	}
	_, err = w.Write(e.Body)
	return err
}
