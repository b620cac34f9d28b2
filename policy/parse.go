package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/internal/yamlerr"
	"github.com/pipgate/pipgate/pypi"
)

// MaxFileSize is the largest policy file [Load] reads.
const MaxFileSize = 1 << 20

// ErrInvalid is matched by every [ProblemError], so errors.Is(err, ErrInvalid)
// tells a bad policy from an I/O error.
var ErrInvalid = errors.New("invalid policy")

// ProblemError is one problem in a policy file. [Parse] returns every
// problem it finds, joined with errors.Join; [Problems] takes them apart.
type ProblemError struct {
	Line int    // 1-based line in the file; 0 when the problem has no line
	Path string // YAML path such as "packages[2].publishers[0].repository"; may be empty
	Msg  string
}

// Error renders "line 7: packages[2].publishers[0].repository: required for kind github".
func (e *ProblemError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *ProblemError) Is(target error) bool { return target == ErrInvalid }

// Problems returns the [*ProblemError]s inside err (a tree of joined and
// wrapped errors), in order. It returns nil when err holds none.
func Problems(err error) []*ProblemError {
	var out []*ProblemError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) { //nolint:errorlint // walking the tree by hand
		case nil:
		case *ProblemError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, c := range e.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// Load reads and parses the policy file at path. [Policy.Source] is path.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	return ParseFile(path, b)
}

// ParseFile parses b, the bytes read from the policy file at path, as [Load]
// does: more than [MaxFileSize] bytes is an error, and path is recorded as
// the policy's [Policy.Source].
func ParseFile(path string, b []byte) (*Policy, error) {
	if len(b) > MaxFileSize {
		return nil, &ProblemError{Msg: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}
	}
	p, err := Parse(b)
	if err != nil {
		return nil, err
	}
	p.source = path
	return p, nil
}

// The file format, decoded strictly (unknown fields are errors).
type rawFile struct {
	Version  *int        `yaml:"version"`
	Defaults rawDefaults `yaml:"defaults"`
	Packages []rawRule   `yaml:"packages"`
}

type rawDefaults struct {
	Require        string `yaml:"require"`
	Action         string `yaml:"action"`
	OnInvalid      string `yaml:"on_invalid"`
	OnError        string `yaml:"on_error"`
	Continuity     string `yaml:"continuity"`
	MinReleaseAge  string `yaml:"min_release_age"`
	CooldownAction string `yaml:"cooldown_action"`
}

type rawRule struct {
	Name           string         `yaml:"name"`
	Require        string         `yaml:"require"`
	Action         string         `yaml:"action"`
	OnInvalid      string         `yaml:"on_invalid"`
	OnError        string         `yaml:"on_error"`
	Continuity     string         `yaml:"continuity"`
	MinReleaseAge  string         `yaml:"min_release_age"`
	CooldownAction string         `yaml:"cooldown_action"`
	Publishers     []rawPublisher `yaml:"publishers"`
	// AcceptedVersions: releases continuity accepts as they are.
	AcceptedVersions []string `yaml:"accepted_versions"`
}

type rawPublisher struct {
	Kind       pypi.PublisherKind `yaml:"kind"`
	Repository string             `yaml:"repository"`
	Workflow   string             `yaml:"workflow"`
	Email      string             `yaml:"email"`
	Issuer     string             `yaml:"issuer"`
	Subject    string             `yaml:"subject"`
}

