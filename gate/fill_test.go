package gate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestFillReaderHoldsTail: a reader of a fill in progress gets everything
// but the last tailHoldback bytes, then waits; after a commit it gets the
// rest and io.EOF, after a failure only the error.
func TestFillReaderHoldsTail(t *testing.T) {
	const written = 3 * tailHoldback
	data := bytes.Repeat([]byte("tail"), written/4)
	for _, fail := range []bool{false, true} {
		tmp := filepath.Join(t.TempDir(), "blob")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		rf, err := os.Open(tmp)
		if err != nil {
			t.Fatal(err)
		}
		fl := &Fill{changed: make(chan struct{}), size: -1, started: true, rf: rf, refs: 1, written: written}
		cancelled, cancel := context.WithCancel(context.Background())
		cancel() // Read returns what is available, then this error instead of waiting
		rd := &FillReader{fl: fl, ctx: cancelled}
		got, err := io.ReadAll(rd)
		if !errors.Is(err, context.Canceled) || len(got) != written-tailHoldback {
			t.Fatalf("before the end: read %d bytes, %v; want %d and a wait", len(got), err, written-tailHoldback)
		}
		var ferr error
		if fail {
			ferr = ErrDigestMismatch
		}
		fl.finish(ferr)
		rd.ctx = context.Background()
		rest, err := io.ReadAll(rd)
		switch {
		case fail && (!errors.Is(err, ErrDigestMismatch) || len(rest) != 0):
			t.Errorf("after a failed fill: %d more bytes, %v; want none and the error", len(rest), err)
		case !fail && (err != nil || !bytes.Equal(append(got, rest...), data)):
			t.Errorf("after a commit: %d more bytes, %v; want the rest and EOF", len(rest), err)
		}
		rd.Close()
	}
}
