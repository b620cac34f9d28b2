package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

// runCacheCmd runs 'pipgate cache args...' and returns the exit code and
// both outputs.
func runCacheCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"pipgate", "cache"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// seedCache creates a data directory with two facts, a page and one blob.
func seedCache(t *testing.T) (dir, blob string) {
	t.Helper()
	dir = t.TempDir()
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, k := range []cache.FactKey{{Filename: "a-1.0.tar.gz", FileSHA256: a}, {Filename: "b-1.0.tar.gz", FileSHA256: b, ProvenanceSHA256: a}} {
		if err := s.PutFacts(k, pypi.Facts{Verdict: pypi.VerdictUnattested}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutPage("default", "demo", &pypi.ProjectPage{Name: "demo"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	w, err := s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("wheel"))
	if blob, err = w.Commit(""); err != nil {
		t.Fatal(err)
	}
	return dir, blob
}

func TestCacheUsage(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   string // substring; "" for none expected
		stderr   string
		noStderr bool
	}{
		{"help", []string{"--help"}, 0, "usage: pipgate cache", "", true},
		{"sub help", []string{"purge", "-h"}, 0, "-data-dir", "", true},
		{"no command", nil, 2, "", "usage: pipgate cache", false},
		{"unknown command", []string{"shrink"}, 2, "", `unknown command "shrink"`, false},
		{"unknown flag", []string{"stats", "--frobnicate"}, 2, "", "flag provided but not defined: -frobnicate", false},
		{"purge without target", []string{"purge", "--data-dir", dir}, 2, "", "say what to purge: all, index", false},
		{"purge bad target", []string{"purge", "everything", "--data-dir", dir}, 2, "", `cannot purge "everything"`, false},
		{"extra argument", []string{"stats", "now", "--data-dir", dir}, 2, "", `unexpected argument "now"`, false},
		{"purge json", []string{"purge", "all", "--json", "--data-dir", dir}, 2, "", "--json applies to stats and verify", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCacheCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code: got %d; want %d (stderr %q)", code, tc.code, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout: got %q; want it to contain %q", stdout, tc.stdout)
			}
			if !strings.Contains(stderr, tc.stderr) || (tc.noStderr && stderr != "") {
				t.Errorf("stderr: got %q; want it to contain %q", stderr, tc.stderr)
			}
			if tc.code == 2 && tc.stderr != "" && !strings.HasPrefix(tc.stderr, "usage") && strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr: got %q; want one line", stderr)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors touched the data dir: %d entries", len(entries))
	}
}

func TestCacheStats(t *testing.T) {
	dir, _ := seedCache(t)
	code, stdout, stderr := runCacheCmd(t, "stats", "--data-dir", dir)
	if code != 0 || stderr != "" {
		t.Fatalf("stats: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"data directory         " + dir,
		"database               " + filepath.Join(dir, "pipgate.db") + fmt.Sprintf(" (schema %d, ", cache.SchemaVersion),
		"verification facts     2\n",
		"project pages          1\n",
		"project list           no\n",
		"blobs                  1 (5 B)\n",
		"temp files             0\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stats output %q: missing %q", stdout, want)
		}
	}

	code, stdout, _ = runCacheCmd(t, "stats", "--json", "--data-dir", dir)
	var got struct {
		DataDir string `json:"data_dir"`
		cache.Stats
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != 0 {
		t.Fatalf("stats --json: exit %d, %v: %q", code, err, stdout)
	}
	if got.DataDir != dir || got.Facts != 2 || got.Pages != 1 || got.Blobs != 1 || got.BlobBytes != 5 || got.SchemaVersion != cache.SchemaVersion {
		t.Errorf("stats --json: got %+v", got)
	}
}

