package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pipgate/pipgate/config"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/pypi"
)

const verifyUsage = `usage: pipgate verify [flags] DIST...
       pipgate verify [flags] [--provenance FILE | --attestation FILE]... DIST

Verifies local distribution files offline against their PEP 740 provenance
(the Integrity API object PyPI serves) or single attestations, and prints
the signer identity read from the verified certificate, or why it failed.
Without --provenance and --attestation, each DIST is checked against the
file beside it: DIST.provenance, else DIST.publish.attestation and
DIST.attestation (what 'pypi-attestations sign' writes). Every attestation
in every file must verify. A provenance object is checked against the
publisher PyPI recorded in it; bare attestations carry no publisher, so
their identity is printed for you (or --policy) to judge. Flags may come
before or after the DISTs.

Flags:
  --provenance FILE    an Integrity API provenance object (repeatable; one DIST)
  --attestation FILE   a single PEP 740 attestation (repeatable; one DIST)
  --trusted-root FILE  a Sigstore trusted_root.json (production, staging or
                       private); default: Sigstore public-good through TUF,
                       else its last saved copy, else the snapshot embedded
                       in pipgate (production, no --tuf-url)
  --staging            with TUF: use Sigstore staging instead of production
  --tuf-cache DIR      TUF cache and last good root (default: the user cache
                       directory, pipgate/tuf)
  --tuf-url URL        TUF repository (default: Sigstore's)
  --policy FILE        also apply the policy rule of each DIST's project
  --project NAME       project for --policy (default: parsed from DIST; one DIST)
  --json               print a JSON array, one object per DIST

Each provenance or attestation file may hold at most 4 MiB; a larger one is
refused by its size, unread. DISTs are hashed as streams, and the inputs
are read one at a time, so memory does not grow with the files.

The first line for each DIST is its outcome: "verified", why it is not
("not verified: unattested: ..." when nothing attests it, or the verdict
and reason), or "refused by policy: ..." with the verification below it.

Exit status: 0 every DIST verified (and allowed by --policy when given),
1 one not verified (a DIST with no provenance or attestation included) or
not allowed, 2 usage or I/O error (or interrupted).
`

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// verifyResult is the outcome for one DIST (the --json output).
type verifyResult struct {
	File       string          `json:"file"`
	SHA256     string          `json:"sha256,omitempty"`
	Inputs     []string        `json:"inputs,omitempty"` // the provenance and attestation files used
	Verdict    pypi.Verdict    `json:"verdict,omitempty"`
	Reason     pypi.Reason     `json:"reason,omitempty"`
	Detail     string          `json:"detail,omitempty"`
	Signer     *pypi.Identity  `json:"signer,omitempty"`
	Recorded   *pypi.Publisher `json:"recorded_publisher,omitempty"`
	Predicates []string        `json:"predicate_types,omitempty"`
	Policy     *verifyPolicy   `json:"policy,omitempty"`
	Hint       string          `json:"hint,omitempty"`
	// Error is an I/O or usage problem with this DIST (exit status 2).
	Error string `json:"error,omitempty"`

	project     string   // for the policy
	provs, atts []string // input paths by kind, read one at a time by verifyOne
}

type verifyPolicy struct {
	Project string        `json:"project"`
	Action  policy.Action `json:"action"`
	Rule    string        `json:"rule"`
	Verdict pypi.Verdict  `json:"verdict"`
	Reason  string        `json:"reason"`
}

