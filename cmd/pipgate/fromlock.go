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
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// maxLockSize is the largest lock file from-lock reads.
const maxLockSize = 32 << 20

// maxListed is how many names, versions or notes from-lock lists in a
// comment (and notes on stderr) before "and N more".
const maxListed = 20

// fromLockOptions configure policyFromLock.
type fromLockOptions struct {
	Require policy.Require // RequireTrustedPublisher or RequireAttestation
	Action  policy.Action  // block, yank or warn
	Source  string         // the lock's path, for the header comment
	Now     time.Time      // for the header comment
}

// lockRule is one rule to write: a project and its publishers.
type lockRule struct {
	name         string
	versions     []string // the first maxListed, for the comment
	moreVersions int
	versionSet   map[string]struct{}
	publishers   []pypi.Publisher
	pubSet       map[pypi.Publisher]struct{}
}

// fromLock collects the rules of a lock, one package at a time. Every step
// is constant time (maps, not list searches), and what it keeps is bounded
// by the output, which may not pass policy.MaxFileSize: the listed names,
// versions and notes are capped at maxListed, and the projects locked
// without identities are kept as 64-bit hashes, to be counted.
type fromLock struct {
	opts    fromLockOptions
	rules   []*lockRule
	byName  map[string]*lockRule
	seed    maphash.Seed
	bare    map[uint64]struct{} // hashes of projects locked without identities
	bareFew []string            // the first of them, in lock order
	notes   []string            // the first maxListed notes
	more    int                 // notes left out of notes
	size    int                 // a lower bound of the output's size
	i       int                 // index of the next package
}

func newFromLock(opts fromLockOptions) *fromLock {
	return &fromLock{opts: opts, byName: map[string]*lockRule{}, seed: maphash.MakeSeed(), bare: map[uint64]struct{}{}}
}

func (f *fromLock) note(format string, args ...any) {
	if len(f.notes) < maxListed {
		f.notes = append(f.notes, fmt.Sprintf(format, args...))
	} else {
		f.more++
	}
}

// errPolicyTooLarge: the policy would not load (policy.MaxFileSize).
var errPolicyTooLarge = fmt.Errorf("the policy would be larger than %d bytes, the most a policy file may be", policy.MaxFileSize)

// add takes the next package of the lock.
func (f *fromLock) add(pkg lockPackage) error {
	i := f.i
	f.i++
	if !pypi.ValidProjectName(pkg.Name) {
		return fmt.Errorf("parsing lock: packages[%d].name: invalid project name %q", i, pkg.Name)
	}
	name := pypi.NormalizeName(pkg.Name)
	if len(pkg.AttestationIdentites) == 0 {
		h := maphash.String(f.seed, name)
		if _, seen := f.bare[h]; !seen {
			f.bare[h] = struct{}{}
			if len(f.bareFew) < 3*maxListed {
				f.bareFew = append(f.bareFew, name)
			}
		}
		return nil
	}
	var pubs []pypi.Publisher
	for j, id := range pkg.AttestationIdentites {
		pub, err := lockPublisher(id)
		if err == nil {
			err = checkPublisher(pub)
		}
		if err != nil {
			f.note("packages[%d].attestation-identities[%d] (%s): %v; left out", i, j, name, err)
			continue
		}
		pubs = append(pubs, pub)
	}
	if len(pubs) == 0 {
		f.note("%s: no attestation identity pipgate can check; no rule written", name)
		return nil
	}
	r := f.byName[name]
	if r == nil {
		r = &lockRule{name: name, versionSet: map[string]struct{}{}, pubSet: map[pypi.Publisher]struct{}{}}
		f.byName[name] = r
		f.rules = append(f.rules, r)
		f.size += len(name) + 60 // "  - name: "x"\n    require: ...\n    action: ...\n    publishers:\n"
	}
	if _, seen := r.versionSet[pkg.Version]; pkg.Version != "" && !seen {
		r.versionSet[pkg.Version] = struct{}{}
		if len(r.versions) < maxListed {
			r.versions = append(r.versions, pkg.Version)
		} else {
			r.moreVersions++
		}
	}
	for _, p := range pubs {
		if _, seen := r.pubSet[p]; !seen {
			r.pubSet[p] = struct{}{}
			r.publishers = append(r.publishers, p)
			f.size += 20 + len(p.Repository) + len(p.Workflow) + len(p.Email)
		}
	}
	if f.size > policy.MaxFileSize {
		return fmt.Errorf("%w: %d rules by packages[%d] (%s); write a policy for fewer projects", errPolicyTooLarge, len(f.rules), i, name)
	}
	return nil
}

