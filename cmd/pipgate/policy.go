package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/pipgate/pipgate/policy"
)

const policyUsage = `usage: pipgate policy check FILE...
       pipgate policy from-lock [--require trusted-publisher|attestation] [--action block|yank|warn] PYLOCK.toml
       pipgate policy suggest [--config FILE] [-o OUT] [--min-count N] [--merge]
       pipgate policy test [--config FILE] [--json] CANDIDATE.yaml

check validates policy files: strict YAML (an unknown field is an error),
version 1, known values, and rules that can work as written. Prints
"FILE: ok (N rules)" for a good file, or every problem on stderr, one a line,
as "FILE:LINE: path: message".

from-lock writes a policy (stdout) with one rule per project of a PEP 751 lock
file that records [[packages.attestation-identities]]: GitHub repository and
workflow, GitLab repository and workflow_filepath, Google email. With
--require trusted-publisher (the default) a file must be signed by one of
them; with --require attestation any verified attestation will do, and a
publisher other than those and the project's publisher of record (the
signer of its first attested file) is publisher-changed.
--action (default block) applies when a file falls short. The output passes
check; identities pipgate cannot check (ActiveState) are noted on stderr.

Exit status: 0 ok, 1 a file is invalid, 2 usage or I/O error.

suggest writes a policy learned from the decision history; test replays the
history under a candidate policy. Each has its own --help and exit status.
`

// runPolicy runs 'pipgate policy check|from-lock|suggest|test'.
func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, policyUsage)
		return 0
	case "check":
		return runPolicyCheck(args[1:], stdout, stderr)
	case "from-lock":
		return runPolicyFromLock(ctx, args[1:], stdout, stderr, time.Now)
	case "suggest":
		return runPolicySuggest(args[1:], stdout, stderr, time.Now)
	case "test":
		return runPolicyTest(args[1:], stdout, stderr, time.Now)
	}
	fmt.Fprintf(stderr, "pipgate policy: unknown subcommand %q\n", args[0])
	fmt.Fprint(stderr, policyUsage)
	return 2
}

func runPolicyCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pipgate policy check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, policyUsage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "pipgate policy check: missing FILE")
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	code := 0
	for _, file := range fs.Args() {
		p, err := policy.Load(file)
		if err == nil {
			n := len(p.Rules())
			noun := "rules"
			if n == 1 {
				noun = "rule"
			}
			fmt.Fprintf(stdout, "%s: ok (%d %s)\n", file, n, noun)
			continue
		}
		probs := policy.Problems(err)
		if len(probs) == 0 {
			fmt.Fprintf(stderr, "pipgate policy check: %v\n", err)
			code = 2
			continue
		}
		for _, pr := range probs {
			loc := file
			if pr.Line > 0 {
				loc += ":" + strconv.Itoa(pr.Line)
			}
			if pr.Path != "" {
				fmt.Fprintf(stderr, "%s: %s: %s\n", loc, pr.Path, pr.Msg)
			} else {
				fmt.Fprintf(stderr, "%s: %s\n", loc, pr.Msg)
			}
		}
		code = max(code, 1)
	}
	return code
}
