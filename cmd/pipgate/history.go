package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/config"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// The commands that learn from the decision history ('pipgate policy
// suggest', 'pipgate policy test', 'pipgate report') read it as 'pipgate
// status' does: from the database when no server holds it, else from the
// running server through the admin socket (bbolt allows one process; the
// server reads under a read transaction, which never blocks its writer).

// historyFlags are the flags those commands share.
type historyFlags struct {
	config, dataDir string
}

func (f *historyFlags) register(set *flag.FlagSet) {
	set.StringVar(&f.config, "config", "", "server config file: data_dir and policy; empty: embedded defaults")
	set.StringVar(&f.dataDir, "data-dir", "", "data directory (wins over --config)")
}

// learnInput is what the commands read: the server config's data directory
// and policy, and the history in it.
type learnInput struct {
	dataDir string
	// policyPath is the policy file in force ("" for the built-in one),
	// policyBytes its content, and pol the parsed policy.
	policyPath  string
	policyBytes []byte
	pol         *policy.Policy
	rows        []cache.Decision
	records     map[string]cache.HistoryRecord // only when asked for
	source      string                         // "server" or "database"
}

// readLearnInput loads the config of f, its policy and the history (with
// the kept continuity records when records is set).
func readLearnInput(f historyFlags, records bool, stderr io.Writer) (*learnInput, error) {
	cfg, err := config.Load(f.config, nil)
	if err != nil {
		return nil, err
	}
	in := &learnInput{dataDir: cfg.DataDir, policyPath: cfg.Policy, pol: policy.Default()}
	if f.dataDir != "" {
		if in.dataDir, err = filepath.Abs(f.dataDir); err != nil {
			return nil, err
		}
	}
	if in.policyPath != "" {
		b, err := readLimited(in.policyPath, policy.MaxFileSize)
		if err != nil {
			return nil, fmt.Errorf("reading the policy in force: %w", err)
		}
		if in.pol, err = policy.ParseFile(in.policyPath, b); err != nil {
			return nil, fmt.Errorf("the policy in force, %s: %w", in.policyPath, err)
		}
		in.policyBytes = b
	}
	dir := in.dataDir
	if _, err := os.Stat(filepath.Join(dir, "pipgate.db")); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no pipgate database in %s (nothing served yet, or the wrong --data-dir)", dir)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := openForCommand(cache.Options{Dir: dir, ReadOnly: true, Logger: logger})
	if errors.Is(err, cache.ErrLocked) {
		in.source = "server"
		if in.rows, err = decisionsFromServer(dir, ""); err == nil && records {
			in.records, err = recordsFromServer(dir)
		}
		if err != nil {
			return nil, fmt.Errorf("%s is in use by another process, and asking a running pipgate serve failed: %w", dir, err)
		}
		return in, nil
	}
	if err != nil {
		return nil, err
	}
	defer s.Close()
	in.source = "database"
	if in.rows, err = s.Decisions(""); err != nil {
		return nil, err
	}
	if records {
		if in.records, err = s.Records(); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// readLimited reads the file at path, at most limit bytes (more is an error).
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// summary is one line about the history: rows, files, projects, time span.
func (in *learnInput) summary() string {
	var n int64
	projects := map[string]bool{}
	var first, last time.Time
	for _, d := range in.rows {
		n += d.Count
		projects[d.Project] = true
		if first.IsZero() || d.FirstSeen.Before(first) {
			first = d.FirstSeen
		}
		if d.LastSeen.After(last) {
			last = d.LastSeen
		}
	}
	s := fmt.Sprintf("%d decisions about %d files of %d projects", n, len(distinctFiles(in.rows)), len(projects))
	if !first.IsZero() {
		s += fmt.Sprintf(", from %s to %s", first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339))
	}
	return s
}

// policyName names the policy in force for messages.
func (in *learnInput) policyName() string {
	if in.policyPath == "" {
		return "the built-in policy"
	}
	return in.policyPath
}

// keptRecords turns the server's kept continuity records into the
// policy's; a record whose version does not parse is left out.
func keptRecords(recs map[string]cache.HistoryRecord) map[string]policy.Record {
	out := make(map[string]policy.Record, len(recs))
	for project, r := range recs {
		v, err := pypi.ParseVersion(r.Version)
		if err != nil {
			fn, ferr := pypi.ParsePipFilename(r.Filename)
			if ferr != nil {
				continue
			}
			v = fn.Version
		}
		out[project] = policy.Record{
			First:     &policy.Upload{Filename: r.Filename, Version: v, UploadTime: r.UploadTime, Provenance: true},
			Publisher: r.Publisher,
		}
	}
	return out
}
