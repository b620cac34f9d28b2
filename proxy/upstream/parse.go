package upstream

import (
	"io"
	"net/url"

	"github.com/pipgate/pipgate/pypi"
)

// parseProjectFrom parses a project page by its media type (already checked
// to be one of the three simple-index types) as it reads it from body.
func parseProjectFrom(mediaType string, body io.Reader, pageURL *url.URL) (*pypi.ProjectPage, error) {
	if mediaType == pypi.ContentTypeV1JSON {
		return pypi.ParseProjectJSONFrom(body, pageURL)
	}
	return pypi.ParseProjectHTMLFrom(body, pageURL)
}

// parseProjectList parses the root page by its media type. Its links are
// not resolved: entries carry names only.
func parseProjectList(mediaType string, body []byte, _ *url.URL) (*pypi.ProjectList, error) {
	if mediaType == pypi.ContentTypeV1JSON {
		return pypi.ParseProjectListJSON(body)
	}
	return pypi.ParseProjectListHTML(body)
}
