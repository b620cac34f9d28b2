package cache_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/cache"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeBlob stores data through a BlobWriter and returns Commit's result.
func writeBlob(t testing.TB, s *cache.Store, data []byte, want string) (string, error) {
	t.Helper()
	w, err := s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	return w.Commit(want)
}

func TestBlobRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	data := bytes.Repeat([]byte("wheel bytes "), 10000)
	for _, want := range []string{"", sha(data)} {
		got, err := writeBlob(t, s, data, want)
		if err != nil {
			t.Fatalf("Commit(%q): %v", want, err)
		}
		if got != sha(data) {
			t.Errorf("Commit(%q): got %q; want %q", want, got, sha(data))
		}
	}
	if !s.HasBlob(sha(data)) {
		t.Error("HasBlob after Commit: got false")
	}
	f, err := s.OpenBlob(sha(data))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("OpenBlob: got %d bytes; want the %d written", len(got), len(data))
	}
	wantPath := filepath.Join("sha256", sha(data)[:2], sha(data))
	if got := files(t, filepath.Join(dir, "blobs")); len(got) != 1 || got[0] != wantPath {
		t.Errorf("blob files: got %q; want [%q]", got, wantPath)
	}
	if _, err := s.OpenBlob(sumA); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("OpenBlob of a missing blob: got %v; want ErrNotFound", err)
	}
}

func TestBlobPathStreamsAndSize(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	empty := s.SizeBytes()
	w, err := s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	// A reader follows the temp file while it is written, and past Commit.
	r, err := os.Open(w.Path())
	if err != nil {
		t.Fatalf("opening Path(): %v", err)
	}
	defer r.Close()
	w.Write([]byte("first "))
	got, _ := io.ReadAll(r)
	w.Write([]byte("second"))
	sum, err := w.Commit("")
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if got := string(got) + string(rest); got != "first second" {
		t.Errorf("streamed: got %q; want %q", got, "first second")
	}
	if _, err := os.Stat(w.Path()); !os.IsNotExist(err) {
		t.Errorf("temp file after Commit: got %v; want it gone", err)
	}
	if got, want := s.SizeBytes()-empty, int64(len("first second")); got != want {
		t.Errorf("SizeBytes grew by %d; want %d", got, want)
	}
	// The same content again adds nothing; the count survives a reopen.
	writeBlob(t, s, []byte("first second"), sum)
	if got, want := s.SizeBytes()-empty, int64(len("first second")); got != want {
		t.Errorf("SizeBytes after a duplicate: grew by %d; want %d", got, want)
	}
	s.Close()
	s2 := openStore(t, dir)
	st, _ := s2.Stats()
	if got, want := s2.SizeBytes(), st.BlobBytes+st.DBBytes; got != want {
		t.Errorf("SizeBytes after reopen: got %d; want %d (Stats)", got, want)
	}
	if err := s2.Purge("blobs"); err != nil {
		t.Fatal(err)
	}
	st, _ = s2.Stats()
	if got := s2.SizeBytes(); got != st.DBBytes {
		t.Errorf("SizeBytes after Purge(blobs): got %d; want %d (the database alone)", got, st.DBBytes)
	}
}

func TestBlobNamesValidated(t *testing.T) {
	s := openStore(t, "")
	cases := []string{
		"",
		"../../../../etc/passwd",
		strings.Repeat("a", 63),
		strings.Repeat("a", 65),
		strings.ToUpper(sumA),
		"aa/" + strings.Repeat("a", 61),
		strings.Repeat("a", 62) + "\x00a",
		strings.Repeat("g", 64),
	}
	for _, name := range cases {
		if _, err := s.OpenBlob(name); !errors.Is(err, cache.ErrInvalidKey) {
			t.Errorf("OpenBlob(%q): got %v; want ErrInvalidKey", name, err)
		}
		if s.HasBlob(name) {
			t.Errorf("HasBlob(%q): got true", name)
		}
	}
}

func TestBlobDigestMismatch(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	data := []byte("tampered")
	_, err := writeBlob(t, s, data, sumA)
	var de *cache.DigestError
	if !errors.As(err, &de) {
		t.Fatalf("Commit with a wrong digest: got %v; want *DigestError", err)
	}
	if de.Want != sumA || de.Got != sha(data) {
		t.Errorf("DigestError: got {%s %s}; want {%s %s}", de.Want, de.Got, sumA, sha(data))
	}
	if got := files(t, filepath.Join(dir, "blobs")); len(got) != 0 {
		t.Errorf("files left after a mismatch: %q", got)
	}
	if s.HasBlob(sha(data)) || s.HasBlob(sumA) {
		t.Error("a mismatched blob was stored")
	}
	if _, err := writeBlob(t, s, data, "nothex"); !errors.Is(err, cache.ErrInvalidKey) {
		t.Errorf("Commit with an invalid digest: got %v; want ErrInvalidKey", err)
	}
}

