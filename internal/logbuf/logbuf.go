// Package logbuf buffers pipgate's log output (the access log above all):
// one write(2) per batch of lines instead of one per line. Lines reach the
// output within a second (Interval), at once for warnings and errors (Handler),
// and on Close. A crash of the process can lose at most the info and debug
// lines of the last second; never a warning or an error that was logged
// before it.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Interval is the longest a line waits in the buffer.
const Interval = time.Second

// maxBuffered is how many bytes wait before a write regardless of the timer.
const maxBuffered = 64 << 10

// Writer is an io.Writer that buffers what it is given and writes it to the
// underlying writer every Interval, when the buffer passes 64 KiB, on Flush
// and on Close. Each Write is kept whole (a log line is never split between
// two writes). It is safe for concurrent use. Lines whose write fails are
// dropped, as an unbuffered write would have lost them; Flush and Close
// return the error.
type Writer struct {
	mu     sync.Mutex
	out    io.Writer
	buf    []byte
	closed bool

	wmu   sync.Mutex // serialises writes to out (held without mu)
	spare []byte     // the other buffer: being written, or free (guarded by wmu)
	stop  chan struct{}
	done  chan struct{}
}

// New starts a Writer on out, with a goroutine that flushes every interval
// (Interval when interval <= 0). Close stops it.
func New(out io.Writer, interval time.Duration) *Writer {
	if interval <= 0 {
		interval = Interval
	}
	w := &Writer{out: out, buf: make([]byte, 0, maxBuffered), spare: make([]byte, 0, maxBuffered), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(interval)
	return w
}

func (w *Writer) run(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = w.Flush()
		case <-w.stop:
			return
		}
	}
}

// Write buffers p (after Close it writes through).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.wmu.Lock()
		defer w.wmu.Unlock()
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= maxBuffered
	w.mu.Unlock()
	if full {
		_ = w.Flush()
	}
	return len(p), nil
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.mu.Lock()
	b := w.buf
	if len(b) == 0 {
		w.mu.Unlock()
		return nil
	}
	// Swap buffers so writers go on while this one is written; the
	// written one is reused next time (wmu is held until then).
	w.buf, w.spare = w.spare[:0], b
	w.mu.Unlock()
	_, err := w.out.Write(b)
	return err
}

// Close stops the timer and writes what is buffered; later writes go
// straight to the output.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return w.Flush()
}

// Handler wraps a slog.Handler that writes to a Writer so that warnings and
// errors, and records logged with a Flushing context, are written at once,
// with the lines buffered before them.
type Handler struct {
	h      slog.Handler
	w      *Writer
	urgent slog.Level
	json   bool   // h is slog's JSON handler on w, as NewJSON made it: HandleAttrs encodes by hand
	pre    []byte // with json: the attributes of WithAttrs, encoded (`,"key":value`...)
}

// NewHandler returns h, flushing w after every record at slog.LevelWarn or
// above.
func NewHandler(h slog.Handler, w *Writer) *Handler {
	return &Handler{h: h, w: w, urgent: slog.LevelWarn}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

type flushKey struct{}

// Flushing returns ctx marked so that a record logged with it is written at
// once, whatever its level (a milestone such as "ready").
func Flushing(ctx context.Context) context.Context {
	return context.WithValue(ctx, flushKey{}, true)
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.h.Handle(ctx, r)
	if r.Level >= h.urgent || ctx != nil && ctx.Value(flushKey{}) != nil {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := &Handler{h: h.h.WithAttrs(as), w: h.w, urgent: h.urgent}
	if h.json {
		// Attributes the hand encoder knows are encoded once, as slog
		// preformats them; any other kind leaves the handler to slog.
		pre, ok := appendJSONAttrs(append([]byte(nil), h.pre...), as)
		h2.json, h2.pre = ok, pre
	}
	return h2
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{h: h.h.WithGroup(name), w: h.w, urgent: h.urgent}
}
