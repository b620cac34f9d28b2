package gate

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"html"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// pageCacheDefaultBytes is the default bound of the page cache (decoded
// project pages and rendered bytes together).
const pageCacheDefaultBytes = 64 << 20

// pageCache keeps decoded project pages in memory (in front of bbolt and its
// JSON decoding) and the bytes of rendered pages, in one least-recently-used
// cache bounded in bytes (Options.PageCacheBytes): a page bigger than the
// whole budget is not kept at all.
//
// A rendered page depends on the project's page snapshot, the content type,
// the policy (a reload makes a new *Policy), the verification facts
// (factsGen moves on every new fact or provenance body) and the trust root;
// it is keyed by project and content type and reused only while the rest is
// unchanged. A new snapshot of a project drops its renders. The request's
// origin (scheme and Host, which the absolute provenance URLs need) is not
// part of the key: a render holds a random placeholder where the origin
// goes, and the origin is spliced in, escaped, as the bytes are written. So
// no Host header, however many there are, makes another copy.
//
// The project list (/simple/) is kept apart: one render per format of the
// current list (see ListRender).
type pageCache struct {
	factsGen    atomic.Uint64
	renders     atomic.Int64 // project pages rendered, for tests
	placeholder string       // stands for the origin in rendered bytes

	mu  sync.Mutex
	lru *byteLRU[pageKey, any] // memPage or *RenderedPage

	listMu sync.Mutex
	list   *ListRender // the current project list, rendered; nil before the first
}

// pageKey identifies a page cache entry: a decoded page (ct "") or a render.
type pageKey struct {
	project, contentType string
}

type memPage struct {
	page      *pypi.ProjectPage
	fetchedAt time.Time
	files     map[string]int // filename → index in page.Files (the first of duplicates)
}

// RenderedPage is a project page as served, with the origin left out.
type RenderedPage struct {
	fetchedAt time.Time  // of the page snapshot
	state     CacheState // the cache state of that snapshot when rendered
	serial    int64
	policy    *policy.Policy
	factsGen  uint64
	trust     string
	until     time.Time // the render expires then (a cooldown ends); zero: never
	body      []byte
	holes     []int // offsets in body where the origin goes, ascending
}

func newPageCache(maxBytes int64) *pageCache {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return &pageCache{
		placeholder: "pipgate-origin-" + hex.EncodeToString(b[:]),
		lru:         newByteLRU[pageKey, any](maxBytes),
	}
}

func (c *pageCache) getPage(project string) (memPage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.lru.get(pageKey{project: project})
	if !ok {
		return memPage{}, false
	}
	return v.(memPage), true
}

// putPage caches a decoded snapshot of project and drops the project's
// renders, which were made from an older snapshot.
func (c *pageCache) putPage(project string, p *pypi.ProjectPage, fetchedAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.remove(pageKey{project, pypi.ContentTypeV1JSON})
	c.lru.remove(pageKey{project, pypi.ContentTypeV1HTML})
	c.lru.remove(pageKey{project, pypi.ContentTypeHTML})
	const perIndexEntry = 48 // a map slot: string header, int, overhead
	size := pageSize(p) + perIndexEntry*int64(len(p.Files))
	if size > c.lru.max {
		c.lru.remove(pageKey{project: project}) // too large to keep: no index built for nothing
		return
	}
	files := make(map[string]int, len(p.Files))
	for i := len(p.Files) - 1; i >= 0; i-- {
		files[p.Files[i].Filename] = i
	}
	c.lru.add(pageKey{project: project}, memPage{page: p, fetchedAt: fetchedAt, files: files}, size)
}

// file returns the file named filename on p, a page of project: through
// the index built when p was cached, else by a scan. Pages are never
// modified once cached (a refetch makes a new one).
func (c *pageCache) file(project string, p *pypi.ProjectPage, filename string) *pypi.File {
	if m, ok := c.getPage(project); ok && m.page == p {
		if i, ok := m.files[filename]; ok {
			return &p.Files[i]
		}
		return nil
	}
	return FileNamed(p, filename)
}

// factsChanged invalidates every rendered page.
func (c *pageCache) factsChanged() { c.factsGen.Add(1) }

// bytes returns the bytes the page cache accounts for.
func (c *pageCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.size
}

