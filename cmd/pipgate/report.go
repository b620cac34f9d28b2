package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/policy"
)

const reportUsage = `usage: pipgate report [--config FILE] [--data-dir DIR] [--json | --csv]

Prints the attestation coverage of what pipgate decided, from the decision
history: per project the files decided, served (at least once), downloads
served, files verified, unattested, invalid, unsupported, unknown (never
checked: verification errors only) and blocked (refused at least once), the
verified publishers, the rule of the policy in force, and a state:
  enforced     the rule requires a trusted publisher
  enforceable  every file served has a verified attestation: a
               trusted-publisher rule for its publishers refuses none of them
               ('pipgate policy suggest' writes it)
  partial      some files served have one, some do not
  unattested   no verified attestation
then the totals and the projects enforceable today. The same is on the
status page at /-/report (HTML; JSON with Accept: application/json).

Exit 0, 1 when the history cannot be read, 2 on a usage error.

flags:
`

// coverageReport is what 'pipgate report --json' prints (and /-/report).
type coverageReport struct {
	DataDir string `json:"data_dir"`
	Source  string `json:"source"`
	Policy  string `json:"policy"`
	policy.Coverage
}

func runReport(_ context.Context, args []string, stdout, stderr io.Writer) int {
	var hf historyFlags
	set := flag.NewFlagSet("pipgate report", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	hf.register(set)
	asJSON := set.Bool("json", false, "print JSON")
	asCSV := set.Bool("csv", false, "print CSV: one line per project, then TOTAL")
	pos, err := parseInterspersed(set, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, reportUsage)
		set.SetOutput(stdout)
		set.PrintDefaults()
		return 0
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "pipgate report: %v\n", err)
		return 2
	case len(pos) > 0:
		fmt.Fprintf(stderr, "pipgate report: unexpected argument %q\n", pos[0])
		return 2
	case *asJSON && *asCSV:
		fmt.Fprintln(stderr, "pipgate report: --json or --csv, not both")
		return 2
	}
	in, err := readLearnInput(hf, false, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pipgate report: %v\n", err)
		return 1
	}
	c := policy.CoverageOf(in.pol, cache.Observations(in.rows))
	switch {
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(coverageReport{DataDir: in.dataDir, Source: in.source, Policy: in.policyName(), Coverage: c})
	case *asCSV:
		err = writeCoverageCSV(stdout, c)
	default:
		fmt.Fprintf(stdout, "Attestation coverage of the decision history in %s (read from the %s): %s.\nPolicy in force: %s.\n\n",
			in.dataDir, in.source, in.summary(), in.policyName())
		err = writeCoverageTable(stdout, c)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pipgate report: %v\n", err)
		return 1
	}
	return 0
}

var coverageColumns = []string{"project", "state", "rule", "files", "served", "downloads", "verified", "unattested", "invalid", "unsupported", "unknown", "blocked", "publishers"}

func coverageRow(name, state, rule string, n policy.CoverageCounts, pubs []policy.PublisherCount) []string {
	ps := make([]string, len(pubs))
	for i, p := range pubs {
		ps[i] = fmt.Sprintf("%s (%s: %s)", p.Publisher, policyPlural(p.Files, "file"), strings.Join(p.Versions, " "))
	}
	itoa := strconv.Itoa
	return []string{name, state, rule, itoa(n.Files), itoa(n.Served), strconv.FormatInt(n.Downloads, 10), itoa(n.Verified),
		itoa(n.Unattested), itoa(n.Invalid), itoa(n.Unsupported), itoa(n.Unknown), itoa(n.Blocked), strings.Join(ps, "; ")}
}

func writeCoverageCSV(w io.Writer, c policy.Coverage) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(coverageColumns)
	for _, p := range c.Projects {
		_ = cw.Write(coverageRow(p.Project, p.State, p.Rule, p.CoverageCounts, p.Publishers))
	}
	_ = cw.Write(coverageRow("TOTAL", "", "", c.Totals, nil))
	cw.Flush()
	return cw.Error()
}

func writeCoverageTable(w io.Writer, c policy.Coverage) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(coverageColumns, "\t")))
	for _, p := range c.Projects {
		r := coverageRow(p.Project, p.State, p.Rule, p.CoverageCounts, p.Publishers)
		r[len(r)-1] = dash(r[len(r)-1])
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	r := coverageRow("TOTAL", "", "", c.Totals, nil)
	r[1], r[2], r[len(r)-1] = "-", "-", "-"
	fmt.Fprintln(tw, strings.Join(r, "\t"))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(c.Enforceable) == 0 {
		_, err := fmt.Fprintln(w, "\nEnforceable today: none.")
		return err
	}
	_, err := fmt.Fprintf(w, "\nEnforceable today (%d): %s\n('pipgate policy suggest' writes their rules; 'pipgate policy test' shows what a policy would refuse.)\n",
		len(c.Enforceable), strings.Join(c.Enforceable, ", "))
	return err
}

// policyPlural renders "1 file", "2 files".
func policyPlural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
