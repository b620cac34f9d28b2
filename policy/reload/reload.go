// Package reload holds the policy in force and replaces it when its file
// changes (SIGHUP or polling), adopting only complete, valid files. It owns
// the reload metrics (pipgate_config_last_reload_successful and
// pipgate_config_last_reload_success_timestamp_seconds) on the registry it
// is handed. Package policy itself stays pure (no net/http, which the
// Prometheus client pulls in); this package does the file I/O and metrics.
package reload

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/policy"
)

// DefaultWatchInterval is the polling interval [Reloader.Watch] uses when
// given zero or less.
const DefaultWatchInterval = 5 * time.Second

// Options configure a [Reloader].
type Options struct {
	// Path is the policy file. Empty means the built-in [policy.Default] policy,
	// which Reload and Watch leave in place.
	Path string
	// Logger receives a line per reload. Nil discards.
	Logger *slog.Logger
	// OnReload, when set, is called after the initial load and after every
	// Reload, with whether it succeeded (for a last-reload-successful gauge).
	// It is called without the reloader's lock held, and may be called from
	// the Watch goroutine.
	OnReload func(ok bool)
	// Registerer receives pipgate_config_last_reload_successful and
	// pipgate_config_last_reload_success_timestamp_seconds. Nil: a private
	// registry (kept, not exported).
	Registerer prometheus.Registerer
	// Now is the clock of the success timestamp. Nil: time.Now.
	Now func() time.Time
}

// Reloader holds the current policy and replaces it when the file changes.
// Current is lock-free; Reload and Poll are serialised.
//
// A policy file is adopted only when it is complete and valid: every read
// is parsed in full before the swap, and the poller ([Reloader.Watch],
// [Reloader.Poll]) adopts only a replaced file, never one changed in
// place. Replaced means the path now names another file (another device
// and inode, symbolic links followed): a temporary file renamed over the
// policy, as editors and config management write, or a Kubernetes
// ConfigMap's symbolic link swapped to a new directory. Such a file is
// adopted once two polls in a row, one interval apart, saw the same size,
// modification time, identity and sha256 of its bytes. A file changed in
// place (truncated and rewritten, as "cat > policy.yaml" does) may be
// half-written, however long its writer pauses, so it is never adopted by
// polling: the change is logged once and shown in [State], and SIGHUP
// ([Reloader.Reload], the operator saying the file is complete) adopts it.
// The file in force is held open, so its inode is never reused by a file
// that replaces it.
type Reloader struct {
	opts Options
	log  *slog.Logger
	// The reload gauges (blackbox_exporter's SafeConfig pair).
	reloadOK   prometheus.Gauge // pipgate_config_last_reload_successful
	reloadTime prometheus.Gauge // pipgate_config_last_reload_success_timestamp_seconds
	cur        atomic.Pointer[policy.Policy]

	mu      sync.Mutex   // serialises Reload and Poll
	seen    os.FileInfo  // the file's stat at the last load attempt
	held    *os.File     // that file, held open so its inode is not reused
	pending *observation // a replacement seen by Poll, waiting to be seen again
	inPlace os.FileInfo  // an in-place change of the seen file, logged once

	state atomic.Pointer[State]
}

// State is what a [Reloader] knows about the policy in force and the last
// reload attempt, for a status page.
type State struct {
	// LoadedAt is when the policy in force was loaded.
	LoadedAt time.Time
	// Err is the error of the last reload attempt when it failed (the old
	// policy stays in force); nil after a successful load.
	Err error
	// FailedAt is when that attempt failed; zero when Err is nil.
	FailedAt time.Time
	// InPlaceAt is when polling found the policy file changed in place
	// (not replaced): the change is not adopted until SIGHUP. Zero when
	// there is no such change waiting.
	InPlaceAt time.Time
}

// observation is what one read saw of the file.
type observation struct {
	st   os.FileInfo
	sum  [sha256.Size]byte
	body []byte
	f    *os.File // the file read, open until it is held or dropped
}

// drop closes o's file unless it is nil or held.
func (o *observation) drop() {
	if o != nil && o.f != nil {
		_ = o.f.Close() // read only
		o.f = nil
	}
}

