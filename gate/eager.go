package gate

import (
	"context"
	"sync"
	"time"

	"github.com/pipgate/pipgate/pypi"
)

// Eager verification: when a page is served, the files of its newest
// releases, the project's continuity record and, when the policy yanks
// every newest release, the older ones pip falls back to are verified
// before the page is rendered, within a time budget; what does not finish
// goes on in the background.

// EagerVerify computes facts for the files of the newest releases of p that
// have provenance and no cached facts, with bounded concurrency, waiting at
// most EagerBudget; unfinished work goes on in the background and fills the
// cache for the next request.
func (s *Gate) EagerVerify(ctx context.Context, p *pypi.ProjectPage) {
	if s.opts.EagerReleases <= 0 {
		return
	}
	var todo []*pypi.File
	var newest []*pypi.File
	// One pass over the page for the newest releases and those below them
	// that fallbackTodo may walk (a page may hold 390k files). Only files
	// with provenance are verified, here and by fallbackTodo (which, on a
	// page with none, has nothing to return): on such a page, the
	// releases are not looked for.
	var releases []release
	if hasProvenance(p) {
		releases = newestReleases(p, s.opts.EagerReleases+eagerFallbackReleases)
	}
	for _, r := range releases[:min(len(releases), s.opts.EagerReleases)] {
		newest = append(newest, r.files...)
	}
	for _, f := range newest {
		if f.Provenance == "" || f.SHA256() == "" {
			continue
		}
		if _, ok := s.CachedFacts(p.Name, f); !ok {
			todo = append(todo, f)
		}
	}
	// With continuity checked, the project's record (its first attested
	// file) is established too, so the index can list a changed publisher
	// as yanked and unpinned pip falls back.
	recordPending := s.recordPending(p)
	tried := map[*pypi.File]bool{}
	if len(todo) == 0 && !recordPending && len(s.fallbackTodo(p, releases, tried)) == 0 {
		return
	}
	start := time.Now()
	done := make(chan struct{})
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer close(done)
		bg, cancel := s.detached(s.opts.FetchTimeout)
		defer cancel()
		sem := make(chan struct{}, s.opts.EagerConcurrency)
		s.verifyEach(bg, p.Name, todo, sem)
		if recordPending {
			s.record(bg, p.Name, s.pageHistory(p), true)
		}
		// When the policy yanks every newest release, unpinned pip falls
		// back to older ones: verify down to one it may install, so that
		// each release pip may pick on the way is judged in the index.
		for more := s.fallbackTodo(p, releases, tried); len(more) > 0 && bg.Err() == nil; more = s.fallbackTodo(p, releases, tried) {
			for _, f := range more {
				tried[f] = true
			}
			s.verifyEach(bg, p.Name, more, sem)
		}
	}()
	timer := time.NewTimer(s.opts.EagerBudget)
	defer timer.Stop()
	select {
	case <-done:
		s.log.Debug("eager verification done", "project", p.Name, "files", len(todo), "duration_seconds", time.Since(start).Seconds())
	case <-timer.C:
		s.log.Warn("eager verification over budget; serving the page", "project", p.Name, "files", len(todo),
			"budget_seconds", s.opts.EagerBudget.Seconds())
	case <-ctx.Done():
	}
}

// hasProvenance reports whether a file of p has a provenance URL.
func hasProvenance(p *pypi.ProjectPage) bool {
	for i := range p.Files {
		if p.Files[i].Provenance != "" {
			return true
		}
	}
	return false
}

// verifyEach establishes the facts of files (cached or verified), as many at
// once as sem has room for, and returns when all are done.
func (s *Gate) verifyEach(ctx context.Context, project string, files []*pypi.File, sem chan struct{}) {
	var wg sync.WaitGroup
	for _, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.Facts(ctx, project, f)
		}()
	}
	wg.Wait()
}

// eagerFallbackReleases bounds how many releases below the newest
// EagerReleases eager verification walks down, looking for one the policy
// lets pip install, when the newer ones are all yanked or blocked.
const eagerFallbackReleases = 8

// fallbackTodo returns the attested files without cached facts of the
// newest release, below the first EagerReleases, that unpinned pip could
// fall back to, when every newer release is known to be yanked (by the
// upstream or the policy); nil when pip has a release to pick before it,
// when the walk is past EagerReleases+eagerFallbackReleases, or when the
// files were tried already (a verification error is not cached).
// releases are p's newestReleases(p, EagerReleases+eagerFallbackReleases).
func (s *Gate) fallbackTodo(p *pypi.ProjectPage, releases []release, tried map[*pypi.File]bool) []*pypi.File {
	pd := PageDecider{s: s, pol: s.policy.Current(), page: p, now: s.now()}
	for i, r := range releases {
		var unknown []*pypi.File
		for _, f := range r.files {
			if f.Yanked {
				continue // yanked upstream: unpinned pip skips it anyway
			}
			d, ok := pd.Decide(f)
			switch {
			case ok && !d.Yanks():
				return nil // pip can install this release
			case ok:
			case tried[f] || f.Provenance == "" || f.SHA256() == "" || i < s.opts.EagerReleases:
				return nil // unknown and not ours to verify: pip may pick it, and its download decides
			default:
				unknown = append(unknown, f)
			}
		}
		if len(unknown) > 0 {
			return unknown
		}
	}
	return nil
}
