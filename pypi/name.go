package pypi

import (
	"strings"
	"unicode/utf8"
)

// NormalizeName returns the PEP 503 normalised form of a project name, as
// packaging's canonicalize_name does: every run of "-", "_" and "." becomes
// a single "-", and the result is lower-cased. "FrIeNdLy-._.-bArD" becomes
// "friendly-bard". It does not validate the name; see [ValidProjectName].
func NormalizeName(s string) string {
	// Fast path: already normalised ASCII needs no allocation.
	if isNormalizedASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	inRun := false
	for _, r := range s {
		if r == '-' || r == '_' || r == '.' {
			if !inRun {
				b.WriteByte('-')
			}
			inRun = true
			continue
		}
		inRun = false
		writeLower(&b, r)
	}
	return b.String()
}

// writeLower writes the lower-case form of r as Python's str.lower does for
// the cases that differ from Go's unicode.ToLower (U+0130 becomes "i̇").
func writeLower(b *strings.Builder, r rune) {
	switch {
	case r >= 'A' && r <= 'Z':
		b.WriteByte(byte(r) + 'a' - 'A')
	case r < utf8.RuneSelf:
		b.WriteByte(byte(r))
	case r == '\u0130':
		b.WriteString("i\u0307")
	default:
		b.WriteString(strings.ToLower(string(r)))
	}
}

// isNormalizedASCII reports whether s is ASCII, has no upper-case letter,
// no "_" or ".", and no run of two "-".
func isNormalizedASCII(s string) bool {
	prevDash := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf, c >= 'A' && c <= 'Z', c == '_', c == '.':
			return false
		case c == '-':
			if prevDash {
				return false
			}
			prevDash = true
		default:
			prevDash = false
		}
	}
	return true
}

// ValidProjectName reports whether s is a valid project name (PEP 508, the
// pattern ^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$ matched case-insensitively,
// ASCII only).
func ValidProjectName(s string) bool {
	if s == "" {
		return false
	}
	if !isASCIIAlnum(s[0]) || !isASCIIAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		if !isASCIIAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isASCIIAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
