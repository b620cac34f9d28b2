package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

// redecider decides blocked status rows again under one policy, reading
// each project's page once (from the cache; no fetch, no verification).
type redecider struct {
	s     *Server
	pol   *policy.Policy
	pages map[string]*gate.PageDecider // by project; nil: no cached page
}

// redecide returns x as the policy in force decides its file now. A row
// whose file is not on a cached page, or has no cached facts any more,
// stays as it was.
func (rd *redecider) redecide(x statusDecision) statusDecision {
	pd, seen := rd.pages[x.Project]
	if !seen {
		if p, ok := rd.s.gate.CachedPage(x.Project); ok {
			pd = rd.s.gate.NewPageDecider(rd.pol, p)
		}
		rd.pages[x.Project] = pd
	}
	if pd == nil {
		return x
	}
	f := gate.FileNamed(pd.Page(), x.Filename)
	if f == nil || (x.SHA256 != "" && f.SHA256() != x.SHA256) {
		return x
	}
	d, ok := pd.Decide(f)
	if !ok {
		return x
	}
	x.Verdict, x.Action, x.Rule, x.Reason, x.Finding = d.Verdict, d.Action, d.Rule, d.Reason, d.Finding
	x.RuleLine = rd.pol.Lookup(x.Project).Line
	return x
}

// serveProjectStatus serves /-/status/<project>: every file of the project's
// page (the cached page, else fetched) with what pipgate knows and decides
// about it, from cached facts only (a file not verified yet says so).
func (s *Server) serveProjectStatus(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	project := r.PathValue("project")
	if !pypi.ValidProjectName(project) {
		return errorf(http.StatusBadRequest, "pipgate: invalid project name %q", project)
	}
	project = pypi.NormalizeName(project)
	info(ctx).project = project
	p, c, err := s.gate.Page(ctx, project, gate.AnyAge)
	if errors.Is(err, upstream.ErrNotFound) {
		return &httpError{Code: http.StatusNotFound, Msg: s.missingProject(project), Err: err}
	}
	if err != nil {
		return err
	}
	info(ctx).cache = c
	ps := s.projectStatus(ctx, p)
	var buf bytes.Buffer
	if wantsJSON(r) {
		err = writeProjectStatusJSON(&buf, ps)
	} else {
		err = writeProjectStatusHTML(&buf, ps)
	}
	if err != nil {
		return err
	}
	return writeStatusPage(w, r, buf.Bytes())
}

// missingProject says why /-/status/<project> has nothing to show: which
// upstream owns the name and that it does not have it (no other index is
// asked for an owned name).
func (s *Server) missingProject(project string) string {
	name, _ := s.up.Owner(project)
	ups := s.upstreams()
	for _, u := range ups {
		if u.Name != name {
			continue
		}
		if len(ups) > 1 {
			how := "it is the default upstream for names no other upstream owns"
			if !u.Default {
				how = "its projects patterns match the name"
			}
			return fmt.Sprintf("pipgate: project %q is owned by upstream %s (%s), which does not have it (%s; pipgate asks no other index for it)",
				project, u.Name, u.URL, how)
		}
		return fmt.Sprintf("pipgate: project %q not found on upstream %s (%s)", project, u.Name, u.URL)
	}
	if name != "" {
		return fmt.Sprintf("pipgate: project %q not found on upstream %s, which owns it", project, name)
	}
	return fmt.Sprintf("pipgate: project %q: no upstream serves it", project)
}

