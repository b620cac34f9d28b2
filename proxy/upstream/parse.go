package upstream

import (
	"net/url"

	"github.com/pipgate/pipgate/pypi"
)

// parseProject parses a project page by its media type (already checked to
// be one of the three simple-index types).
func parseProject(mediaType string, body []byte, pageURL *url.URL) (*pypi.ProjectPage, error) {
	if mediaType == pypi.ContentTypeV1JSON {
		return pypi.ParseProjectJSON(body, pageURL)
	}
	return pypi.ParseProjectHTML(body, pageURL)
}

// parseProjectList parses the root page by its media type. Its links are
// not resolved: entries carry names only.
func parseProjectList(mediaType string, body []byte, _ *url.URL) (*pypi.ProjectList, error) {
	if mediaType == pypi.ContentTypeV1JSON {
		return pypi.ParseProjectListJSON(body)
	}
	return pypi.ParseProjectListHTML(body)
}
