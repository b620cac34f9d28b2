package gate

import (
	"sync"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

// hotCacheMax bounds each map of the hot cache; past it the map starts over
// (a miss only costs the bbolt read it stands in front of). A facts entry
// is typically a few hundred bytes, the same record bbolt holds.
const hotCacheMax = 16384

// hotCache keeps, in memory, what a cache-hit download reads from bbolt on
// every request, so that the hit path does not decode JSON records:
//
//   - provenance: the sha256, absence and fetch time of the provenance entry
//     under (upstream, URL) (not its body), exactly as last read from or
//     written to the store, so freshness (index TTL) is judged as on the
//     bbolt path;
//   - facts: the verification facts under a [cache.FactKey] (filename, file
//     sha256, provenance sha256, trust-root sha256), which is everything they
//     depend on, as read from or written to the store;
//   - versions: the parsed version of a filename (policy, audit, status);
//   - metadata: the ref from a verified wheel to the METADATA blob
//     extracted from it (see metadataRef), as stored.
//
// Entries are only ever what the store holds (or held, for provenance whose
// freshness is then re-checked), so a hit here answers as the store would.
// The policy is not cached: every download is decided again.
type hotCache struct {
	mu         sync.RWMutex
	provenance map[provKey]provMeta
	facts      map[cache.FactKey]pypi.Facts
	versions   map[string]parsedVersion
	metadata   map[string]string
	// identities memoises Identity.String() by the facts' identity
	// pointer: facts are never changed once made (new facts come with a
	// new Identity), and the map holds its keys alive, so an address is
	// never reused while it is a key.
	identities map[*pypi.Identity]string
	// uploads memoises the parse of a PEP 700 upload-time string (a pure
	// function of the string).
	uploads map[string]time.Time
}

// parsedVersion is the version of a filename, parsed once.
type parsedVersion struct {
	v  pypi.Version
	ok bool   // false: the filename does not parse
	s  string // v.String(), "" when !ok
}

// provKey is the store's key of a provenance entry: the upstream's name and
// the provenance URL.
type provKey struct{ upstream, url string }

// provMeta is a cache.ProvenanceEntry without its body.
type provMeta struct {
	sha256    string
	absent    bool
	fetchedAt time.Time
}

func newHotCache() *hotCache {
	return &hotCache{
		provenance: map[provKey]provMeta{},
		facts:      map[cache.FactKey]pypi.Facts{},
		versions:   map[string]parsedVersion{},
		metadata:   map[string]string{},
		identities: map[*pypi.Identity]string{},
		uploads:    map[string]time.Time{},
	}
}

// putInto stores v under k in m, starting m over when it is full.
func putInto[K comparable, V any](c *hotCache, m map[K]V, k K, v V) {
	c.mu.Lock()
	if len(m) >= hotCacheMax {
		clear(m)
	}
	m[k] = v
	c.mu.Unlock()
}

func getFrom[K comparable, V any](c *hotCache, m map[K]V, k K) (V, bool) {
	c.mu.RLock()
	v, ok := m[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *hotCache) putProvenance(upstream, url string, e cache.ProvenanceEntry) {
	putInto(c, c.provenance, provKey{upstream, url}, provMeta{sha256: e.SHA256, absent: e.Absent, fetchedAt: e.FetchedAt})
}

func (c *hotCache) getProvenance(upstream, url string) (provMeta, bool) {
	return getFrom(c, c.provenance, provKey{upstream, url})
}

func (c *hotCache) putFacts(k cache.FactKey, f pypi.Facts) { putInto(c, c.facts, k, f) }

func (c *hotCache) getFacts(k cache.FactKey) (pypi.Facts, bool) { return getFrom(c, c.facts, k) }

func (c *hotCache) putMetadata(ref, sha string) { putInto(c, c.metadata, ref, sha) }

func (c *hotCache) getMetadata(ref string) (string, bool) { return getFrom(c, c.metadata, ref) }

// parsed returns the version in filename, parsed once.
func (c *hotCache) parsed(filename string) parsedVersion {
	if v, ok := getFrom(c, c.versions, filename); ok {
		return v
	}
	var pv parsedVersion
	if v, ok := pypi.PipFilenameVersion(filename); ok {
		pv = parsedVersion{v: v, ok: true, s: v.String()}
	}
	putInto(c, c.versions, filename, pv)
	return pv
}

// version returns the version in filename as a string ("" when it does not
// parse).
func (c *hotCache) version(filename string) string { return c.parsed(filename).s }

// versionOf returns the version in filename (a copy), or nil when it does
// not parse.
func (c *hotCache) versionOf(filename string) *pypi.Version {
	pv := c.parsed(filename)
	if !pv.ok {
		return nil
	}
	v := pv.v
	return &v
}

// identity returns id.String(), made once per Identity.
func (c *hotCache) identity(id *pypi.Identity) string {
	if s, ok := getFrom(c, c.identities, id); ok {
		return s
	}
	s := id.String()
	putInto(c, c.identities, id, s)
	return s
}

// uploadTime parses a PEP 700 upload-time, once per string: zero when it
// is absent or malformed, as uploadTime.
func (c *hotCache) uploadTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if t, ok := getFrom(c, c.uploads, s); ok {
		return t
	}
	t := uploadTime(&pypi.File{UploadTime: s})
	putInto(c, c.uploads, s, t)
	return t
}