// policyFromLock turns a PEP 751 lock into a policy: one rule per locked
// project that records attestation identities, whose publishers are those
// identities. Identities of a kind pipgate cannot match (ActiveState, or an
// unknown kind) are reported in notes and left out; a project left with
// none gets no rule. The output is checked with [policy.ParseFile] before
// it is returned (so it is no larger than policy.MaxFileSize). It stops
// when ctx ends.
func policyFromLock(ctx context.Context, lock []byte, opts fromLockOptions) (out []byte, notes []string, err error) {
	f := newFromLock(opts)
	add := func(pkg lockPackage) error {
		if f.i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		return f.add(pkg)
	}
	l, err := readLock(ctx, lock, add, func() { f = newFromLock(opts) })
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	var syn *lockSyntaxError
	switch {
	case errors.As(err, &syn):
		return nil, nil, fmt.Errorf("parsing lock: %w", err)
	case err != nil:
		return nil, f.notes, err
	}
	if l.LockVersion == "" {
		return nil, nil, errors.New("parsing lock: no lock-version (is this a PEP 751 pylock.toml?)")
	}
	if major, _, _ := strings.Cut(l.LockVersion, "."); major != "1" {
		return nil, nil, fmt.Errorf("parsing lock: unsupported lock-version %q (want 1.x)", l.LockVersion)
	}
	if f.more > 0 {
		f.notes = append(f.notes, fmt.Sprintf("%d more identities or projects left out, as above", f.more))
	}
	notes = f.notes

	// Projects locked without identities that got no rule either.
	var bare []string
	bareCount := len(f.bare)
	for _, r := range f.rules {
		if _, ok := f.bare[maphash.String(f.seed, r.name)]; ok {
			bareCount--
		}
	}
	for _, n := range f.bareFew {
		if f.byName[n] == nil && len(bare) < maxListed {
			bare = append(bare, n)
		}
	}

	var b bytes.Buffer
	sum := sha256.Sum256(lock)
	fmt.Fprintf(&b, "# Written by `pipgate policy from-lock` at %s\n", opts.Now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# from %s (sha256 %s", oneLineComment(opts.Source), hex.EncodeToString(sum[:]))
	if l.CreatedBy != "" {
		fmt.Fprintf(&b, ", created by %s", oneLineComment(l.CreatedBy))
	}
	fmt.Fprintf(&b, ", lock-version %s).\n", oneLineComment(l.LockVersion))
	fmt.Fprintf(&b, "# One rule per locked project that records PEP 751 attestation identities:\n")
	switch opts.Require {
	case policy.RequireTrustedPublisher:
		fmt.Fprintf(&b, "# its files must carry an attestation from one of them (else %s).\n", opts.Action)
	default:
		fmt.Fprintf(&b, "# its files must carry a verified attestation (else %s), and a publisher\n", opts.Action)
		fmt.Fprintf(&b, "# other than those and the project's publisher of record is a publisher-changed finding.\n")
	}
	if bareCount > 0 {
		fmt.Fprintf(&b, "# Locked without attestation identities (the defaults apply): %s.\n",
			oneLineComment(listMore(bare, bareCount-len(bare))))
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "# Note: %s\n", oneLineComment(n))
	}
	b.WriteString("version: 1\n")
	if len(f.rules) == 0 {
		b.WriteString("packages: []\n")
	} else {
		b.WriteString("packages:\n")
	}
	for i, r := range f.rules {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, nil, fmt.Errorf("interrupted: %w", ctx.Err())
		}
		fmt.Fprintf(&b, "  - name: %s", yamlString(r.name))
		if len(r.versions) > 0 {
			fmt.Fprintf(&b, "  # locked: %s", oneLineComment(listMore(r.versions, r.moreVersions)))
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "    require: %s\n    action: %s\n", opts.Require, opts.Action)
		if opts.Require != policy.RequireTrustedPublisher {
			fmt.Fprintf(&b, "    continuity: %s\n", opts.Action)
		}
		b.WriteString("    publishers:\n")
		for _, p := range r.publishers {
			writePublisher(&b, p)
		}
		if b.Len() > policy.MaxFileSize {
			return nil, notes, fmt.Errorf("%w: %d rules by %s; write a policy for fewer projects", errPolicyTooLarge, i+1, r.name)
		}
	}
	if _, err := policy.ParseFile("from-lock output", b.Bytes()); err != nil {
		return nil, notes, fmt.Errorf("the lock's identities do not make a valid policy: %w", err)
	}
	return b.Bytes(), notes, nil
}

