package pypi

import (
	"errors"
	"path"
	"strings"
)

// The problems [ParseNamePattern] reports, for errors.Is.
var (
	ErrBadName      = errors.New("invalid project name (want a PEP 508 name or a glob of one)")
	ErrBadGlob      = errors.New("invalid glob")
	ErrNeverMatches = errors.New("glob never matches a normalised name")
)

// NamePattern matches PEP 503-normalised project names against a project
// name or a glob of one. Policy rules and upstream ownership use it, so a
// name is matched the same way everywhere. The zero value matches nothing.
type NamePattern struct {
	pattern string   // the normalised pattern
	glob    bool     // pattern holds a metacharacter
	parts   []string // star-only globs: the literal pieces between the stars
	general bool     // the glob uses ? or [...]: path.Match decides
	// prefix and suffix are the literal text before the first and after the
	// last metacharacter of a general glob: a cheap filter before path.Match.
	prefix, suffix string
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// ParseNamePattern normalises a project name or glob and prepares its
// matcher. A literal name must be a valid project name; a glob is
// normalised as PEP 503 does outside bracket expressions (lower case, each
// run of "-", "_", "." becomes "-"), may use *, ? and [...] (with ^ for
// negation), must be well formed ([ErrBadGlob]) and must match at least
// one normalised name ([ErrNeverMatches]): "pypi[_]attestations" is refused
// rather than silently matching nothing.
func ParseNamePattern(name string) (NamePattern, error) {
	if !isGlob(name) {
		if !ValidProjectName(name) {
			return NamePattern{}, ErrBadName
		}
		return NamePattern{pattern: NormalizeName(name)}, nil
	}
	p, err := normalizeGlob(name)
	if err != nil {
		return NamePattern{}, err
	}
	if _, err := path.Match(p, ""); err != nil {
		return NamePattern{}, ErrBadGlob
	}
	if !canMatchName(p) {
		return NamePattern{}, ErrNeverMatches
	}
	m := NamePattern{pattern: p, glob: true}
	if strings.ContainsAny(p, "?[") {
		m.general = true
		m.prefix = p[:strings.IndexAny(p, "*?[")]
		m.suffix = p[strings.LastIndexAny(p, "*?]")+1:]
	} else {
		m.parts = strings.Split(p, "*")
	}
	return m, nil
}

// normalizeGlob lower-cases a glob and collapses runs of "-", "_" and "."
// outside bracket expressions. Only ASCII letters, digits, "-", "_", ".",
// and the metacharacters *, ?, [, ] and ^ (inside brackets) are allowed.
func normalizeGlob(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	inClass, inRun := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '*', c == '?':
		case c == '-' || c == '_' || c == '.':
			if !inClass {
				if !inRun {
					b.WriteByte('-')
				}
				inRun = true
				continue
			}
		case c == '[':
			if inClass {
				return "", ErrBadGlob
			}
			inClass = true
		case c == ']':
			if !inClass {
				return "", ErrBadGlob
			}
			inClass = false
		case c == '^':
			if !inClass {
				return "", ErrBadGlob
			}
		default:
			return "", ErrBadGlob
		}
		inRun = false
		b.WriteByte(c)
	}
	if inClass {
		return "", ErrBadGlob
	}
	return b.String(), nil
}

// String returns the normalised pattern.
func (m NamePattern) String() string { return m.pattern }

// IsGlob reports whether the pattern is a glob rather than one name.
func (m NamePattern) IsGlob() bool { return m.glob }

// Match reports whether the normalised project name matches.
func (m NamePattern) Match(name string) bool {
	switch {
	case m.pattern == "":
		return false
	case !m.glob:
		return name == m.pattern
	case m.general:
		if !strings.HasPrefix(name, m.prefix) || !strings.HasSuffix(name, m.suffix) {
			return false
		}
		ok, _ := path.Match(m.pattern, name)
		return ok
	}
	// Star-only glob: the first piece is a prefix, the last a suffix, and
	// the middle pieces appear in order between them.
	first, last := m.parts[0], m.parts[len(m.parts)-1]
	if len(name) < len(first)+len(last) || !strings.HasPrefix(name, first) || !strings.HasSuffix(name, last) {
		return false
	}
	rest := name[len(first) : len(name)-len(last)]
	for _, p := range m.parts[1 : len(m.parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return true
}

// nameAlphabet is every byte a PEP 503-normalised project name can hold.
const nameAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789-"

// canMatchName reports whether the well-formed, normalised glob p matches at
// least one normalised project name: lower-case letters, digits and single
// "-" between them, starting and ending with a letter or digit. It runs the
// glob and that name grammar side by side over the 37-byte alphabet, so a
// glob such as "pypi[_]attestations" (the "_" can never occur), "[A-Z]*"
// written with a negation that leaves nothing, "-x*" or "a-[-]b" is caught
// exactly, not by a list of cases.
func canMatchName(p string) bool {
	// The glob's tokens: one byte set per position, star marking "*".
	type token struct {
		star bool
		set  [len(nameAlphabet)]bool
	}
	var toks []token
	for i := 0; i < len(p); {
		var t token
		var piece string
		switch p[i] {
		case '*':
			t.star = true
			toks = append(toks, t)
			i++
			continue
		case '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return false
			}
			piece, i = p[i:i+j+1], i+j+1
		default:
			piece, i = p[i:i+1], i+1
		}
		for k := range len(nameAlphabet) {
			t.set[k], _ = path.Match(piece, nameAlphabet[k:k+1])
		}
		toks = append(toks, t)
	}
	// Name grammar states: 0 start (nothing yet), 1 after a letter or
	// digit (accepting), 2 after "-".
	next := func(state, k int) int {
		dash := nameAlphabet[k] == '-'
		switch {
		case dash && state == 1:
			return 2
		case dash:
			return -1
		}
		return 1
	}
	type pos struct{ tok, state int }
	seen := map[pos]bool{{0, 0}: true}
	work := []pos{{0, 0}}
	push := func(q pos) {
		if !seen[q] {
			seen[q] = true
			work = append(work, q)
		}
	}
	for len(work) > 0 {
		q := work[len(work)-1]
		work = work[:len(work)-1]
		if q.tok == len(toks) {
			if q.state == 1 {
				return true
			}
			continue
		}
		t := toks[q.tok]
		if t.star {
			push(pos{q.tok + 1, q.state})
		}
		for k := range len(nameAlphabet) {
			if !t.star && !t.set[k] {
				continue
			}
			if ns := next(q.state, k); ns >= 0 {
				if t.star {
					push(pos{q.tok, ns})
				} else {
					push(pos{q.tok + 1, ns})
				}
			}
		}
	}
	return false
}