func TestCachePurge(t *testing.T) {
	dir, _ := seedCache(t)
	// Flags after the target, too.
	code, stdout, stderr := runCacheCmd(t, "purge", "facts", "--data-dir", dir)
	if code != 0 || stderr != "" || stdout != "purged facts in "+dir+"\n" {
		t.Fatalf("purge facts: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	_, stdout, _ = runCacheCmd(t, "stats", "--json", "--data-dir", dir)
	var st cache.Stats
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Facts != 0 || st.Pages != 1 || st.Blobs != 1 {
		t.Errorf("after purge facts: got %+v; want no facts, the page and the blob", st)
	}
	if code, _, stderr := runCacheCmd(t, "purge", "--data-dir", dir, "all"); code != 0 {
		t.Fatalf("purge all: exit %d, %q", code, stderr)
	}
	_, stdout, _ = runCacheCmd(t, "stats", "--json", "--data-dir", dir)
	st = cache.Stats{}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Pages != 0 || st.Blobs != 0 {
		t.Errorf("after purge all: got %+v; want empty", st)
	}
}

func TestCacheVerify(t *testing.T) {
	dir, blob := seedCache(t)
	// 3 records plus the blob's stamp.
	code, stdout, stderr := runCacheCmd(t, "verify", "--data-dir", dir)
	if code != 0 || stderr != "" || !strings.Contains(stdout, "checked 4 records and 1 blobs in "+dir+": 0 problems") {
		t.Fatalf("verify: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	p := filepath.Join(dir, "blobs", "sha256", blob[:2], blob)
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("wheeL"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runCacheCmd(t, "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(stdout, "blob: "+p+": content hashes to ") || !strings.Contains(stdout, ": 1 problems") {
		t.Errorf("verify of a damaged blob: exit %d, stdout %q; want exit 1 naming %s", code, stdout, p)
	}
	code, stdout, _ = runCacheCmd(t, "verify", "--json", "--data-dir", dir)
	var rep cache.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 1 || len(rep.Problems) != 1 || rep.Problems[0].Kind != "blob" {
		t.Errorf("verify --json: exit %d, %v, %+v", code, err, rep)
	}
}

func TestCacheLockedByServer(t *testing.T) {
	t.Parallel() // its own server and data dir: runs beside the other end-to-end tests
	dir, _ := seedCache(t)
	s, err := cache.Open(cache.Options{Dir: dir}) // the "running server"
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, args := range [][]string{{"stats"}, {"verify"}, {"purge", "all"}} {
		code, _, stderr := runCacheCmd(t, append(args, "--data-dir", dir)...)
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, dir+" is in use by another process") {
			t.Errorf("%v while locked: exit %d, stderr %q; want 1 and one line saying it is in use", args, code, stderr)
		}
	}
}

func TestCacheMissingDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "typo")
	code, _, stderr := runCacheCmd(t, "stats", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "no pipgate database in "+dir) {
		t.Errorf("stats of a missing dir: exit %d, stderr %q", code, stderr)
	}
	code, stdout, _ := runCacheCmd(t, "purge", "all", "--data-dir", dir)
	if code != 0 || !strings.Contains(stdout, "nothing to purge") {
		t.Errorf("purge of a missing dir: exit %d, stdout %q", code, stdout)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the missing data dir was created: %v", err)
	}
}

func TestCacheCorruptDatabase(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "pipgate.db")
	garbage := bytes.Repeat([]byte("garbage!"), 2048)
	if err := os.WriteFile(db, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCacheCmd(t, "stats", "--data-dir", dir)
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "database corrupt") {
		t.Errorf("stats of a corrupt database: exit %d, stderr %q; want 1 and one line", code, stderr)
	}
	// verify reports the damage as a problem of kind db.
	code, stdout, _ := runCacheCmd(t, "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(stdout, "db: "+db+": cache: database corrupt") {
		t.Errorf("verify of a corrupt database: exit %d, stdout %q; want 1 and the damage", code, stdout)
	}
	if got, _ := os.ReadFile(db); !bytes.Equal(got, garbage) {
		t.Fatal("stats or verify changed the corrupt file")
	}
	code, stdout, stderr = runCacheCmd(t, "purge", "all", "--data-dir", dir)
	if code != 0 || !strings.Contains(stdout, "purged all") || !strings.Contains(stderr, "moved aside") {
		t.Errorf("purge of a corrupt database: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if moved, _ := filepath.Glob(db + ".corrupt-*"); len(moved) != 1 {
		t.Errorf("moved aside: got %q; want one file", moved)
	}
	if code, _, stderr := runCacheCmd(t, "verify", "--data-dir", dir); code != 0 {
		t.Errorf("verify after purge: exit %d, stderr %q", code, stderr)
	}
}

func TestCacheDataDirFromConfig(t *testing.T) {
	dataDir, _ := seedCache(t)
	cfgDir := t.TempDir()
	cfg := filepath.Join(cfgDir, "pipgate.yaml")
	rel, err := filepath.Rel(cfgDir, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("data_dir: "+rel+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCacheCmd(t, "stats", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "verification facts     2\n") {
		t.Errorf("stats --config: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// $PIPGATE_DATA_DIR wins over the file, --data-dir over both.
	empty := t.TempDir()
	t.Setenv("PIPGATE_DATA_DIR", empty)
	code, _, stderr = runCacheCmd(t, "stats", "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "no pipgate database in "+empty) {
		t.Errorf("$PIPGATE_DATA_DIR with --config: exit %d, stderr %q; want it to read %s", code, stderr, empty)
	}
	other := t.TempDir()
	code, _, stderr = runCacheCmd(t, "stats", "--config", cfg, "--data-dir", other)
	if code != 1 || !strings.Contains(stderr, "no pipgate database in "+other) {
		t.Errorf("--data-dir with --config: exit %d, stderr %q; want it to read %s", code, stderr, other)
	}
	bad := filepath.Join(cfgDir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("data_dirr: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCacheCmd(t, "stats", "--config", bad)
	if code != 1 || !strings.Contains(stderr, "data_dirr") {
		t.Errorf("stats with a bad config: exit %d, stderr %q", code, stderr)
	}
}

func TestParseInterspersed(t *testing.T) {
	cases := []struct {
		args    []string
		pos     string
		dataDir string
	}{
		{[]string{"all", "--data-dir", "d"}, "all", "d"},
		{[]string{"--data-dir", "d", "all"}, "all", "d"},
		{[]string{"--data-dir=d", "--", "--all"}, "--all", "d"},
		{[]string{"a", "b"}, "a b", ""},
	}
	for _, tc := range cases {
		var f cacheFlags
		pos, err := parseInterspersed(cacheFlagSet("purge", &f), tc.args)
		if err != nil || strings.Join(pos, " ") != tc.pos || f.dataDir != tc.dataDir {
			t.Errorf("parseInterspersed(%q): got %q, data-dir %q, %v; want %q, %q", tc.args, pos, f.dataDir, err, tc.pos, tc.dataDir)
		}
	}
}
