package cache_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pipgate/pipgate/cache"
)

func blobFile(dir, sum string) string {
	return filepath.Join(dir, "blobs", "sha256", sum[:2], sum)
}

// overwrite replaces the blob's bytes in place (same size) and puts its
// modification time back, as a careful tamperer would.
func overwrite(t *testing.T, p string, data []byte) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenBlobUnchangedDoesNotRehash(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	data := bytes.Repeat([]byte("wheel "), 1000)
	sum, err := writeBlob(t, s, data, sha(data))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f, err := s.OpenBlob(sum)
		if err != nil {
			t.Fatalf("OpenBlob: %v", err)
		}
		f.Close()
	}
	if n := cache.Rehashes(s); n != 0 {
		t.Errorf("rehashes of an unchanged blob = %d; want 0 (a stat per hit, no hashing)", n)
	}
	// The stamp survives a restart.
	s.Close()
	s2 := openStore(t, dir)
	f, err := s2.OpenBlob(sum)
	if err != nil {
		t.Fatalf("OpenBlob after reopen: %v", err)
	}
	f.Close()
	if n := cache.Rehashes(s2); n != 0 {
		t.Errorf("rehashes after a restart = %d; want 0", n)
	}
}

func TestOpenBlobChangedIsQuarantined(t *testing.T) {
	data := bytes.Repeat([]byte("the real wheel "), 1000)
	evil := bytes.Repeat([]byte("a tampered one "), 1000)
	for _, c := range []struct {
		name   string
		change func(t *testing.T, p string)
	}{
		{"same size, mtime restored", func(t *testing.T, p string) { overwrite(t, p, evil) }},
		{"truncated", func(t *testing.T, p string) { overwrite(t, p, data[:100]) }},
		{"replaced by another file", func(t *testing.T, p string) {
			tmp := p + ".new"
			if err := os.WriteFile(tmp, evil, 0o400); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			sum, err := writeBlob(t, s, data, sha(data))
			if err != nil {
				t.Fatal(err)
			}
			before := s.SizeBytes()
			c.change(t, blobFile(dir, sum))
			f, err := s.OpenBlob(sum)
			if err == nil {
				f.Close()
				t.Fatal("OpenBlob served a blob whose content changed")
			}
			if !errors.Is(err, cache.ErrBlobChanged) || !errors.Is(err, cache.ErrNotFound) {
				t.Fatalf("OpenBlob = %v; want ErrBlobChanged and ErrNotFound", err)
			}
			if s.HasBlob(sum) {
				t.Error("the changed blob is still in place")
			}
			q, _ := filepath.Glob(filepath.Join(dir, "blobs", "quarantine", sum+".*"))
			if len(q) != 1 {
				t.Errorf("quarantine holds %v; want the one changed blob", q)
			}
			if n := s.QuarantinedBlobs(); n != 1 {
				t.Errorf("QuarantinedBlobs = %d; want 1", n)
			}
			if got := s.SizeBytes(); got >= before {
				t.Errorf("SizeBytes = %d after quarantine; want less than %d", got, before)
			}
			// The caller refetches: a fresh commit is served again.
			if _, err := writeBlob(t, s, data, sha(data)); err != nil {
				t.Fatal(err)
			}
			f, err = s.OpenBlob(sum)
			if err != nil {
				t.Fatalf("OpenBlob after refetch: %v", err)
			}
			got, _ := io.ReadAll(f)
			f.Close()
			if !bytes.Equal(got, data) {
				t.Error("refetched blob has the wrong bytes")
			}
			if rep, err := s.Verify(); err != nil || !rep.OK() {
				t.Errorf("Verify after healing: %v %+v", err, rep.Problems)
			}
		})
	}
}

func TestOpenBlobTouchedButIntactIsServed(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	data := []byte("intact content")
	sum, err := writeBlob(t, s, data, "")
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(blobFile(dir, sum), later, later); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		f, err := s.OpenBlob(sum)
		if err != nil {
			t.Fatalf("OpenBlob of a touched, intact blob: %v", err)
		}
		f.Close()
	}
	if n := cache.Rehashes(s); n != 1 {
		t.Errorf("rehashes = %d; want 1 (then the new stamp is recorded)", n)
	}
	if s.QuarantinedBlobs() != 0 {
		t.Error("an intact blob was quarantined")
	}
}

func TestOpenBlobWithoutStampIsChecked(t *testing.T) {
	// A blob written by a pipgate before stamps: checked once by content.
	dir := t.TempDir()
	good := []byte("stored by an older pipgate")
	bad := []byte("planted under a name it does not hash to")
	s := openStore(t, dir)
	for _, c := range []struct {
		name    string
		content []byte
	}{{sha(good), good}, {sha(good[:5]), bad}} {
		p := blobFile(dir, c.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, c.content, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	f, err := s.OpenBlob(sha(good))
	if err != nil {
		t.Fatalf("OpenBlob of an unstamped good blob: %v", err)
	}
	f.Close()
	if _, err := s.OpenBlob(sha(good[:5])); !errors.Is(err, cache.ErrBlobChanged) {
		t.Errorf("OpenBlob of an unstamped bad blob = %v; want ErrBlobChanged", err)
	}
}