// collector exports the page cache's size: pipgate_page_cache_bytes.
func (c *pageCache) collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pipgate_page_cache_bytes",
		Help: "Bytes of project pages held in memory, decoded and rendered (bounded by cache.page_memory; the /simple/ list is apart).",
	}, func() float64 { return float64(c.bytes()) })
}

// CachedRender returns the render of project in content type ct if it is
// still valid and its snapshot younger than ttl.
func (s *Gate) CachedRender(project, ct string, ttl time.Duration) (*RenderedPage, bool) {
	rp, ok := s.validRender(project, ct)
	if !ok || s.now().Sub(rp.fetchedAt) >= ttl {
		return nil, false
	}
	return rp, true
}

// RenderOf returns the render of project in content type ct made from the
// snapshot fetched at fetchedAt, if still valid whatever its age: a stale
// page (the upstream failing) is then not rendered again on every request.
func (s *Gate) RenderOf(project, ct string, fetchedAt time.Time) (*RenderedPage, bool) {
	rp, ok := s.validRender(project, ct)
	if !ok || !rp.fetchedAt.Equal(fetchedAt) {
		return nil, false
	}
	return rp, true
}

// validRender returns the cached render of project in content type ct if
// nothing it was computed from but the page's age has changed.
func (s *Gate) validRender(project, ct string) (*RenderedPage, bool) {
	c := s.pages
	c.mu.Lock()
	v, ok := c.lru.get(pageKey{project, ct})
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	rp := v.(*RenderedPage)
	if rp.policy != s.policy.Current() || rp.factsGen != c.factsGen.Load() ||
		rp.trust != s.verifier.TrustRootDigest() || !rp.until.IsZero() && !s.now().Before(rp.until) {
		return nil, false
	}
	return rp, true
}

// render renders p (the snapshot fetched at fetchedAt, in cache state
// state) in content type ct, origin left out, and caches the result unless
// a newer snapshot arrived meanwhile.
func (s *Gate) render(p *pypi.ProjectPage, fetchedAt time.Time, state CacheState, ct string, decided func(IndexDecision)) (*RenderedPage, error) {
	c := s.pages
	c.renders.Add(1)
	rp := &RenderedPage{
		fetchedAt: fetchedAt,
		state:     state,
		serial:    p.LastSerial,
		policy:    s.policy.Current(),
		factsGen:  c.factsGen.Load(), // read before computing: a fact arriving meanwhile invalidates
		trust:     s.verifier.TrustRootDigest(),
	}
	each, pd := s.ServedFiles(p, rp.policy, c.placeholder, decided)
	buf := keepWriter{b: make([]byte, 0, pypi.WrittenSizeHint(p, ct == pypi.ContentTypeV1JSON))}
	var err error
	if ct == pypi.ContentTypeV1JSON {
		err = pypi.WriteProjectJSONFunc(&buf, p, each)
	} else {
		err = pypi.WriteProjectHTMLFunc(&buf, p, each)
	}
	if err != nil {
		return nil, err
	}
	rp.until = pd.until
	rp.body, rp.holes = cutHoles(buf.b, c.placeholder)
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.lru.peek(pageKey{project: p.Name}); ok && !m.(memPage).fetchedAt.Equal(fetchedAt) {
		return rp, nil // rendered from a snapshot already replaced
	}
	c.lru.add(pageKey{p.Name, ct}, rp, int64(cap(rp.body))+int64(8*cap(rp.holes))+256)
	return rp, nil
}

// keepWriter collects what is written in b (sized by the caller, so a
// render is not regrown and copied on the way).
type keepWriter struct{ b []byte }

func (k *keepWriter) Write(p []byte) (int, error) {
	k.b = append(k.b, p...)
	return len(p), nil
}

// cutHoles removes every occurrence of placeholder from b, in place (no
// second copy of a large page), and returns the remaining bytes with the
// offsets where the placeholder stood.
func cutHoles(b []byte, placeholder string) ([]byte, []int) {
	ph := []byte(placeholder)
	holes := make([]int, 0, bytes.Count(b, ph))
	w, r := 0, 0
	for {
		i := bytes.Index(b[r:], ph)
		if i < 0 {
			w += copy(b[w:], b[r:])
			return b[:w], holes
		}
		w += copy(b[w:], b[r:r+i])
		holes = append(holes, w)
		r += i + len(ph)
	}
}