// failingReader yields some bytes, then an error, like a dropped upstream.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("connection reset")
	}
	n := min(len(p), r.n)
	for i := range n {
		p[i] = 'x'
	}
	r.n -= n
	return n, nil
}

func TestBlobFailingWriter(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	w, err := s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, &failingReader{n: 100000}); err == nil {
		t.Fatal("io.Copy from a failing reader: got nil error")
	}
	if got := w.Size(); got != 100000 {
		t.Errorf("Size: got %d; want 100000", got)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Write after Abort: got %v; want ErrClosed", err)
	}
	if _, err := w.Commit(""); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Commit after Abort: got %v; want ErrClosed", err)
	}
	if got := files(t, filepath.Join(dir, "blobs")); len(got) != 0 {
		t.Errorf("files left after Abort: %q", got)
	}

	// Committing after the file itself failed is refused and cleans up: the
	// temp file is closed under the writer to simulate a disk error.
	w, err = s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	tmps := files(t, filepath.Join(dir, "blobs", "tmp"))
	if len(tmps) != 1 {
		t.Fatalf("temp files while writing: got %q; want one", tmps)
	}
	cache.CloseUnderlying(t, w)
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write to a closed file: got nil error")
	}
	if _, err := w.Commit(""); err == nil {
		t.Error("Commit after a failed Write: got nil error")
	}
	if got := files(t, filepath.Join(dir, "blobs")); len(got) != 0 {
		t.Errorf("files left after a failed write: %q", got)
	}
}

func TestBlobCrashLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half a wheel")); err != nil {
		t.Fatal(err)
	}
	// The process "dies": no Commit, no Abort.
	s.Close()
	if got := files(t, filepath.Join(dir, "blobs")); len(got) != 1 || !strings.HasPrefix(got[0], "tmp"+string(filepath.Separator)) {
		t.Fatalf("after the crash: got %q; want one temp file", got)
	}
	rep := verifyReadOnly(t, dir)
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != "temp" {
		t.Errorf("Verify after the crash: got %+v; want one temp problem", rep.Problems)
	}
	openStore(t, dir)
	if got := files(t, filepath.Join(dir, "blobs")); len(got) != 0 {
		t.Errorf("after reopening: got %q; want no files", got)
	}
}

func TestBlobStaleTempSweep(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	stalled, err := s.NewBlob() // a writer that stopped an hour ago
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Abort()
	stalled.Write([]byte("half"))
	fresh, err := s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Abort()
	fresh.Write([]byte("still going"))
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stalled.Path(), old, old); err != nil {
		t.Fatal(err)
	}
	cache.Sweep(s, time.Now())
	if _, err := os.Stat(stalled.Path()); !os.IsNotExist(err) {
		t.Errorf("stale temp file: got %v; want it removed", err)
	}
	if _, err := os.Stat(fresh.Path()); err != nil {
		t.Errorf("fresh temp file: %v; want it kept", err)
	}
	if _, err := stalled.Commit(""); err == nil {
		t.Error("Commit of a swept writer: got nil error")
	}
	if got, err := fresh.Commit(""); err != nil || !s.HasBlob(got) {
		t.Errorf("Commit of the fresh writer: got %q, %v", got, err)
	}
	if got := files(t, filepath.Join(dir, "blobs", "tmp")); len(got) != 0 {
		t.Errorf("temp files left: %q", got)
	}
}

func TestBlobCommitIdempotent(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	data := []byte("same bytes")
	w1, _ := s.NewBlob()
	w2, _ := s.NewBlob()
	w1.Write(data)
	w2.Write(data)
	for i, w := range []*cache.BlobWriter{w1, w2} {
		got, err := w.Commit(sha(data))
		if err != nil || got != sha(data) {
			t.Errorf("Commit %d: got %q, %v; want %q", i, got, err, sha(data))
		}
		if err := w.Abort(); err != nil {
			t.Errorf("Abort after Commit %d: %v", i, err)
		}
		if _, err := w.Commit(""); !errors.Is(err, cache.ErrClosed) {
			t.Errorf("second Commit %d: got %v; want ErrClosed", i, err)
		}
	}
	if got := files(t, filepath.Join(dir, "blobs")); len(got) != 1 {
		t.Errorf("files: got %q; want one blob", got)
	}
}

func verifyReadOnly(t *testing.T, dir string) cache.Report {
	t.Helper()
	s, err := cache.Open(cache.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
