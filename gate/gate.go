// Package gate is one download's logic, with no HTTP server in it: page
// and file lookup (memory, bbolt, the upstream under singleflight), the
// provenance and verification facts of a file, eager verification, the
// policy's decisions over the project's history, the fill of a file from
// the upstream into the blob store, and the hot caches in front of bbolt.
// Package proxy parses requests, asks the Gate and writes what it returns.
package gate

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

// Upstream is what the gate needs of the upstream indexes
// (*upstream.Router): every call names the project, so that the upstream
// that owns it (and only that one) answers. Tests swap in a fake.
type Upstream interface {
	// Owner names the upstream serving project ("" when none does) and how
	// long its pages stay fresh (0: Options.IndexTTL). Names scope the
	// cached pages and provenance, so two upstreams never share a record.
	Owner(project string) (name string, indexTTL time.Duration)
	Project(ctx context.Context, name string) (*pypi.ProjectPage, error)
	ProjectList(ctx context.Context) (*pypi.ProjectList, error)
	Open(ctx context.Context, project, rawURL string, kind upstream.Kind) (*upstream.Body, error)
	Provenance(ctx context.Context, project, rawURL string) ([]byte, error)
}

// Verifier verifies a file's provenance offline.
type Verifier interface {
	// Facts verifies prov (an Integrity API object) for the distribution
	// filename with the given sha256 and reports what it established.
	Facts(prov []byte, filename, sha256 string) pypi.Facts
	// TrustRootDigest identifies the trust material in use; it is part of
	// the verdict cache key, so a new root re-verifies.
	TrustRootDigest() string
}

// PolicySource returns the policy in force (hot-reloaded).
type PolicySource interface {
	Current() *policy.Policy
}

// IndexDecision is a decision the index applied to a file while rendering a
// page (listed as yanked, or not): renders report them to their caller (the
// status page's blocked list).
type IndexDecision struct {
	// Version is set only when the decision blocks or yanks (a page of
	// 390k files is not parsed again for the rest).
	Project, Version, Filename, SHA256 string
	Decision                           policy.Decision
}

// SharedStore is a blob store several replicas share (*shared.Store): a
// second level behind the local blobs, read after a local miss and written
// after an upstream fill. Nothing it returns is trusted: a fill hashes it
// and commits it only on a digest match (sharedfill.go).
type SharedStore interface {
	// Get opens the blob's object and returns it with its size; any error
	// is a miss (counted by the store).
	Get(ctx context.Context, sha256 string) (io.ReadCloser, int64, error)
	// Rejected reports an object that did not match (reason "digest" or
	// "size"); the next Upload replaces it.
	Rejected(sha256, reason, detail string)
	// Upload stores a committed local blob in the background.
	Upload(sha256 string)
}