// WriteTo writes the render with origin (escaped for the content type ct)
// in every hole. Its length is Size(ct, origin).
func (rp *RenderedPage) WriteTo(w io.Writer, ct, origin string) error {
	o := []byte(escapeOrigin(ct, origin))
	prev := 0
	for _, h := range rp.holes {
		if _, err := w.Write(rp.body[prev:h]); err != nil {
			return err
		}
		if _, err := w.Write(o); err != nil {
			return err
		}
		prev = h
	}
	_, err := w.Write(rp.body[prev:])
	return err
}

// Size is the length of the render with origin spliced in.
func (rp *RenderedPage) Size(ct, origin string) int {
	return len(rp.body) + len(rp.holes)*len(escapeOrigin(ct, origin))
}

// escapeOrigin escapes origin as the page writers escape a value: HTML
// attribute escaping, or the inside of a JSON string.
func escapeOrigin(ct, origin string) string {
	if ct != pypi.ContentTypeV1JSON {
		return html.EscapeString(origin)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(origin); err != nil {
		return ""
	}
	q := bytes.TrimSpace(b.Bytes())
	return string(q[1 : len(q)-1])
}

// pageSize estimates the memory a decoded page holds (pypi's own count:
// the files, their strings, the versions).
func pageSize(p *pypi.ProjectPage) int64 { return p.MemorySize() }

// ListRender is the project list as served, in both formats, from one
// snapshot. It is replaced whole when the list is refetched, so it holds
// at most two renders of one list (each within the upstream's page limit).
type ListRender struct {
	fetchedAt time.Time
	serial    int64
	json      []byte
	html      []byte
}

// Body is the render in content type ct.
func (l *ListRender) Body(ct string) []byte {
	if ct == pypi.ContentTypeV1JSON {
		return l.json
	}
	return l.html
}

// renderList renders l in both formats.
func renderList(l *pypi.ProjectList, fetchedAt time.Time) (*ListRender, error) {
	lr := &ListRender{fetchedAt: fetchedAt, serial: l.LastSerial}
	var buf bytes.Buffer
	if err := pypi.WriteProjectListJSON(&buf, l); err != nil {
		return nil, err
	}
	lr.json = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := pypi.WriteProjectListHTML(&buf, l); err != nil {
		return nil, err
	}
	lr.html = bytes.Clone(buf.Bytes())
	return lr, nil
}

// ProjectListRender returns the rendered project list and its cache state:
// the cached render while younger than IndexTTL; else, under one shared
// flight however many clients ask, the list from bbolt (after a restart) or
// the upstream, rendered once in both formats. When the upstream fails, the
// last good list is served, marked stale.
func (s *Gate) ProjectListRender(ctx context.Context) (*ListRender, CacheState, error) {
	c := s.pages
	c.listMu.Lock()
	cur := c.list
	c.listMu.Unlock()
	if cur != nil && s.now().Sub(cur.fetchedAt) < s.opts.IndexTTL {
		s.metrics.lookup(LookupIndex, CacheHit)
		return cur, CacheHit, nil
	}
	type result struct {
		lr    *ListRender
		state CacheState
	}
	res, err := await(ctx, s, "list", s.opts.FetchTimeout, func(ctx context.Context) (result, error) {
		c.listMu.Lock()
		cur := c.list
		c.listMu.Unlock()
		if cur != nil && s.now().Sub(cur.fetchedAt) < s.opts.IndexTTL {
			return result{cur, CacheHit}, nil // a flight just before this one refreshed it
		}
		l, state, err := s.projectList(ctx, cur != nil)
		if err != nil {
			if cur != nil && ctx.Err() == nil {
				s.log.Warn("upstream failed; serving the last good project list", "err", err)
				return result{cur, CacheStale}, nil
			}
			return result{}, err
		}
		lr, err := renderList(l.list, l.fetchedAt)
		if err != nil {
			return result{}, err
		}
		c.listMu.Lock()
		c.list = lr
		c.listMu.Unlock()
		return result{lr, state}, nil
	})
	if err != nil {
		s.metrics.lookup(LookupIndex, CacheMiss)
		return nil, "", err
	}
	s.metrics.lookup(LookupIndex, res.state)
	return res.lr, res.state, nil
}

// fetchedList is a decoded project list and when it was fetched.
type fetchedList struct {
	list      *pypi.ProjectList
	fetchedAt time.Time
}

// projectList returns the project list: bbolt's copy when fresh (after a
// restart; skipped when a render is in memory, haveRender, as bbolt then
// holds the same expired list), else the upstream's (stored in bbolt). When
// the upstream fails and no render is in memory, bbolt's last good copy is
// returned as stale.
func (s *Gate) projectList(ctx context.Context, haveRender bool) (fetchedList, CacheState, error) {
	var cached *pypi.ProjectList
	var fetchedAt time.Time
	err := cache.ErrNotFound
	if !haveRender {
		cached, fetchedAt, err = s.store.ProjectList()
		if err == nil && s.now().Sub(fetchedAt) < s.opts.IndexTTL {
			return fetchedList{cached, fetchedAt}, CacheHit, nil
		}
	}
	l, ferr := s.up.ProjectList(ctx)
	if ferr == nil {
		now := s.now()
		if err := s.store.PutProjectList(l, now); err != nil {
			s.log.Error("caching project list", "err", err)
		}
		return fetchedList{l, now}, CacheMiss, nil
	}
	if err == nil && cached != nil && ctx.Err() == nil {
		s.log.Warn("upstream failed; serving the last good project list", "err", ferr)
		return fetchedList{cached, fetchedAt}, CacheStale, nil
	}
	return fetchedList{}, "", ferr
}

// byteLRU is a least-recently-used cache bounded by the total size of its
// entries (as given to add). It is not safe for concurrent use.
type byteLRU[K comparable, V any] struct {
	max   int64
	size  int64
	ll    *list.List // of *lruEntry, most recent first
	items map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key  K
	val  V
	size int64
}

func newByteLRU[K comparable, V any](maxBytes int64) *byteLRU[K, V] {
	return &byteLRU[K, V]{max: maxBytes, ll: list.New(), items: map[K]*list.Element{}}
}

// get returns the value under k and marks it most recently used.
func (c *byteLRU[K, V]) get(k K) (V, bool) {
	e, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).val, true
}

