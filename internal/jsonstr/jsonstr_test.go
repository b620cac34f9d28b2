package jsonstr

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// FuzzAppend holds AppendEncoding to encoding/json (HTML escaping off) and
// AppendSlog to log/slog's JSONHandler, byte for byte; the seeds cover
// every escape either writes, and the one they write differently.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " backslash \`, "\n\r\t", "\b\f", "\x00\x01\x1f\x7f",
		"<html> & more", "\u2028\u2029", "bad \xff utf-8 \xc3", "é ü 漢字 😀", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var enc bytes.Buffer
		e := json.NewEncoder(&enc)
		e.SetEscapeHTML(false)
		if err := e.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got, want := string(AppendEncoding(nil, s)), string(bytes.TrimSuffix(enc.Bytes(), []byte("\n"))); got != want {
			t.Errorf("AppendEncoding(%q) = %s; encoding/json writes %s", s, got, want)
		}
		// slog writes {"msg":<s>} for a handler with the time and level
		// attributes removed.
		var line bytes.Buffer
		drop := func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
				return slog.Attr{}
			}
			return a
		}
		if err := slog.NewJSONHandler(&line, &slog.HandlerOptions{ReplaceAttr: drop}).
			Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelInfo, s, 0)); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimSuffix(bytes.TrimPrefix(line.Bytes(), []byte(`{"msg":`)), []byte("}\n"))
		if got := AppendSlog(nil, s); !bytes.Equal(got, want) {
			t.Errorf("AppendSlog(%q) = %s; slog writes %s", s, got, want)
		}
	})
}
