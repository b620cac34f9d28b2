package gate

import (
	"context"
	"fmt"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// Download is one requested distribution file as the gate established it:
// the file on its project's page, what verification established about it,
// and the policy's decision.
type Download struct {
	Project string
	File    *pypi.File
	// SHA256 is File's sha256 (hex), as the index gives it; Version the
	// version its filename names ("" when it does not parse); Identity
	// Facts.Identity.String() ("" when there is none).
	SHA256, Version, Identity string
	// UploadTime is File's PEP 700 upload-time; zero when absent or
	// malformed.
	UploadTime time.Time
	Facts      pypi.Facts
	Decision   policy.Decision
	// Cache is the cache state of the facts lookup; "" when none was made
	// (the index lists no provenance).
	Cache CacheState
}

// Decide is the decision half of a download, before any byte of the file is
// fetched: filename is looked up on project's page (a *NotOnPageError when
// the page, refreshed once, does not list it), its facts are established
// (the provenance fetched and verified once, then cached) and the policy in
// force decides over the project's history. A file the index gives no
// sha256 for is ErrUpstreamNoHash: its bytes could not be checked.
func (s *Gate) Decide(ctx context.Context, project, filename string) (Download, error) {
	f, err := s.FindFile(ctx, project, filename)
	if err != nil {
		return Download{}, err
	}
	sha := f.SHA256()
	if sha == "" {
		return Download{}, fmt.Errorf("%s: %w", filename, ErrUpstreamNoHash)
	}
	facts, state := s.facts(ctx, project, f, sha)
	d := s.DecideFile(ctx, project, f, facts)
	id := ""
	if facts.Identity != nil {
		id = s.hot.identity(facts.Identity)
	}
	return Download{Project: project, File: f, SHA256: sha, Version: s.hot.version(f.Filename), Identity: id,
		UploadTime: s.hot.uploadTime(f.UploadTime), Facts: facts, Decision: d, Cache: state}, nil
}

// Fill is the fill request of dl's file (FileFill).
func (s *Gate) Fill(dl Download) FillRequest { return s.fileFill(dl.Project, dl.File, dl.SHA256) }
