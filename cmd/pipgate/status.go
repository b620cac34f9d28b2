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
	"text/tabwriter"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

const statusUsage = `usage: pipgate status PROJECT [--json] [--config FILE | --data-dir DIR]

Prints the decision history of PROJECT: every file pipgate served or refused,
with its version, verdict, action, rule, verified publisher, finding, how many
times and when first and last. While 'pipgate serve' runs on the data
directory, the server answers (through DATA_DIR/pipgate.sock, including the
decisions of the last second not yet written); when it is stopped, the
database is read directly. The data directory is --data-dir, else
$PIPGATE_DATA_DIR, else data_dir of --config (the embedded defaults without it).

Exit 0 with the rows (none is not an error), 1 when the history cannot be read,
2 on a usage error.

flags:
`

// statusReport is what 'pipgate status --json' prints.
type statusReport struct {
	Project   string           `json:"project"`
	Source    string           `json:"source"` // "server" or "database"
	Decisions []cache.Decision `json:"decisions"`
}

// runStatus runs 'pipgate status PROJECT'.
func runStatus(_ context.Context, args []string, stdout, stderr io.Writer) int {
	var f cacheFlags
	set := cacheFlagSet("", &f)
	set.Init("pipgate status", flag.ContinueOnError)
	pos, err := parseInterspersed(set, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, statusUsage)
		set.SetOutput(stdout)
		set.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pipgate status: %v\n", err)
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, statusUsage)
		return 2
	}
	project := pypi.NormalizeName(pos[0])
	rows, source, err := readDecisions(f, project, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pipgate status: %v\n", err)
		return 1
	}
	if f.json {
		if rows == nil {
			rows = []cache.Decision{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(statusReport{Project: project, Source: source, Decisions: rows}); err != nil {
			fmt.Fprintf(stderr, "pipgate status: %v\n", err)
			return 1
		}
		return 0
	}
	if err := printDecisions(stdout, project, source, rows); err != nil {
		fmt.Fprintf(stderr, "pipgate status: %v\n", err)
		return 1
	}
	return 0
}

// readDecisions reads the decision history of project ("" for all) from
// the data directory of f: from the database when no server holds it, else
// from the server through the admin socket. It returns where it read them.
func readDecisions(f cacheFlags, project string, stderr io.Writer) ([]cache.Decision, string, error) {
	dir, err := cacheDataDir(f)
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "pipgate.db")); errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("no pipgate database in %s (nothing served yet, or the wrong --data-dir)", dir)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := openForCommand(cache.Options{Dir: dir, ReadOnly: true, Logger: logger})
	if errors.Is(err, cache.ErrLocked) {
		rows, serr := decisionsFromServer(dir, project)
		if serr != nil {
			return nil, "", fmt.Errorf("%s is in use by another process, and asking a running pipgate serve failed: %w", dir, serr)
		}
		return rows, "server", nil
	}
	if err != nil {
		return nil, "", err
	}
	defer s.Close()
	rows, err := s.Decisions(project)
	if err != nil {
		return nil, "", err
	}
	return rows, "database", nil
}

// printDecisions prints rows as a table, most recently seen first.
func printDecisions(w io.Writer, project, source string, rows []cache.Decision) error {
	var n int64
	for _, d := range rows {
		n += d.Count
	}
	fmt.Fprintf(w, "%s: %d decisions about %d files (read from the %s)\n", project, n, len(distinctFiles(rows)), source)
	if len(rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAST SEEN\tCOUNT\tVERSION\tFILE\tVERDICT\tACTION\tRULE\tPUBLISHER\tFINDING\tREASON")
	for _, d := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.LastSeen.UTC().Format(time.RFC3339), d.Count,
			dash(d.Version), d.Filename, d.Verdict, d.Action, dash(d.Rule), dash(d.Identity), dash(d.Finding), dash(d.Reason))
	}
	return tw.Flush()
}

func distinctFiles(rows []cache.Decision) map[string]struct{} {
	files := make(map[string]struct{}, len(rows))
	for _, d := range rows {
		files[d.Project+"\x00"+d.Filename] = struct{}{}
	}
	return files
}

func dash[T ~string](s T) string {
	if s == "" {
		return "-"
	}
	return string(s)
}
