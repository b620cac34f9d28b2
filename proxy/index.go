package proxy

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/pypi"
)

// serveRoot serves /simple/: the project list, from its cached render.
func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) error {
	lr, c, err := s.gate.ProjectListRender(r.Context())
	if err != nil {
		return err
	}
	info(r.Context()).cache = c
	ct := pypi.Negotiate(r.Header.Get("Accept"))
	return writeIndex(w, ct, c, lr.Serial(), lr.Body(ct))
}

// redirectSlash answers /simple/<project> (no trailing slash) with a 301 to
// the normalised name with the slash, as PyPI does.
func (s *Server) redirectSlash(w http.ResponseWriter, r *http.Request) error {
	project := r.PathValue("project")
	if !pypi.ValidProjectName(project) {
		return errorf(http.StatusBadRequest, "pipgate: invalid project name %q", project)
	}
	http.Redirect(w, r, pypi.NormalizeName(project)+"/", http.StatusMovedPermanently) //nolint:gosec // a relative URL of a validated name
	return nil
}

// serveProject serves /simple/<project>/ in the negotiated format, with file
// URLs pointing at pipgate and the policy's yanks applied.
func (s *Server) serveProject(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	project := r.PathValue("project")
	if !pypi.ValidProjectName(project) {
		return errorf(http.StatusBadRequest, "pipgate: invalid project name %q", project)
	}
	if norm := pypi.NormalizeName(project); norm != project {
		http.Redirect(w, r, "../"+norm+"/", http.StatusMovedPermanently) //nolint:gosec // a relative URL of a validated name
		return nil
	}
	info(ctx).project = project
	ct := pypi.Negotiate(r.Header.Get("Accept"))
	ttl := s.gate.IndexTTL(project)
	if rp, ok := s.gate.CachedRender(project, ct, ttl); ok {
		// Nothing changed since the last render, which ran eager
		// verification for this very page: serve the bytes.
		info(ctx).cache = gate.CacheHit
		s.gate.CountLookup(gate.LookupIndex, gate.CacheHit)
		return writeRendered(w, r, ct, gate.CacheHit, rp)
	}
	p, fetchedAt, c, err := s.gate.PageAt(ctx, project, ttl)
	if err != nil {
		return err
	}
	info(ctx).cache = c
	if rp, ok := s.gate.RenderOf(project, ct, fetchedAt); ok {
		return writeRendered(w, r, ct, c, rp)
	}
	if s.gate.StreamsPage(p, ct) {
		s.gate.EagerVerify(ctx, p)
		return s.writePageStream(w, r, p, ct, c)
	}
	rp, err := s.gate.RenderOnce(ctx, p, fetchedAt, c, ct, s.markIndexDecision)
	if err != nil {
		return err
	}
	return writeRendered(w, r, ct, c, rp)
}

// writePageStream writes p to the client as it is rendered, in pieces
// (chunked, no Content-Length).
func (s *Server) writePageStream(w http.ResponseWriter, r *http.Request, p *pypi.ProjectPage, ct string, cacheState gate.CacheState) error {
	setIndexHeaders(w, ct, cacheState, p.LastSerial, 0)
	w.Header().Del("Content-Length")
	if r.Method == http.MethodHead {
		return nil
	}
	each, _ := s.gate.ServedFiles(p, s.policy.Current(), origin(r), s.markIndexDecision)
	if ct == pypi.ContentTypeV1JSON {
		return pypi.WriteProjectJSONFunc(w, p, each)
	}
	return pypi.WriteProjectHTMLFunc(w, p, each)
}

// markIndexDecision puts a decision a page render applied on the status
// page's blocked list (or takes the file off it).
func (s *Server) markIndexDecision(d gate.IndexDecision) {
	s.decisions.mark(statusDecision{Time: s.now(), Project: d.Project, Version: d.Version, Filename: d.Filename, SHA256: d.SHA256,
		Verdict: d.Decision.Verdict, Action: d.Decision.Action, Rule: d.Decision.Rule, Reason: d.Decision.Reason,
		Finding: d.Decision.Finding})
}

func writeIndex(w http.ResponseWriter, ct string, cacheState gate.CacheState, serial int64, body []byte) error {
	setIndexHeaders(w, ct, cacheState, serial, len(body))
	_, err := w.Write(body) //nolint:gosec // G705: the index render, escaped by the pypi writers
	return err
}

// origin is the scheme and host the client used, for the only absolute
// URLs pipgate writes (provenance links, which PEP 740 wants fully
// qualified; file URLs are page-relative). Through the egress tunnel that is
// the intercepted host on https (the tunnel sets TLS and Host).
//
// Behind a TLS terminator, "X-Forwarded-Proto: https" (its first value)
// upgrades the scheme; "http" never downgrades a TLS connection. The host
// is always the request's Host: X-Forwarded-Host and Forwarded are not
// honoured, so no header a client sends points the links at another host.
// Nothing here is cached: rendered pages hold a placeholder for the origin
// (see pageCache), so a client only ever changes its own response.
func origin(r *http.Request) string {
	if r.TLS != nil || forwardedHTTPS(r) {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// forwardedHTTPS reports whether the first X-Forwarded-Proto value is https.
func forwardedHTTPS(r *http.Request) bool {
	v := r.Header.Get("X-Forwarded-Proto")
	first, _, _ := strings.Cut(v, ",")
	return strings.EqualFold(strings.TrimSpace(first), "https")
}

// writeRendered writes a rendered index page with the request's origin.
func writeRendered(w http.ResponseWriter, r *http.Request, ct string, cacheState gate.CacheState, rp *gate.RenderedPage) error {
	orig := origin(r)
	setIndexHeaders(w, ct, cacheState, rp.Serial(), rp.Size(ct, orig))
	if r.Method == http.MethodHead {
		return nil
	}
	return rp.WriteTo(w, ct, orig)
}

// setIndexHeaders sets the headers of an index page of n bytes.
func setIndexHeaders(w http.ResponseWriter, ct string, cacheState gate.CacheState, serial int64, n int) {
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Vary", "Accept")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(n))
	if serial > 0 {
		h.Set("X-PyPI-Last-Serial", strconv.FormatInt(serial, 10))
	}
	if cacheState != "" {
		h.Set(headerCache, string(cacheState))
	}
	if cacheState == gate.CacheStale {
		h.Set("Warning", `110 pipgate "the upstream index failed; this page is the last good copy"`)
	}
}