// code is the exit status this result calls for.
func (r *verifyResult) code() int {
	switch {
	case r.Error != "":
		return 2
	case r.Verdict != pypi.VerdictVerified:
		return 1
	case r.Policy != nil && r.Policy.Action != policy.ActionAllow:
		return 1
	}
	return 0
}

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
	asJSON := fs.Bool("json", false, "")
	dists, err := parseInterspersed(fs, args)
	if err != nil {
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
	case len(dists) == 0:
		return usageErr("missing DIST")
	case len(dists) > 1 && len(provs)+len(atts) > 0:
		return usageErr("--provenance and --attestation apply to one DIST; with several, each uses DIST.provenance beside it")
	case len(dists) > 1 && *project != "":
		return usageErr("--project applies to one DIST")
	}

	var pol *policy.Policy
	if *policyPath != "" {
		if pol, err = policy.Load(*policyPath); err != nil {
			probs := policy.Problems(err)
			if len(probs) == 0 {
				fmt.Fprintf(stderr, "pipgate verify: %v\n", err)
				return 2
			}
			for _, pr := range probs {
				fmt.Fprintln(stderr, (&config.Error{File: *policyPath, Line: pr.Line, Path: pr.Path, Msg: pr.Msg}).Error())
			}
			return 2
		}
	}
	// Each DIST is hashed as a stream; its inputs are read later, one at a
	// time and at most provenance.MaxProvenanceSize of each, so memory is
	// bounded by that limit, not by the files.
	results := make([]*verifyResult, 0, len(dists))
	ready := 0
	for _, dist := range dists {
		r := prepareVerify(ctx, dist, provs, atts, pol, *project)
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "pipgate verify: interrupted")
			return 2
		}
		results = append(results, r)
		if r.Error == "" && r.Verdict == "" {
			ready++
		}
	}
	if ready == 0 {
		return printVerifyResults(results, *asJSON, stdout, stderr)
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

	for _, r := range results {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "pipgate verify: interrupted")
			return 2
		}
		if r.Error == "" && r.Verdict == "" {
			verifyOne(v, r, pol, *staging || *trustedRoot != "")
		}
	}
	return printVerifyResults(results, *asJSON, stdout, stderr)
}

func printVerifyResults(results []*verifyResult, asJSON bool, stdout, stderr io.Writer) int {
	code := 0
	for _, r := range results {
		code = max(code, r.code())
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintf(stderr, "pipgate verify: %v\n", err)
			return 2
		}
		return code
	}
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(stderr, "pipgate verify: %s: %s\n", r.File, r.Error)
			continue
		}
		printResult(stdout, r)
	}
	return code
}

// besideDist returns the provenance or attestation files next to dist:
// DIST.provenance, else DIST.publish.attestation and DIST.attestation.
func besideDist(dist string) (provs, atts []string, err error) {
	if _, err := os.Stat(dist + ".provenance"); err == nil {
		return []string{dist + ".provenance"}, nil, nil
	}
	for _, suffix := range []string{".publish.attestation", ".attestation"} {
		if _, err := os.Stat(dist + suffix); err == nil {
			atts = append(atts, dist+suffix)
		}
	}
	if len(atts) == 0 {
		return nil, nil, fmt.Errorf("%w: no %s.provenance (nor .publish.attestation or .attestation) beside it; give --provenance or --attestation",
			errNothingBeside, filepath.Base(dist))
	}
	return nil, atts, nil
}

// errNothingBeside: no provenance or attestation file beside a DIST.
var errNothingBeside = errors.New("unattested")

// prepareVerify hashes one DIST (as a stream: a DIST of any size costs a
// buffer) and finds the provenance or attestation files for it, without
// reading them. A DIST with none is unattested: not verified (exit 1), with
// the policy's decision when --policy is given. An I/O or usage problem is
// left in the result's Error.
func prepareVerify(ctx context.Context, distPath string, provs, atts []string, pol *policy.Policy, project string) *verifyResult {
	r := &verifyResult{File: distPath}
	sum, err := hashFile(ctx, distPath)
	if err != nil {
		r.Error = config.PathErrorText(err)
		return r
	}
	r.SHA256 = sum
	name := filepath.Base(distPath)
	if pol != nil && project == "" {
		fn, err := pypi.ParseFilename(name)
		if err != nil {
			r.Error = fmt.Sprintf("cannot tell the project of %s for --policy (use --project): %v", name, err)
			return r
		}
		project = fn.Name
	}
	r.project = project
	if len(provs)+len(atts) == 0 {
		if provs, atts, err = besideDist(distPath); err != nil {
			facts := pypi.Facts{Verdict: pypi.VerdictUnattested, Detail: strings.TrimPrefix(err.Error(), errNothingBeside.Error()+": ")}
			r.Verdict, r.Detail = facts.Verdict, facts.Detail
			decidePolicy(r, pol, facts)
			return r
		}
	}
	r.provs, r.atts = provs, atts
	r.Inputs = append(append([]string{}, provs...), atts...)
	return r
}

