package pypi

import (
	"reflect"
	"testing"
)

// TestParsePlainRelease: the fast path reads a plain release exactly as
// packaging's regular expression does, and leaves everything else to it.
func TestParsePlainRelease(t *testing.T) {
	for _, s := range []string{"0", "1", "1.0", "01.002.0003", "1.2.3.4.5.6", "2026.12.7", "00", "10.0.0",
		"1.", ".1", "1..2", "v1", "1.0a1", "1.0+x", "1!1", "", "1 .0", "1.0.post1", "1-1", "١"} {
		fast, ok := parsePlainRelease(s)
		slow, reOK := parseVersionRE(s)
		if ok && (!reOK || !reflect.DeepEqual(fast, slow)) {
			t.Errorf("parsePlainRelease(%q) = %#v; the regular expression gives %#v, %v", s, fast, slow, reOK)
		}
		if !ok && isPlain(s) {
			t.Errorf("parsePlainRelease(%q) refused a plain release", s)
		}
		checkParseVersion(t, s)
	}
}

// checkParseVersion fails t unless ParseVersion, with its short cuts,
// gives what packaging's regular expression gives for s.
func checkParseVersion(t *testing.T, s string) {
	t.Helper()
	want, reOK := parseVersionRE(trimPySpace(s))
	got, err := ParseVersion(s)
	if (err == nil) != reOK || reOK && !reflect.DeepEqual(got, want) {
		t.Errorf("ParseVersion(%q) = %#v, %v; the regular expression gives %#v, valid=%v", s, got, err, want, reOK)
	}
}

// FuzzParseVersionShortCuts holds ParseVersion to the regular expression,
// on digits and dots above all (where it skips it).
func FuzzParseVersionShortCuts(f *testing.F) {
	for _, s := range []string{"1", "1.0", "1.", ".1", "1..2", ".", "..", "", " 1.0 ", "1.0.", "01.2.3..", "1.2a", "1.0+1.2"} {
		f.Add(s)
	}
	f.Fuzz(checkParseVersion)
}

func isPlain(s string) bool {
	_, ok := parseVersionRE(s)
	if !ok {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
