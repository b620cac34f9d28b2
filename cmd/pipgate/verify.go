package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/pypi"
)

const verifyUsage = `usage: pipgate verify [flags] [--provenance FILE | --attestation FILE]... DIST

Verifies a local distribution file offline against its PEP 740 provenance
(the Integrity API object PyPI serves) or single attestations, and prints
the signer identity read from the verified certificate, or why it failed.
Every attestation in every file must verify. A provenance object is checked
against the publisher PyPI recorded in it; bare attestations carry no
publisher, so their identity is printed for you (or --policy) to judge.

Flags:
  --provenance FILE    an Integrity API provenance object (repeatable)
  --attestation FILE   a single PEP 740 attestation (repeatable)
  --trusted-root FILE  a Sigstore trusted_root.json (production, staging or
                       private); default: Sigstore public-good through TUF,
                       which needs the network or a cached copy
  --staging            with TUF: use Sigstore staging instead of production
  --tuf-cache DIR      TUF cache and last good root (default: the user cache
                       directory, pipgate/tuf)
  --tuf-url URL        TUF repository (default: Sigstore's)
  --policy FILE        also apply the policy rule of DIST's project
  --project NAME       project for --policy (default: parsed from DIST)

Exit status: 0 verified (and allowed by --policy when given), 1 not
verified or not allowed, 2 usage or I/O error.
`

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// runVerify runs 'pipgate verify'.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pipgate verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, verifyUsage) }
	var provs, atts multiFlag
	fs.Var(&provs, "provenance", "")
	fs.Var(&atts, "attestation", "")
	trustedRoot := fs.String("trusted-root", "", "")
	staging := fs.Bool("staging", false, "")
	tufCache := fs.String("tuf-cache", "", "")
	tufURL := fs.String("tuf-url", "", "")
	policyPath := fs.String("policy", "", "")
	project := fs.String("project", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageErr := func(msg string) int {
		fmt.Fprintln(stderr, "pipgate verify: "+msg)
		fmt.Fprint(stderr, verifyUsage)
		return 2
	}
	switch {
	case fs.NArg() == 0:
		return usageErr("missing DIST")
	case fs.NArg() > 1:
		return usageErr("one DIST at a time (flags go before it)")
	case len(provs)+len(atts) == 0:
		return usageErr("give --provenance or --attestation")
	}
	distPath := fs.Arg(0)
	content, err := os.ReadFile(distPath)
	if err != nil {
		fmt.Fprintf(stderr, "pipgate verify: %v\n", err)
		return 2
	}
	sum := sha256.Sum256(content)
	d := provenance.Dist{Filename: filepath.Base(distPath), SHA256: hex.EncodeToString(sum[:])}

	var pol *policy.Policy
	if *policyPath != "" {
		if pol, err = policy.Load(*policyPath); err != nil {
			fmt.Fprintf(stderr, "pipgate verify: %v\n", err)
			return 2
		}
		if *project == "" {
			fn, err := pypi.ParseFilename(d.Filename)
			if err != nil {
				fmt.Fprintf(stderr, "pipgate verify: cannot tell the project of %s for --policy (use --project): %v\n", d.Filename, err)
				return 2
			}
			*project = fn.Name
		}
	}

	inputs := make([][]byte, 0, len(provs)+len(atts))
	for _, p := range append(append([]string{}, provs...), atts...) {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(stderr, "pipgate verify: %v\n", err)
			return 2
		}
		inputs = append(inputs, b)
	}

	src, err := trustSource(ctx, *trustedRoot, *staging, *tufCache, *tufURL)
	if err != nil {
		fmt.Fprintf(stderr, "pipgate verify: %v\n", err)
		if *trustedRoot == "" {
			fmt.Fprintln(stderr, "pipgate verify: offline? pass --trusted-root FILE with a Sigstore trusted_root.json")
		}
		return 2
	}
	v := src.Verifier()

	facts := pypi.Facts{Verdict: pypi.VerdictVerified}
	var predicates []string
	record := func(path string, res *provenance.Result, err error) {
		if facts.Verdict != pypi.VerdictVerified {
			return // the first failure is the one reported
		}
		if err != nil {
			facts = pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: provenance.ReasonOf(err), Detail: path + ": " + err.Error()}
			var e *provenance.Error
			if errors.As(err, &e) {
				facts.Detail = path + ": " + e.Detail
				if e.Reason == provenance.ReasonUnsupported {
					facts.Verdict = pypi.VerdictUnsupported
				}
			}
			if res != nil {
				facts.Recorded = res.Recorded
			}
			return
		}
		if facts.Identity == nil {
			id := res.Identity
			facts.Identity = &id
		} else if !sameSigner(*facts.Identity, res.Identity) {
			facts = pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: provenance.ReasonIdentityMismatch,
				Detail: fmt.Sprintf("%s: signed by %s, but the others by %s", path, res.Identity, facts.Identity)}
			return
		}
		if res.Recorded != nil && facts.Recorded == nil {
			facts.Recorded = res.Recorded
		}
		predicates = append(predicates, res.PredicateTypes...)
	}
	for i, p := range provs {
		res, err := v.VerifyProvenance(inputs[i], d)
		record(p, res, err)
	}
	for i, p := range atts {
		res, err := v.VerifyAttestation(inputs[len(provs)+i], d, nil)
		record(p, res, err)
	}
	if facts.Verdict == pypi.VerdictVerified && facts.Recorded != nil && !facts.Recorded.Matches(*facts.Identity) {
		// Attestations given beside a provenance must match its publisher too.
		facts = pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: provenance.ReasonIdentityMismatch, Recorded: facts.Recorded,
			Detail: fmt.Sprintf("signer %s does not match the recorded publisher %s", facts.Identity, facts.Recorded)}
	}

	printFacts(stdout, d, facts, predicates)
	code := 0
	if facts.Verdict != pypi.VerdictVerified {
		code = 1
	}
	if pol != nil {
		dec := pol.Decide(*project, facts)
		fmt.Fprintf(stdout, "  policy:      %s (rule %s, verdict %s): %s\n", dec.Action, dec.Rule, dec.Verdict, dec.Reason)
		if dec.Action != policy.ActionAllow {
			code = 1
		}
	}
	return code
}

