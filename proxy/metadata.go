package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

// PEP 658 metadata (<file>.metadata) is what pip resolves with: a
// Requires-Dist in it is a dependency pip goes looking for. So the metadata
// of a verified wheel is only ever the METADATA inside that wheel, whose
// bytes the attestation covers (it signs the wheel's sha256, and the blob is
// committed only when its bytes match it):
//
//   - it is extracted once per wheel blob (the zip's central directory and
//     one member, pypi.WheelMetadata) into a content-addressed blob, with a
//     ref from the wheel (metadataRef); later requests read the ref (from
//     memory) and send the blob;
//   - the wheel is filled first when it is not cached (pip asks for the
//     metadata before the file), as a download of it would be, so the
//     download that follows is a cache hit;
//   - the index's core-metadata sha256 must be the extracted METADATA's:
//     otherwise the index (or a mirror) serves other metadata than the
//     wheel holds, pip would resolve with it, and the request is refused
//     (403 metadata-mismatch, counted). The upstream .metadata file is
//     never fetched for a verified wheel.
//
// Other verdicts (unattested, or allowed by the policy though not verified)
// make no claim about the publisher: their metadata is the upstream's,
// checked against the index's sha256 like a file. Sdists get no metadata
// at all (404, and pages do not advertise it): what pip would need is the
// metadata of a build, which no signature covers; pip builds the sdist it
// downloads, whose bytes are checked. PyPI serves metadata for wheels only.

// Reasons for refusing a verified wheel's metadata
// (pipgate_metadata_refused_total{reason}; the X-Pipgate-Reason is
// "metadata-" + reason).
const (
	metadataMismatch   = "mismatch"
	metadataUnreadable = "unreadable"
)

// servesMetadata reports whether pipgate serves PEP 658 metadata for the file
// named filename (a wheel, as pip tells one: by its extension).
func servesMetadata(filename string) bool { return strings.HasSuffix(filename, ".whl") }

// metadataRef is the name of the ref from a wheel (its sha256 and filename:
// the .dist-info folder is matched against the name) to the METADATA blob
// extracted from it.
func metadataRef(sha, filename string) string { return "metadata:" + sha + ":" + filename }

// serveMetadata serves the PEP 658 metadata of f, a file already decided
// and allowed with facts (see above). Only metadata the index gives a
// sha256 for is served: pages drop core-metadata without one (pip then
// reads the metadata from the wheel, whose sha256 is checked), and a
// request for it is a 404.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request, project string, f *pypi.File, facts pypi.Facts) error {
	want := f.CoreMetadataHashes.Get("sha256")
	if !f.CoreMetadata || want == "" {
		return errorf(http.StatusNotFound, "pipgate: the index lists no metadata with a sha256 for %s", f.Filename)
	}
	if !servesMetadata(f.Filename) {
		return errorf(http.StatusNotFound, "pipgate: metadata is served for wheels only, not for %s", f.Filename)
	}
	if facts.Verdict == pypi.VerdictVerified {
		return s.serveWheelMetadata(w, r, project, f, want)
	}
	return s.serveBlob(w, r, f.Filename+metadataSuffix, "metadata", fillRequest{sha: want, size: -1,
		open: func(ctx context.Context) (io.ReadCloser, int64, error) {
			b, err := s.up.Open(ctx, project, f.URL+metadataSuffix, "metadata")
			if err != nil {
				return nil, 0, err
			}
			return b, b.Size, nil
		}})
}

// serveWheelMetadata serves the METADATA of the verified wheel f when its
// sha256 is want (the index's), and refuses it otherwise.
func (s *Server) serveWheelMetadata(w http.ResponseWriter, r *http.Request, project string, f *pypi.File, want string) error {
	ctx := r.Context()
	ri := info(ctx)
	for fresh := false; ; fresh = true {
		got, state, err := s.wheelMetadata(w, r, project, f, fresh)
		var me *metadataError
		switch {
		case errors.As(err, &me):
			return s.refuseMetadata(w, r, f, metadataUnreadable, me.Error(), err)
		case err != nil:
			return err
		case got != want:
			return s.refuseMetadata(w, r, f, metadataMismatch,
				"the index's METADATA for "+f.Filename+" differs from the one inside the verified wheel",
				fmt.Errorf("index sha256 %s, wheel METADATA sha256 %s", want, got))
		}
		b, err := s.store.OpenBlob(got)
		if errors.Is(err, cache.ErrNotFound) && !fresh {
			continue // evicted or changed on disk since: extract it again
		}
		if err != nil {
			return fmt.Errorf("opening metadata blob: %w", err)
		}
		defer b.Close()
		ri.cache = state
		s.metrics.cacheLookup("file", state)
		setBlobHeaders(w, got, "metadata")
		s.metrics.served("cache", s.sendBlob(w, r, f.Filename+metadataSuffix, b.File))
		return nil
	}
}

