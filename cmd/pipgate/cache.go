package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/config"
	"github.com/pipgate/pipgate/internal/units"
)

const cacheUsage = `usage: pipgate cache <command> [flags]

commands:
  stats [--json]     count what the data directory holds
  purge WHAT         delete cached data; WHAT is one of:
                       index       project pages and the project list
                       facts       verification results
                       provenance  provenance bodies
                       history     per-project publisher history
                       decisions   the decision history (pipgate status, report)
                       blobs       distribution and .metadata files (and their references)
                       all         all of the above
                     asks nothing (scriptable); the server refetches what it needs
  verify [--json]    check the database, every record and every blob;
                     exit 1 when a problem is found

The data directory is --data-dir, else $PIPGATE_DATA_DIR, else data_dir of
--config (the embedded defaults without it). While 'pipgate serve' runs on it, stats asks the
server (through DATA_DIR/pipgate.sock); purge and verify need it stopped.

flags:
`

// cacheFlags are the flags of every 'pipgate cache' command.
type cacheFlags struct {
	dataDir, config string
	json            bool
}

func cacheFlagSet(name string, f *cacheFlags) *flag.FlagSet {
	set := flag.NewFlagSet("pipgate cache "+name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	set.StringVar(&f.dataDir, "data-dir", "", "data directory (wins over --config)")
	set.StringVar(&f.config, "config", "", "server config file to read data_dir from; empty: embedded defaults")
	set.BoolVar(&f.json, "json", false, "print JSON (stats, verify)")
	return set
}

func printCacheUsage(w io.Writer) {
	fmt.Fprint(w, cacheUsage)
	set := cacheFlagSet("", &cacheFlags{})
	set.SetOutput(w)
	set.PrintDefaults()
}

// runCache runs 'pipgate cache stats|purge|verify'.
func runCache(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printCacheUsage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		printCacheUsage(stdout)
		return 0
	case "stats", "purge", "verify":
	case checkDBCommand:
		return runCheckDB(args[1:], stderr)
	default:
		fmt.Fprintf(stderr, "pipgate cache: unknown command %q (want stats, purge or verify)\n", name)
		return 2
	}
	var f cacheFlags
	pos, err := parseInterspersed(cacheFlagSet(name, &f), args[1:])
	if errors.Is(err, flag.ErrHelp) {
		printCacheUsage(stdout)
		return 0
	}
	prefix := "pipgate cache " + name
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
		return 2
	}
	want := 0
	if name == "purge" {
		want = 1
	}
	switch {
	case name == "purge" && len(pos) == 0:
		fmt.Fprintf(stderr, "%s: say what to purge: %s\n", prefix, strings.Join(cache.PurgeTargets(), ", "))
		return 2
	case len(pos) > want:
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", prefix, pos[want])
		return 2
	case name == "purge" && !validPurgeTarget(pos[0]):
		fmt.Fprintf(stderr, "%s: cannot purge %q (one of %s)\n", prefix, pos[0], strings.Join(cache.PurgeTargets(), ", "))
		return 2
	case name == "purge" && f.json:
		fmt.Fprintf(stderr, "%s: --json applies to stats and verify\n", prefix)
		return 2
	}

	dir, err := cacheDataDir(f)
	if err != nil {
		printErrors(stderr, prefix, err)
		return 1
	}
	readOnly := name != "purge"
	if _, err := os.Stat(filepath.Join(dir, "pipgate.db")); errors.Is(err, fs.ErrNotExist) {
		if !readOnly {
			// Nothing to purge; and a typo in --data-dir must not create a folder.
			fmt.Fprintf(stdout, "nothing to purge: no pipgate database in %s\n", dir)
			return 0
		}
		fmt.Fprintf(stderr, "%s: no pipgate database in %s (nothing cached yet, or the wrong --data-dir)\n", prefix, dir)
		return 1
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if name == "verify" {
		// The thorough database check first, in a child process: a fault
		// inside bbolt on a damaged file kills the child, not verify.
		if code, done := verifyDB(ctx, dir, f.json, stdout, stderr); done {
			return code
		}
	}
	s, err := openForCommand(cache.Options{Dir: dir, ReadOnly: readOnly, Logger: logger})
	switch {
	case errors.Is(err, cache.ErrLocked) && name == "stats":
		st, serr := statsFromServer(dir)
		if serr != nil {
			fmt.Fprintf(stderr, "%s: %s is in use by another process, and asking a running pipgate serve failed: %v\n", prefix, dir, serr)
			return 1
		}
		return printCacheStats(st, f.json, stdout, stderr)
	case errors.Is(err, cache.ErrLocked):
		fmt.Fprintf(stderr, "%s: %s is in use by another process (a running pipgate serve?); stop it first\n", prefix, dir)
		return 1
	case errors.Is(err, cache.ErrCorrupt), errors.Is(err, cache.ErrSchema):
		// Only a read-write open moves such a file aside; say how to get one.
		fmt.Fprintf(stderr, "%s: %v (the next 'pipgate serve' or 'pipgate cache purge' moves it aside and starts afresh)\n", prefix, err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
		return 1
	}
	defer s.Close()

	switch name {
	case "stats":
		st, err := storeStats(s)
		if err != nil {
			fmt.Fprintf(stderr, "pipgate cache stats: %v\n", err)
			return 1
		}
		return printCacheStats(st, f.json, stdout, stderr)
	case "purge":
		if err := s.Purge(pos[0]); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
			return 1
		}
		fmt.Fprintf(stdout, "purged %s in %s\n", pos[0], dir)
		return 0
	default:
		return cacheVerify(s, f.json, stdout, stderr)
	}
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("purge all --data-dir D" as well as "purge --data-dir D all");
// everything after "--" is positional.
func parseInterspersed(set *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := set.Parse(args); err != nil {
			return nil, err
		}
		rest := set.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func validPurgeTarget(what string) bool {
	for _, t := range cache.PurgeTargets() {
		if t == what {
			return true
		}
	}
	return false
}

// cacheDataDir returns the absolute data directory: --data-dir, else the
// config's data_dir (already absolute).
func cacheDataDir(f cacheFlags) (string, error) {
	if f.dataDir != "" {
		return filepath.Abs(f.dataDir)
	}
	cfg, err := config.Load(f.config, nil)
	if err != nil {
		return "", err
	}
	return cfg.DataDir, nil
}

// dirStats is what 'pipgate cache stats' prints, from the store or from the
// running server's admin socket.
type dirStats struct {
	DataDir  string `json:"data_dir"`
	Database string `json:"database"`
	// MaxBlobBytes is cache.max_size (0: no limit); only a running server knows it.
	MaxBlobBytes int64 `json:"max_blob_bytes,omitempty"`
	// Source is "database" (opened read-only) or "server" (asked the running one).
	Source string `json:"source"`
	cache.Stats
}

func storeStats(s *cache.Store) (dirStats, error) {
	st, err := s.Stats()
	if err != nil {
		return dirStats{}, err
	}
	return dirStats{DataDir: s.Dir(), Database: s.Path(), Source: "database", Stats: st}, nil
}

func printCacheStats(d dirStats, asJSON bool, stdout, stderr io.Writer) int {
	st := d.Stats
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			fmt.Fprintf(stderr, "pipgate cache stats: %v\n", err)
			return 1
		}
		return 0
	}
	list := "no"
	if st.ProjectList {
		list = "yes"
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	rows := [][2]string{
		{"data directory", d.DataDir},
		{"database", fmt.Sprintf("%s (schema %d, %s)", d.Database, st.SchemaVersion, units.Bytes(st.DBBytes))},
		{"verification facts", fmt.Sprint(st.Facts)},
		{"provenance bodies", fmt.Sprint(st.Provenance)},
		{"project pages", fmt.Sprint(st.Pages)},
		{"project list", list},
		{"projects with history", fmt.Sprint(st.Projects)},
		{"decision history rows", fmt.Sprint(st.Decisions)},
		{"blob references", fmt.Sprint(st.Refs)},
		{"blobs", fmt.Sprintf("%d (%s)", st.Blobs, units.Bytes(st.BlobBytes))},
		{"size limit", sizeLimit(d)},
		{"read from", d.Source},
		{"temp files", fmt.Sprint(st.TempFiles)},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "pipgate cache stats: %v\n", err)
		return 1
	}
	return 0
}