// listMore renders "a, b, c" or "a, b, c and 7 more".
func listMore(items []string, more int) string {
	s := strings.Join(items, ", ")
	if more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// lockPublisher converts one PEP 751 attestation identity (a PEP 740
// publisher object) into a policy publisher. The environment is not part
// of what pipgate compares, so it is dropped.
func lockPublisher(id lockIdentityTOML) (pypi.Publisher, error) {
	switch strings.ToLower(id.Kind) {
	case "github":
		if id.Repository == "" {
			return pypi.Publisher{}, errors.New("kind GitHub without repository")
		}
		return pypi.Publisher{Kind: pypi.KindGitHub, Repository: id.Repository, Workflow: id.Workflow}, nil
	case "gitlab":
		if id.Repository == "" {
			return pypi.Publisher{}, errors.New("kind GitLab without repository")
		}
		return pypi.Publisher{Kind: pypi.KindGitLab, Repository: id.Repository, Workflow: id.WorkflowFilepath}, nil
	case "google":
		if id.Email == "" {
			return pypi.Publisher{}, errors.New("kind Google without email")
		}
		return pypi.Publisher{Kind: pypi.KindGoogle, Email: id.Email}, nil
	case "":
		return pypi.Publisher{}, errors.New("no kind")
	}
	return pypi.Publisher{}, fmt.Errorf("kind %q is not one pipgate can check (GitHub, GitLab, Google)", id.Kind)
}

// checkPublisher reports what the policy validator says about p, in the
// lock's terms (the field, not a line of the generated policy).
func checkPublisher(p pypi.Publisher) error {
	err := policy.CheckPublisher(p)
	if probs := policy.Problems(err); len(probs) > 0 {
		field := probs[0].Path
		if field == "workflow" && p.Kind == pypi.KindGitLab {
			field = "workflow_filepath"
		}
		return fmt.Errorf("%s: %s", field, probs[0].Msg)
	}
	return err
}

// writePublisher writes p as an entry of a rule's publishers list.
func writePublisher(b *bytes.Buffer, p pypi.Publisher) {
	fmt.Fprintf(b, "      - kind: %s\n", p.Kind)
	for _, kv := range [][2]string{{"repository", p.Repository}, {"workflow", p.Workflow}, {"email", p.Email}} {
		if kv[1] != "" {
			fmt.Fprintf(b, "        %s: %s\n", kv[0], yamlString(kv[1]))
		}
	}
}

// yamlString renders s as a YAML double-quoted scalar (JSON's escapes are YAML's).
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// oneLineComment makes s safe inside a YAML comment line.
func oneLineComment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' || r == '\u0085' {
			return ' '
		}
		return r
	}, s)
}

// runPolicyFromLock runs 'pipgate policy from-lock'; it stops when ctx
// ends (SIGINT, SIGTERM).
func runPolicyFromLock(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("pipgate policy from-lock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, policyUsage) }
	require := fs.String("require", string(policy.RequireTrustedPublisher), "trusted-publisher or attestation")
	action := fs.String("action", string(policy.ActionBlock), "block, yank or warn: when a file does not meet the rule")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "pipgate policy from-lock: want exactly one PYLOCK.toml")
		fmt.Fprint(stderr, policyUsage)
		return 2
	}
	opts := fromLockOptions{Require: policy.Require(*require), Action: policy.Action(*action), Now: now()}
	if opts.Require != policy.RequireTrustedPublisher && opts.Require != policy.RequireAttestation {
		fmt.Fprintf(stderr, "pipgate policy from-lock: --require %q: want trusted-publisher or attestation\n", *require)
		return 2
	}
	if opts.Action != policy.ActionBlock && opts.Action != policy.ActionYank && opts.Action != policy.ActionWarn {
		fmt.Fprintf(stderr, "pipgate policy from-lock: --action %q: want block, yank or warn\n", *action)
		return 2
	}
	path := fs.Arg(0)
	opts.Source = filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "pipgate policy from-lock: %v\n", err)
		return 2
	}
	defer f.Close()
	lock, err := io.ReadAll(io.LimitReader(f, maxLockSize+1))
	if err != nil {
		fmt.Fprintf(stderr, "pipgate policy from-lock: reading %s: %v\n", path, err)
		return 2
	}
	if len(lock) > maxLockSize {
		fmt.Fprintf(stderr, "pipgate policy from-lock: %s: larger than %d bytes\n", path, maxLockSize)
		return 2
	}
	out, notes, err := policyFromLock(ctx, lock, opts)
	for _, n := range notes {
		fmt.Fprintf(stderr, "pipgate policy from-lock: %s: %s\n", path, n)
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "pipgate policy from-lock: %s: interrupted; nothing written\n", path)
		return 2
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "pipgate policy from-lock: %s: %s\n", path, line)
		}
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "pipgate policy from-lock: %v\n", err)
		return 2
	}
	return 0
}
