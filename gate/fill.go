package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

// A Fill downloads one upstream file into the blob store exactly once, however
// many clients ask for it meanwhile. Clients do not wait for the end: each
// reads the temp file as it grows (pread on a shared descriptor), so a large
// wheel starts flowing at once and memory stays flat. Only when the whole
// body matches the expected sha256 is the blob committed; otherwise every
// reader gets the error and the temp file is removed.
//
// What a fill may cost is bounded:
//   - the body is cut off past the index's size for the file, or past
//     Options.MaxFileSize when the index gives none; an upstream whose
//     Content-Length disagrees with the index size fails at once;
//   - the fill runs on a detached context, so one client's hang-up does not
//     abort what others are reading; but when the last client has left, the
//     fill stops after Options.FillGrace unless three quarters of a known
//     size are in (a client that retries within the grace joins it again);
//   - Options.FileFetchTimeout bounds the whole fill, the upstream client's
//     idle timeout a stalled body.
//
// Readers of a fill in progress never see its last tailHoldback bytes before
// the digest matched (see FillReader), so a streamed copy of a bad body is
// always incomplete.
//
// The committed blob is pinned in the store until the last client has left
// (each one opens the blob before it leaves), so the size limit
// (cache.max_size) never evicts it under a request that waited for it.
type Fill struct {
	gate      *Gate
	key       string
	want      string // expected sha256
	indexSize int64  // size the index gives, -1 unknown
	limit     int64  // most body bytes accepted
	cancel    context.CancelCauseFunc

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every progress
	started bool          // size and rf are known
	size    int64         // expected size: the index's, else the upstream's Content-Length; -1 unknown
	written int64
	done    bool
	err     error
	sha     string   // the committed blob's sha256
	unpin   func()   // releases the committed blob's pin; nil once released
	rf      *os.File // read side of the temp file
	refs    int      // readers + the filler holding rf
	clients int      // requests waiting for or reading this fill
	grace   *time.Timer
}

// fills tracks the fills in progress.
type fills struct {
	mu sync.Mutex
	m  map[string]*Fill
}

// FillSource opens the upstream body and returns its Content-Length (-1
// unknown).
type FillSource func(ctx context.Context) (io.ReadCloser, int64, error)

// Fill errors.
var (
	// ErrFileTooLarge reports a body over Options.MaxFileSize (for a file
	// whose size the index does not give).
	ErrFileTooLarge = errors.New("the upstream file exceeds the maximum file size (cache.max_file_size)")
	// ErrUpstreamBody reports an upstream body cut short or unreadable.
	ErrUpstreamBody = errors.New("the upstream file body broke off")
	// ErrFillAbandoned ends a fill whose clients all left.
	ErrFillAbandoned = errors.New("fill stopped: every client left")
	// ErrDigestMismatch reports upstream bytes that do not match the index's sha256.
	ErrDigestMismatch = errors.New("upstream served bytes that do not match the index sha256")
	// ErrUpstreamNoHash reports a file the index gives no sha256 for: pipgate cannot check its bytes.
	ErrUpstreamNoHash = errors.New("the index lists no sha256 for this file")
)

// tailHoldback is how many of its last bytes a streaming reader of a fill in
// progress is kept from until the digest matched.
const tailHoldback = 64 << 10

// FillRequest describes the blob a client wants.
type FillRequest struct {
	SHA  string // expected sha256
	Size int64  // size the index gives; -1 unknown
	Open FillSource
}

// JoinFill returns the fill in progress for req, or starts one, counting the
// caller as one of its clients: the caller must call [Fill.Leave] once. It
// returns nil, starting nothing, when the blob was committed since the
// caller's miss (a fill that ended in between): the caller opens it.
func (s *Gate) JoinFill(req FillRequest) *Fill {
	key := req.SHA
	s.fills.mu.Lock()
	defer s.fills.mu.Unlock()
	if fl, ok := s.fills.m[key]; ok {
		fl.join()
		if s.hooks.FillJoined != nil {
			s.hooks.FillJoined(key)
		}
		return fl
	}
	if s.store.HasBlob(req.SHA) {
		return nil
	}
	if s.hooks.FillJoined != nil {
		s.hooks.FillJoined(key)
	}
	limit := s.opts.MaxFileSize
	if req.Size >= 0 {
		limit = req.Size
	}
	fl := &Fill{gate: s, key: key, want: req.SHA, indexSize: req.Size, limit: limit,
		changed: make(chan struct{}), size: req.Size, clients: 1, grace: nil}
	s.fills.m[key] = fl
	fctx, stop := s.detached(s.opts.FileFetchTimeout)
	fctx, cancel := context.WithCancelCause(fctx)
	fl.cancel = cancel
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer stop()
		err := s.runFill(fctx, fl, req.Open)
		if err != nil && errors.Is(context.Cause(fctx), ErrFillAbandoned) {
			err = ErrFillAbandoned
			s.metrics.fillsAbandoned.Inc()
		}
		cancel(nil)
		s.fills.mu.Lock()
		delete(s.fills.m, key)
		s.fills.mu.Unlock()
		fl.finish(err)
		if err != nil {
			s.log.Warn("file Fill failed", "sha256", req.SHA, "bytes", fl.bytesWritten(), "err", err)
		}
		if s.hooks.FillDone != nil {
			s.hooks.FillDone(key, fl.bytesWritten(), err)
		}
	}()
	return fl
}

