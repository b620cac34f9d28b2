package logbuf

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzAppendJSON holds HandleAttrs's hand-written lines to what
// slog.NewJSONHandler writes for the same record, byte for byte: any
// strings (keys included), integers, floats, times and levels. Where
// HandleAttrs does not encode by hand it goes through slog itself.
func FuzzAppendJSON(f *testing.F) {
	f.Add("request", "a\"b\\c\x00\x1f\x7f<>&", "\u2028\u2029\xff\xfe\xed\xa0\x80", "héllo wörld \t\n\r\b\f", int64(-3), 0.000123, int64(1700000000), int64(123456789), 0)
	f.Add("", "k", "", "", int64(math.MaxInt64), 1e21, int64(-62167219200), int64(0), 4)
	f.Add("m", "x", "y", "z", int64(0), 1e-7, int64(253402300800), int64(1), -4)
	f.Add("m", "x", "y", "z", int64(7), math.NaN(), int64(0), int64(0), 8)
	f.Fuzz(func(t *testing.T, msg, s1, s2, s3 string, n int64, fl float64, sec, nsec int64, level int) {
		tm := time.Unix(sec, nsec)
		if sec == 0 && nsec == 0 {
			tm = time.Time{}
		}
		attrs := []slog.Attr{slog.String("request_id", s1), slog.String(s2, s3), slog.Int64("bytes", n),
			slog.Float64("duration_seconds", fl), slog.Int("status", int(n%600)), slog.String(s3, s1)}
		with := []slog.Attr{slog.String("component", s2), slog.Int64(s1, n)}
		var want bytes.Buffer
		var ref slog.Handler = slog.NewJSONHandler(&want, &slog.HandlerOptions{Level: slog.Level(-100)})
		if level%2 == 0 {
			ref = ref.WithAttrs(with)
		}
		r := slog.NewRecord(tm, slog.Level(level), msg, 0)
		r.AddAttrs(attrs...)
		if err := ref.Handle(context.Background(), r); err != nil {
			t.Skip(err)
		}
		var got bytes.Buffer
		w := New(&got, time.Hour)
		h := NewJSON(w, &slog.HandlerOptions{Level: slog.Level(-100)})
		if level%2 == 0 {
			h = h.WithAttrs(with).(*Handler)
		}
		if err := h.HandleAttrs(context.Background(), tm, slog.Level(level), msg, attrs...); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("HandleAttrs:\n got %q\nwant %q", got.String(), want.String())
		}
	})
}

// The hand-encoded path is the one taken for the access log's attributes
// (strings, integers, a duration in seconds), and it allocates nothing.
func TestHandleAttrsEncodesByHand(t *testing.T) {
	w := New(io.Discard, time.Hour)
	defer w.Close()
	h := NewJSON(w, nil).WithAttrs([]slog.Attr{slog.String("component", "proxy")}).(*Handler) // as serve gives the proxy its logger
	now := time.Now()
	attrs := []slog.Attr{slog.String("request_id", "0123456789abcdef"), slog.String("method", "GET"),
		slog.Int("status", 200), slog.Int64("bytes", 102400), slog.Float64("duration_seconds", 0.000123)}
	if !h.json {
		t.Fatal("the access log's handler does not encode by hand")
	}
	if _, ok := appendJSON(nil, now, slog.LevelInfo, "request", h.pre, attrs); !ok {
		t.Fatal("the access log's attributes are not encoded by hand")
	}
	if n := testing.AllocsPerRun(100, func() {
		_ = h.HandleAttrs(context.Background(), now, slog.LevelInfo, "request", attrs...)
	}); n != 0 {
		t.Errorf("HandleAttrs allocates %v times a line; want 0", n)
	}
	// WithAttrs of a kind the hand encoder does not know, or WithGroup:
	// the handler goes through slog, and loses nothing.
	var buf bytes.Buffer
	w2 := New(&buf, time.Hour)
	h2 := NewJSON(w2, nil).WithAttrs([]slog.Attr{slog.Any("ids", []int{1, 2})}).(*Handler)
	h3 := NewJSON(w2, nil).WithGroup("g").(*Handler)
	if h2.json || h3.json {
		t.Fatal("a handler with attributes or a group slog must format claims the hand encoder")
	}
	_ = h2.HandleAttrs(context.Background(), now, slog.LevelInfo, "request", attrs...)
	_ = h3.HandleAttrs(context.Background(), now, slog.LevelInfo, "request", attrs...)
	_ = w2.Close()
	if !strings.Contains(buf.String(), `"ids":[1,2],"request_id"`) || !strings.Contains(buf.String(), `"g":{"request_id"`) {
		t.Errorf("WithAttrs's or WithGroup's attributes lost on the HandleAttrs path: %q", buf.String())
	}
}