// Parse parses and validates a policy file. On failure the error joins one
// [*ProblemError] per problem, each naming its line and YAML path. The
// policy is strict: unknown fields, a missing or unknown version, unknown
// values, and rules that cannot work as written are all errors:
//   - require trusted-publisher without publishers (or in the defaults,
//     which have none), and publishers under a rule that neither requires
//     a trusted publisher nor checks continuity (they would mean nothing);
//   - a min_release_age that is not a Go duration or a number of days
//     ("7d"), or is negative;
//   - a publisher of unknown kind, missing a field its kind needs, or with
//     a field its kind does not use; a GitHub workflow that is a path rather
//     than a bare .yml/.yaml file name;
//   - a name that is neither a project name nor a well-formed glob;
//   - a rule that can never match because an earlier rule takes every name
//     it would (a duplicate name, or a name an earlier glob covers).
func Parse(b []byte) (*Policy, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ProblemError{Msg: "empty document"}
		}
		return nil, syntaxProblem(err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		return nil, &ProblemError{Line: doc.Line, Msg: "empty document"}
	}
	var next yaml.Node
	var early []*ProblemError
	switch err := dec.Decode(&next); {
	case err == nil:
		early = append(early, &ProblemError{Line: next.Line, Msg: "a second document is not allowed"})
	case !errors.Is(err, io.EOF):
		early = append(early, syntaxProblem(err))
	}
	// A repeated key would keep yaml.v3 from decoding anything else of its
	// mapping (and the checks below would then call present keys missing):
	// the repeat is reported and left out, the rest decoded and checked.
	src := b
	if len(early) == 0 {
		if clean, dups := yamlerr.DropDuplicates(b, &doc); len(dups) > 0 {
			var cdoc yaml.Node
			if err := yaml.Unmarshal(clean, &cdoc); err == nil && len(cdoc.Content) == 1 {
				src, doc = clean, cdoc
				for _, d := range dups {
					early = append(early, &ProblemError{Line: d.Line, Path: d.Path, Msg: d.Msg})
				}
			}
		}
	}
	v := validator{loc: indexNodes(doc.Content[0])}
	v.problems = append(v.problems, early...)

	var raw rawFile
	sdec := yaml.NewDecoder(bytes.NewReader(src))
	sdec.KnownFields(true)
	if err := sdec.Decode(&raw); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, syntaxProblem(err)
		}
		for _, msg := range te.Errors {
			v.decodeProblems = append(v.decodeProblems, v.loc.typeProblem(msg))
		}
		v.problems = append(v.problems, v.decodeProblems...)
	}
	p := v.build(&raw)
	if len(v.problems) > 0 {
		slices.SortStableFunc(v.problems, func(a, b *ProblemError) int { return a.Line - b.Line })
		errs := make([]error, len(v.problems))
		for i, pr := range v.problems {
			errs[i] = pr
		}
		return nil, errors.Join(errs...)
	}
	sum := sha256.Sum256(b)
	p.digest = hex.EncodeToString(sum[:])
	return p, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem turns a yaml.v3 syntax error into a ProblemError.