// Options configure a Gate. Upstream, Store, Verifier and Policy are
// required; every other field works at its zero value.
type Options struct {
	Upstream Upstream
	Store    *cache.Store
	Verifier Verifier
	Policy   PolicySource
	// Shared is a blob store other replicas share (cache.shared); nil: none.
	Shared SharedStore

	// Logger receives operational messages; nil discards.
	Logger *slog.Logger
	// Registerer receives the gate's own series; nil: a private registry.
	Registerer prometheus.Registerer

	// IndexTTL is how long a project page or provenance object is fresh; 0: 10m.
	IndexTTL time.Duration
	// FetchTimeout bounds a shared page or provenance fill; 0: 1m.
	FetchTimeout time.Duration
	// FileFetchTimeout bounds a whole file fill; 0: 1h (the upstream
	// client's idle timeout ends a stalled body sooner).
	FileFetchTimeout time.Duration
	// MaxFileSize bounds a file or .metadata body whose size the index does
	// not give (a body is always bounded by the index size when it does);
	// config cache.max_file_size; 0: 4 GiB.
	MaxFileSize int64
	// FillGrace is how long a fill goes on once its last client left; 0: 5s.
	FillGrace time.Duration
	// EagerReleases is how many newest releases are verified when a page is
	// served; 0: none.
	EagerReleases int
	// EagerConcurrency bounds parallel eager verifications; 0: 4.
	EagerConcurrency int
	// EagerBudget is how long a page waits for eager verification; 0: 5s.
	EagerBudget time.Duration
	// PageCacheBytes bounds the memory of the project page cache (decoded
	// pages and rendered bytes, least recently used evicted first); 0:
	// 64 MiB. The project list's render is kept apart (one per format).
	PageCacheBytes int64
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Hooks let tests observe the fills; nil ones are not called.
	Hooks Hooks
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.IndexTTL == 0 {
		o.IndexTTL = 10 * time.Minute
	}
	if o.FetchTimeout == 0 {
		o.FetchTimeout = time.Minute
	}
	if o.FileFetchTimeout == 0 {
		o.FileFetchTimeout = fillTimeoutDefault
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = maxFileSizeDefault
	}
	if o.FillGrace <= 0 {
		o.FillGrace = fillGraceDefault
	}
	if o.EagerConcurrency <= 0 {
		o.EagerConcurrency = 4
	}
	if o.EagerBudget == 0 {
		o.EagerBudget = 5 * time.Second
	}
	if o.PageCacheBytes <= 0 {
		o.PageCacheBytes = pageCacheDefaultBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Gate runs the lookups, verifications, decisions and fills of the index.
type Gate struct {
	opts     Options
	up       Upstream
	store    *cache.Store
	verifier Verifier
	policy   PolicySource
	log      *slog.Logger
	metrics  *metrics
	flights  singleflight.Group
	fills    fills
	pages    *pageCache
	hot      *hotCache
	hist     histCache   // history order of recently decided pages (trust over time)
	kept     keptRecords // continuity records kept in bbolt, once read
	// base parents all background work (fills, eager verification): it
	// outlives any request and is cancelled by Close.
	base  context.Context
	stop  context.CancelFunc
	bg    sync.WaitGroup
	hooks Hooks
}

// New returns a Gate.
func New(opts Options) (*Gate, error) {
	var errs []error
	if opts.Upstream == nil {
		errs = append(errs, errors.New("gate: Options.Upstream is required"))
	}
	if opts.Store == nil {
		errs = append(errs, errors.New("gate: Options.Store is required"))
	}
	if opts.Verifier == nil {
		errs = append(errs, errors.New("gate: Options.Verifier is required"))
	}
	if opts.Policy == nil {
		errs = append(errs, errors.New("gate: Options.Policy is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	s := &Gate{
		opts:     opts,
		up:       opts.Upstream,
		store:    opts.Store,
		verifier: opts.Verifier,
		policy:   opts.Policy,
		log:      opts.Logger,
		metrics:  newMetrics(opts.Registerer),
		fills:    fills{m: map[string]*Fill{}},
		pages:    newPageCache(opts.PageCacheBytes),
		hot:      newHotCache(),
		hooks:    opts.Hooks,
	}
	opts.Registerer.MustRegister(s.pages.collector())
	s.base, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// Done is closed when the Gate is closed.
func (s *Gate) Done() <-chan struct{} { return s.base.Done() }

// Close cancels the background work (shared fills, eager verification) and
// waits for it, so the store can be closed after it.
func (s *Gate) Close() {
	s.stop()
	s.bg.Wait()
}

// Wait waits for the background work without cancelling it (tests).
func (s *Gate) Wait() { s.bg.Wait() }

// detached returns a context for work shared between requests: not cancelled
// when the client that started it goes away, but when the Gate closes.
func (s *Gate) detached(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.base, timeout)
}

func (s *Gate) now() time.Time { return s.opts.Now() }

// Hooks are functions tests observe fills with (Options.Hooks); nil ones
// are not called.
type Hooks struct {
	// FillDone is called as each fill ends, with the bytes it wrote.
	FillDone func(key string, written int64, err error)
	// FillGraceEnded is called when a fill's grace period ran out with no
	// client, saying whether the fill was stopped.
	FillGraceEnded func(key string, stopped bool)
	// FillJoined is called as each request joins or starts a fill.
	FillJoined func(key string)
}

// CountLookup counts a lookup made outside the gate (a blob served by proxy).
func (s *Gate) CountLookup(kind LookupKind, st CacheState) { s.metrics.lookup(kind, st) }

// CountServed counts n bytes of a cached file sent to a client.
func (s *Gate) CountServed(n int64) { s.metrics.served(SourceCache, n) }

// Version returns the version in filename ("" when it does not parse),
// parsed once.
func (s *Gate) Version(filename string) string { return s.hot.version(filename) }

// NewPageDecider returns a decider of p's files under pol, from cached facts
// only (see PageDecider).
func (s *Gate) NewPageDecider(pol *policy.Policy, p *pypi.ProjectPage) *PageDecider {
	return &PageDecider{s: s, pol: pol, page: p, now: s.now()}
}

// Page is the page the decider decides.
func (pd *PageDecider) Page() *pypi.ProjectPage { return pd.page }

// TailHoldback is how many of its last bytes a streaming reader of a fill in
// progress is kept from until the digest matched.
const TailHoldback = tailHoldback

// PageCacheBytes returns the bytes the page cache holds.
func (s *Gate) PageCacheBytes() int64 { return s.pages.bytes() }

// Renders returns how many project pages were rendered (for tests).
func (s *Gate) Renders() int64 { return s.pages.renders.Load() }

// HotMetadata returns the METADATA blob's sha256 the hot cache holds for
// the wheel sha named filename (for tests).
func (s *Gate) HotMetadata(sha, filename string) string {
	m, _ := s.hot.getMetadata(metadataRef(sha, filename))
	return m
}

// ForgetHot empties the hot cache, as a restart does (for tests).
func (s *Gate) ForgetHot() { s.hot = newHotCache() }
