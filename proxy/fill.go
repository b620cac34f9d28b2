package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pipgate/pipgate/cache"
)

// A fill downloads one upstream file into the blob store exactly once, however
// many clients ask for it meanwhile. Clients do not wait for the end: each
// reads the temp file as it grows (pread on a shared descriptor), so a large
// wheel starts flowing at once and memory stays flat. The fill runs on a
// detached context: a client hang-up never aborts it. Only when the whole
// body matches the expected sha256 is the blob committed; otherwise every
// reader gets the error and the temp file is removed.
type fill struct {
	key  string
	want string // expected sha256 ("" = accept and report)

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every progress
	started bool          // size and rf are known
	size    int64         // from the upstream, -1 unknown
	written int64
	done    bool
	err     error
	sha     string   // the committed blob's sha256
	rf      *os.File // read side of the temp file
	refs    int      // readers + the filler holding rf
}

// fills tracks the fills in progress.
type fills struct {
	mu sync.Mutex
	m  map[string]*fill
}

// fillSource opens the upstream body.
type fillSource func(ctx context.Context) (io.ReadCloser, int64, error)

// start returns the fill in progress for key, or starts one.
func (s *Server) startFill(key, want string, open fillSource, onDone func(sha string)) *fill {
	s.fills.mu.Lock()
	defer s.fills.mu.Unlock()
	if fl, ok := s.fills.m[key]; ok {
		return fl
	}
	fl := &fill{key: key, want: want, changed: make(chan struct{}), size: -1}
	s.fills.m[key] = fl
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		fctx, cancel := s.detached(s.opts.FileFetchTimeout)
		defer cancel()
		err := s.runFill(fctx, fl, open)
		if err == nil && onDone != nil {
			onDone(fl.sha)
		}
		s.fills.mu.Lock()
		delete(s.fills.m, key)
		s.fills.mu.Unlock()
		fl.finish(err)
	}()
	return fl
}

// blobWriter is what a fill needs of cache.BlobWriter.
type blobWriter interface {
	io.Writer
	Commit(wantSHA256 string) (string, error)
	Abort() error
	Path() string
}

var _ blobWriter = (*cache.BlobWriter)(nil)

func (s *Server) runFill(ctx context.Context, fl *fill, open fillSource) error {
	body, size, err := open(ctx)
	if err != nil {
		return err
	}
	defer body.Close()
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
			if _, werr := bw.Write(buf[:n]); werr != nil {
				return fmt.Errorf("writing blob: %w", werr)
			}
			s.metrics.served("upstream", int64(n))
			fl.mu.Lock()
			fl.written += int64(n)
			fl.notifyLocked()
			fl.mu.Unlock()
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading upstream body: %w", rerr)
		}
	}
	if size >= 0 && fl.written != size {
		return fmt.Errorf("upstream body is %d bytes; its Content-Length said %d", fl.written, size)
	}
	sha, err := bw.Commit(fl.want)
	if err != nil {
		var de *cache.DigestError
		if errors.As(err, &de) {
			return fmt.Errorf("%w: got %s, want %s", errDigestMismatch, de.Got, de.Want)
		}
		return fmt.Errorf("committing blob: %w", err)
	}
	fl.mu.Lock()
	fl.sha = sha
	fl.mu.Unlock()
	return nil
}

func (fl *fill) notifyLocked() {
	close(fl.changed)
	fl.changed = make(chan struct{})
}

func (fl *fill) finish(err error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.done, fl.err = true, err
	fl.notifyLocked()
}

// release drops one hold on the read descriptor; the last one closes it.
func (fl *fill) release() {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.refs--
	if fl.refs == 0 && fl.rf != nil {
		fl.rf.Close()
		fl.rf = nil
	}
}

// wait blocks until the fill is done; it returns the blob's sha256.
func (fl *fill) wait(ctx context.Context) (string, error) {
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

// attach waits for the upstream headers and returns a reader of the growing
// body plus its size (-1 unknown). ok is false when the fill ended before a
// reader could attach (the caller then serves the committed blob or the error).
func (fl *fill) attach(ctx context.Context) (r *fillReader, size int64, ok bool, err error) {
	for {
		fl.mu.Lock()
		if fl.started && fl.rf != nil && !fl.done {
			fl.refs++
			size := fl.size
			fl.mu.Unlock()
			return &fillReader{fl: fl, ctx: ctx}, size, true, nil
		}
		done, ch := fl.done, fl.changed
		fl.mu.Unlock()
		if done {
			return nil, 0, false, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, 0, false, ctx.Err()
		}
	}
}

// fillReader reads a fill's temp file up to what has been written, waiting
// for more; at the end it returns io.EOF only if the blob was committed.
type fillReader struct {
	fl     *fill
	ctx    context.Context
	off    int64
	closed bool
}

func (r *fillReader) Read(p []byte) (int, error) {
	for {
		r.fl.mu.Lock()
		written, done, ferr, ch, rf := r.fl.written, r.fl.done, r.fl.err, r.fl.changed, r.fl.rf
		r.fl.mu.Unlock()
		if r.off < written {
			if int64(len(p)) > written-r.off {
				p = p[:written-r.off]
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
		if done {
			if ferr != nil {
				return 0, ferr
			}
			if r.off >= written {
				return 0, io.EOF
			}
			continue
		}
		select {
		case <-ch:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

// Close releases the reader's hold on the descriptor.
func (r *fillReader) Close() error {
	if !r.closed {
		r.closed = true
		r.fl.release()
	}
	return nil
}

// fillTimeoutDefault bounds a whole file fill; the upstream client's idle-read
// timeout catches a stalled body long before.
const fillTimeoutDefault = time.Hour