// metadataError is a verified wheel whose METADATA cannot be read where pip
// reads it (pypi.ErrWheelMetadata).
type metadataError struct{ err error }

func (e *metadataError) Error() string { return e.err.Error() }
func (e *metadataError) Unwrap() error { return e.err }

// wheelMetadata returns the sha256 of the METADATA blob of the wheel f, and
// the cache state: hit when it was extracted before (fresh skips that, for
// a blob gone since), miss when the wheel was read now (and filled first
// when not cached; a failed fill has set the verdict headers on w).
func (s *Server) wheelMetadata(w http.ResponseWriter, r *http.Request, project string, f *pypi.File, fresh bool) (string, string, error) {
	ctx := r.Context()
	sha := f.SHA256()
	ref := metadataRef(sha, f.Filename)
	if !fresh {
		if m, ok := s.hot.getMetadata(ref); ok {
			return m, cacheHit, nil
		}
		m, err := s.store.Ref(ref)
		if err == nil {
			s.hot.putMetadata(ref, m)
			return m, cacheHit, nil
		}
		if !errors.Is(err, cache.ErrNotFound) {
			s.log.Warn("reading metadata ref", "filename", f.Filename, "sha256", sha, "err", err)
		}
	}
	// The wheel, pinned while this request waits for the extraction
	// (which opens it itself: it may outlive this request).
	wheel, err := s.store.OpenBlob(sha)
	if err != nil {
		if !errors.Is(err, cache.ErrNotFound) {
			s.log.Warn("opening cached file", "filename", f.Filename, "sha256", sha, "err", err)
		}
		fl := s.joinFill(s.fileFill(project, f))
		got, err := fl.wait(ctx)
		s.leaveFill(fl)
		if err != nil {
			return "", "", s.fillFailed(w, r, err)
		}
		if wheel, err = s.store.OpenBlob(got); err != nil {
			return "", "", fmt.Errorf("opening committed blob: %w", err)
		}
	}
	defer wheel.Close()
	m, err := await(ctx, s, "metadata:"+ref, s.opts.FetchTimeout, func(context.Context) (string, error) {
		return s.extractMetadata(sha, f.Filename, ref)
	})
	if err != nil {
		return "", "", err
	}
	return m, cacheMiss, nil
}

// extractMetadata extracts the METADATA of the wheel blob sha (named
// filename) into a blob and points ref at it.
func (s *Server) extractMetadata(sha, filename, ref string) (string, error) {
	b, err := s.store.OpenBlob(sha)
	if err != nil {
		return "", fmt.Errorf("opening wheel blob: %w", err)
	}
	defer b.Close()
	fi, err := b.Stat()
	if err != nil {
		return "", fmt.Errorf("wheel blob: %w", err)
	}
	bw, err := s.store.NewBlob()
	if err != nil {
		return "", err
	}
	defer func() { _ = bw.Abort() }()
	out := &errWriter{w: bw}
	if _, err := pypi.WheelMetadata(b, fi.Size(), filename, out); err != nil {
		if out.err != nil {
			return "", fmt.Errorf("writing metadata blob: %w", out.err)
		}
		return "", &metadataError{err}
	}
	m, err := bw.Commit("")
	if err != nil {
		return "", err
	}
	if err := s.store.PutRef(ref, m); err != nil {
		s.log.Error("caching metadata ref", "filename", filename, "sha256", sha, "err", err)
	}
	s.hot.putMetadata(ref, m)
	return m, nil
}

// errWriter remembers the first error of w, so that a failed write to the
// blob store is not taken for an unreadable wheel.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// refuseMetadata refuses the metadata of the verified wheel f: 403 with
// "metadata-<reason>: msg" (the status line pip prints), counted and
// logged. No verdict about the metadata holds, so it is not called
// verified: the answer says invalid.
func (s *Server) refuseMetadata(w http.ResponseWriter, r *http.Request, f *pypi.File, reason, msg string, detail error) error {
	s.metrics.metadataRefusal(reason)
	s.log.Warn("metadata refused", "request_id", info(r.Context()).id, "filename", f.Filename,
		"sha256", f.SHA256(), "reason", "metadata-"+reason, "err", detail)
	h := w.Header()
	h.Set(headerVerdict, string(pypi.VerdictInvalid))
	h.Set(headerReason, "metadata-"+reason)
	h.Set("Cache-Control", "no-store")
	return &httpError{Code: http.StatusForbidden, Msg: "metadata-" + reason + ": " + msg}
}
