package proxy

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// serveRoot serves /simple/: the project list, from its cached render.
func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) error {
	lr, c, err := s.projectListRender(r.Context())
	if err != nil {
		return err
	}
	info(r.Context()).cache = c
	ct := pypi.Negotiate(r.Header.Get("Accept"))
	return writeIndex(w, ct, c, lr.serial, lr.body(ct))
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
	ttl := s.indexTTL(project)
	if rp, ok := s.cachedRender(project, ct, ttl); ok {
		// Nothing changed since the last render, which ran eager
		// verification for this very page: serve the bytes.
		info(ctx).cache = cacheHit
		s.metrics.cacheLookup("index", cacheHit)
		return writeRendered(w, r, ct, cacheHit, rp)
	}
	p, fetchedAt, c, err := s.pageAt(ctx, project, ttl)
	if err != nil {
		return err
	}
	info(ctx).cache = c
	// One render per page snapshot and content type, however many clients
	// ask at once.
	key := "render:" + project + "\x00" + ct + "\x00" + strconv.FormatInt(fetchedAt.UnixNano(), 10)
	if rp, ok := s.renderOf(project, ct, fetchedAt); ok {
		return writeRendered(w, r, ct, c, rp)
	}
	if s.streamsPage(p, ct) {
		s.eagerVerify(ctx, p)
		return s.writePageStream(w, r, p, ct, c)
	}
	rp, err := await(ctx, s, key, s.opts.FetchTimeout, func(ctx context.Context) (*renderedPage, error) {
		if rp, ok := s.renderOf(project, ct, fetchedAt); ok {
			return rp, nil
		}
		s.eagerVerify(ctx, p)
		return s.render(p, fetchedAt, c, ct)
	})
	if err != nil {
		return err
	}
	return writeRendered(w, r, ct, c, rp)
}

// streamsPage reports whether p, rendered in content type ct, is too large
// to render into memory: its render could not be kept in the page cache
// anyway, so it is written to the client as it is rendered instead of
// being held whole (a page of 390k files renders to over 100 MiB of JSON).
func (s *Server) streamsPage(p *pypi.ProjectPage, ct string) bool {
	return int64(pypi.WrittenSizeHint(p, ct == pypi.ContentTypeV1JSON)) > s.opts.PageCacheBytes
}

// writePageStream writes p to the client as it is rendered, in pieces
// (chunked, no Content-Length).
func (s *Server) writePageStream(w http.ResponseWriter, r *http.Request, p *pypi.ProjectPage, ct, cacheState string) error {
	setIndexHeaders(w, ct, cacheState, p.LastSerial, 0)
	w.Header().Del("Content-Length")
	if r.Method == http.MethodHead {
		return nil
	}
	each, _ := s.servedFiles(p, s.policy.Current(), origin(r))
	if ct == pypi.ContentTypeV1JSON {
		return pypi.WriteProjectJSONFunc(w, p, each)
	}
	return pypi.WriteProjectHTMLFunc(w, p, each)
}

func writeIndex(w http.ResponseWriter, ct, cacheState string, serial int64, body []byte) error {
	setIndexHeaders(w, ct, cacheState, serial, len(body))
	_, err := w.Write(body)
	return err
}

// servedPage is p as pipgate serves it: file URLs on pipgate (relative to the
// page, so it works behind any prefix and through the egress tunnel),
// provenance on pipgate's own /integrity route at orig, and every file whose known
// verdict the policy blocks or yanks listed as yanked with the reason.
//
// It is applied file by file as the page is written (no copy of a page of
// 390k files is made): servedFiles returns the function the page writers
// call on each file, and the decider whose until, once every file went
// through it, is the earliest time the listing changes by itself (a
// cooldown ending), zero when none does.
func (s *Server) servedFiles(p *pypi.ProjectPage, pol *policy.Policy, orig string) (pypi.FileFunc, *pageDecider) {
	pd := &pageDecider{s: s, pol: pol, page: p, now: s.now()}
	return func(i int, nf *pypi.File) {
		f := &p.Files[i]
		nf.URL = "../../files/" + p.Name + "/" + url.PathEscape(f.Filename)
		if nf.CoreMetadata && (nf.CoreMetadataHashes.Get("sha256") == "" || !servesMetadata(f.Filename)) {
			// Metadata without a sha256 could not be checked, an sdist's
			// is not served: pip reads the metadata from the file instead
			// (see serveMetadata).
			nf.CoreMetadata, nf.CoreMetadataHashes = false, nil
		}
		if f.Provenance != "" {
			nf.Provenance = orig + "/integrity/" + p.Name + "/" + url.PathEscape(provenanceVersion(f)) + "/" +
				url.PathEscape(f.Filename) + "/provenance"
		}
		if d, ok := pd.decide(f); ok {
			if d.Yanks() {
				nf.Yanked = true
				nf.YankedReason = d.Reason
				if f.Yanked && f.YankedReason != "" {
					nf.YankedReason += " (upstream: " + f.YankedReason + ")"
				}
			}
			s.decisions.mark(statusDecision{Time: s.now(), Project: p.Name, Version: s.hot.version(f.Filename), Filename: f.Filename, SHA256: f.SHA256(),
				Verdict: string(d.Verdict), Action: string(d.Action), Rule: d.Rule, Reason: d.Reason, Finding: string(d.Finding)})
		}
	}, pd
}

// provenanceVersion is the version segment for pipgate's integrity URL: the
// one in the upstream URL (.../integrity/<p>/<version>/<file>/provenance),
// else the filename's.
func provenanceVersion(f *pypi.File) string {
	if u, err := url.Parse(f.Provenance); err == nil {
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		if n := len(parts); n >= 4 && parts[n-1] == "provenance" && parts[n-4] == "integrity" {
			return parts[n-3]
		}
	}
	if fn, err := pypi.ParsePipFilename(f.Filename); err == nil {
		return fn.Version.String()
	}
	return "0"
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
