package policy

import (
	"errors"
	"path"
	"strings"

	"github.com/pipgate/pipgate/pypi"
)

// errBadGlob and errBadName are the pattern problems the validator reports.
var (
	errBadName = errors.New("invalid project name (want a PEP 508 name or a glob of one)")
	errBadGlob = errors.New("invalid glob")
)

// matcher matches normalised project names against one rule's pattern.
type matcher struct {
	pattern string   // the normalised pattern
	glob    bool     // pattern holds a metacharacter
	parts   []string // star-only globs: the literal pieces between the stars
	general bool     // the glob uses ? or [...]: path.Match decides
	// prefix and suffix are the literal text before the first and after the
	// last metacharacter of a general glob: a cheap filter before path.Match.
	prefix, suffix string
}

// isGlob reports whether a rule name is a pattern rather than a project name.
func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// compileName normalises a rule's name and prepares its matcher. A literal
// name must be a valid project name; a glob is normalised as PEP 503 does
// outside bracket expressions (lower case, each run of "-", "_", "." becomes
// "-"), may use *, ? and [...] (with ^ for negation), and must be well formed.
func compileName(name string) (matcher, error) {
	if !isGlob(name) {
		if !pypi.ValidProjectName(name) {
			return matcher{}, errBadName
		}
		return matcher{pattern: pypi.NormalizeName(name)}, nil
	}
	p, err := normalizeGlob(name)
	if err != nil {
		return matcher{}, err
	}
	if _, err := path.Match(p, ""); err != nil {
		return matcher{}, errBadGlob
	}
	m := matcher{pattern: p, glob: true}
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
				return "", errBadGlob
			}
			inClass = true
		case c == ']':
			if !inClass {
				return "", errBadGlob
			}
			inClass = false
		case c == '^':
			if !inClass {
				return "", errBadGlob
			}
		default:
			return "", errBadGlob
		}
		inRun = false
		b.WriteByte(c)
	}
	if inClass {
		return "", errBadGlob
	}
	return b.String(), nil
}

// match reports whether the normalised project name matches.
func (m *matcher) match(name string) bool {
	switch {
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
