package proxy

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
// current list (see listRender).
type pageCache struct {
	factsGen    atomic.Uint64
	renders     atomic.Int64 // project pages rendered, for tests
	placeholder string       // stands for the origin in rendered bytes

	mu  sync.Mutex
	lru *byteLRU[pageKey, any] // memPage or *renderedPage

	listMu sync.Mutex
	list   *listRender // the current project list, rendered; nil before the first
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

// renderedPage is a project page as served, with the origin left out.
type renderedPage struct {
	fetchedAt time.Time // of the page snapshot
	state     string    // the cache state of that snapshot when rendered (hit, miss, stale)
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
	files := make(map[string]int, len(p.Files))
	for i := len(p.Files) - 1; i >= 0; i-- {
		files[p.Files[i].Filename] = i
	}
	const perIndexEntry = 48 // a map slot: string header, int, overhead
	c.lru.add(pageKey{project: project}, memPage{page: p, fetchedAt: fetchedAt, files: files}, pageSize(p)+perIndexEntry*int64(len(p.Files)))
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
	return fileNamed(p, filename)
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

// cachedRender returns the render of project in content type ct if it is
// still valid and its snapshot younger than ttl.
func (s *Server) cachedRender(project, ct string, ttl time.Duration) (*renderedPage, bool) {
	rp, ok := s.validRender(project, ct)
	if !ok || s.now().Sub(rp.fetchedAt) >= ttl {
		return nil, false
	}
	return rp, true
}

// renderOf returns the render of project in content type ct made from the
// snapshot fetched at fetchedAt, if still valid whatever its age: a stale
// page (the upstream failing) is then not rendered again on every request.
func (s *Server) renderOf(project, ct string, fetchedAt time.Time) (*renderedPage, bool) {
	rp, ok := s.validRender(project, ct)
	if !ok || !rp.fetchedAt.Equal(fetchedAt) {
		return nil, false
	}
	return rp, true
}

// validRender returns the cached render of project in content type ct if
// nothing it was computed from but the page's age has changed.
func (s *Server) validRender(project, ct string) (*renderedPage, bool) {
	c := s.pages
	c.mu.Lock()
	v, ok := c.lru.get(pageKey{project, ct})
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	rp := v.(*renderedPage)
	if rp.policy != s.policy.Current() || rp.factsGen != c.factsGen.Load() ||
		rp.trust != s.verifier.TrustRootDigest() || !rp.until.IsZero() && !s.now().Before(rp.until) {
		return nil, false
	}
	return rp, true
}

// render renders p (the snapshot fetched at fetchedAt, in cache state
// state) in content type ct, origin left out, and caches the result unless
// a newer snapshot arrived meanwhile.
func (s *Server) render(p *pypi.ProjectPage, fetchedAt time.Time, state, ct string) (*renderedPage, error) {
	c := s.pages
	c.renders.Add(1)
	rp := &renderedPage{
		fetchedAt: fetchedAt,
		state:     state,
		serial:    p.LastSerial,
		policy:    s.policy.Current(),
		factsGen:  c.factsGen.Load(), // read before computing: a fact arriving meanwhile invalidates
		trust:     s.verifier.TrustRootDigest(),
	}
	each, pd := s.servedFiles(p, rp.policy, c.placeholder)
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

// writeTo writes the render with origin (escaped for the content type ct)
// in every hole. Its length is size(origin, ct).
func (rp *renderedPage) writeTo(w io.Writer, ct, origin string) error {
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

// size is the length of the render with origin spliced in.
func (rp *renderedPage) size(ct, origin string) int {
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

// pageSize estimates the memory a decoded page holds: its strings plus a
// fixed cost per file (the struct) and per hash.
func pageSize(p *pypi.ProjectPage) int64 {
	perFile := int64(unsafe.Sizeof(pypi.File{}))
	const perHash = int64(unsafe.Sizeof(pypi.Hash{}))
	n := int64(256 + len(p.Name) + len(p.APIVersion) + len(p.Status) + len(p.StatusReason))
	for _, v := range p.Versions {
		n += int64(16 + len(v))
	}
	for i := range p.Files {
		f := &p.Files[i]
		n += perFile + int64(len(f.Filename)+len(f.URL)+len(f.RequiresPython)+len(f.YankedReason)+len(f.Provenance))
		for _, h := range f.Hashes {
			n += perHash + int64(len(h.Digest))
		}
		for _, h := range f.CoreMetadataHashes {
			n += perHash + int64(len(h.Digest))
		}
	}
	return n
}

// listRender is the project list as served, in both formats, from one
// snapshot. It is replaced whole when the list is refetched, so it holds
// at most two renders of one list (each within the upstream's page limit).
type listRender struct {
	fetchedAt time.Time
	serial    int64
	json      []byte
	html      []byte
}

func (l *listRender) body(ct string) []byte {
	if ct == pypi.ContentTypeV1JSON {
		return l.json
	}
	return l.html
}

// renderList renders l in both formats.
func renderList(l *pypi.ProjectList, fetchedAt time.Time) (*listRender, error) {
	lr := &listRender{fetchedAt: fetchedAt, serial: l.LastSerial}
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

// projectListRender returns the rendered project list and its cache state:
// the cached render while younger than IndexTTL; else, under one shared
// flight however many clients ask, the list from bbolt (after a restart) or
// the upstream, rendered once in both formats. When the upstream fails, the
// last good list is served, marked stale.
func (s *Server) projectListRender(ctx context.Context) (*listRender, string, error) {
	c := s.pages
	c.listMu.Lock()
	cur := c.list
	c.listMu.Unlock()
	if cur != nil && s.now().Sub(cur.fetchedAt) < s.opts.IndexTTL {
		s.metrics.cacheLookup("index", cacheHit)
		return cur, cacheHit, nil
	}
	type result struct {
		lr    *listRender
		state string
	}
	res, err := await(ctx, s, "list", s.opts.FetchTimeout, func(ctx context.Context) (result, error) {
		c.listMu.Lock()
		cur := c.list
		c.listMu.Unlock()
		if cur != nil && s.now().Sub(cur.fetchedAt) < s.opts.IndexTTL {
			return result{cur, cacheHit}, nil // a flight just before this one refreshed it
		}
		l, state, err := s.projectList(ctx, cur != nil)
		if err != nil {
			if cur != nil && ctx.Err() == nil {
				s.log.Warn("upstream failed; serving the last good project list", "err", err)
				return result{cur, cacheStale}, nil
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
		s.metrics.cacheLookup("index", cacheMiss)
		return nil, "", err
	}
	s.metrics.cacheLookup("index", res.state)
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
func (s *Server) projectList(ctx context.Context, haveRender bool) (fetchedList, string, error) {
	var cached *pypi.ProjectList
	var fetchedAt time.Time
	err := cache.ErrNotFound
	if !haveRender {
		cached, fetchedAt, err = s.store.ProjectList()
		if err == nil && s.now().Sub(fetchedAt) < s.opts.IndexTTL {
			return fetchedList{cached, fetchedAt}, cacheHit, nil
		}
	}
	l, ferr := s.up.ProjectList(ctx)
	if ferr == nil {
		now := s.now()
		if err := s.store.PutProjectList(l, now); err != nil {
			s.log.Error("caching project list", "err", err)
		}
		return fetchedList{l, now}, cacheMiss, nil
	}
	if err == nil && cached != nil && ctx.Err() == nil {
		s.log.Warn("upstream failed; serving the last good project list", "err", ferr)
		return fetchedList{cached, fetchedAt}, cacheStale, nil
	}
	return fetchedList{}, "", ferr
}

// writeRendered writes a rendered index page with the request's origin.
func writeRendered(w http.ResponseWriter, r *http.Request, ct, cacheState string, rp *renderedPage) error {
	orig := origin(r)
	setIndexHeaders(w, ct, cacheState, rp.serial, rp.size(ct, orig))
	if r.Method == http.MethodHead {
		return nil
	}
	return rp.writeTo(w, ct, orig)
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

// setIndexHeaders sets the headers of an index page of n bytes.
func setIndexHeaders(w http.ResponseWriter, ct, cacheState string, serial int64, n int) {
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Vary", "Accept")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(n))
	if serial > 0 {
		h.Set("X-PyPI-Last-Serial", strconv.FormatInt(serial, 10))
	}
	if cacheState != "" {
		h.Set(headerCache, cacheState)
	}
	if cacheState == cacheStale {
		h.Set("Warning", `110 pipgate "the upstream index failed; this page is the last good copy"`)
	}
}