// peek returns the value under k without marking it used.
func (c *byteLRU[K, V]) peek(k K) (V, bool) {
	e, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	return e.Value.(*lruEntry[K, V]).val, true
}

// add stores v under k (replacing any entry) and evicts the least recently
// used entries until the total fits. A value larger than the whole bound
// is not stored (and an older entry under k is dropped): add reports
// whether v was stored.
func (c *byteLRU[K, V]) add(k K, v V, size int64) bool {
	c.remove(k)
	if size > c.max {
		return false
	}
	c.items[k] = c.ll.PushFront(&lruEntry[K, V]{key: k, val: v, size: size})
	c.size += size
	for c.size > c.max {
		c.removeElement(c.ll.Back())
	}
	return true
}

// remove drops the entry under k, if any.
func (c *byteLRU[K, V]) remove(k K) {
	if e, ok := c.items[k]; ok {
		c.removeElement(e)
	}
}

func (c *byteLRU[K, V]) removeElement(e *list.Element) {
	ent := c.ll.Remove(e).(*lruEntry[K, V])
	delete(c.items, ent.key)
	c.size -= ent.size
}

// len returns the number of entries.
func (c *byteLRU[K, V]) len() int { return len(c.items) }

// RenderOnce renders p (the snapshot fetched at fetchedAt, in cache state
// state) in content type ct after its eager verification, once per
// snapshot and content type however many clients ask at once. The render
// reports each decision it applies to a file to decided (nil: none): the
// decided of the request whose render it is.
func (s *Gate) RenderOnce(ctx context.Context, p *pypi.ProjectPage, fetchedAt time.Time, state CacheState, ct string, decided func(IndexDecision)) (*RenderedPage, error) {
	key := "render:" + p.Name + "\x00" + ct + "\x00" + strconv.FormatInt(fetchedAt.UnixNano(), 10)
	return await(ctx, s, key, s.opts.FetchTimeout, func(ctx context.Context) (*RenderedPage, error) {
		if rp, ok := s.RenderOf(p.Name, ct, fetchedAt); ok {
			return rp, nil
		}
		s.EagerVerify(ctx, p)
		return s.render(p, fetchedAt, state, ct, decided)
	})
}

