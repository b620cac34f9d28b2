package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/policy"
)

const suggestUsage = `usage: pipgate policy suggest [--config FILE] [--data-dir DIR] [-o OUT] [--min-count N] [--merge]

Writes a policy learned from the decision history (stdout, or OUT): for each
project whose files were served with a verified attestation, a rule
requiring a trusted publisher (action block) that lists the publishers that
signed them, exactly as seen (repository and workflow), each with a comment:
files, versions, downloads, first and last seen. Projects never attested get
no rule, only a comment line with their counts (the defaults keep applying).
The defaults are those of the policy in force (policy of --config); a rule
keeps the project's continuity when it differs from them. Rules are in name
order. The output passes 'pipgate policy check'.

-o never replaces the policy in force (the server would adopt it at once).
--min-count N lists a publisher only when the files it signed were served at
least N times. --merge adds the rules to the policy in force instead,
keeping its comments and rules (a project a rule already matches keeps it).

The history is read from the database, or from the running server through
DATA_DIR/pipgate.sock. Check the result with 'pipgate policy test' before
installing it. Exit 0 written, 1 the history or policy cannot be read or the
result is invalid, 2 usage.

flags:
`

func runPolicySuggest(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	var hf historyFlags
	set := flag.NewFlagSet("pipgate policy suggest", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	hf.register(set)
	out := set.String("o", "", "write the policy to this file (atomically) instead of stdout")
	minCount := set.Int64("min-count", 1, "list a publisher only when its files were served at least this many times")
	merge := set.Bool("merge", false, "add the rules to the policy in force, keeping its comments and rules")
	pos, err := parseInterspersed(set, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, suggestUsage)
		set.SetOutput(stdout)
		set.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pipgate policy suggest: %v\n", err)
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "pipgate policy suggest: unexpected argument %q\n", pos[0])
		return 2
	}
	if *minCount < 1 {
		fmt.Fprintln(stderr, "pipgate policy suggest: --min-count must be at least 1")
		return 2
	}
	in, err := readLearnInput(hf, false, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pipgate policy suggest: %v\n", err)
		return 1
	}
	if *merge && in.policyPath == "" {
		fmt.Fprintln(stderr, "pipgate policy suggest: --merge: no policy file in force (the built-in policy); writing a new policy")
	}
	header := []string{
		fmt.Sprintf("Suggested by 'pipgate policy suggest' at %s from the decision history in %s", now().UTC().Format(time.RFC3339), in.dataDir),
		fmt.Sprintf("(read from the %s): %s.", in.source, in.summary()),
	}
	if *merge && in.policyPath != "" {
		header = append(header, "Merged into "+in.policyPath+": its comments and rules are kept.")
	} else {
		header = append(header, "Defaults as in "+in.policyName()+".")
	}
	header = append(header, "Check it before installing it: pipgate policy test --config CONFIG THIS_FILE")
	name := *out
	if name == "" {
		name = "suggested policy"
	}
	b, err := policy.Suggest(in.pol, cache.Observations(in.rows), policy.SuggestOptions{
		MinCount: *minCount, Merge: *merge, Current: in.policyBytes, Header: header, Path: name,
	})
	if err != nil {
		fmt.Fprintf(stderr, "pipgate policy suggest: %v\n", err)
		return 1
	}
	if *out == "" {
		if _, err := stdout.Write(b); err != nil {
			fmt.Fprintf(stderr, "pipgate policy suggest: %v\n", err)
			return 1
		}
		return 0
	}
	if in.policyPath != "" && sameFile(*out, in.policyPath) {
		// The server adopts a replaced policy file by itself within
		// seconds: that would apply the suggestion before any review.
		fmt.Fprintf(stderr, "pipgate policy suggest: -o %s is the policy in force, which the server adopts as soon as it is replaced: write the suggestion elsewhere, review it, check it with 'pipgate policy test', then move it into place\n", *out)
		return 2
	}
	if err := writeFileAtomic(*out, b, 0o644); err != nil {
		fmt.Fprintf(stderr, "pipgate policy suggest: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "pipgate policy suggest: wrote %s\n", *out)
	return 0
}

// writeFileAtomic writes b to path through a temporary file in the same
// folder renamed into place: a reader (the server's policy watcher) sees
// the old file or the whole new one, never a part.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing at the old name
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
