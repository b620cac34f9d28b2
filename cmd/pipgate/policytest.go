package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/policy"
)

const policyTestUsage = `usage: pipgate policy test [--config FILE] [--data-dir DIR] [--json] CANDIDATE.yaml

Replays the decision history under the candidate policy with the server's
own decision code, and lists every file whose latest download was served
that the candidate would refuse (403), every file whose latest download was
refused that it would serve, and every served file it would newly list as
yanked (pip then installs it only when pinned), each with the reason the
server would give.

It is pure: no network, no verification. It uses the facts the history
recorded: the verification verdict and the verified signer of each file.
Exact: require, publishers (repository, workflow, e-mail, issuer and
subject), action, on_invalid. Approximate: continuity is judged against the
continuity record the server kept for the project (its first attested file)
when there is one, else against one derived from the files in the history
(files never downloaded are not seen); the cooldown is measured now, from the
upload time the history recorded (a file without one is replayed without the
cooldown, and says so). Not replayed: files whose provenance could not be
checked whenever they were decided (verdict error), and files the bounded
history no longer holds.

Exit 0 when the candidate refuses no file that was served, 1 when it would,
2 on a usage error, an invalid candidate or an unreadable history.

flags:
`

// policyTestReport is what 'pipgate policy test --json' prints.
type policyTestReport struct {
	Candidate string `json:"candidate"`
	DataDir   string `json:"data_dir"`
	Source    string `json:"source"` // "server" or "database"
	policy.ReplayResult
}

func runPolicyTest(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	var hf historyFlags
	set := flag.NewFlagSet("pipgate policy test", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	hf.register(set)
	asJSON := set.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(set, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, policyTestUsage)
		set.SetOutput(stdout)
		set.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pipgate policy test: %v\n", err)
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "pipgate policy test: want exactly one CANDIDATE.yaml")
		fmt.Fprint(stderr, policyTestUsage)
		return 2
	}
	candPath := pos[0]
	cand, err := policy.Load(candPath)
	if err != nil {
		probs := policy.Problems(err)
		if len(probs) == 0 {
			fmt.Fprintf(stderr, "pipgate policy test: %v\n", err)
		}
		for _, pr := range probs {
			loc := candPath
			if pr.Line > 0 {
				loc += ":" + strconv.Itoa(pr.Line)
			}
			fmt.Fprintf(stderr, "%s: %s\n", loc, strings.TrimPrefix(pr.Error(), "line "+strconv.Itoa(pr.Line)+": "))
		}
		return 2
	}
	in, err := readLearnInput(hf, true, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pipgate policy test: %v\n", err)
		return 2
	}
	res := policy.Replay(cand, cache.Observations(in.rows), policy.ReplayOptions{Now: now(), Records: keptRecords(in.records)})
	code := 0
	if len(res.Refuse) > 0 {
		code = 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(policyTestReport{Candidate: candPath, DataDir: in.dataDir, Source: in.source, ReplayResult: res}); err != nil {
			fmt.Fprintf(stderr, "pipgate policy test: %v\n", err)
			return 2
		}
		return code
	}
	if err := printReplay(stdout, candPath, in, res); err != nil {
		fmt.Fprintf(stderr, "pipgate policy test: %v\n", err)
		return 2
	}
	return code
}

// printReplay prints the replay for people.
func printReplay(w io.Writer, cand string, in *learnInput, res policy.ReplayResult) error {
	fmt.Fprintf(w, "%s replayed over %d files of the decision history in %s (read from the %s): %s.\n",
		cand, res.Files, in.dataDir, in.source, in.summary())
	section := func(title string, files []policy.ReplayFile) {
		fmt.Fprintf(w, "\n%s: %d\n", title, len(files))
		for _, f := range files {
			fmt.Fprintf(w, "  %s %s  %s\n", f.Project, dash(f.Version), f.Filename)
			fmt.Fprintf(w, "    before: %s (%s, rule %s), %d served, %d refused, last %s\n", f.Before.Action, f.Before.Verdict,
				dash(f.Before.Rule), f.Served, f.Refused, f.LastSeen.UTC().Format(time.RFC3339))
			if f.After != nil {
				fin := ""
				if f.After.Finding != "" {
					fin = ", " + string(f.After.Finding)
				}
				fmt.Fprintf(w, "    now:    %s (%s, rule %s%s): %s\n", f.After.Action, f.After.Verdict, f.After.Rule, fin, f.After.Reason)
			}
			if f.Note != "" {
				fmt.Fprintf(w, "    note:   %s\n", f.Note)
			}
		}
	}
	section("Served, would now be REFUSED (403)", res.Refuse)
	section("Refused, would now be served", res.Allow)
	section("Served, would now be listed as yanked (installed only when pinned)", res.Yank)
	if len(res.Skipped) > 0 {
		section("Not replayed", res.Skipped)
	}
	fmt.Fprintf(w, "\nUnchanged: %d files.\n", res.Unchanged)
	if len(res.Records) > 0 {
		fmt.Fprintln(w, "\nContinuity records replayed against:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PROJECT\tSOURCE\tPUBLISHER OF RECORD\tFIRST ATTESTED FILE\tNOTE")
		for _, r := range res.Records {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.Project, r.Source, dash(r.Publisher), dash(r.First), dash(r.Note))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(res.Refuse) > 0 {
		_, err := fmt.Fprintf(w, "\nFAIL: %s would refuse %d files that were served.\n", cand, len(res.Refuse))
		return err
	}
	_, err := fmt.Fprintf(w, "\nOK: %s refuses no file that was served.\n", cand)
	return err
}