func cacheVerify(s *cache.Store, asJSON bool, stdout, stderr io.Writer) int {
	rep, err := s.Verify()
	if err != nil {
		fmt.Fprintf(stderr, "pipgate cache verify: %v\n", err)
		return 1
	}
	if asJSON {
		if rep.Problems == nil {
			rep.Problems = []cache.Problem{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "pipgate cache verify: %v\n", err)
			return 1
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, p)
		}
		fmt.Fprintf(stdout, "checked %d records and %d blobs in %s: %d problems\n", rep.Records, rep.Blobs, s.Dir(), len(rep.Problems))
	}
	if !rep.OK() {
		return 1
	}
	return 0
}

// checkDBCommand is the hidden 'pipgate cache check-db PATH' that a serve
// or a verify runs as a child process (see dbChecker).
const checkDBCommand = "check-db"

// runCheckDB runs cache.CheckDB on one file and exits 0 (sound),
// cache.CheckExitDamaged or cache.CheckExitLocked, with the reason on
// stderr; on a damaged file bbolt may crash it instead, which its parent
// reads as damage too.
func runCheckDB(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: pipgate cache %s PATH\n", checkDBCommand)
		return 1
	}
	err := cache.CheckDB(args[0])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, cache.ErrLocked):
		fmt.Fprintln(stderr, err)
		return cache.CheckExitLocked
	case errors.Is(err, cache.ErrCorrupt):
		fmt.Fprintln(stderr, err)
		return cache.CheckExitDamaged
	}
	fmt.Fprintln(stderr, err)
	return 1
}

