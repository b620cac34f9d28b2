package pypi_test

import (
	"testing"

	"github.com/pipgate/pipgate/pypi"
)

func TestNormalizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"FrIeNdLy-._.-bArD", "friendly-bard"},
		{"friendly-bard", "friendly-bard"},
		{"Friendly-Bard", "friendly-bard"},
		{"FRIENDLY-BARD", "friendly-bard"},
		{"friendly.bard", "friendly-bard"},
		{"friendly_bard", "friendly-bard"},
		{"friendly--bard", "friendly-bard"},
		{"Pypi_Attestations", "pypi-attestations"},
		{"pep740_sampleproject", "pep740-sampleproject"},
		{"foo..bar", "foo-bar"},
		{"-leading_", "-leading-"},
		{"", ""},
		{"İstanbul", "i\u0307stanbul"}, // Python's str.lower, not Go's
		{"ÄÖÜ", "äöü"},
	}
	for _, tt := range tests {
		if got := pypi.NormalizeName(tt.in); got != tt.want {
			t.Errorf("NormalizeName(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidProjectName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"A", true},
		{"0", true},
		{"iniconfig", true},
		{"Foo.Bar_baz-1", true},
		{"foo..bar", true},
		{"", false},
		{"-foo", false},
		{"foo-", false},
		{"_foo", false},
		{"foo.", false},
		{"foo bar", false},
		{"foo/bar", false},
		{"foo\n", false},
		{"föo", false},
		{"foo+bar", false},
	}
	for _, tt := range tests {
		if got := pypi.ValidProjectName(tt.in); got != tt.want {
			t.Errorf("ValidProjectName(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"FrIeNdLy-._.-bArD", "iniconfig", "a__b", "İ", "Ä.b", "--", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := pypi.NormalizeName(s)
		if again := pypi.NormalizeName(n); again != n {
			t.Fatalf("NormalizeName not idempotent: %q -> %q -> %q", s, n, again)
		}
		if pypi.ValidProjectName(s) && !pypi.ValidProjectName(n) {
			t.Fatalf("valid name %q normalised to invalid %q", s, n)
		}
	})
}
