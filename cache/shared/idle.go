package shared

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// idleReader reads an object's body and fails a read that stalls for
// longer than idle: it cancels the request's context, which closes the
// connection under the blocked read. A body that breaks off (not one the
// caller closed early, nor one whose caller's context ended) is reported to
// failed once.
type idleReader struct {
	parent context.Context // the caller's
	body   io.ReadCloser
	cancel context.CancelFunc
	timer  *time.Timer
	idle   time.Duration
	failed func(error)
	read   func(n int) // counts the bytes read

	mu       sync.Mutex
	stalled  bool
	reported bool
	closed   bool
}

var errStalled = errors.New("shared store: object body stalled")

func newIdleReader(parent context.Context, body io.ReadCloser, cancel context.CancelFunc, idle time.Duration, failed func(error), read func(int)) *idleReader {
	r := &idleReader{parent: parent, body: body, cancel: cancel, idle: idle, failed: failed, read: read}
	r.timer = time.AfterFunc(idle, func() {
		r.mu.Lock()
		r.stalled = true
		r.mu.Unlock()
		cancel()
	})
	return r
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.timer.Reset(r.idle)
	n, err := r.body.Read(p)
	r.timer.Reset(r.idle)
	r.read(n)
	if err != nil && !errors.Is(err, io.EOF) {
		r.mu.Lock()
		if r.stalled {
			err = errStalled
		}
		report := !r.reported && !r.closed && (r.stalled || r.parent.Err() == nil)
		r.reported = true
		r.mu.Unlock()
		if report {
			r.failed(err)
		}
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.timer.Stop()
	err := r.body.Close()
	r.cancel()
	return err
}
