package pypi_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/pypi"
)

// versionCases pairs inputs with packaging's str(Version(s)).
var versionCases = []struct{ in, want string }{
	{"1.0", "1.0"},
	{"1.0.0", "1.0.0"},
	{"v1.0", "1.0"},
	{"V2", "2"},
	{" 1.0\n", "1.0"},
	{"\u00a01.0\u3000", "1.0"},
	{"1!2.0", "1!2.0"},
	{"0!1.0", "1.0"},
	{"1.0a1", "1.0a1"},
	{"1.0alpha1", "1.0a1"},
	{"1.0-ALPHA-1", "1.0a1"},
	{"1.0b2", "1.0b2"},
	{"1.0beta2", "1.0b2"},
	{"1.0c3", "1.0rc3"},
	{"1.0rc3", "1.0rc3"},
	{"1.0pre3", "1.0rc3"},
	{"1.0preview3", "1.0rc3"},
	{"1.0-pre.3", "1.0rc3"},
	{"1.0a", "1.0a0"},
	{"1.0rc", "1.0rc0"},
	{"1.0.RC.1", "1.0rc1"},
	{"1.0.post1", "1.0.post1"},
	{"1.0-1", "1.0.post1"},
	{"1.0post", "1.0.post0"},
	{"1.0.rev2", "1.0.post2"},
	{"1.0r2", "1.0.post2"},
	{"1.0-r2", "1.0.post2"},
	{"1.0-post-1", "1.0.post1"},
	{"1.0a1-1", "1.0a1.post1"},
	{"1.0.dev", "1.0.dev0"},
	{"1.0dev5", "1.0.dev5"},
	{"1.0_dev_5", "1.0.dev5"},
	{"1.0+abc.5", "1.0+abc.5"},
	{"1.0+ABC-01_x", "1.0+abc.1.x"},
	{"01.0beta.1", "1.0b1"},
	{"1.0a1.post2.dev3+local", "1.0a1.post2.dev3+local"},
	{"1.0.0.0.0", "1.0.0.0.0"},
	{"0", "0"},
	{"00", "0"},
	{"1-0", "1.post0"},
	{"2024.10.8", "2024.10.8"},
	{"1.0.dev0+l", "1.0.dev0+l"},
	{"99999999999999999999999999.0", "99999999999999999999999999.0"},
}

