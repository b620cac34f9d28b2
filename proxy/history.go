package proxy

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// Trust over time: the proxy's half of the continuity and cooldown checks.
// The policy decides (policy.DecideFile); the proxy establishes what it
// decides on: the file's release and upload time, and the facts of the
// earlier releases a continuity check compares with. Those facts are the
// ordinary per-file facts (bbolt, keyed like any other), so the decision
// does not depend on which files were requested first, and a policy
// reload changes it without re-verifying anything.

// decideFile decides a download of f with facts already established. When
// the rule checks continuity it fetches and verifies, if not cached yet,
// the files of earlier releases it needs: the nearest lower release, and
// down to the previous attested one.
func (s *Server) decideFile(ctx context.Context, project string, f *pypi.File, facts pypi.Facts) policy.Decision {
	pol := s.policy.Current()
	in := fileInputVersion(f, facts, s.now(), s.hot.versionOf(f.Filename))
	if in.Version != nil && pol.Lookup(project).Continuity != policy.ActionNone {
		// The page f came from (findFile just read it: an in-memory hit).
		page, _, err := s.page(ctx, project, maxDuration)
		if err == nil {
			in.History = s.releaseHistory(ctx, project, s.pageReleases(page), *in.Version, facts, true)
		} else {
			s.log.Warn("continuity not checked: no project page", "project", project, "filename", f.Filename, "err", err)
		}
	}
	return pol.DecideFile(project, in)
}

// fileInput is what the policy needs about f besides the history.
func fileInput(f *pypi.File, facts pypi.Facts, now time.Time) policy.File {
	var version *pypi.Version
	if fn, err := pypi.ParseFilename(f.Filename); err == nil {
		version = &fn.Version
	}
	return fileInputVersion(f, facts, now, version)
}

// fileInputVersion is fileInput with f's version already parsed (nil: the
// filename does not parse).
func fileInputVersion(f *pypi.File, facts pypi.Facts, now time.Time, version *pypi.Version) policy.File {
	return policy.File{Facts: facts, Now: now, UploadTime: uploadTime(f), Version: version}
}

// uploadTime parses the PEP 700 upload-time; zero when absent or malformed
// (which the cooldown treats as too new).
func uploadTime(f *pypi.File) time.Time {
	if f.UploadTime == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, f.UploadTime)
	if err != nil {
		return time.Time{}
	}
	return t
}

// release is one release on a project page.
type release struct {
	v     pypi.Version
	files []*pypi.File
}

// releases groups the files of p by release (1.0 and 1.0.0 are one),
// newest first by PEP 440; files whose names do not parse are left out.
func releases(p *pypi.ProjectPage) []release {
	idx := map[string]int{}
	var out []release
	for i := range p.Files {
		fn, err := pypi.ParseFilename(p.Files[i].Filename)
		if err != nil {
			continue
		}
		k := pypi.CanonicalizeVersion(fn.Version.String())
		j, ok := idx[k]
		if !ok {
			j = len(out)
			idx[k] = j
			out = append(out, release{v: fn.Version})
		}
		out[j].files = append(out[j].files, &p.Files[i])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].v.Compare(out[j].v) > 0 })
	return out
}

// releaseHistory returns the releases below v that the continuity checks of
// a file with facts need: for a file without provenance, the nearest lower
// release that is not yanked; for a verified file, every release down to
// the previous attested one. Upstream-yanked releases on the way are
// included (marked) so the policy skips them. With verify, facts not cached
// yet are fetched and verified (once per file, cached); without it, only
// cached facts are used and a release with unknown ones is Unknown.
func (s *Server) releaseHistory(ctx context.Context, project string, rels []release, v pypi.Version, facts pypi.Facts, verify bool) []policy.Release {
	return s.releaseHistoryMemo(ctx, project, rels, v, facts, verify, nil)
}

// releaseHistoryMemo is releaseHistory; with memo (cached facts only), each
// release's summary is computed once per page and shared by its files.
func (s *Server) releaseHistoryMemo(ctx context.Context, project string, rels []release, v pypi.Version, facts pypi.Facts, verify bool, memo map[int]policy.Release) []policy.Release {
	wantAttested := facts.Verdict == pypi.VerdictVerified && facts.Identity != nil
	wantNearest := facts.Verdict == pypi.VerdictUnattested
	if !wantAttested && !wantNearest {
		return nil
	}
	var out []policy.Release
	// rels is newest first: the releases below v start at the first one
	// that sorts below it.
	start := sort.Search(len(rels), func(i int) bool { return rels[i].v.Compare(v) < 0 })
	for i := start; i < len(rels); i++ {
		r := rels[i]
		if allYanked(r.files) {
			out = append(out, policy.Release{Version: r.v, Yanked: true})
			continue
		}
		var pr policy.Release
		if sum, ok := memo[i]; ok {
			pr = sum
		} else {
			var want *pypi.Identity
			if wantAttested && memo == nil {
				want = facts.Identity
			}
			pr = s.releaseFacts(ctx, project, r, want, verify)
			if memo != nil {
				memo[i] = pr
			}
		}
		out = append(out, pr)
		if wantNearest || pr.Attested() || pr.Unknown {
			break
		}
	}
	return out
}

func allYanked(files []*pypi.File) bool {
	for _, f := range files {
		if !f.Yanked {
			return false
		}
	}
	return len(files) > 0
}

