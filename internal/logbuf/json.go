package logbuf

import (
	"context"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/pipgate/pipgate/internal/jsonstr"
)

// NewJSON returns a Handler writing slog.NewJSONHandler(w, opts)'s lines to
// w, flushing after every warning or error; its HandleAttrs encodes a
// record of plain attributes by hand, byte for byte as the JSON handler
// would (FuzzAppendJSON holds it to that).
func NewJSON(w *Writer, opts *slog.HandlerOptions) *Handler {
	h := NewHandler(slog.NewJSONHandler(w, opts), w)
	h.json = opts == nil || opts.ReplaceAttr == nil && !opts.AddSource
	return h
}

// HandleAttrs handles a record of msg and attrs at level, logged at t: what
// Handle(ctx, a record of them) does, without building the slog.Record or
// going through the wrapped handler when the Handler writes JSON lines (made
// by NewJSON, without WithGroup) and every attribute, WithAttrs's included,
// has a key and a string, integer or finite float value. The caller checks Enabled
// first, as for Handle.
func (h *Handler) HandleAttrs(ctx context.Context, t time.Time, level slog.Level, msg string, attrs ...slog.Attr) error {
	if h.json {
		bp := linePool.Get().(*[]byte)
		b, ok := appendJSON((*bp)[:0], t, level, msg, h.pre, attrs)
		if ok {
			_, err := h.w.Write(b)
			if cap(b) <= 16<<10 {
				*bp = b
				linePool.Put(bp)
			}
			if level >= h.urgent || ctx != nil && ctx.Value(flushKey{}) != nil {
				if ferr := h.w.Flush(); err == nil {
					err = ferr
				}
			}
			return err
		}
		linePool.Put(bp)
	}
	r := slog.NewRecord(t, level, msg, 0)
	r.AddAttrs(attrs...)
	return h.Handle(ctx, r)
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendJSON appends the line slog.JSONHandler (no ReplaceAttr, no source,
// no groups) writes for the record, pre being WithAttrs's attributes
// (appendJSONAttrs); ok is false when an attribute is not
// one it encodes here (no key, or not a string, an integer or a finite
// float) or the time is outside the years 0-9999 (slog writes an error
// there).
func appendJSON(b []byte, t time.Time, level slog.Level, msg string, pre []byte, attrs []slog.Attr) ([]byte, bool) {
	b = append(b, '{')
	if !t.IsZero() {
		t = t.Round(0)
		if y := t.Year(); y < 0 || y >= 10000 {
			return b, false
		}
		b = append(b, `"time":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = jsonstr.AppendSlog(b, level.String())
	b = append(b, `,"msg":`...)
	b = jsonstr.AppendSlog(b, msg)
	b = append(b, pre...)
	b, ok := appendJSONAttrs(b, attrs)
	if !ok {
		return b, false
	}
	return append(b, '}', '\n'), true
}

// appendJSONAttrs appends `,"key":value` for each of attrs; ok is false
// when one is not encoded here (see appendJSON).
func appendJSONAttrs(b []byte, attrs []slog.Attr) ([]byte, bool) {
	for _, a := range attrs {
		if a.Key == "" {
			return b, false
		}
		b = append(b, ',')
		b = jsonstr.AppendSlog(b, a.Key)
		b = append(b, ':')
		switch v := a.Value; v.Kind() {
		case slog.KindString:
			b = jsonstr.AppendSlog(b, v.String())
		case slog.KindInt64:
			b = strconv.AppendInt(b, v.Int64(), 10)
		case slog.KindFloat64:
			f := v.Float64()
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return b, false
			}
			b = appendJSONFloat(b, f)
		default:
			return b, false
		}
	}
	return b, true
}

// appendJSONFloat is encoding/json's float64 encoding (which slog uses).
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
