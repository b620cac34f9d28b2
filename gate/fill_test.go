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
		rd := &FillReader{fl: fl}
		got, err := readAll(cancelled, rd)
		if !errors.Is(err, context.Canceled) || len(got) != written-tailHoldback {
			t.Fatalf("before the end: read %d bytes, %v; want %d and a wait", len(got), err, written-tailHoldback)
		}
		var ferr error
		if fail {
			ferr = ErrDigestMismatch
		}
		fl.finish(ferr)
		rest, err := readAll(context.Background(), rd)
		switch {
		case fail && (!errors.Is(err, ErrDigestMismatch) || len(rest) != 0):
			t.Errorf("after a failed fill: %d more bytes, %v; want none and the error", len(rest), err)
		case !fail && (err != nil || !bytes.Equal(append(got, rest...), data)):
			t.Errorf("after a commit: %d more bytes, %v; want the rest and EOF", len(rest), err)
		}
		rd.Close()
	}
}

// readAll reads r until an error, as io.ReadAll does; io.EOF is nil.
func readAll(ctx context.Context, r *FillReader) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4<<10)
	for {
		n, err := r.Read(ctx, buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
