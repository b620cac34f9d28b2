package provenance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
)

// LastGoodFile is the name, inside TrustSourceOptions.CacheDir, of the last
// trusted root fetched through TUF, used for offline starts.
const LastGoodFile = "trusted_root.last-good.json"

// ErrNoTrustRoot reports that no usable Sigstore trusted root could be had.
var ErrNoTrustRoot = errors.New("no usable Sigstore trusted root")

// TrustSourceOptions configures a [TrustSource].
type TrustSourceOptions struct {
	// TrustedRootPath pins a trusted_root.json (production, staging or a
	// private Sigstore). When set, TUF is not used and the other fields
	// except Logger and Registerer are ignored.
	TrustedRootPath string
	// CacheDir holds the TUF metadata cache and the last good trusted root
	// (the proxy passes data_dir/tuf). Required without TrustedRootPath.
	CacheDir string
	// MirrorURL is the TUF repository; empty means Sigstore public-good
	// (tuf.DefaultMirror), or staging with Staging.
	MirrorURL string
	// Staging selects Sigstore staging: its TUF repository and the TUF root
	// embedded in sigstore-go for it (unless MirrorURL or TUFRoot are set).
	Staging bool
	// TUFRoot is the TUF trust anchor (root.json); nil means the one
	// embedded in sigstore-go for public-good.
	TUFRoot []byte
	// HTTPTimeout bounds each TUF request; zero means 30s. TUF uses its
	// own http.Client, never http.DefaultClient.
	HTTPTimeout time.Duration
	// MaxTries is how many times one TUF download is tried; zero means 3.
	MaxTries uint
	// RetryInterval is the pause between tries; zero means 1s.
	RetryInterval time.Duration
	// RefreshInterval is how often Run refreshes through TUF; zero means 6h.
	RefreshInterval time.Duration
	// StaleAfter is the trusted root age past which a warning is logged;
	// zero means 7 days.
	StaleAfter time.Duration
	// Fallback is the trusted root of last resort: used when TUF, its cache
	// and the last good copy all fail, or when the last good copy is older
	// than it. nil means [EmbeddedRoot] for Sigstore public-good (MirrorURL,
	// TUFRoot and Staging unset) and none otherwise.
	Fallback *RootSnapshot
	// NoFallback disables Fallback, the embedded root included.
	NoFallback bool
	// FallbackRetryInterval is how soon Run tries TUF again while the root
	// in use did not come from TUF (the embedded snapshot, the last good
	// copy, the TUF cache); it doubles after each failure up to 16 times
	// itself (and at most RefreshInterval). Zero means 1 minute.
	FallbackRetryInterval time.Duration
	// Logger receives refresh and staleness messages (the caller adds the
	// component attribute); nil discards them.
	Logger *slog.Logger
	// Registerer, when set, gets the gauge
	// pipgate_trust_root_last_refresh_timestamp_seconds.
	Registerer prometheus.Registerer
}

func (o TrustSourceOptions) withDefaults() TrustSourceOptions {
	if o.Fallback == nil && !o.NoFallback && o.MirrorURL == "" && o.TUFRoot == nil && !o.Staging {
		e := EmbeddedRoot()
		o.Fallback = &e
	}
	if o.NoFallback {
		o.Fallback = nil
	}
	if o.FallbackRetryInterval == 0 {
		o.FallbackRetryInterval = time.Minute
	}
	switch {
	case o.MirrorURL != "":
	case o.Staging:
		o.MirrorURL = tuf.StagingMirror
	default:
		o.MirrorURL = tuf.DefaultMirror
	}
	switch {
	case o.TUFRoot != nil:
	case o.Staging:
		o.TUFRoot = tuf.StagingRoot()
	default:
		o.TUFRoot = tuf.DefaultRoot()
	}
	if o.HTTPTimeout == 0 {
		o.HTTPTimeout = 30 * time.Second
	}
	if o.MaxTries == 0 {
		o.MaxTries = 3
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = time.Second
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = 6 * time.Hour
	}
	if o.StaleAfter == 0 {
		o.StaleAfter = 7 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// TrustSource provides the current [Verifier] for a Sigstore trusted root
// that is pinned, or fetched through TUF and refreshed periodically; a
// refresh swaps the verifier atomically.
type TrustSource struct {
	opts  TrustSourceOptions
	log   *slog.Logger
	state atomic.Pointer[trustState]
}

type trustState struct {
	verifier  *Verifier
	digest    string
	refreshed time.Time
	origin    TrustOrigin
	where     string // the path or URL it was read from
}

// TrustOrigin says where the trusted root in use came from.
type TrustOrigin string

// The origins of a trusted root.
const (
	OriginFile     TrustOrigin = "file"      // the pinned TrustedRootPath
	OriginTUF      TrustOrigin = "tuf"       // fetched through TUF
	OriginTUFCache TrustOrigin = "tuf-cache" // the TUF cache, offline, before its metadata expired
	OriginLastGood TrustOrigin = "last-good" // the copy saved after the last TUF fetch
	OriginFallback TrustOrigin = "embedded"  // TrustSourceOptions.Fallback: the snapshot built into pipgate
)

// NewTrustSource loads the trusted root: the pinned file; otherwise TUF
// online, then the TUF cache, then the last good copy saved in CacheDir.
// With none of them usable it returns an error wrapping [ErrNoTrustRoot].
func NewTrustSource(ctx context.Context, opts TrustSourceOptions) (*TrustSource, error) {
	s := &TrustSource{opts: opts.withDefaults()}
	s.log = s.opts.Logger
	if opts.TrustedRootPath != "" {
		b, err := os.ReadFile(opts.TrustedRootPath)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoTrustRoot, err)
		}
		// A pinned file was last refreshed when it was last written: its
		// age says how long nobody updated it, whenever pipgate started.
		updated := time.Now()
		if fi, err := os.Stat(opts.TrustedRootPath); err == nil {
			updated = fi.ModTime()
		}
		if err := s.install(b, updated, OriginFile, opts.TrustedRootPath); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrNoTrustRoot, opts.TrustedRootPath, err)
		}
		s.warnIfStale()
	} else {
		if opts.CacheDir == "" {
			return nil, errors.New("provenance: TrustSourceOptions needs TrustedRootPath or CacheDir")
		}
		if err := s.start(ctx); err != nil {
			return nil, err
		}
	}
	if s.opts.Registerer != nil {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pipgate_trust_root_last_refresh_timestamp_seconds",
			Help: "Unix time of the last successful load or refresh of the Sigstore trusted root.",
		}, func() float64 { return float64(s.LastRefresh().UnixNano()) / 1e9 })
		if err := s.opts.Registerer.Register(g); err != nil {
			return nil, fmt.Errorf("provenance: registering metrics: %w", err)
		}
	}
	return s, nil
}

