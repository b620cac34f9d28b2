package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// maxLockSize is the largest lock file from-lock reads.
const maxLockSize = 32 << 20

// pylock is the part of a PEP 751 lock file from-lock reads.
type pylock struct {
	LockVersion string        `toml:"lock-version"`
	CreatedBy   string        `toml:"created-by"`
	Packages    []lockPackage `toml:"packages"`
}

type lockPackage struct {
	Name                 string             `toml:"name"`
	Version              string             `toml:"version"`
	AttestationIdentites []lockIdentityTOML `toml:"attestation-identities"`
}

// lockIdentityTOML is one PEP 751 attestation identity: kind plus the
// fields of that kind's PEP 740 publisher object.
type lockIdentityTOML struct {
	Kind             string `toml:"kind"`
	Repository       string `toml:"repository"`
	Workflow         string `toml:"workflow"`
	WorkflowFilepath string `toml:"workflow_filepath"`
	Email            string `toml:"email"`
	Environment      string `toml:"environment"`
}

// fromLockOptions configure policyFromLock.
type fromLockOptions struct {
	Require policy.Require // RequireTrustedPublisher or RequireAttestation
	Action  policy.Action  // block, yank or warn
	Source  string         // the lock's path, for the header comment
	Now     time.Time      // for the header comment
}

// lockRule is one rule to write: a project and its publishers.
type lockRule struct {
	name       string
	versions   []string
	publishers []pypi.Publisher
}

// policyFromLock turns a PEP 751 lock into a policy: one rule per locked
// project that records attestation identities, whose publishers are those
// identities. Identities of a kind pipgate cannot match (ActiveState, or an
// unknown kind) are reported in notes and left out; a project left with
// none gets no rule. The output is checked with [policy.Parse] before it is
// returned.
func policyFromLock(lock []byte, opts fromLockOptions) (out []byte, notes []string, err error) {
	var l pylock
	if _, err := toml.Decode(string(lock), &l); err != nil {
		return nil, nil, fmt.Errorf("parsing lock: %w", err)
	}
	if l.LockVersion == "" {
		return nil, nil, errors.New("parsing lock: no lock-version (is this a PEP 751 pylock.toml?)")
	}
	if major, _, _ := strings.Cut(l.LockVersion, "."); major != "1" {
		return nil, nil, fmt.Errorf("parsing lock: unsupported lock-version %q (want 1.x)", l.LockVersion)
	}
	var rules []*lockRule
	byName := map[string]*lockRule{}
	var unattested []string
	for i, pkg := range l.Packages {
		if !pypi.ValidProjectName(pkg.Name) {
			return nil, nil, fmt.Errorf("parsing lock: packages[%d].name: invalid project name %q", i, pkg.Name)
		}
		name := pypi.NormalizeName(pkg.Name)
		if len(pkg.AttestationIdentites) == 0 {
			if !slices.Contains(unattested, name) {
				unattested = append(unattested, name)
			}
			continue
		}
		var pubs []pypi.Publisher
		for j, id := range pkg.AttestationIdentites {
			pub, err := lockPublisher(id)
			if err == nil {
				err = checkPublisher(pub)
			}
			if err != nil {
				notes = append(notes, fmt.Sprintf("packages[%d].attestation-identities[%d] (%s): %v; left out", i, j, name, err))
				continue
			}
			pubs = append(pubs, pub)
		}
		if len(pubs) == 0 {
			notes = append(notes, fmt.Sprintf("%s: no attestation identity pipgate can check; no rule written", name))
			continue
		}
		r := byName[name]
		if r == nil {
			r = &lockRule{name: name}
			byName[name] = r
			rules = append(rules, r)
		}
		if pkg.Version != "" && !slices.Contains(r.versions, pkg.Version) {
			r.versions = append(r.versions, pkg.Version)
		}
		for _, p := range pubs {
			if !slices.Contains(r.publishers, p) {
				r.publishers = append(r.publishers, p)
			}
		}
	}
	unattested = slices.DeleteFunc(unattested, func(n string) bool { return byName[n] != nil })

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
		fmt.Fprintf(&b, "# other than those and than the previous release's is a publisher-changed finding.\n")
	}
	if len(unattested) > 0 {
		fmt.Fprintf(&b, "# Locked without attestation identities (the defaults apply): %s.\n", oneLineComment(strings.Join(unattested, ", ")))
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "# Note: %s\n", oneLineComment(n))
	}
	b.WriteString("version: 1\n")
	if len(rules) == 0 {
		b.WriteString("packages: []\n")
	} else {
		b.WriteString("packages:\n")
	}
	for _, r := range rules {
		fmt.Fprintf(&b, "  - name: %s", yamlString(r.name))
		if len(r.versions) > 0 {
			fmt.Fprintf(&b, "  # locked: %s", oneLineComment(strings.Join(r.versions, ", ")))
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
	}
	if _, err := policy.Parse(b.Bytes()); err != nil {
		return nil, notes, fmt.Errorf("the lock's identities do not make a valid policy: %w", err)
	}
	return b.Bytes(), notes, nil
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
	var b bytes.Buffer
	b.WriteString("version: 1\npackages:\n  - name: x\n    require: trusted-publisher\n    publishers:\n")
	writePublisher(&b, p)
	_, err := policy.Parse(b.Bytes())
	if probs := policy.Problems(err); len(probs) > 0 {
		field := probs[0].Path[strings.LastIndexByte(probs[0].Path, '.')+1:]
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

// runPolicyFromLock runs 'pipgate policy from-lock'.
func runPolicyFromLock(args []string, stdout, stderr io.Writer, now func() time.Time) int {
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
	out, notes, err := policyFromLock(lock, opts)
	for _, n := range notes {
		fmt.Fprintf(stderr, "pipgate policy from-lock: %s: %s\n", path, n)
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