// hashFile returns the hex SHA-256 of the file at path, read as a stream;
// it stops when ctx ends.
func hashFile(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader fails its reads once ctx has ended.
type ctxReader struct {
	ctx context.Context //nolint:containedctx // lives for one io.Copy
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// tooLargeError is an input over its limit, found before it was read (by
// its size) or while reading it (a stream, or a file that grew).
type tooLargeError struct {
	Size  int64 // 0 when only "more than Limit" is known
	Limit int64
}

func (e *tooLargeError) Error() string {
	if e.Size > 0 {
		return fmt.Sprintf("%d bytes, more than the limit of %d for a provenance object or attestation", e.Size, e.Limit)
	}
	return fmt.Sprintf("more than the limit of %d bytes for a provenance object or attestation", e.Limit)
}

// readBounded reads the file at path if it holds at most limit bytes: the
// size is checked before reading (stat), and the read stops at limit+1
// bytes whatever the file turns out to be.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, &tooLargeError{Size: fi.Size(), Limit: limit}
	}
	var b bytes.Buffer
	b.Grow(int(fi.Size()) + 512)
	if _, err := b.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	if int64(b.Len()) > limit {
		return nil, &tooLargeError{Limit: limit}
	}
	return b.Bytes(), nil
}

// decidePolicy records pol's decision for r's project on facts.
func decidePolicy(r *verifyResult, pol *policy.Policy, facts pypi.Facts) {
	if pol == nil {
		return
	}
	dec := pol.Decide(r.project, facts)
	r.Policy = &verifyPolicy{Project: r.project, Action: dec.Action, Rule: dec.Rule, Verdict: dec.Verdict, Reason: dec.Reason}
}

// verifyOne verifies a prepared DIST. customRoot says the trust root was
// chosen (--trusted-root or --staging), for the hint on a failure.
func verifyOne(v *provenance.Verifier, r *verifyResult, pol *policy.Policy, customRoot bool) {
	d := provenance.Dist{Filename: filepath.Base(r.File), SHA256: r.SHA256}

	facts := pypi.Facts{Verdict: pypi.VerdictVerified}
	var predicates []string
	var failedInput []byte
	record := func(path string, input []byte, res *provenance.Result, err error) {
		if facts.Verdict != pypi.VerdictVerified {
			return // the first failure is the one reported
		}
		if err != nil {
			failedInput = input
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
		} else if !facts.Identity.SameSigner(res.Identity) {
			facts = pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: provenance.ReasonIdentityMismatch,
				Detail: fmt.Sprintf("%s: signed by %s, but the others by %s", path, res.Identity, facts.Identity)}
			return
		}
		if res.Recorded != nil && facts.Recorded == nil {
			facts.Recorded = res.Recorded
		}
		predicates = append(predicates, res.PredicateTypes...)
	}
	// One input at a time, each read only when its size is within the
	// limit; the first failure ends the loop (it is the one reported).
	for i, p := range r.Inputs {
		input, err := readBounded(p, provenance.MaxProvenanceSize)
		var tooLarge *tooLargeError
		switch {
		case errors.As(err, &tooLarge):
			facts = pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: provenance.ReasonFormat, Detail: p + ": " + err.Error()}
		case err != nil:
			r.Error = config.PathErrorText(err)
			return
		case i < len(r.provs):
			res, err := v.VerifyProvenance(input, d)
			record(p, input, res, err)
		default:
			res, err := v.VerifyAttestation(input, d, nil)
			record(p, input, res, err)
		}
		if facts.Verdict != pypi.VerdictVerified {
			break
		}
	}
	if facts.Verdict == pypi.VerdictVerified && facts.Recorded != nil && !facts.Recorded.Matches(*facts.Identity) {
		// Attestations given beside a provenance must match its publisher too.
		facts = pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: provenance.ReasonIdentityMismatch, Recorded: facts.Recorded,
			Detail: fmt.Sprintf("signer %s does not match the recorded publisher %s", facts.Identity, facts.Recorded)}
	}
	r.Verdict, r.Reason, r.Detail, r.Recorded = facts.Verdict, facts.Reason, facts.Detail, facts.Recorded
	if facts.Verdict == pypi.VerdictVerified {
		r.Signer, r.Predicates = facts.Identity, predicates
	}
	if facts.Reason == provenance.ReasonSignature && failedInput != nil {
		r.Hint = otherInstanceHint(v.UnknownLogs(failedInput), customRoot)
	}
	decidePolicy(r, pol, facts)
}