// New loads the policy at opts.Path (or takes the built-in default
// when Path is empty). A file that does not load is an error.
func New(opts Options) (*Reloader, error) {
	r := &Reloader{opts: opts, log: opts.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.opts.Now == nil {
		r.opts.Now = time.Now
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	r.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pipgate_config_last_reload_successful",
		Help: "Whether the last configuration (policy) reload succeeded: 1 yes, 0 no.",
	})
	r.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pipgate_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful configuration (policy) load.",
	})
	for _, c := range []prometheus.Collector{r.reloadOK, r.reloadTime} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("policy reloader: registering metrics: %w", err)
		}
	}
	if opts.Path == "" {
		r.cur.Store(policy.Default())
		r.state.Store(&State{LoadedAt: r.opts.Now()})
		r.notify(true)
		return r, nil
	}
	o, err := r.read()
	if err != nil {
		return nil, err
	}
	p, err := r.parse(o)
	if err != nil {
		o.drop()
		return nil, err
	}
	r.hold(o)
	r.cur.Store(p)
	r.state.Store(&State{LoadedAt: r.opts.Now()})
	r.log.Info("policy loaded", "path", opts.Path, "sha256", p.Digest(), "rules", len(p.Rules()))
	r.notify(true)
	return r, nil
}

// Current returns the policy in force. It never returns nil.
func (r *Reloader) Current() *policy.Policy { return r.cur.Load() }

// State returns when the policy in force was loaded and, when the last
// reload attempt failed, its error.
func (r *Reloader) State() State { return *r.state.Load() }

// Reload reads the file again, at once (SIGHUP: the operator says the file
// is ready). On success the new policy replaces the old one for every later
// Current call; on failure the old policy stays, the problems are logged,
// and the error (joined [*policy.ProblemError]s, or an I/O error) is returned.
// With no Path it does nothing.
func (r *Reloader) Reload() error {
	if r.opts.Path == "" {
		return nil
	}
	r.mu.Lock()
	o, err := r.read()
	if err == nil {
		err = r.adopt(o)
	} else {
		r.failed(err)
	}
	r.pending.drop()
	r.pending = nil
	r.mu.Unlock()
	r.notify(err == nil)
	return err
}

// Poll looks at the file once, as each tick of [Reloader.Watch] does. A
// file that replaced the one of the last load attempt is read and hashed
// and becomes pending; it is adopted (parsed, and swapped in when valid)
// only when the next Poll finds exactly the same stat and bytes. A change
// in place is logged once and left for SIGHUP. Poll reports whether it
// attempted a reload, and that attempt's error. A failed reload is logged
// and not retried until the file changes again; a file that cannot be read
// (an editor replacing it) is looked at again next time.
func (r *Reloader) Poll() (attempted bool, err error) {
	if r.opts.Path == "" {
		return false, nil
	}
	r.mu.Lock()
	attempted, err = r.poll()
	r.mu.Unlock()
	if attempted {
		r.notify(err == nil)
	}
	return attempted, err
}

func (r *Reloader) poll() (bool, error) {
	st, err := os.Stat(r.opts.Path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("policy stat failed", "path", r.opts.Path, "err", err)
		}
		r.setPending(nil)
		return false, nil
	}
	switch {
	case sameStat(r.seen, st):
		r.setPending(nil)
		return false, nil
	case r.seen != nil && os.SameFile(r.seen, st):
		// The file of the last load attempt, written in place: it may be
		// half-written, so only SIGHUP adopts it.
		r.setPending(nil)
		if !sameStat(r.inPlace, st) {
			r.inPlace = st
			prev := r.state.Load()
			next := *prev
			next.InPlaceAt = r.opts.Now()
			r.state.Store(&next)
			// After the state: who reads this line finds InPlaceAt set.
			r.log.Warn("policy file changed in place; not adopted until SIGHUP (or write a temporary file and rename it into place)", "path", r.opts.Path)
		}
		return false, nil
	}
	o, err := r.read()
	if err != nil {
		o.drop()
		r.setPending(nil)
		return false, nil
	}
	if pend := r.pending; pend == nil || !sameStat(pend.st, o.st) || pend.sum != o.sum {
		r.setPending(o)
		r.log.Info("policy file replaced; adopting it once it is unchanged at the next poll", "path", r.opts.Path)
		return false, nil
	}
	o.drop() // the pending observation holds the same file
	o, r.pending = r.pending, nil
	return true, r.adopt(o)
}

