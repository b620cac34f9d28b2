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
	// Logger receives refresh and staleness messages (the caller adds the
	// component attribute); nil discards them.
	Logger *slog.Logger
	// Registerer, when set, gets the gauge
	// pipgate_trust_root_last_refresh_timestamp_seconds.
	Registerer prometheus.Registerer
}

func (o TrustSourceOptions) withDefaults() TrustSourceOptions {
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
	origin    string
}

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
		if err := s.install(b, updated, opts.TrustedRootPath); err != nil {
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
		errOnline = s.install(b, time.Now(), "tuf")
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
			if err := s.install(b, time.Now(), "tuf cache"); err == nil {
				return nil
			}
		}
	}
	p := filepath.Join(s.opts.CacheDir, LastGoodFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("%w: TUF (%s): %w; and no last good copy: %w", ErrNoTrustRoot, s.opts.MirrorURL, errOnline, err)
	}
	mtime := time.Now()
	if fi, err := os.Stat(p); err == nil {
		mtime = fi.ModTime()
	}
	if err := s.install(b, mtime, p); err != nil {
		return fmt.Errorf("%w: TUF (%s): %w; last good copy %s: %w", ErrNoTrustRoot, s.opts.MirrorURL, errOnline, p, err)
	}
	s.log.Warn("using the last good trusted root", "path", p, "fetched", mtime)
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

func (s *TrustSource) install(b []byte, refreshed time.Time, origin string) error {
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		return err
	}
	v, err := NewVerifier(VerifierOptions{TrustedRoot: tr})
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	s.state.Store(&trustState{verifier: v, digest: hex.EncodeToString(sum[:]), refreshed: refreshed, origin: origin})
	s.log.Info("trusted root loaded", "origin", origin, "sha256", hex.EncodeToString(sum[:]))
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
		s.log.Warn("trusted root is stale", "age_seconds", int64(age.Seconds()), "origin", s.state.Load().origin)
	}
}

// Verifier returns the verifier for the current trusted root.
func (s *TrustSource) Verifier() *Verifier { return s.state.Load().verifier }

// Digest returns the lower-case hex sha256 of the current trusted root
// JSON, part of the proxy's verdict cache key.
func (s *TrustSource) Digest() string { return s.state.Load().digest }

// LastRefresh returns when the current trusted root was last refreshed:
// fetched through TUF; for the last good copy, when it was saved; for a
// pinned TrustedRootPath, the file's modification time (when it was last
// updated, not when pipgate started).
func (s *TrustSource) LastRefresh() time.Time { return s.state.Load().refreshed }

// Refresh fetches the trusted root through TUF now and swaps it in; on
// failure the current one stays. A pinned source does nothing.
func (s *TrustSource) Refresh(ctx context.Context) error {
	if s.opts.TrustedRootPath != "" {
		return nil
	}
	b, err := s.fetch(ctx, false)
	if err == nil {
		err = s.install(b, time.Now(), "tuf")
	}
	if err != nil {
		s.log.Warn("tuf refresh failed, keeping the current trusted root", "err", err)
		s.warnIfStale()
		return fmt.Errorf("refreshing the trusted root: %w", err)
	}
	s.saveLastGood(b)
	return nil
}

// Run refreshes the trusted root every RefreshInterval until ctx is done;
// a pinned source just waits. It returns nil when ctx ends.
func (s *TrustSource) Run(ctx context.Context) error {
	if s.opts.TrustedRootPath != "" {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(s.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = s.Refresh(ctx) // logged; the current root stays
		}
	}
}