func (fl *Fill) join() {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.clients++
	if fl.grace != nil {
		fl.grace.Stop()
		fl.grace = nil
	}
}

// Leave drops a client's interest in fl; the last client out releases
// the committed blob's pin, or arms the grace timer that stops an
// unfinished fill.
func (fl *Fill) Leave() {
	s := fl.gate
	fl.mu.Lock()
	fl.clients--
	if fl.clients == 0 && fl.done {
		unpin := fl.takeUnpinLocked()
		fl.mu.Unlock()
		unpin()
		return
	}
	defer fl.mu.Unlock()
	if fl.clients > 0 {
		return
	}
	fl.grace = time.AfterFunc(s.opts.FillGrace, func() {
		fl.mu.Lock()
		if fl.clients > 0 || fl.done {
			fl.mu.Unlock()
			return
		}
		// Close to done (three quarters of a known size): finish it for
		// the next client rather than throw the bytes away.
		stop := fl.size <= 0 || fl.size-fl.written > fl.size/4
		if stop {
			fl.cancel(ErrFillAbandoned)
		}
		fl.mu.Unlock()
		if s.hooks.FillGraceEnded != nil {
			s.hooks.FillGraceEnded(fl.key, stop)
		}
	})
}

func (fl *Fill) bytesWritten() int64 {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.written
}

// blobWriter is what a fill needs of cache.BlobWriter.
type blobWriter interface {
	io.Writer
	CommitPinned(wantSHA256 string) (string, func(), error)
	Abort() error
	Path() string
}

var _ blobWriter = (*cache.BlobWriter)(nil)

func (s *Gate) runFill(ctx context.Context, fl *Fill, open FillSource) error {
	if s.opts.Shared != nil {
		if s.fillFromShared(ctx, fl) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	body, upSize, err := open(ctx)
	if err != nil {
		return err
	}
	defer body.Close()
	size := fl.indexSize
	switch {
	case size >= 0 && upSize >= 0 && upSize != size:
		return fmt.Errorf("%w: the upstream Content-Length is %d, the index size %d", ErrDigestMismatch, upSize, size)
	case size < 0 && upSize > fl.limit:
		return fmt.Errorf("%w: Content-Length %d, limit %d", ErrFileTooLarge, upSize, fl.limit)
	case size < 0:
		size = upSize
	}
	bw, err := s.store.NewBlob()
	if err != nil {
		return fmt.Errorf("creating blob: %w", err)
	}
	defer bw.Abort() // no-op after a successful Commit
	rf, err := os.Open(bw.Path())
	if err != nil {
		return fmt.Errorf("opening blob for readers: %w", err)
	}
	fl.mu.Lock()
	fl.rf, fl.size, fl.started, fl.refs = rf, size, true, 1
	fl.notifyLocked()
	fl.mu.Unlock()
	defer fl.release()

	buf := make([]byte, 64<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if fl.written+int64(n) > fl.limit {
				if fl.indexSize >= 0 {
					return fmt.Errorf("%w: the upstream body is longer than the index size %d", ErrDigestMismatch, fl.indexSize)
				}
				return fmt.Errorf("%w: more than %d bytes", ErrFileTooLarge, fl.limit)
			}
			if _, werr := bw.Write(buf[:n]); werr != nil {
				return fmt.Errorf("writing blob: %w", werr)
			}
			s.metrics.served(SourceUpstream, int64(n))
			fl.mu.Lock()
			fl.written += int64(n)
			fl.notifyLocked()
			fl.mu.Unlock()
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("%w: %w", ErrUpstreamBody, rerr)
		}
	}
	if size >= 0 && fl.written != size {
		if fl.indexSize >= 0 {
			return fmt.Errorf("%w: the upstream body is %d bytes, the index size %d", ErrDigestMismatch, fl.written, fl.indexSize)
		}
		return fmt.Errorf("%w: %d bytes; its Content-Length said %d", ErrUpstreamBody, fl.written, size)
	}
	sha, unpin, err := bw.CommitPinned(fl.want)
	if err != nil {
		var de *cache.DigestError
		if errors.As(err, &de) {
			return fmt.Errorf("%w: got %s, want %s", ErrDigestMismatch, de.Got, de.Want)
		}
		return fmt.Errorf("committing blob: %w", err)
	}
	fl.mu.Lock()
	fl.sha, fl.unpin = sha, unpin
	fl.mu.Unlock()
	if s.opts.Shared != nil {
		s.opts.Shared.Upload(sha) // in the background; a failure never reaches the client
	}
	return nil
}

