package pypi

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestParseNamePattern(t *testing.T) {
	tests := []struct {
		in, want string
		glob     bool
		err      error
	}{
		{"requests", "requests", false, nil},
		{"Zope.Interface", "zope-interface", false, nil},
		{"a", "a", false, nil},
		{"Internal_*", "internal-*", true, nil},
		{"internal-._-*", "internal-*", true, nil},
		{"*", "*", true, nil},
		{"py[0-9]*", "py[0-9]*", true, nil},
		{"[A_.-Z]x", "[a_.-z]x", true, nil}, // inside brackets only the case changes
		{"pypi[_]attestations", "", true, ErrNeverMatches},
		{"pypi[._]*", "", true, ErrNeverMatches},
		{"pypi?attestations", "pypi?attestations", true, nil},
		{"[A-Z]*", "[a-z]*", true, nil},
		{"[^a-z0-9]*", "", true, ErrNeverMatches},
		{"-*", "", true, ErrNeverMatches},
		{"*_", "", true, ErrNeverMatches},
		{"*-[^a-z0-9]*", "", true, ErrNeverMatches},
		{"*-[^a-y]*", "*-[^a-y]*", true, nil},
		{"?", "?", true, nil},
		{"[^a-m]?", "[^a-m]?", true, nil},
		{"", "", false, ErrBadName},
		{"-x", "", false, ErrBadName},
		{"x-", "", false, ErrBadName},
		{"a b", "", false, ErrBadName},
		{"café", "", false, ErrBadName},
		{"x]", "", false, ErrBadName},
		{"x[", "", true, ErrBadGlob},
		{"x[]", "", true, ErrBadGlob},
		{"x]*", "", true, ErrBadGlob},
		{"x[[a]]*", "", true, ErrBadGlob},
		{"a^*", "", true, ErrBadGlob},
		{"a\\*", "", true, ErrBadGlob},
		{"a/*", "", true, ErrBadGlob},
		{"ü*", "", true, ErrBadGlob},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ParseNamePattern(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseNamePattern(%q) error = %v; want %v", tt.in, err, tt.err)
			}
			if err != nil {
				return
			}
			if m.pattern != tt.want || m.glob != tt.glob {
				t.Errorf("ParseNamePattern(%q) = %q glob %v; want %q glob %v", tt.in, m.pattern, m.glob, tt.want, tt.glob)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"requests", "requests", true},
		{"requests", "requests2", false},
		{"internal-*", "internal-tools", true},
		{"internal-*", "internal-", true},
		{"internal-*", "internal", false},
		{"*-dev", "foo-dev", true},
		{"*-dev", "-dev", true},
		{"*-dev", "foo-devx", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "acb", false},
		{"a*b*c", "abcb", false},
		{"a*bc*bc", "abc", false}, // prefix and suffix must not overlap
		{"a*bc*bc", "abcbc", true},
		{"*", "anything", true},
		{"**", "x", true},
		{"py?", "py3", true},
		{"py?", "py", false},
		{"py[0-9]", "py3", true},
		{"py[0-9]", "pyx", false},
		{"[^a-m]*", "zed", true},
		{"[^a-m]*", "abc", false},
		{"[^a-m]*-x", "zed-x", true},
		{"[^a-m]*-x", "zed-y", false},
		{"py[0-9]x*", "py3x", true},
		{"py[0-9]x*", "pz3x", false},
		{"a?c-[xy]z", "abc-yz", true},
		{"a?c-[xy]z", "abc-yy", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"/"+tt.name, func(t *testing.T) {
			m, err := ParseNamePattern(tt.pattern)
			if err != nil {
				t.Fatalf("ParseNamePattern(%q): %v", tt.pattern, err)
			}
			if got := m.Match(tt.name); got != tt.want {
				t.Errorf("match(%q, %q) = %v; want %v", tt.pattern, tt.name, got, tt.want)
			}
			// The star-only fast path agrees with path.Match.
			if want, _ := path.Match(m.pattern, tt.name); want != tt.want {
				t.Errorf("path.Match(%q, %q) = %v; the table says %v", m.pattern, tt.name, want, tt.want)
			}
		})
	}
}

// TestCanMatchNameAgrees checks canMatchName against brute force: every
// normalised name of up to three bytes.
func TestCanMatchNameAgrees(t *testing.T) {
	var names []string
	var gen func(prefix string)
	gen = func(prefix string) {
		if prefix != "" && prefix[0] != '-' && prefix[len(prefix)-1] != '-' && !strings.Contains(prefix, "--") {
			names = append(names, prefix)
		}
		if len(prefix) == 3 {
			return
		}
		for _, c := range nameAlphabet {
			gen(prefix + string(c))
		}
	}
	gen("")
	for _, p := range []string{"a", "?", "??", "a-?", "?-", "-?", "[^a]", "[^ab0]", "a[^ab0]?", "*-*", "[^ab]", "a*-", "*", "b[^0]", "[0-9]-[a]", "?[^ab0]"} {
		want := false
		for _, n := range names {
			if ok, _ := path.Match(p, n); ok {
				want = true
				break
			}
		}
		// Patterns that match at most three bytes (a star matches none
		// or one) need names no longer than three.
		if got := canMatchName(p); got != want {
			t.Errorf("canMatchName(%q) = %v; brute force says %v", p, got, want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("a*b*c", "axxbyyc")
	f.Add("*-dev", "foo-dev")
	f.Add("py[0-9]*", "py3k")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		m, err := ParseNamePattern(pattern)
		if err != nil || strings.Contains(name, "/") {
			// Project names never hold "/", which path.Match's * does not cross.
			return
		}
		want, err := path.Match(m.pattern, name)
		if err != nil {
			t.Fatalf("compiled pattern %q is malformed: %v", m.pattern, err)
		}
		if got := m.Match(name); got != want {
			t.Errorf("match(%q, %q) = %v; path.Match says %v", m.pattern, name, got, want)
		}
	})
}