// knownLogs names the public Sigstore instances' Rekor logs by hex log ID
// (from their trusted_root.json), for the hint after a signature failure.
var knownLogs = map[string]string{
	"c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d": "production", // rekor.sigstore.dev
	"cf1199155bddd051268d1f16ac5c0c75c009f6fb5a63f4177f8e18d7051e3fa0": "production", // log2025-1.rekor.sigstore.dev
	"d32f30a3c32d639c2b762205a21c7bb07788e68283a4ae6f42118723a1bea496": "staging",    // rekor.sigstage.dev
	"f30d5a999d92e662484244263f174cb8eacbfe8264bc583d32741799e3825dc9": "staging",    // log2025-alpha1.rekor.sigstage.dev
	"29f4a2497da244bca12bad925152f8eef55caaa471fd101ec292899bc21d653a": "staging",    // log2025-alpha2.rekor.sigstage.dev
	"d3d3a70ca130eff8696626153e84d1cd16e0947934b3296c528bde8274549496": "staging",    // log2025-alpha3.rekor.sigstage.dev
}

// otherInstanceHint explains a signature failure whose attestations sit in
// transparency logs the trust root does not know: signed with another
// Sigstore instance. "" when every log is known.
func otherInstanceHint(unknown []string, customRoot bool) string {
	if len(unknown) == 0 {
		return ""
	}
	switch knownLogs[unknown[0]] {
	case "staging":
		return "signed with Sigstore staging (its transparency log is not in this trust root): retry with --staging, or --trusted-root with staging's trusted_root.json"
	case "production":
		if customRoot {
			return "signed with Sigstore production (public-good), whose transparency log this trust root lacks: retry without --staging, or with --trusted-root of production's trusted_root.json"
		}
	}
	return "the attestations were logged in a transparency log this trust root does not know (log ID " + unknown[0] +
		"): signed with another Sigstore instance? Pass its trusted_root.json with --trusted-root (or --staging for Sigstore staging)"
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

func printResult(w io.Writer, r *verifyResult) {
	name := filepath.Base(r.File)
	var verification string
	switch r.Verdict {
	case pypi.VerdictVerified:
		verification = "verified"
	case pypi.VerdictUnattested:
		verification = "not verified: unattested: " + r.Detail
	default:
		verification = fmt.Sprintf("%s (%s): %s", r.Verdict, r.Reason, r.Detail)
	}
	// The first line is the final outcome: a policy refusal leads, with the
	// verification below it; never a bare "verified" above a refusal.
	p := r.Policy
	refused := p != nil && p.Action != policy.ActionAllow
	if refused {
		fmt.Fprintf(w, "%s: refused by policy: %s (rule %s, verdict %s): %s\n", name, p.Action, p.Rule, p.Verdict, p.Reason)
		fmt.Fprintf(w, "  verification: %s\n", verification)
	} else {
		fmt.Fprintf(w, "%s: %s\n", name, verification)
	}
	fmt.Fprintf(w, "  sha256:      %s\n", r.SHA256)
	if id := r.Signer; id != nil {
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
		line("predicates", strings.Join(r.Predicates, ", "))
	}
	if r.Recorded != nil {
		fmt.Fprintf(w, "  recorded:    %s\n", r.Recorded)
	}
	if p != nil && !refused {
		fmt.Fprintf(w, "  policy:      %s (rule %s, verdict %s): %s\n", p.Action, p.Rule, p.Verdict, p.Reason)
	}
	if r.Hint != "" {
		fmt.Fprintf(w, "  hint:        %s\n", r.Hint)
	}
}