func (fl *Fill) notifyLocked() {
	close(fl.changed)
	fl.changed = make(chan struct{})
}

func (fl *Fill) finish(err error) {
	unpin := func() {}
	fl.mu.Lock()
	fl.done, fl.err = true, err
	if fl.grace != nil {
		fl.grace.Stop()
		fl.grace = nil
	}
	if fl.clients == 0 {
		unpin = fl.takeUnpinLocked()
	}
	fl.notifyLocked()
	fl.mu.Unlock()
	unpin()
}

// takeUnpinLocked returns the release of the committed blob's pin (a no-op
// after the first call), to be called once no client is left to open it,
// after fl.mu is unlocked (it may evict: file and database work). New
// requests no longer find a finished fill (it left s.fills before finish),
// so the client count only goes down.
func (fl *Fill) takeUnpinLocked() func() {
	unpin := fl.unpin
	fl.unpin = nil
	if unpin == nil {
		return func() {}
	}
	return unpin
}

// release drops one hold on the read descriptor; the last one closes it.
func (fl *Fill) release() {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.refs--
	if fl.refs == 0 && fl.rf != nil {
		fl.rf.Close()
		fl.rf = nil
	}
}

// Wait blocks until the fill is done; it returns the blob's sha256.
func (fl *Fill) Wait(ctx context.Context) (string, error) {
	for {
		fl.mu.Lock()
		done, err, sha, ch := fl.done, fl.err, fl.sha, fl.changed
		fl.mu.Unlock()
		if done {
			return sha, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// State returns whether the fill is done and its expected size so far.
func (fl *Fill) State() (done bool, size int64, ch <-chan struct{}) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.done, fl.size, fl.changed
}

// Attach waits for the upstream headers and returns a reader of the growing
// body. ok is false when the fill ended before a reader could attach (the
// caller then serves the committed blob or the error).
func (fl *Fill) Attach(ctx context.Context) (r *FillReader, ok bool, err error) {
	for {
		fl.mu.Lock()
		if fl.started && fl.rf != nil && !fl.done {
			fl.refs++
			fl.mu.Unlock()
			return &FillReader{fl: fl}, true, nil
		}
		done, ch := fl.done, fl.changed
		fl.mu.Unlock()
		if done {
			return nil, false, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// FillReader reads a fill's temp file up to what has been written, waiting
// for more. Until the blob is committed it stays tailHoldback bytes behind
// the writer, so the end of a body is only ever read once its digest
// matched; a failed fill gives its error, never more bytes, and io.EOF comes
// only after a commit.
type FillReader struct {
	fl     *Fill
	off    int64
	closed bool
}

// Read reads into p as io.Reader does, waiting for more bytes while the
// fill is under way; it gives up with ctx's error when ctx is done first.
func (r *FillReader) Read(ctx context.Context, p []byte) (int, error) {
	for {
		r.fl.mu.Lock()
		written, done, ferr, ch, rf := r.fl.written, r.fl.done, r.fl.err, r.fl.changed, r.fl.rf
		r.fl.mu.Unlock()
		if done && ferr != nil {
			return 0, ferr
		}
		avail := written
		if !done {
			avail -= tailHoldback
		}
		if r.off < avail {
			if int64(len(p)) > avail-r.off {
				p = p[:avail-r.off]
			}
			n, err := rf.ReadAt(p, r.off)
			r.off += int64(n)
			if n > 0 {
				return n, nil
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, err
			}
		}
		if done && r.off >= written {
			return 0, io.EOF
		}
		if done {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Close releases the reader's hold on the descriptor.
func (r *FillReader) Close() error {
	if !r.closed {
		r.closed = true
		r.fl.release()
	}
	return nil
}

// Defaults of the fill limits (see Options).
const (
	fillTimeoutDefault = time.Hour
	maxFileSizeDefault = 4 << 30
	fillGraceDefault   = 5 * time.Second
)

// FileFill is the fill of f's bytes from the upstream.
func (s *Gate) FileFill(project string, f *pypi.File) FillRequest {
	return s.fileFill(project, f, f.SHA256())
}

// fileFill is FileFill with f's sha256 already read.
func (s *Gate) fileFill(project string, f *pypi.File, sha string) FillRequest {
	return FillRequest{SHA: sha, Size: f.Size,
		Open: func(ctx context.Context) (io.ReadCloser, int64, error) {
			b, err := s.up.Open(ctx, project, f.URL, upstream.KindFile)
			if err != nil {
				return nil, 0, err
			}
			return b, b.Size, nil
		}}
}
