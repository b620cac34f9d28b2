package proxy

import (
	"bytes"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// pageCacheMax bounds each map of the page cache; past it the map starts
// over (a cold render costs milliseconds, so nothing clever is needed).
const pageCacheMax = 2048

// pageCache keeps decoded project pages in memory (in front of bbolt and its
// JSON decoding) and the bytes of rendered pages. A rendered page is reused
// only while everything it was computed from is unchanged: the page itself
// (a refetch makes a new *ProjectPage), the policy (a reload makes a new
// *Policy), the verification facts (factsGen moves on every new fact or
// provenance body), and the trust root.
type pageCache struct {
	factsGen atomic.Uint64

	mu       sync.Mutex
	pages    map[string]memPage
	rendered map[renderKey]renderedPage
}

type memPage struct {
	page      *pypi.ProjectPage
	fetchedAt time.Time
}

type renderKey struct {
	project, contentType, origin string
}

type renderedPage struct {
	page     *pypi.ProjectPage
	policy   *policy.Policy
	factsGen uint64
	trust    string
	body     []byte
}

func newPageCache() *pageCache {
	return &pageCache{pages: map[string]memPage{}, rendered: map[renderKey]renderedPage{}}
}

func (c *pageCache) getPage(project string) (memPage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pages[project]
	return p, ok
}

func (c *pageCache) putPage(project string, p *pypi.ProjectPage, fetchedAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pages) >= pageCacheMax {
		clear(c.pages)
	}
	c.pages[project] = memPage{page: p, fetchedAt: fetchedAt}
}

// factsChanged invalidates every rendered page.
func (c *pageCache) factsChanged() { c.factsGen.Add(1) }

// rendered returns the cached bytes of p as served in content type ct for
// the request's origin, if nothing they were computed from has changed.
func (s *Server) rendered(r *http.Request, p *pypi.ProjectPage, ct string) ([]byte, bool) {
	key := renderKey{project: p.Name, contentType: ct, origin: origin(r)}
	c := s.pages
	c.mu.Lock()
	hit, ok := c.rendered[key]
	c.mu.Unlock()
	if ok && hit.page == p && hit.policy == s.policy.Current() && hit.factsGen == c.factsGen.Load() &&
		hit.trust == s.verifier.TrustRootDigest() {
		return hit.body, true
	}
	return nil, false
}

// render renders p in content type ct for the request's origin and caches
// the bytes (see rendered).
func (s *Server) render(r *http.Request, p *pypi.ProjectPage, ct string) ([]byte, error) {
	pol := s.policy.Current()
	key := renderKey{project: p.Name, contentType: ct, origin: origin(r)}
	gen := s.pages.factsGen.Load() // read before computing: a fact arriving meanwhile invalidates
	trust := s.verifier.TrustRootDigest()
	c := s.pages
	out := s.servedPage(r, p, pol)
	var buf bytes.Buffer
	var err error
	if ct == pypi.ContentTypeV1JSON {
		err = pypi.WriteProjectJSON(&buf, out)
	} else {
		err = pypi.WriteProjectHTML(&buf, out)
	}
	if err != nil {
		return nil, err
	}
	body := buf.Bytes()
	c.mu.Lock()
	if len(c.rendered) >= pageCacheMax {
		clear(c.rendered)
	}
	c.rendered[key] = renderedPage{page: p, policy: pol, factsGen: gen, trust: trust, body: body}
	c.mu.Unlock()
	return body, nil
}
