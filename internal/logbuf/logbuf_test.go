package logbuf

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipgate/pipgate/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// sink records each write it gets.
type sink struct {
	mu     sync.Mutex
	writes []string
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *sink) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.writes, "")
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.writes)
}

func TestInfoWaitsWarningFlushesInOrder(t *testing.T) {
	out := &sink{}
	w := New(out, time.Hour) // the timer never fires in this test
	l := slog.New(NewHandler(slog.NewJSONHandler(w, nil), w)).With("component", "proxy")
	l.Info("request", "n", 1)
	l.Info("request", "n", 2)
	if out.count() != 0 {
		t.Fatalf("info lines were written at once: %q", out.text())
	}
	l.Warn("decision", "n", 3)
	got := out.text()
	if out.count() != 1 || strings.Count(got, "\n") != 3 {
		t.Fatalf("after a warning: %d writes %q; want the three lines in one write", out.count(), got)
	}
	if i1, i2, i3 := strings.Index(got, `"n":1`), strings.Index(got, `"n":2`), strings.Index(got, `"n":3`); !(i1 < i2 && i2 < i3) || i1 < 0 {
		t.Errorf("lines out of order: %q", got)
	}
	l.InfoContext(Flushing(context.Background()), "pipgate ready")
	if !strings.Contains(out.text(), "pipgate ready") {
		t.Errorf("a Flushing record was not written at once: %q", out.text())
	}
	l.Info("last")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.text(), "\"msg\":\"last\",\"component\":\"proxy\"}\n") {
		t.Errorf("Close did not write the buffered line: %q", out.text())
	}
	l.Info("after close")
	if !strings.Contains(out.text(), "after close") {
		t.Errorf("a line after Close was not written through: %q", out.text())
	}
}

func TestTimerWritesWithinInterval(t *testing.T) {
	out := &sink{}
	w := New(out, 20*time.Millisecond)
	defer w.Close()
	l := slog.New(NewHandler(slog.NewTextHandler(w, nil), w))
	start := time.Now()
	l.Info("request")
	for out.count() == 0 {
		if time.Since(start) > time.Minute {
			t.Fatal("the buffered line was never written")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(out.text(), "msg=request") {
		t.Errorf("written: %q", out.text())
	}
}

// Lines from many goroutines arrive whole, none lost, and a buffer larger
// than the batch size is written without waiting for the timer.
func TestConcurrentLinesWhole(t *testing.T) {
	out := &sink{}
	w := New(out, time.Hour)
	var wg sync.WaitGroup
	const goroutines, lines = 8, 2000
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "g%d line %d %s\n", g, i, strings.Repeat("x", 40))
			}
		})
	}
	wg.Wait()
	if out.count() == 0 {
		t.Errorf("%d bytes buffered and nothing written before Close", goroutines*lines*55)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(out.text(), "\n"), "\n") {
		var g, i int
		var x string
		if n, err := fmt.Sscanf(line, "g%d line %d %s", &g, &i, &x); n != 3 || err != nil || x != strings.Repeat("x", 40) {
			t.Fatalf("torn line %q", line)
		}
		seen[line[:bytes.IndexByte([]byte(line), ' ')+1]+fmt.Sprint(i)] = true
	}
	if len(seen) != goroutines*lines {
		t.Errorf("%d distinct lines; want %d", len(seen), goroutines*lines)
	}
}
