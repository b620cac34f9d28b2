package policy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchInterval is the polling interval [Reloader.Watch] uses when
// given zero or less.
const DefaultWatchInterval = 5 * time.Second

// ReloaderOptions configure a [Reloader].
type ReloaderOptions struct {
	// Path is the policy file. Empty means the built-in [Default] policy,
	// which Reload and Watch leave in place.
	Path string
	// Logger receives a line per reload. Nil discards.
	Logger *slog.Logger
	// OnReload, when set, is called after the initial load and after every
	// Reload, with whether it succeeded (for a last-reload-successful gauge).
	// It is called without the reloader's lock held, and may be called from
	// the Watch goroutine.
	OnReload func(ok bool)
}

// Reloader holds the current policy and replaces it when the file changes.
// Current is lock-free; Reload is serialised.
type Reloader struct {
	opts ReloaderOptions
	log  *slog.Logger
	cur  atomic.Pointer[Policy]

	mu   sync.Mutex  // serialises Reload
	seen os.FileInfo // the file's stat before the last load attempt
}

// NewReloader loads the policy at opts.Path (or takes the built-in default
// when Path is empty). A file that does not load is an error.
func NewReloader(opts ReloaderOptions) (*Reloader, error) {
	r := &Reloader{opts: opts, log: opts.Logger}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Path == "" {
		r.cur.Store(Default())
		r.notify(true)
		return r, nil
	}
	p, st, err := r.load()
	if err != nil {
		return nil, err
	}
	r.seen = st
	r.cur.Store(p)
	r.log.Info("policy loaded", "path", opts.Path, "sha256", p.Digest(), "rules", len(p.rules))
	r.notify(true)
	return r, nil
}

// Current returns the policy in force. It never returns nil.
func (r *Reloader) Current() *Policy { return r.cur.Load() }

// Reload reads the file again. On success the new policy replaces the old
// one for every later Current call; on failure the old policy stays, the
// problems are logged, and the error (joined [*ProblemError]s, or an I/O
// error) is returned. With no Path it does nothing.
func (r *Reloader) Reload() error {
	if r.opts.Path == "" {
		return nil
	}
	err := r.reload()
	r.notify(err == nil)
	return err
}

func (r *Reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, st, err := r.load()
	if st != nil {
		r.seen = st
	}
	if err != nil {
		old := r.cur.Load()
		attrs := []any{"path", r.opts.Path, "kept_sha256", old.Digest(), "err", err}
		if probs := Problems(err); len(probs) > 0 {
			msgs := make([]string, len(probs))
			for i, pr := range probs {
				msgs[i] = pr.Error()
			}
			attrs = append(attrs, "problems", msgs)
		}
		r.log.Error("policy reload failed; keeping the old policy", attrs...)
		return err
	}
	old := r.cur.Swap(p)
	r.log.Info("policy reloaded", "path", r.opts.Path, "sha256", p.Digest(),
		"previous_sha256", old.Digest(), "changed", p.Digest() != old.Digest(), "rules", len(p.rules))
	return nil
}

// load stats the file, then reads and parses it. The stat comes first so
// that a change racing with the read is seen again by the next Watch poll.
func (r *Reloader) load() (*Policy, os.FileInfo, error) {
	st, _ := os.Stat(r.opts.Path)
	p, err := Load(r.opts.Path)
	return p, st, err
}

func (r *Reloader) notify(ok bool) {
	if r.opts.OnReload != nil {
		r.opts.OnReload(ok)
	}
}

// Watch polls the file every interval (DefaultWatchInterval when interval
// is zero or less) and reloads it when its modification time, size or
// identity (a file renamed into place) changed. A failed reload is logged
// and not retried until the file changes again. Watch returns ctx.Err()
// when ctx is done; with no Path it just waits for ctx.
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
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if r.changed() {
			// The error is logged and reported through OnReload.
			_ = r.Reload()
		}
	}
}

// changed reports whether the file's stat differs from the one seen at the
// last load attempt. A file that cannot be stat'ed has not changed (an
// editor may be replacing it); it is read again once it is back.
func (r *Reloader) changed() bool {
	st, err := os.Stat(r.opts.Path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("policy stat failed", "path", r.opts.Path, "err", err)
		}
		return false
	}
	r.mu.Lock()
	seen := r.seen
	r.mu.Unlock()
	return seen == nil || !os.SameFile(seen, st) || !st.ModTime().Equal(seen.ModTime()) || st.Size() != seen.Size()
}