// Serial is the page's last serial (X-PyPI-Last-Serial).
func (rp *RenderedPage) Serial() int64 { return rp.serial }

// Serial is the list's last serial (X-PyPI-Last-Serial).
func (l *ListRender) Serial() int64 { return l.serial }

// StreamsPage reports whether p, rendered in content type ct, is too large
// to render into memory: its render could not be kept in the page cache
// anyway, so it is written to the client as it is rendered instead of
// being held whole (a page of 390k files renders to over 100 MiB of JSON).
func (s *Gate) StreamsPage(p *pypi.ProjectPage, ct string) bool {
	return int64(pypi.WrittenSizeHint(p, ct == pypi.ContentTypeV1JSON)) > s.opts.PageCacheBytes
}

// ServedFiles renders p as pipgate serves it: file URLs on pipgate (relative to the
// page, so it works behind any prefix and through the egress tunnel),
// provenance on pipgate's own /integrity route at orig, and every file whose known
// verdict the policy blocks or yanks listed as yanked with the reason.
//
// It is applied file by file as the page is written (no copy of a page of
// 390k files is made): ServedFiles returns the function the page writers
// call on each file, and the decider whose until, once every file went
// through it, is the earliest time the listing changes by itself (a
// cooldown ending), zero when none does. Each decision applied to a file is
// reported to decided (nil: none).
func (s *Gate) ServedFiles(p *pypi.ProjectPage, pol *policy.Policy, orig string, decided func(IndexDecision)) (pypi.FileFunc, *PageDecider) {
	pd := &PageDecider{s: s, pol: pol, page: p, now: s.now()}
	return func(i int, nf *pypi.File) {
		f := &p.Files[i]
		nf.URL = "../../files/" + p.Name + "/" + url.PathEscape(f.Filename)
		if nf.CoreMetadata && (nf.CoreMetadataHashes.Get("sha256") == "" || !ServesMetadata(f.Filename)) {
			// Metadata without a sha256 could not be checked, an sdist's
			// is not served: pip reads the metadata from the file instead
			// (see serveMetadata).
			nf.CoreMetadata, nf.CoreMetadataHashes = false, pypi.Hashes{}
		}
		if f.Provenance != "" {
			nf.Provenance = orig + "/integrity/" + p.Name + "/" + url.PathEscape(provenanceVersion(f)) + "/" +
				url.PathEscape(f.Filename) + "/provenance"
		}
		if d, ok := pd.Decide(f); ok {
			if d.Yanks() {
				nf.Yanked = true
				nf.YankedReason = d.Reason
				if f.Yanked && f.YankedReason != "" {
					nf.YankedReason += " (upstream: " + f.YankedReason + ")"
				}
			}
			if decided != nil {
				version := "" // only a held (blocked or yanked) row shows it: not parsed for every file of a huge page
				if d.Action == policy.ActionBlock || d.Action == policy.ActionYank {
					version = s.hot.version(f.Filename)
				}
				decided(IndexDecision{Project: p.Name, Version: version, Filename: f.Filename, SHA256: f.SHA256(), Decision: d})
			}
		}
	}, pd
}

// provenanceVersion is the version segment for pipgate's integrity URL: the
// one in the upstream URL (.../integrity/<p>/<version>/<file>/provenance),
// else the filename's.
func provenanceVersion(f *pypi.File) string {
	if u, err := url.Parse(f.Provenance); err == nil {
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		if n := len(parts); n >= 4 && parts[n-1] == "provenance" && parts[n-4] == "integrity" {
			return parts[n-3]
		}
	}
	if v, ok := pypi.PipFilenameVersion(f.Filename); ok {
		return v.String()
	}
	return "0"
}

// CachedPage returns project's page from memory or bbolt, never fetching.
func (s *Gate) CachedPage(project string) (*pypi.ProjectPage, bool) {
	if m, ok := s.pages.getPage(project); ok {
		return m.page, true
	}
	up, _ := s.up.Owner(project)
	if up == "" {
		return nil, false
	}
	p, _, err := s.store.Page(up, project)
	return p, err == nil
}
