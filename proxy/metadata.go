package proxy

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
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

// serveMetadata serves the PEP 658 metadata of f, a file already decided
// and allowed with facts (see above). Only metadata the index gives a
// sha256 for is served: pages drop core-metadata without one (pip then
// reads the metadata from the wheel, whose sha256 is checked), and a
// request for it is a 404.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request, dl gate.Download) error {
	project, f := dl.Project, dl.File
	want := f.CoreMetadataHashes.Get("sha256")
	if !f.CoreMetadata || want == "" {
		return errorf(http.StatusNotFound, "pipgate: the index lists no metadata with a sha256 for %s", f.Filename)
	}
	if !gate.ServesMetadata(f.Filename) {
		return errorf(http.StatusNotFound, "pipgate: metadata is served for wheels only, not for %s", f.Filename)
	}
	if dl.Facts.Verdict == pypi.VerdictVerified {
		return s.serveWheelMetadata(w, r, project, f, want)
	}
	return s.serveBlob(w, r, f.Filename+metadataSuffix, blobMetadata, s.gate.MetadataFill(project, f))
}

// serveWheelMetadata serves the METADATA of the verified wheel f when its
// sha256 is want (the index's), and refuses it otherwise.
func (s *Server) serveWheelMetadata(w http.ResponseWriter, r *http.Request, project string, f *pypi.File, want string) error {
	ctx := r.Context()
	ri := info(ctx)
	for fresh := false; ; fresh = true {
		got, state, err := s.gate.WheelMetadata(ctx, project, f, fresh, func(err error) error { return s.fillFailed(w, r, err) })
		var me *gate.MetadataError
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
		s.gate.CountLookup(gate.LookupFile, state)
		setBlobHeaders(w, got, blobMetadata)
		s.gate.CountServed(s.sendBlob(w, r, f.Filename+metadataSuffix, b.File))
		return nil
	}
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
