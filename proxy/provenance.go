package proxy

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/pipgate/pipgate/pypi"
)

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
	f, err := s.gate.FindFile(ctx, project, filename)
	if err != nil {
		return err
	}
	noProvenance := func() error {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, err := fmt.Fprintf(w, `{"message":%q}`, "No provenance available for "+filename) //nolint:gosec // JSON, not HTML; the filename is validated
		return err
	}
	if f.Provenance == "" {
		return noProvenance()
	}
	e, c, err := s.gate.Provenance(ctx, project, f.Provenance)
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
		w.Header().Set(headerCache, string(c))
	}
	_, err = w.Write(e.Body)
	return err
}