func TestParseVersion(t *testing.T) {
	for _, tt := range versionCases {
		v, err := pypi.ParseVersion(tt.in)
		if err != nil {
			t.Errorf("ParseVersion(%q): %v", tt.in, err)
			continue
		}
		if got := v.String(); got != tt.want {
			t.Errorf("ParseVersion(%q).String() = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseVersionInvalid(t *testing.T) {
	for _, in := range []string{
		"", " ", "1.0+", "1.0-", "a1", "1.0++", "1..0", "1.0a1a", "1.0.dev1.post1",
		"1.0+a..b", "1!", "1.0 beta", "1.0_", ".1", "1.0-dev-1-2", "1.0+_a", "one",
		"1.0.x", "1,0", "١.٠", "vv1", "1.0+a b",
	} {
		_, err := pypi.ParseVersion(in)
		if err == nil {
			t.Errorf("ParseVersion(%q) succeeded; want error", in)
			continue
		}
		if !errors.Is(err, pypi.ErrInvalidVersion) {
			t.Errorf("ParseVersion(%q) error %v does not match ErrInvalidVersion", in, err)
		}
	}
	_, err := pypi.ParseVersion("1.0 beta")
	if got, want := err.Error(), "Invalid version: '1.0 beta'"; got != want {
		t.Errorf("error = %q; want %q", got, want)
	}
}

// TestVersionOrder uses packaging's own sorted list (tests/test_version.py).
func TestVersionOrder(t *testing.T) {
	base := []string{
		"1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12", "1.0b1.dev456",
		"1.0b2", "1.0b2.post345.dev456", "1.0b2.post345", "1.0b2-346", "1.0c1.dev456",
		"1.0c1", "1.0rc2", "1.0c3", "1.0", "1.0.post456.dev34", "1.0.post456", "1.1.dev1",
		"1.2+123abc", "1.2+123abc456", "1.2+abc", "1.2+abc123", "1.2+abc123def",
		"1.2+1234.abc", "1.2+123456", "1.2.r32+123456", "1.2.rev33+123456",
	}
	var all []string
	all = append(all, base...)
	for _, s := range base {
		all = append(all, "1!"+s)
	}
	vs := make([]pypi.Version, len(all))
	for i, s := range all {
		vs[i] = pypi.MustParseVersion(s)
	}
	for i := range vs {
		for j := range vs {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := vs[i].Compare(vs[j]); got != want {
				t.Errorf("Compare(%q, %q) = %d; want %d", all[i], all[j], got, want)
			}
			if got := strings.Compare(vs[i].SortKey(), vs[j].SortKey()); got != want {
				t.Errorf("SortKey order of %q, %q = %d; want %d", all[i], all[j], got, want)
			}
		}
	}
}

func TestVersionEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"1.0", "1.0.0", true},
		{"1.0", "1", true},
		{"01.0beta.1", "1.0b1", true},
		{"1.0", "0!1.0", true},
		{"1.0", "1!1.0", false},
		{"1.0+a", "1.0", false},
		{"1.0+A", "1.0+a", true},
		{"1.0+01", "1.0+1", true},
		{"1.0.post0", "1.0", false},
		{"1.0-1", "1.0.post1", true},
		{"1.0.dev0", "1.0", false},
		{"1.0rc1", "1.0c1", true},
		{"0.0.19", "0.0.19", true},
		{"0.0.19", "0.0.20", false},
	}
	for _, tt := range tests {
		a, b := pypi.MustParseVersion(tt.a), pypi.MustParseVersion(tt.b)
		if got := a.Equal(b); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v; want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestVersionCompareLocal(t *testing.T) {
	// Each is strictly less than the next (packaging: no local < strings < numbers).
	order := []string{"1.0", "1.0+a", "1.0+a.1", "1.0+b", "1.0+0", "1.0+1", "1.0+1.a", "1.0+10"}
	for i := 0; i+1 < len(order); i++ {
		a, b := pypi.MustParseVersion(order[i]), pypi.MustParseVersion(order[i+1])
		if got := a.Compare(b); got != -1 {
			t.Errorf("Compare(%q, %q) = %d; want -1", order[i], order[i+1], got)
		}
		if got := b.Compare(a); got != 1 {
			t.Errorf("Compare(%q, %q) = %d; want 1", order[i+1], order[i], got)
		}
	}
}

func TestCanonicalizeVersion(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1.0.0", "1"},
		{"1.0", "1"},
		{"1.0.1", "1.0.1"},
		{"0.0", "0"},
		{"1.0rc1", "1rc1"},
		{"1!2.0.post0+LOCAL", "1!2.post0+local"},
		{"10.0", "10"},
		{"not a version", "not a version"},
	}
	for _, tt := range tests {
		if got := pypi.CanonicalizeVersion(tt.in); got != tt.want {
			t.Errorf("CanonicalizeVersion(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestVersionAccessors(t *testing.T) {
	v := pypi.MustParseVersion("1.0rc1+Ubuntu-2")
	if got, want := v.Local(), "ubuntu.2"; got != want {
		t.Errorf("Local() = %q; want %q", got, want)
	}
	if got, want := v.Public().String(), "1.0rc1"; got != want {
		t.Errorf("Public() = %q; want %q", got, want)
	}
	if !v.IsPrerelease() {
		t.Errorf("IsPrerelease(%q) = false; want true", v)
	}
	if pypi.MustParseVersion("1.0.post1").IsPrerelease() {
		t.Errorf("IsPrerelease(1.0.post1) = true; want false")
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{
		"1.0", "v1!2.0rc1.post3.dev4+local.5", "1.0-1", "01.0beta.1", "1.0+ABC-01_x",
		" 1.0\n", "1.0a", "1.0.RC.1", "1.0.dev", "1.2.rev33+123456", "1.0+",
	} {
		f.Add(s)
	}
	for _, tt := range versionCases {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := pypi.ParseVersion(s)
		if err != nil {
			return
		}
		c := v.String()
		w, err := pypi.ParseVersion(c)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", c, s, err)
		}
		if !v.Equal(w) || w.String() != c {
			t.Fatalf("round trip of %q: %q then %q", s, c, w.String())
		}
		cv := pypi.CanonicalizeVersion(s)
		if x, err := pypi.ParseVersion(cv); err != nil || !x.Equal(v) {
			t.Fatalf("CanonicalizeVersion(%q) = %q, not equal to the version", s, cv)
		}
	})
}

// TestVersionSortKey: the sort key orders every pair of versions as
// Compare does, equal keys meaning equal versions (1.0 and 1.0.0).
func TestVersionSortKey(t *testing.T) {
	long := strings.Repeat("9", 300)
	ins := []string{"0", "1", "1.0", "1.0.0", "1.0.1", "1.1", "1.10", "1.9", "2!0.1", "1!1.0", "1.0a0", "1.0a", "1.0b0",
		"1.0rc0", "1.0.dev0", "1.0a1.dev0", "1.0.post0", "1.0.post0.dev0", "1.0.post1", "1.0+local", "1.0+local.1",
		"1.0+1", "1.0+1.a", "1.0+a.1", "1.0+abc", "1.0+abcd", "1.0+ab.c", "1.0+0", "1.0+00", "1.0+01", "1.0+1.0", long,
		"1." + long, long + ".1", "1.0a" + long, "1.0.post" + long, "1.0.dev" + long, "1.0+" + long, "1.0+x" + long,
		"0!0", "1.0.0.0.0.0", "1.0.0.0.0.1", "10", "9", "1.0rc1.post1", "1.0b1.post1.dev1"}
	for _, c := range versionCases {
		ins = append(ins, c.in)
	}
	var vs []pypi.Version
	for _, s := range ins {
		if v, err := pypi.ParseVersion(s); err == nil {
			vs = append(vs, v)
		}
	}
	for _, a := range vs {
		for _, b := range vs {
			if got, want := strings.Compare(a.SortKey(), b.SortKey()), a.Compare(b); got != want {
				t.Errorf("SortKey order of %s, %s = %d; Compare = %d", a, b, got, want)
			}
		}
	}
}