func syntaxProblem(err error) *ProblemError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &ProblemError{Line: n, Msg: m[2]}
	}
	return &ProblemError{Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// validator resolves and checks a decoded file, collecting problems.
type validator struct {
	loc      nodeIndex
	problems []*ProblemError
	// decodeProblems are the decoder's own (also in problems). A field that
	// failed to decode is left zero, so no more is said about it.
	decodeProblems []*ProblemError
}

// addf records a problem at path, on the line of the path's deepest
// existing node.
func (v *validator) addf(path []any, format string, args ...any) {
	ps := pathString(path)
	for _, pr := range v.decodeProblems {
		// A field that failed to decode is zero: do not also report it as
		// missing. Without a path (the whole document), say nothing more.
		if pr.Path == "" || ps == pr.Path || strings.HasPrefix(ps, pr.Path+".") || strings.HasPrefix(ps, pr.Path+"[") {
			return
		}
	}
	v.problems = append(v.problems, &ProblemError{Line: v.loc.line(path), Path: ps, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) build(raw *rawFile) *Policy {
	p := Default()
	p.source = ""
	switch {
	case raw.Version == nil:
		v.addf([]any{"version"}, "required (version: 1)")
	case *raw.Version != 1:
		v.addf([]any{"version"}, "unsupported version %d (want 1)", *raw.Version)
	}

	d := &p.defaults.Rule
	choose(v, &d.Require, raw.Defaults.Require, []any{"defaults", "require"}, "require", requires)
	choose(v, &d.Action, raw.Defaults.Action, []any{"defaults", "action"}, "action", actions)
	choose(v, &d.OnInvalid, raw.Defaults.OnInvalid, []any{"defaults", "on_invalid"}, "action", actions)
	choose(v, &d.OnError, raw.Defaults.OnError, []any{"defaults", "on_error"}, "action", actions)
	choose(v, &d.Continuity, raw.Defaults.Continuity, []any{"defaults", "continuity"}, "continuity", continuities)
	v.age(&d.MinReleaseAge, raw.Defaults.MinReleaseAge, []any{"defaults", "min_release_age"})
	choose(v, &d.CooldownAction, raw.Defaults.CooldownAction, []any{"defaults", "cooldown_action"}, "cooldown_action", actions)
	if d.Require == RequireTrustedPublisher {
		v.addf([]any{"defaults", "require"}, "trusted-publisher needs publishers, which only package rules have; require it per package")
		d.Require = defaultRequire
	}

	first := map[string]int{} // normalised name or glob → index of its first rule
	for i := range raw.Packages {
		rr := &raw.Packages[i]
		at := func(keys ...any) []any { return append([]any{"packages", i}, keys...) }
		r := rule{Rule: *d}
		r.Line = v.loc.line([]any{"packages", i})
		choose(v, &r.Require, rr.Require, at("require"), "require", requires)
		choose(v, &r.Action, rr.Action, at("action"), "action", actions)
		choose(v, &r.OnInvalid, rr.OnInvalid, at("on_invalid"), "action", actions)
		choose(v, &r.OnError, rr.OnError, at("on_error"), "action", actions)
		choose(v, &r.Continuity, rr.Continuity, at("continuity"), "continuity", continuities)
		v.age(&r.MinReleaseAge, rr.MinReleaseAge, at("min_release_age"))
		choose(v, &r.CooldownAction, rr.CooldownAction, at("cooldown_action"), "cooldown_action", actions)

		nameOK := false
		switch m, err := pypi.ParseNamePattern(rr.Name); {
		case rr.Name == "":
			v.addf(at("name"), "required")
		case errors.Is(err, pypi.ErrNeverMatches):
			v.addf(at("name"), "glob %q can never match: names are compared PEP 503-normalised (lower case, a single - between words, no _ or ., a letter or digit first and last), so write it that way, e.g. \"pypi-*\"", rr.Name)
		case errors.Is(err, pypi.ErrBadGlob):
			v.addf(at("name"), "invalid glob %q (use *, ? and [...] around letters, digits, -, _ and .)", rr.Name)
		case err != nil:
			v.addf(at("name"), "invalid project name %q (want a PEP 508 name or a glob like \"internal-*\")", rr.Name)
		default:
			r.Name, r.m, nameOK = m.String(), m, true
		}

		switch {
		case r.Require == RequireTrustedPublisher && len(rr.Publishers) == 0:
			if v.loc.has(at("publishers")) {
				v.addf(at("publishers"), "at least one publisher is required with require: trusted-publisher")
			} else {
				v.addf(at("require"), "trusted-publisher needs publishers; add a publishers list")
			}
		case r.Require != RequireTrustedPublisher && r.Continuity == ActionNone && len(rr.Publishers) > 0:
			v.addf(at("publishers"), "only allowed with require: trusted-publisher, or with continuity checks on (require is %q, continuity none)", r.Require)
		}
		for j := range rr.Publishers {
			if pub, ok := v.publisher(&rr.Publishers[j], at("publishers", j)); ok {
				r.Publishers = append(r.Publishers, pub)
			}
		}
		if r.Continuity == ActionNone && len(rr.AcceptedVersions) > 0 {
			v.addf(at("accepted_versions"), "only allowed with continuity checks on (continuity is none)")
		}
		for j, s := range rr.AcceptedVersions {
			ver, err := pypi.ParseVersion(s)
			if err != nil {
				v.addf(at("accepted_versions", j), "invalid version %q (want a PEP 440 version such as \"1.2\" or \"2.0rc1\")", s)
				continue
			}
			r.AcceptedVersions = append(r.AcceptedVersions, s)
			r.accepted = append(r.accepted, ver)
		}

		if nameOK {
			v.reachable(p, &r, at("name"), first)
		}
		idx := len(p.rules)
		p.rules = append(p.rules, r)
		if !nameOK {
			continue
		}
		if _, dup := first[r.Name]; !dup {
			first[r.Name] = idx
		}
		if r.m.IsGlob() {
			p.globs = append(p.globs, idx)
		} else if _, dup := p.exact[r.Name]; !dup {
			p.exact[r.Name] = idx
		}
	}
	return p
}

// reachable reports a rule that an earlier rule shadows: first match wins,
// so it would never apply. first maps each earlier name to its first rule.
func (v *validator) reachable(p *Policy, r *rule, path []any, first map[string]int) {
	if k, dup := first[r.Name]; dup {
		v.addf(path, "duplicate of packages[%d] (line %d); the first match wins, so this rule never applies", k, p.rules[k].Line)
		return
	}
	if r.m.IsGlob() {
		return // whether one glob covers another is not worth deciding
	}
	for _, k := range p.globs {
		if g := &p.rules[k]; g.m.Match(r.Name) {
			v.addf(path, "%q is already matched by packages[%d] %q (line %d); the first match wins, so this rule never applies", r.Name, k, g.Name, g.Line)
			return
		}
	}
}

var (
	requires     = []Require{RequireNone, RequireAttestation, RequireTrustedPublisher}
	actions      = []Action{ActionBlock, ActionYank, ActionWarn}
	continuities = []Action{ActionNone, ActionWarn, ActionYank, ActionBlock}
)

// age sets *dst to the duration val when val is set and valid.
func (v *validator) age(dst *time.Duration, val string, path []any) {
	if val == "" {
		return
	}
	d, err := ParseAge(val)
	if err != nil {
		v.addf(path, "%v", err)
		return
	}
	*dst = d
}

// ParseAge parses a min_release_age: a Go duration ("36h", "90m", "0s"), a
// number of days ("7d"), or days followed by a Go duration ("1d12h"). It
// must not be negative.
func ParseAge(s string) (time.Duration, error) {
	bad := fmt.Errorf("want a duration like \"7d\", \"36h\" or \"0s\", got %q", s)
	if s == "" {
		return 0, bad
	}
	var days int64
	rest := s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || n < 0 || s[:i] == "" || s[0] == '+' {
			return 0, bad
		}
		days, rest = n, s[i+1:]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, bad
		}
		if d < 0 {
			return 0, fmt.Errorf("must not be negative, got %q", s)
		}
	}
	const maxDays = 1 << 20 / 24 // beyond any sensible cooldown; keeps the sum in range
	if days > maxDays {
		return 0, fmt.Errorf("too long: %q (at most %dd)", s, maxDays)
	}
	return time.Duration(days)*24*time.Hour + d, nil
}

// choose sets *dst to val when val is set and one of allowed.
func choose[T ~string](v *validator, dst *T, val string, path []any, what string, allowed []T) {
	if val == "" {
		return
	}
	if !slices.Contains(allowed, T(val)) {
		v.addf(path, "unknown %s %q (want %s)", what, val, orList(allowed))
		return
	}
	*dst = T(val)
}

// CheckPublisher checks one publisher as a policy file's publishers entry
// is checked, without YAML: the [*ProblemError]s (joined) have paths relative
// to the entry ("workflow") and no line. For tools that write policies.
func CheckPublisher(p pypi.Publisher) error {
	var v validator
	v.publisher(&rawPublisher{Kind: p.Kind, Repository: p.Repository, Workflow: p.Workflow,
		Email: p.Email, Issuer: p.Issuer, Subject: p.Subject}, nil)
	errs := make([]error, len(v.problems))
	for i, pr := range v.problems {
		errs[i] = pr
	}
	return errors.Join(errs...)
}

// publisher checks one publisher entry and converts it.
func (v *validator) publisher(rp *rawPublisher, path []any) (pypi.Publisher, bool) {
	at := func(key string) []any { return append(slices.Clip(path), key) }
	n := len(v.problems)
	fields := []struct {
		key, val string
	}{
		{"repository", rp.Repository}, {"workflow", rp.Workflow}, {"email", rp.Email},
		{"issuer", rp.Issuer}, {"subject", rp.Subject},
	}
	var uses []string // the fields the kind takes
	switch rp.Kind {
	case "":
		v.addf(at("kind"), "required (want %s)", orList(kinds))
		return pypi.Publisher{}, false
	case pypi.KindGitHub:
		uses = []string{"repository", "workflow"}
		v.required(rp.Kind, rp.Repository, at("repository"))
		if rp.Repository != "" && !validRepo(rp.Repository, false) {
			v.addf(at("repository"), "want \"owner/name\", got %q", rp.Repository)
		}
		switch w := rp.Workflow; {
		case w == "":
		case strings.Contains(w, "/"):
			v.addf(at("workflow"), "want a bare file name like \"release.yml\", not a path: %q", w)
		case !validWord(w) || !(strings.HasSuffix(w, ".yml") || strings.HasSuffix(w, ".yaml")):
			v.addf(at("workflow"), "want a workflow file name ending in .yml or .yaml, got %q", w)
		}
	case pypi.KindGitLab:
		uses = []string{"repository", "workflow"}
		v.required(rp.Kind, rp.Repository, at("repository"))
		if rp.Repository != "" && !validRepo(rp.Repository, true) {
			v.addf(at("repository"), "want \"namespace/project\" (subgroups allowed), got %q", rp.Repository)
		}
		if w := rp.Workflow; w != "" && (!validWord(w) || strings.HasPrefix(w, "/") || slices.Contains(strings.Split(w, "/"), "")) {
			v.addf(at("workflow"), "want a relative file path like \".gitlab-ci.yml\", got %q", w)
		}
	case pypi.KindGoogle:
		uses = []string{"email"}
		v.required(rp.Kind, rp.Email, at("email"))
		if e := rp.Email; e != "" {
			local, domain, found := strings.Cut(e, "@")
			if !found || local == "" || domain == "" || strings.Contains(domain, "@") || !validWord(e) {
				v.addf(at("email"), "want an e-mail address, got %q", e)
			}
		}
	case pypi.KindIdentity:
		uses = []string{"issuer", "subject"}
		v.required(rp.Kind, rp.Issuer, at("issuer"))
		v.required(rp.Kind, rp.Subject, at("subject"))
		if rp.Issuer != "" && (!strings.HasPrefix(rp.Issuer, "https://") || !validWord(rp.Issuer)) {
			v.addf(at("issuer"), "want an https:// OIDC issuer URL, got %q", rp.Issuer)
		}
		if rp.Subject != "" && !validWord(rp.Subject) {
			v.addf(at("subject"), "must not contain spaces or control characters: %q", rp.Subject)
		}
	default:
		v.addf(at("kind"), "unknown kind %q (want %s)", rp.Kind, orList(kinds))
		return pypi.Publisher{}, false
	}
	for _, f := range fields {
		if f.val != "" && !slices.Contains(uses, f.key) {
			v.addf(at(f.key), "not used by kind %s (it takes %s)", rp.Kind, strings.Join(uses, " and "))
		}
	}
	pub := pypi.Publisher{Kind: rp.Kind, Repository: rp.Repository, Workflow: rp.Workflow, Email: rp.Email, Issuer: rp.Issuer, Subject: rp.Subject}
	return pub, len(v.problems) == n
}

var kinds = []pypi.PublisherKind{pypi.KindGitHub, pypi.KindGitLab, pypi.KindGoogle, pypi.KindIdentity}

func (v *validator) required(kind pypi.PublisherKind, val string, path []any) {
	if val == "" {
		v.addf(path, "required for kind %s", kind)
	}
}

// validWord reports whether s is non-empty and has no space or control
// character (values are compared exactly, so a stray space never matches).
func validWord(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '\u00a0' || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// validRepo checks "owner/name" (GitHub) or "namespace/.../project" (GitLab).
func validRepo(s string, subgroups bool) bool {
	if !validWord(s) || strings.Contains(s, "://") {
		return false
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || (!subgroups && len(parts) != 2) {
		return false
	}
	return !slices.Contains(parts, "")
}

// orList renders "a, b or c".
func orList[T ~string](ss []T) string {
	if len(ss) == 1 {
		return string(ss[0])
	}
	var b strings.Builder
	for i, s := range ss[:len(ss)-1] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(s))
	}
	return b.String() + " or " + string(ss[len(ss)-1])
}

// pathString renders a path: packages[2].publishers[0].repository.
func pathString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		case int:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(p))
			b.WriteByte(']')
		}
	}
	return b.String()
}
