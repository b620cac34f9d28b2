package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

// await runs fn once per key across concurrent callers (singleflight) on a
// context detached from the caller's, so a client hang-up never aborts a
// shared cache fill; the caller stops waiting when its own ctx ends.
func await[T any](ctx context.Context, s *Gate, key string, timeout time.Duration, fn func(ctx context.Context) (T, error)) (T, error) {
	ch := s.flights.DoChan(key, func() (any, error) {
		s.bg.Add(1)
		defer s.bg.Done()
		fctx, cancel := s.detached(timeout)
		defer cancel()
		return fn(fctx)
	})
	var zero T
	select {
	case res := <-ch:
		if res.Err != nil {
			return zero, res.Err
		}
		return res.Val.(T), nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Page returns a project's page: from the cache when younger than maxAge,
// else from the upstream; when the upstream fails (but does not say the
// project is gone) the last good copy is served and marked stale.
func (s *Gate) Page(ctx context.Context, project string, maxAge time.Duration) (*pypi.ProjectPage, CacheState, error) {
	p, _, state, err := s.PageAt(ctx, project, maxAge)
	return p, state, err
}

// IndexTTL is how long project's page stays fresh: its upstream's index
// TTL, else Options.IndexTTL.
func (s *Gate) IndexTTL(project string) time.Duration {
	if _, ttl := s.up.Owner(project); ttl > 0 {
		return ttl
	}
	return s.opts.IndexTTL
}

// PageAt is Page that also returns when the page was fetched.
func (s *Gate) PageAt(ctx context.Context, project string, maxAge time.Duration) (*pypi.ProjectPage, time.Time, CacheState, error) {
	up, _ := s.up.Owner(project)
	if up == "" {
		s.metrics.lookup(LookupIndex, CacheMiss)
		return nil, time.Time{}, "", fmt.Errorf("project %s: no upstream serves it: %w", project, upstream.ErrNotFound)
	}
	var cached *pypi.ProjectPage
	var fetchedAt time.Time
	var err error
	if m, ok := s.pages.getPage(project); ok {
		cached, fetchedAt = m.page, m.fetchedAt
	} else if cached, fetchedAt, err = s.store.Page(up, project); err == nil {
		cached.KeepDistributions(project) // a page stored by an older pipgate
		s.pages.putPage(project, cached, fetchedAt)
	}
	switch {
	case err == nil && s.now().Sub(fetchedAt) < maxAge:
		s.metrics.lookup(LookupIndex, CacheHit)
		return cached, fetchedAt, CacheHit, nil
	case err != nil && !errors.Is(err, cache.ErrNotFound):
		s.log.Warn("reading cached page", "project", project, "err", err)
		cached = nil
	}
	fp, ferr := await(ctx, s, "page:"+project, s.opts.FetchTimeout, func(ctx context.Context) (memPage, error) {
		p, err := s.up.Project(ctx, project)
		if err != nil {
			return memPage{}, err
		}
		p.Name = project
		now := s.now()
		if size := pageSize(p); size > maxStoredPageBytes {
			// bbolt holds a value whole in memory, encoded and again in its
			// pages: a huge page is refetched instead (see maxStoredPageBytes).
			s.log.Info("page too large to keep a copy in the cache; it is fetched again when needed",
				"project", project, "files", len(p.Files), "bytes", size, "limit_bytes", maxStoredPageBytes)
		} else if err := s.store.PutPage(up, project, p, now); err != nil {
			s.log.Error("caching page", "project", project, "err", err)
		}
		s.pages.putPage(project, p, now)
		return memPage{page: p, fetchedAt: now}, nil
	})
	if ferr == nil {
		s.metrics.lookup(LookupIndex, CacheMiss)
		return fp.page, fp.fetchedAt, CacheMiss, nil
	}
	if cached == nil || errors.Is(ferr, upstream.ErrNotFound) || ctx.Err() != nil {
		s.metrics.lookup(LookupIndex, CacheMiss)
	}
	if cached != nil && !errors.Is(ferr, upstream.ErrNotFound) && ctx.Err() == nil {
		s.metrics.lookup(LookupIndex, CacheStale)
		s.log.Warn("upstream failed; serving the last good page", "project", project,
			"age_seconds", s.now().Sub(fetchedAt).Seconds(), "err", ferr)
		return cached, fetchedAt, CacheStale, nil
	}
	return nil, time.Time{}, "", ferr
}

// FindFile finds filename on project's page. Files are immutable, so any
// cached page will do; a miss refreshes the page once.
func (s *Gate) FindFile(ctx context.Context, project, filename string) (*pypi.File, error) {
	p, _, err := s.Page(ctx, project, AnyAge)
	if err != nil {
		return nil, err
	}
	if f := s.pages.file(project, p, filename); f != nil {
		return f, nil
	}
	if p, _, err = s.Page(ctx, project, 0); err != nil {
		return nil, err
	}
	if f := s.pages.file(project, p, filename); f != nil {
		return f, nil
	}
	return nil, &NotOnPageError{Project: project, Filename: filename}
}

// NotOnPageError reports a file that is not on its project's page (after a
// refresh): the client asked for a file the index does not list.
type NotOnPageError struct{ Project, Filename string }

func (e *NotOnPageError) Error() string {
	return "pipgate: " + e.Filename + " is not a file of project " + e.Project
}

// AnyAge is the maximum age that takes any cached page.
const AnyAge = time.Duration(1<<63 - 1)

// maxStoredPageBytes bounds the decoded size (pageSize) of a page snapshot
// kept in bbolt, about 100k files: storing one costs about three times its
// size in memory at once (the JSON record, bbolt's copy in its pages).
const maxStoredPageBytes = 32 << 20

// FileNamed returns the first file named filename on p, or nil.
func FileNamed(p *pypi.ProjectPage, filename string) *pypi.File {
	for i := range p.Files {
		if p.Files[i].Filename == filename {
			return &p.Files[i]
		}
	}
	return nil
}

// Provenance returns the Integrity API body at url, fetched from the
// upstream that owns project: cached for that upstream's index TTL (the
// object is mutable), fetched, or stale when the upstream fails.
func (s *Gate) Provenance(ctx context.Context, project, url string) (cache.ProvenanceEntry, CacheState, error) {
	up, ttl := s.up.Owner(project)
	if up == "" {
		return cache.ProvenanceEntry{}, "", fmt.Errorf("project %s: no upstream serves it: %w", project, upstream.ErrNotFound)
	}
	if ttl == 0 {
		ttl = s.opts.IndexTTL
	}
	cached, err := s.store.Provenance(up, url)
	if err == nil {
		s.hot.putProvenance(up, url, cached)
	}
	if err == nil && s.now().Sub(cached.FetchedAt) < ttl {
		s.metrics.lookup(LookupProvenance, CacheHit)
		return cached, CacheHit, nil
	}
	haveCached := err == nil
	e, ferr := await(ctx, s, "prov:"+up+"/"+url, s.opts.FetchTimeout, func(ctx context.Context) (cache.ProvenanceEntry, error) {
		body, err := s.up.Provenance(ctx, project, url)
		e := cache.ProvenanceEntry{FetchedAt: s.now()}
		switch {
		case errors.Is(err, upstream.ErrNoProvenance):
			e.Absent = true
		case err != nil:
			return e, err
		default:
			sum := sha256.Sum256(body)
			e.Body, e.SHA256 = body, hex.EncodeToString(sum[:])
		}
		if err := s.store.PutProvenance(up, url, e); err != nil {
			s.log.Error("caching provenance", "upstream_url", url, "err", err)
		} else {
			s.hot.putProvenance(up, url, e)
		}
		s.pages.factsChanged()
		return e, nil
	})
	if ferr == nil || !haveCached || ctx.Err() != nil {
		s.metrics.lookup(LookupProvenance, CacheMiss)
	}
	if ferr == nil {
		return e, CacheMiss, nil
	}
	if haveCached && ctx.Err() == nil {
		s.metrics.lookup(LookupProvenance, CacheStale)
		s.log.Warn("upstream failed; using the last good provenance", "upstream_url", url, "err", ferr)
		return cached, CacheStale, nil
	}
	return cache.ProvenanceEntry{}, "", ferr
}

// Facts establishes what is known about f: unattested for free when the
// index says provenance null; otherwise the provenance is fetched and the
// verification facts read from the cache or computed (once per key) and
// stored. A failure to fetch or check gives VerdictError, never cached.
func (s *Gate) Facts(ctx context.Context, project string, f *pypi.File) (pypi.Facts, CacheState) {
	if f.Provenance == "" {
		return pypi.Facts{Verdict: pypi.VerdictUnattested, Detail: "the index lists no provenance"}, ""
	}
	return s.facts(ctx, project, f, f.SHA256())
}

// facts is Facts with f's sha256 already read.
func (s *Gate) facts(ctx context.Context, project string, f *pypi.File, sha string) (pypi.Facts, CacheState) {
	if f.Provenance == "" {
		return pypi.Facts{Verdict: pypi.VerdictUnattested, Detail: "the index lists no provenance"}, ""
	}
	if sha == "" {
		return pypi.Facts{Verdict: pypi.VerdictError, Reason: pypi.ReasonFormat, Detail: ErrUpstreamNoHash.Error()}, ""
	}
	if facts, ok := s.hotFacts(project, f.Provenance, f.Filename, sha); ok {
		return facts, CacheHit
	}
	e, _, err := s.Provenance(ctx, project, f.Provenance)
	if err != nil {
		s.metrics.verification(pypi.VerdictError, pypi.ReasonFetch, 0)
		return pypi.Facts{Verdict: pypi.VerdictError, Reason: pypi.ReasonFetch, Detail: "fetching provenance: " + err.Error()}, ""
	}
	if e.Absent {
		return pypi.Facts{Verdict: pypi.VerdictUnattested, Detail: "the Integrity API has no provenance for this file"}, ""
	}
	// The filename is part of the key: the PEP 740 subject-name check is
	// part of the verdict, so the same bytes and provenance listed under
	// another name are checked as themselves.
	key := cache.FactKey{Filename: f.Filename, FileSHA256: sha, ProvenanceSHA256: e.SHA256, TrustRootSHA256: s.verifier.TrustRootDigest()}
	if got, _, err := s.store.Facts(key); err == nil {
		s.hot.putFacts(key, got)
		s.metrics.lookup(LookupVerdict, CacheHit)
		return got, CacheHit
	} else if !errors.Is(err, cache.ErrNotFound) {
		s.log.Warn("reading cached facts", "filename", f.Filename, "sha256", sha, "err", err)
	}
	s.metrics.lookup(LookupVerdict, CacheMiss)
	got, err := await(ctx, s, factsFlightKey(key), s.opts.FetchTimeout,
		func(context.Context) (pypi.Facts, error) {
			start := time.Now()
			facts := s.verifier.Facts(e.Body, f.Filename, sha)
			d := time.Since(start)
			s.metrics.verification(facts.Verdict, facts.Reason, d)
			s.log.Info("verified", "filename", f.Filename, "sha256", sha, "verdict", string(facts.Verdict),
				"reason", facts.Reason, "detail", facts.Detail, "duration_seconds", d.Seconds())
			if facts.Verdict != pypi.VerdictError {
				if err := s.store.PutFacts(key, facts); err != nil {
					s.log.Error("caching facts", "filename", f.Filename, "sha256", sha, "err", err)
				} else {
					s.hot.putFacts(key, facts)
				}
				s.pages.factsChanged()
			}
			if facts.Verdict == pypi.VerdictVerified && facts.Identity != nil {
				s.observePublisher(project, f.Filename, *facts.Identity)
			}
			return facts, nil
		})
	if err != nil {
		return pypi.Facts{Verdict: pypi.VerdictError, Reason: pypi.ReasonCancelled, Detail: err.Error()}, CacheMiss
	}
	return got, CacheMiss
}

// hotFacts is facts' cache-hit path from memory (see hotCache): the
// Provenance entry of url, from project's upstream, is fresh and its facts
// under the current trust root are known. It counts the same lookups as the
// bbolt path. ok is false when anything is missing; the caller then takes
// the full path.
func (s *Gate) hotFacts(project, url, filename, sha string) (pypi.Facts, bool) {
	up, ttl := s.up.Owner(project)
	if up == "" {
		return pypi.Facts{}, false
	}
	if ttl == 0 {
		ttl = s.opts.IndexTTL
	}
	m, ok := s.hot.getProvenance(up, url)
	if !ok || m.absent || s.now().Sub(m.fetchedAt) >= ttl {
		return pypi.Facts{}, false
	}
	key := cache.FactKey{Filename: filename, FileSHA256: sha, ProvenanceSHA256: m.sha256, TrustRootSHA256: s.verifier.TrustRootDigest()}
	got, ok := s.hot.getFacts(key)
	if !ok {
		return pypi.Facts{}, false
	}
	s.metrics.lookup(LookupProvenance, CacheHit)
	s.metrics.lookup(LookupVerdict, CacheHit)
	return got, true
}

// observePublisher records a verified publisher in the project's history
// (an inventory of who signed what, in the order pipgate happened to see
// it) and notes a publisher not seen before. Whether a file's publisher
// changed is not decided here but by the policy's continuity check, in
// release order (policy.DecideFile), which is what the finding, the audit
// record and the metric report.
func (s *Gate) observePublisher(project, filename string, id pypi.Identity) {
	version := ""
	if fn, err := pypi.ParsePipFilename(filename); err == nil {
		version = fn.Version.String()
	}
	key := publisherKey(id)
	var changed bool
	var before []string
	err := s.store.UpdateHistory(project, func(h *cache.History) {
		before = before[:0]
		for _, p := range h.Publishers {
			before = append(before, p.Identity)
		}
		changed = h.ObserveVerified(key, version, s.now())
	})
	if err != nil {
		s.log.Warn("recording publisher history", "project", project, "err", err)
		return
	}
	if changed {
		s.log.Info("another verified publisher recorded for this project", "project", project,
			"version", version, "publisher", key, "previous_publishers", before)
	}
}

// publisherKey is the stable part of an identity (no ref or commit), so that
// every release from one pipeline counts as one publisher.
func publisherKey(id pypi.Identity) string {
	switch id.Kind {
	case pypi.KindGitHub, pypi.KindGitLab:
		return pypi.Publisher{Kind: id.Kind, Repository: id.Repository, Workflow: id.Workflow}.String()
	case pypi.KindGoogle:
		return pypi.Publisher{Kind: id.Kind, Email: id.Email}.String()
	}
	return pypi.Publisher{Kind: pypi.KindIdentity, Issuer: id.Issuer, Subject: id.Subject}.String()
}

// CachedFacts is Facts without any network or verification: what the index
// can show for free. ok is false when nothing is known yet.
func (s *Gate) CachedFacts(project string, f *pypi.File) (pypi.Facts, bool) {
	if f.Provenance == "" {
		return pypi.Facts{Verdict: pypi.VerdictUnattested, Detail: "the index lists no provenance"}, true
	}
	up, _ := s.up.Owner(project)
	if up == "" {
		return pypi.Facts{}, false
	}
	e, err := s.store.Provenance(up, f.Provenance)
	if err != nil {
		return pypi.Facts{}, false
	}
	if e.Absent {
		return pypi.Facts{Verdict: pypi.VerdictUnattested, Detail: "the Integrity API has no provenance for this file"}, true
	}
	got, _, err := s.store.Facts(cache.FactKey{Filename: f.Filename, FileSHA256: f.SHA256(), ProvenanceSHA256: e.SHA256, TrustRootSHA256: s.verifier.TrustRootDigest()})
	return got, err == nil
}

// factsFlightKey is the singleflight key of one verification: every part of
// the facts key, the filename included (last, as it may hold ':').
func factsFlightKey(k cache.FactKey) string {
	return "facts:" + k.FileSHA256 + ":" + k.ProvenanceSHA256 + ":" + k.TrustRootSHA256 + ":" + k.Filename
}
