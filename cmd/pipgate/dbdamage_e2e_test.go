package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// bigCache writes a data directory whose database spans many pages.
func bigCache(t *testing.T, dir string) {
	t.Helper()
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 60 {
		p := &pypi.ProjectPage{Name: fmt.Sprintf("demo%d", i)}
		for j := range 30 {
			p.Files = append(p.Files, pypi.File{Filename: fmt.Sprintf("demo%d-%d.0.tar.gz", i, j),
				URL: fmt.Sprintf("https://files.example/demo%d-%d.0.tar.gz", i, j)})
		}
		if err := s.PutPage("default", p.Name, p, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

type dbDamage struct {
	name  string
	apply func(t *testing.T, path string)
}

func dbDamages() []dbDamage {
	garbage := func(from, to int64) func(*testing.T, string) {
		return func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rng := rand.New(rand.NewPCG(uint64(from), uint64(to))) //nolint:gosec // reproducible garbage, not a secret
			buf := make([]byte, 4096)
			for p := from; p < to; p++ {
				for i := range buf {
					buf[i] = byte(rng.Uint32())
				}
				if _, err := f.WriteAt(buf, p*4096); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// The cache package tests every truncation size and more garbage; here
	// one of each kind goes through the built binary.
	ds := []dbDamage{
		{"garbage pages in the middle", garbage(6, 40)},
		{"text file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("not a database\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, n := range []int64{16 << 10} {
		ds = append(ds, dbDamage{fmt.Sprintf("truncated to %d KiB", n>>10), func(t *testing.T, path string) {
			if err := os.Truncate(path, n); err != nil {
				t.Fatal(err)
			}
		}})
	}
	return ds
}

// TestE2EDamagedDatabase: the built binary on a damaged pipgate.db (cut
// short, garbage pages in the middle, a text file):
// 'cache verify' reports the damage and exits 1, never crashes; 'serve'
// starts, moves the file aside (kept, with a timestamp), logs an error,
// says ready and serves; the next start is clean.
func TestE2EDamagedDatabase(t *testing.T) {
	t.Parallel() // its own servers and data dirs: runs beside the other end-to-end tests
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	bin := pipgateBinary(t)
	up := pypitest.NewServer(t)
	fn := pypitest.WheelFilename("hello", "1.0")
	up.AddDist("hello", pypitest.Dist{Filename: fn, Content: pypitest.MakeWheel("hello", "1.0", pypitest.WheelOptions{})})
	base := t.TempDir()
	root := provenancetest.New(t).WriteTrustedRoot(base)
	pol := filepath.Join(base, "policy.yaml")
	if err := os.WriteFile(pol, []byte("version: 1\ndefaults:\n  require: none\n  action: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range dbDamages() {
		t.Run(d.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			bigCache(t, dir)
			db := filepath.Join(dir, "pipgate.db")
			d.apply(t, db)
			damaged, _ := os.ReadFile(db)

			out, err := exec.Command(bin, "cache", "verify", "--data-dir", dir).CombinedOutput()
			code := -1
			if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.Exited() {
				code = ee.ExitCode()
			}
			if code != 1 || strings.Contains(string(out), "fatal error") || strings.Contains(string(out), "goroutine ") ||
				!strings.Contains(string(out), "database corrupt") {
				t.Errorf("cache verify: exit %d (%v), output:\n%s\nwant exit 1 reporting the damage", code, err, tail(string(out), 20))
			}

			p := startPipgateArgs(t, []string{"--listen", "127.0.0.1:0", "--upstream", up.URL(), "--trusted-root", root,
				"--data-dir", dir, "--policy", pol, "--config", ""}, "", false, nil)
			aside, _ := filepath.Glob(db + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("moved aside: %v; want one pipgate.db.corrupt-<time>\n%s", aside, tail(p.stderr.String(), 30))
			}
			if kept, _ := os.ReadFile(aside[0]); string(kept) != string(damaged) {
				t.Error("the damaged file was not kept as it was")
			}
			if logs := p.stderr.String(); !strings.Contains(logs, `"level":"ERROR","msg":"database damaged"`) {
				t.Errorf("no error logged:\n%s", tail(logs, 30))
			}
			resp, err := p.client.Get(p.base + "/files/hello/" + fn)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("a file after the rebuild: %d", resp.StatusCode)
			}
		})
	}
}