func (s *TrustSource) start(ctx context.Context) error {
	b, errOnline := s.fetch(ctx, false)
	if errOnline == nil {
		errOnline = s.install(b, time.Now(), OriginTUF, s.opts.MirrorURL)
	}
	if errOnline == nil {
		s.saveLastGood(b)
		return nil
	}
	s.log.Warn("tuf refresh failed, trying the local copies", "err", errOnline)
	// A warm TUF cache works offline until its timestamp.json expires; a
	// cold one would only go to the network again.
	if _, err := os.Stat(filepath.Join(s.opts.CacheDir, tuf.URLToPath(s.opts.MirrorURL), "timestamp.json")); err == nil {
		if b, err := s.fetch(ctx, true); err == nil {
			if err := s.install(b, time.Now(), OriginTUFCache, s.opts.CacheDir); err == nil {
				return nil
			}
		}
	}
	fb := s.opts.Fallback
	p := filepath.Join(s.opts.CacheDir, LastGoodFile)
	b, errLast := os.ReadFile(p)
	if errLast == nil {
		mtime := time.Now()
		if fi, err := os.Stat(p); err == nil {
			mtime = fi.ModTime()
		}
		switch {
		case fb != nil && fb.Date.After(mtime):
			s.log.Info("the last good trusted root is older than the embedded snapshot; using the snapshot", "path", p, "fetched", mtime, "snapshot_date", fb.Date)
		default:
			if errLast = s.install(b, mtime, OriginLastGood, p); errLast == nil {
				s.log.Warn("using the last good trusted root", "path", p, "fetched", mtime)
				s.warnIfStale()
				return nil
			}
			errLast = fmt.Errorf("last good copy %s: %w", p, errLast)
		}
	} else {
		errLast = fmt.Errorf("no last good copy: %w", errLast)
	}
	if fb == nil {
		return fmt.Errorf("%w: TUF (%s): %w; and %w", ErrNoTrustRoot, s.opts.MirrorURL, errOnline, errLast)
	}
	if err := s.install(fb.JSON, fb.Date, OriginFallback, fb.Source); err != nil {
		return fmt.Errorf("%w: TUF (%s): %w; %w; embedded snapshot: %w", ErrNoTrustRoot, s.opts.MirrorURL, errOnline, errLast, err)
	}
	s.log.Warn("TUF unreachable and no saved copy: using the trusted root snapshot embedded in pipgate until TUF answers",
		"snapshot_date", fb.Date, "source", fb.Source, "retry_seconds", s.opts.FallbackRetryInterval.Seconds())
	s.warnIfStale()
	return nil
}

// fetch gets trusted_root.json through TUF; cacheOnly uses the local TUF
// metadata without network while it has not expired.
func (s *TrustSource) fetch(ctx context.Context, cacheOnly bool) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f := fetcher.NewDefaultFetcher()
	f.SetHTTPClient(&http.Client{Timeout: s.opts.HTTPTimeout})
	f.SetHTTPUserAgent("pipgate")
	f.SetRetry(s.opts.RetryInterval, s.opts.MaxTries)
	o := &tuf.Options{
		Root:              s.opts.TUFRoot,
		CachePath:         s.opts.CacheDir,
		RepositoryBaseURL: s.opts.MirrorURL,
		Fetcher:           f,
		ForceCache:        cacheOnly,
		Context:           ctx,
	}
	c, err := tuf.New(o)
	if err != nil {
		return nil, err
	}
	return c.GetTarget("trusted_root.json")
}