// releaseFacts establishes whether release r is attested and by whom. With
// verify, it stops at the first verified file that is the same publisher as
// want (or at the first verified file when want is nil), so a release costs
// one verification unless its publisher differs from the file being
// decided; from cached facts only, it collects every publisher.
func (s *Server) releaseFacts(ctx context.Context, project string, r release, want *pypi.Identity, verify bool) policy.Release {
	pr := policy.Release{Version: r.v}
	unknown := false
	for _, f := range r.files {
		if f.Provenance == "" {
			continue
		}
		facts, ok := s.cachedFacts(project, f)
		if !ok && verify {
			facts, _ = s.facts(ctx, project, f)
			ok = true
		}
		switch {
		case !ok || facts.Verdict == pypi.VerdictError:
			unknown = true
		case facts.Verdict == pypi.VerdictVerified && facts.Identity != nil:
			pr.Publishers = append(pr.Publishers, *facts.Identity)
			if verify && (want == nil || policy.SamePublisher(*facts.Identity, *want)) {
				return pr
			}
		}
	}
	pr.Unknown = unknown && !pr.Attested()
	return pr
}

// pageDecider decides the files of one page for the index, from cached
// facts only: rendering never fetches or verifies. When a continuity check
// would need facts not cached yet, the index leaves it to the download
// (which establishes them) rather than guess; eager verification
// establishes them for the newest releases.
type pageDecider struct {
	s    *Server
	pol  *policy.Policy
	page *pypi.ProjectPage
	now  time.Time
	rels []release // nil until needed
	memo map[int]policy.Release
	// until is the earliest time a decision made here changes by itself
	// (a cooldown ending); zero when none does.
	until time.Time
}

// decide returns the decision for f, and false when nothing is known that
// could change how f is listed (no cached facts and no cooldown).
func (pd *pageDecider) decide(f *pypi.File) (policy.Decision, bool) {
	facts, ok := pd.s.cachedFacts(pd.page.Name, f)
	in := fileInput(f, facts, pd.now)
	var d policy.Decision
	if ok {
		if in.Version != nil && pd.pol.Lookup(pd.page.Name).Continuity != policy.ActionNone {
			if pd.rels == nil {
				pd.rels, pd.memo = pd.s.pageReleases(pd.page), map[int]policy.Release{}
			}
			in.History = pd.s.releaseHistoryMemo(context.Background(), pd.page.Name, pd.rels, *in.Version, facts, false, pd.memo)
			for _, r := range in.History {
				if r.Unknown {
					in.Version, in.History = nil, nil // continuity is decided on download
					break
				}
			}
		}
		d = pd.pol.DecideFile(pd.page.Name, in)
	} else if d, ok = pd.pol.DecidePending(pd.page.Name, in); !ok {
		return d, false
	}
	if !d.Until.IsZero() && (pd.until.IsZero() || d.Until.Before(pd.until)) {
		pd.until = d.Until
	}
	return d, true
}

// historyTodo returns the newest files of p (their releases are what eager
// verification covers) whose continuity checks need facts of earlier
// releases that are not cached yet; nil when the rule does not check
// continuity.
func (s *Server) historyTodo(p *pypi.ProjectPage, newest []*pypi.File) []*pypi.File {
	if s.policy.Current().Lookup(p.Name).Continuity == policy.ActionNone {
		return nil
	}
	rels := s.pageReleases(p)
	var todo []*pypi.File
	for _, f := range newest {
		facts, ok := s.cachedFacts(p.Name, f)
		in := fileInput(f, facts, time.Time{})
		if in.Version == nil {
			continue
		}
		if !ok && f.Provenance != "" {
			todo = append(todo, f) // its own facts come first; then its history
			continue
		}
		for _, r := range s.releaseHistory(context.Background(), p.Name, rels, *in.Version, facts, false) {
			if r.Unknown {
				todo = append(todo, f)
				break
			}
		}
	}
	return todo
}

// verifyHistory establishes (fetches and verifies, cached) the facts of
// the earlier releases f's continuity checks need.
func (s *Server) verifyHistory(ctx context.Context, p *pypi.ProjectPage, f *pypi.File) {
	facts, _ := s.facts(ctx, p.Name, f)
	if in := fileInput(f, facts, time.Time{}); in.Version != nil {
		s.releaseHistory(ctx, p.Name, s.pageReleases(p), *in.Version, facts, true)
	}
}

// relCache keeps the releases of recently decided pages, so a download of
// a project with thousands of files does not parse and sort them all each
// time. An entry is valid for the very page snapshot it was made from.
type relCache struct {
	mu sync.Mutex
	m  map[string]relEntry // by project
}

type relEntry struct {
	page *pypi.ProjectPage
	rels []release
}

// relCacheMax bounds relCache; past it the map starts over.
const relCacheMax = 1024

// pageReleases is releases(p), cached per page snapshot. The result is
// shared: callers must not change it.
func (s *Server) pageReleases(p *pypi.ProjectPage) []release {
	c := &s.rels
	c.mu.Lock()
	e, ok := c.m[p.Name]
	c.mu.Unlock()
	if ok && e.page == p {
		return e.rels
	}
	rels := releases(p)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= relCacheMax {
		c.m = map[string]relEntry{}
	}
	c.m[p.Name] = relEntry{page: p, rels: rels}
	c.mu.Unlock()
	return rels
}