// dbChecker returns the child-process database check for cache.Options.Check:
// this binary running 'cache check-db'. Nil inside a test binary, which
// would not understand those arguments (tests get the in-process checks).
func dbChecker() func(ctx context.Context, path string) error {
	if testing.Testing() {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return cache.ChildCheck(exe, "cache", checkDBCommand)
}

// dbCheckTimeout bounds verify's database check.
const dbCheckTimeout = 5 * time.Minute

// verifyDB runs the thorough database check before 'cache verify' opens
// the file; done is true when it found damage (reported like Verify's
// problems, exit 1) or could not run.
func verifyDB(ctx context.Context, dir string, asJSON bool, stdout, stderr io.Writer) (code int, done bool) {
	path := filepath.Join(dir, "pipgate.db")
	check := dbChecker()
	if check == nil {
		check = func(_ context.Context, path string) error { return cache.CheckDB(path) }
	}
	ctx, cancel := context.WithTimeout(ctx, dbCheckTimeout)
	defer cancel()
	err := check(ctx, path)
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, cache.ErrLocked):
		fmt.Fprintf(stderr, "pipgate cache verify: %s is in use by another process (a running pipgate serve?); stop it first\n", dir)
		return 1, true
	case !errors.Is(err, cache.ErrCorrupt):
		fmt.Fprintf(stderr, "pipgate cache verify: checking %s: %v\n", path, err)
		return 1, true
	}
	rep := cache.Report{Problems: []cache.Problem{{Kind: "db", Where: path,
		Detail: err.Error() + " (the next 'pipgate serve' moves it aside and starts afresh)"}}}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return 1, true
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, p)
	}
	fmt.Fprintf(stdout, "the database in %s is damaged: records and blobs not checked\n", dir)
	return 1, true
}

func sizeLimit(d dirStats) string {
	switch {
	case d.Source != "server":
		return "(known to the server; see cache.max_size)"
	case d.MaxBlobBytes <= 0:
		return "none (cache.max_size: 0)"
	}
	return fmt.Sprintf("%s of %s (cache.max_size bounds the blobs, not the database)", units.Bytes(d.BlobBytes), units.Bytes(d.MaxBlobBytes))
}