func (s *TrustSource) install(b []byte, refreshed time.Time, origin TrustOrigin, where string) error {
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		return err
	}
	v, err := NewVerifier(VerifierOptions{TrustedRoot: tr})
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	s.state.Store(&trustState{verifier: v, digest: hex.EncodeToString(sum[:]), refreshed: refreshed, origin: origin, where: where})
	s.log.Info("trusted root loaded", "origin", string(origin), "from", where, "sha256", hex.EncodeToString(sum[:]), "refreshed", refreshed)
	return nil
}

func (s *TrustSource) saveLastGood(b []byte) {
	p := filepath.Join(s.opts.CacheDir, LastGoodFile)
	err := os.MkdirAll(s.opts.CacheDir, 0o700)
	if err == nil {
		tmp := p + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, p)
		}
	}
	if err != nil {
		s.log.Warn("saving the last good trusted root failed", "path", p, "err", err)
	}
}

func (s *TrustSource) warnIfStale() {
	if age := time.Since(s.LastRefresh()); age > s.opts.StaleAfter {
		st := s.state.Load()
		s.log.Warn("trusted root is stale", "age_seconds", int64(age.Seconds()), "origin", string(st.origin), "from", st.where)
	}
}

// Verifier returns the verifier for the current trusted root.
func (s *TrustSource) Verifier() *Verifier { return s.state.Load().verifier }

// Digest returns the lower-case hex sha256 of the current trusted root
// JSON, part of the proxy's verdict cache key.
func (s *TrustSource) Digest() string { return s.state.Load().digest }

// LastRefresh returns when the current trusted root was last refreshed:
// fetched through TUF; for the last good copy, when it was saved; for the
// embedded snapshot, the snapshot's date; for a pinned TrustedRootPath,
// the file's modification time (when it was last updated, not when
// pipgate started).
func (s *TrustSource) LastRefresh() time.Time { return s.state.Load().refreshed }

// Refresh fetches the trusted root through TUF now and swaps it in; on
// failure the current one stays. A pinned source does nothing.
func (s *TrustSource) Refresh(ctx context.Context) error {
	if s.opts.TrustedRootPath != "" {
		return nil
	}
	prev := s.Origin()
	b, err := s.fetch(ctx, false)
	if err == nil {
		err = s.install(b, time.Now(), OriginTUF, s.opts.MirrorURL)
	}
	if err != nil {
		s.log.Warn("tuf refresh failed, keeping the current trusted root", "err", err)
		s.warnIfStale()
		return fmt.Errorf("refreshing the trusted root: %w", err)
	}
	if prev != OriginTUF {
		s.log.Info("TUF answered: the trusted root now comes from TUF", "previous_origin", string(prev))
	}
	s.saveLastGood(b)
	return nil
}

// Origin says where the trusted root in use came from.
func (s *TrustSource) Origin() TrustOrigin { return s.state.Load().origin }

// Describe says in a few words where the trusted root in use comes from,
// for the status page and logs: the pinned path, TUF, or which offline
// copy and since when.
func (s *TrustSource) Describe() string {
	st := s.state.Load()
	name := "Sigstore public-good"
	if s.opts.Staging {
		name = "Sigstore staging"
	}
	if s.opts.MirrorURL != tuf.DefaultMirror && s.opts.MirrorURL != tuf.StagingMirror {
		name = "TUF " + s.opts.MirrorURL
	}
	switch st.origin {
	case OriginFile:
		return st.where
	case OriginTUF:
		return name + " (TUF)"
	case OriginTUFCache:
		return name + " (TUF cache; TUF unreachable at start, retrying)"
	case OriginLastGood:
		return name + " (last good copy of " + st.refreshed.UTC().Format(time.DateOnly) + "; TUF unreachable, retrying)"
	default:
		return "embedded snapshot of " + name + " from " + st.refreshed.UTC().Format(time.DateOnly) + " (TUF unreachable, retrying)"
	}
}

// Run refreshes the trusted root every RefreshInterval until ctx is done;
// while the root in use came from an offline copy (the TUF cache, the last
// good copy, the embedded snapshot) it tries TUF every
// FallbackRetryInterval (doubling on failure), so TUF is used as soon as it
// answers. A pinned source just waits. It returns nil when ctx ends.
func (s *TrustSource) Run(ctx context.Context) error {
	if s.opts.TrustedRootPath != "" {
		<-ctx.Done()
		return nil
	}
	retry := s.opts.FallbackRetryInterval
	maxRetry := min(16*s.opts.FallbackRetryInterval, s.opts.RefreshInterval)
	for {
		wait := s.opts.RefreshInterval
		if s.Origin() != OriginTUF {
			wait = min(retry, s.opts.RefreshInterval)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if err := s.Refresh(ctx); err != nil { // logged; the current root stays
			retry = min(2*retry, maxRetry)
		} else {
			retry = s.opts.FallbackRetryInterval
		}
	}
}