// setPending makes o (nil: none) the pending observation, closing the
// file of the one it replaces.
func (r *Reloader) setPending(o *observation) {
	if r.pending != o {
		r.pending.drop()
	}
	r.pending = o
}

// hold makes o the file of the last load attempt, held open in place of
// the previous one.
func (r *Reloader) hold(o *observation) {
	if r.held != nil {
		_ = r.held.Close() // read only
	}
	r.seen, r.held, o.f = o.st, o.f, nil
	r.inPlace = nil
}

// sameStat reports whether a and b describe the same file in the same state.
func sameStat(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// read stats the file, reads it (bounded), and stats it again: a read that
// raced with a write is reported as changed (an error), so it is never
// taken for a stable file. The file stays open in the observation (see
// [observation.drop]); on error it is closed.
func (r *Reloader) read() (o *observation, err error) {
	f, err := os.Open(r.opts.Path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close() // read only
			if o != nil {
				o.f = nil
			}
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(f, policy.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	after, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	o = &observation{st: after, body: body, sum: sha256.Sum256(body), f: f}
	if !sameStat(st, after) || (int64(len(body)) != after.Size() && len(body) <= policy.MaxFileSize) {
		return o, fmt.Errorf("reading policy: %w", errChanging)
	}
	return o, nil
}

// errChanging is a read that saw the file change under it.
var errChanging = errors.New("the file changed while it was read; write it to a temporary file and rename it into place")

// parse parses an observation's bytes as [policy.Load] would.
func (r *Reloader) parse(o *observation) (*policy.Policy, error) {
	return policy.ParseFile(r.opts.Path, o.body)
}

// adopt parses o and swaps it in, or logs why not. Either way o is the
// file of the last load attempt. r.mu is held.
func (r *Reloader) adopt(o *observation) error {
	r.hold(o)
	p, err := r.parse(o)
	if err != nil {
		r.failed(err)
		return err
	}
	old := r.cur.Swap(p)
	r.state.Store(&State{LoadedAt: r.opts.Now()})
	r.log.Info("policy reloaded", "path", r.opts.Path, "sha256", p.Digest(),
		"previous_sha256", old.Digest(), "changed", p.Digest() != old.Digest(), "rules", len(p.Rules()))
	return nil
}

// failed logs a reload that kept the old policy, and keeps its error for
// [Reloader.State].
func (r *Reloader) failed(err error) {
	prev := r.state.Load()
	r.state.Store(&State{LoadedAt: prev.LoadedAt, Err: err, FailedAt: r.opts.Now()})
	old := r.cur.Load()
	attrs := []any{"path", r.opts.Path, "kept_sha256", old.Digest(), "err", err}
	if probs := policy.Problems(err); len(probs) > 0 {
		msgs := make([]string, len(probs))
		for i, pr := range probs {
			msgs[i] = pr.Error()
		}
		attrs = append(attrs, "problems", msgs)
	}
	r.log.Error("policy reload failed; keeping the old policy", attrs...)
}

// notify records the outcome of a load or reload: the gauges, then OnReload.
// A failed reload leaves the success timestamp where it was.
func (r *Reloader) notify(ok bool) {
	if ok {
		r.reloadOK.Set(1)
		r.reloadTime.Set(float64(r.opts.Now().UnixNano()) / 1e9)
	} else {
		r.reloadOK.Set(0)
	}
	if r.opts.OnReload != nil {
		r.opts.OnReload(ok)
	}
}

// Watch calls [Reloader.Poll] every interval (DefaultWatchInterval when
// interval is zero or less), so a changed file is adopted one to two
// intervals after its last write. Watch returns ctx.Err() when ctx is done;
// with no Path it just waits for ctx.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	if r.opts.Path == "" {
		<-ctx.Done()
		return ctx.Err()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	return r.watch(ctx, t.C, nil)
}

// watch calls [Reloader.Poll] on every tick until ctx is done, and polled
// (when not nil) after each poll.
func (r *Reloader) watch(ctx context.Context, ticks <-chan time.Time, polled func()) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticks:
		}
		// The error is logged and reported through OnReload.
		_, _ = r.Poll()
		if polled != nil {
			polled()
		}
	}
}