// projectStatus decides every file of p under the policy in force as the
// index does: from cached facts, never fetching or verifying.
func (s *Server) projectStatus(_ context.Context, p *pypi.ProjectPage) projectStatus {
	pol := s.policy.Current()
	rule := pol.Lookup(p.Name)
	ps := projectStatus{
		Project:      p.Name,
		GeneratedAt:  s.now(),
		PolicySource: pol.Source(),
		PolicyDigest: pol.Digest(),
		Rule:         rule.Name,
		RuleLine:     rule.Line,
		Require:      rule.Require,
		Files:        make([]projectFile, 0, len(p.Files)),
	}
	pd := s.gate.NewPageDecider(pol, p)
	for i := range p.Files {
		f := &p.Files[i]
		pf := projectFile{Filename: f.Filename, SHA256: f.SHA256(), UploadTime: f.UploadTime,
			Provenance: f.Provenance != "", UpstreamYanked: f.Yanked, Rule: rule.Name, RuleLine: rule.Line}
		if fn, err := pypi.ParsePipFilename(f.Filename); err == nil {
			pf.Version = fn.Version.String()
		}
		facts, known := s.gate.CachedFacts(p.Name, f)
		d, decided := pd.Decide(f)
		switch {
		case known:
			pf.Verdict = facts.Verdict
			if facts.Identity != nil {
				pf.Signer = facts.Identity.String()
			}
			pf.Finding = string(facts.Reason)
		default:
			pf.Verdict = statusNotVerified
			pf.Reason = "not verified yet: pipgate verifies a file when it is downloaded, and the newest releases when the page is served"
		}
		if decided {
			pf.Verdict = d.Verdict
			pf.Action, pf.Rule, pf.Reason = d.Action, d.Rule, d.Reason
			if d.Finding != "" {
				pf.Finding = string(d.Finding)
			}
			if pf.Reason == "" {
				pf.Reason = facts.Detail
			}
		}
		ps.Files = append(ps.Files, pf)
	}
	sortProjectFiles(ps.Files)
	return ps
}

// statusNotVerified is the verdict column of a file pipgate has no facts
// about yet.
const statusNotVerified pypi.Verdict = "not-verified"

// projectStatus is /-/status/<project>: every file of the project's page and
// what the policy in force does with it.
type projectStatus struct {
	Project      string         `json:"project"`
	GeneratedAt  time.Time      `json:"generated_at"`
	PolicySource string         `json:"policy_source"`
	PolicyDigest string         `json:"policy_digest"`
	Rule         string         `json:"rule"`      // the rule that governs the project, or "defaults"
	RuleLine     int            `json:"rule_line"` // its line in the policy file; 0 for the defaults
	Require      policy.Require `json:"require"`
	Files        []projectFile  `json:"files"` // newest version first
}

// projectFile is one file of a project's page on its status page.
type projectFile struct {
	Filename       string `json:"filename"`
	Version        string `json:"version,omitempty"`
	SHA256         string `json:"sha256,omitempty"`
	UploadTime     string `json:"upload_time,omitempty"`
	Provenance     bool   `json:"provenance"`      // the index lists provenance for it
	UpstreamYanked bool   `json:"upstream_yanked"` // yanked by the upstream itself
	// Verdict is the verification verdict, or "not-verified" when pipgate
	// has not checked the file yet (then Action is empty).
	Verdict  pypi.Verdict  `json:"verdict"`
	Signer   string        `json:"signer,omitempty"`  // the verified signer's identity
	Finding  string        `json:"finding,omitempty"` // the failure class (digest-mismatch, ...) or policy finding
	Rule     string        `json:"rule"`
	RuleLine int           `json:"rule_line,omitempty"`
	Action   policy.Action `json:"action,omitempty"` // allow, block, yank, warn
	Reason   string        `json:"reason,omitempty"`
}

// sortProjectFiles orders files newest version first (PEP 440), then by
// filename; unparsable versions last.
func sortProjectFiles(files []projectFile) {
	vs := make(map[string]*pypi.Version, len(files))
	for _, f := range files {
		if _, ok := vs[f.Version]; !ok {
			if v, err := pypi.ParseVersion(f.Version); err == nil {
				vs[f.Version] = &v
			} else {
				vs[f.Version] = nil
			}
		}
	}
	sort.SliceStable(files, func(i, j int) bool {
		a, b := vs[files[i].Version], vs[files[j].Version]
		switch {
		case a == nil && b == nil:
		case a == nil:
			return false
		case b == nil:
			return true
		default:
			if c := a.Compare(*b); c != 0 {
				return c > 0
			}
		}
		return files[i].Filename < files[j].Filename
	})
}

// writeProjectStatusJSON writes ps as indented JSON.
func writeProjectStatusJSON(w io.Writer, ps projectStatus) error {
	if ps.Files == nil {
		ps.Files = []projectFile{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ps); err != nil {
		return fmt.Errorf("writing project status JSON: %w", err)
	}
	return nil
}

// writeProjectStatusHTML renders ps as one self-contained page (the same
// style as /-/status; every value escaped by html/template).
func writeProjectStatusHTML(w io.Writer, ps projectStatus) error {
	if err := projectStatusTemplate.Execute(w, ps); err != nil {
		return fmt.Errorf("writing project status page: %w", err)
	}
	return nil
}