func sameSigner(a, b pypi.Identity) bool {
	return a.Kind == b.Kind && a.Issuer == b.Issuer && a.Repository == b.Repository &&
		a.Workflow == b.Workflow && a.Email == b.Email && (a.Kind != pypi.KindIdentity || a.Subject == b.Subject)
}

func trustSource(ctx context.Context, trustedRoot string, staging bool, cacheDir, tufURL string) (*provenance.TrustSource, error) {
	if trustedRoot != "" {
		return provenance.NewTrustSource(ctx, provenance.TrustSourceOptions{TrustedRootPath: trustedRoot})
	}
	if cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache directory for TUF (use --tuf-cache or --trusted-root): %w", err)
		}
		cacheDir = filepath.Join(base, "pipgate", "tuf")
		if staging {
			cacheDir += "-staging"
		}
	}
	return provenance.NewTrustSource(ctx, provenance.TrustSourceOptions{
		CacheDir:    cacheDir,
		MirrorURL:   tufURL,
		Staging:     staging,
		HTTPTimeout: 10 * time.Second,
		MaxTries:    1,
	})
}

func printFacts(w io.Writer, d provenance.Dist, f pypi.Facts, predicates []string) {
	switch f.Verdict {
	case pypi.VerdictVerified:
		fmt.Fprintf(w, "%s: verified\n", d.Filename)
	default:
		fmt.Fprintf(w, "%s: %s (%s): %s\n", d.Filename, f.Verdict, f.Reason, f.Detail)
	}
	fmt.Fprintf(w, "  sha256:      %s\n", d.SHA256)
	if id := f.Identity; id != nil && f.Verdict == pypi.VerdictVerified {
		fmt.Fprintf(w, "  signer:      %s\n", id)
		line := func(k, v string) {
			if v != "" {
				fmt.Fprintf(w, "  %-12s %s\n", k+":", v)
			}
		}
		line("issuer", id.Issuer)
		line("subject", id.Subject)
		line("repository", id.Repository)
		line("workflow", id.Workflow)
		line("ref", id.Ref)
		line("commit", id.Commit)
		line("email", id.Email)
		line("predicates", strings.Join(predicates, ", "))
	}
	if f.Recorded != nil {
		fmt.Fprintf(w, "  recorded:    %s\n", f.Recorded)
	}
}
