package pypi_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/pypi"
)

// validFilenames ports pypi-attestations' test_check_dist_filename: every
// input and its "normalized" form parse, and the two are parsed-equal.
var validFilenames = []struct{ in, normalized string }{
	{"foo-1.0-py3-none-any.whl", "foo-1.0-py3-none-any.whl"},
	{"Foo-1.0-py3-none-any.whl", "foo-1.0-py3-none-any.whl"},
	{"FOO-1.0-py3-none-any.whl", "foo-1.0-py3-none-any.whl"},
	{"FoO-1.0-py3-none-any.whl", "foo-1.0-py3-none-any.whl"},
	{"foo.bar-1.0-py3-none-any.whl", "foo_bar-1.0-py3-none-any.whl"},
	{"foo_bar-1.0-py3-none-any.whl", "foo_bar-1.0-py3-none-any.whl"},
	{"foo-1.0beta1-py3-none-any.whl", "foo-1.0b1-py3-none-any.whl"},
	{"foo-1.0beta.1-py3-none-any.whl", "foo-1.0b1-py3-none-any.whl"},
	{"foo-01.0beta.1-py3-none-any.whl", "foo-1.0b1-py3-none-any.whl"},
	{"foo-1.0-1whatever-py3-none-any.whl", "foo-1.0-1whatever-py3-none-any.whl"},
	{"foo-1.0-py3.py2-none-any.whl", "foo-1.0-py2.py3-none-any.whl"},
	{"foo-1.0-py3.py2-none.abi3.cp37-any.whl", "foo-1.0-py2.py3-abi3.cp37.none-any.whl"},
	{"foo-1.0-py3.py2-none.abi3.cp37-linux_x86_64.any.whl", "foo-1.0-py2.py3-abi3.cp37.none-any.linux_x86_64.whl"},
	{"foo-1.0-py3.py2.py3-none-any.whl", "foo-1.0-py2.py3-none-any.whl"},
	{"foo-1.0-py3-none.none.none-any.whl", "foo-1.0-py3-none-any.whl"},
	{"foo-1.0.tar.gz", "foo-1.0.tar.gz"},
	{"foo-1.0.zip", "foo-1.0.zip"},
	{"Foo-1.0.tar.gz", "foo-1.0.tar.gz"},
	{"FOO-1.0.tar.gz", "foo-1.0.tar.gz"},
	{"FoO-1.0.tar.gz", "foo-1.0.tar.gz"},
	{"Foo-1.0.zip", "foo-1.0.zip"},
	{"FOO-1.0.zip", "foo-1.0.zip"},
	{"FoO-1.0.zip", "foo-1.0.zip"},
	{"foo-bar-1.0.tar.gz", "foo_bar-1.0.tar.gz"},
	{"foo-bar-baz-1.0.tar.gz", "foo_bar_baz-1.0.tar.gz"},
	{"foo--bar-1.0.tar.gz", "foo_bar-1.0.tar.gz"},
	{"foo.bar-1.0.tar.gz", "foo_bar-1.0.tar.gz"},
	{"foo..bar-1.0.tar.gz", "foo_bar-1.0.tar.gz"},
	{"foo.bar.baz-1.0.tar.gz", "foo_bar_baz-1.0.tar.gz"},
	{"foo-bar-1.0.zip", "foo_bar-1.0.zip"},
	{"foo-bar-baz-1.0.zip", "foo_bar_baz-1.0.zip"},
	{"foo--bar-1.0.zip", "foo_bar-1.0.zip"},
	{"foo.bar-1.0.zip", "foo_bar-1.0.zip"},
	{"foo..bar-1.0.zip", "foo_bar-1.0.zip"},
	{"foo.bar.baz-1.0.zip", "foo_bar_baz-1.0.zip"},
	{"foo-1.0beta1.tar.gz", "foo-1.0b1.tar.gz"},
	{"foo-01.0beta1.tar.gz", "foo-1.0b1.tar.gz"},
	{"foo-1.0beta1.zip", "foo-1.0b1.zip"},
	{"foo-01.0beta1.zip", "foo-1.0b1.zip"},
	// The fixtures' parsed-equal pairs (protocol.md §d.1 step 9, §e).
	{"spt3g-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "spt3g-1.0-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"},
	{"pypi_attestations-0.0.19.tar.gz", "Pypi-Attestations-0.0.19.tar.gz"},
	{"pep740-sampleproject-1.0.0.tar.gz", "pep740_sampleproject-1.0.0.tar.gz"},
	{"foo-1.0-PY3-NONE-ANY.whl", "foo-1.0-py3-none-any.whl"},
	{"foo-1.0.0-py3-none-any.whl", "foo-1-py3-none-any.whl"},
}

func TestParseFilenameValid(t *testing.T) {
	for _, tt := range validFilenames {
		a, err := pypi.ParseFilename(tt.in)
		if err != nil {
			t.Errorf("ParseFilename(%q): %v", tt.in, err)
			continue
		}
		b, err := pypi.ParseFilename(tt.normalized)
		if err != nil {
			t.Errorf("ParseFilename(%q): %v", tt.normalized, err)
			continue
		}
		if !a.Equal(b) || !b.Equal(a) {
			t.Errorf("ParseFilename(%q) = %s; not Equal to ParseFilename(%q) = %s", tt.in, a, tt.normalized, b)
		}
	}
}

// invalidFilenames ports test_check_dist_filename_invalid and
// TestDistribution, plus the path tricks pipgate rejects.
var invalidFilenames = []struct {
	in   string
	kind error
	msg  string // the exact message; "" to skip the check
}{
	{"foo", pypi.ErrUnknownDistFormat, "unknown distribution format: foo"},
	{"foo-1.0.TAR.GZ", pypi.ErrUnknownDistFormat, ""},
	{"foo-1.0.ZIP", pypi.ErrUnknownDistFormat, ""},
	{"foo-1.0-py3-none-any.WHL", pypi.ErrUnknownDistFormat, ""},
	{"foo-bar-1.0-py3-none-any.whl", pypi.ErrInvalidWheelFilename, "Invalid wheel filename (invalid version): 'foo-bar-1.0-py3-none-any'"},
	{"foo__bar-1.0-py3-none-any.whl", pypi.ErrInvalidWheelFilename, "Invalid project name: 'foo__bar-1.0-py3-none-any'"},
	{"foo-charmander-py3-none-any.whl", pypi.ErrInvalidWheelFilename, "Invalid wheel filename (invalid version): 'foo-charmander-py3-none-any'"},
	{"foo-1charmander-py3-none-any.whl", pypi.ErrInvalidWheelFilename, ""},
	{"foo-charmander.tar.gz", pypi.ErrInvalidSdistFilename, "Invalid sdist filename (invalid version): 'foo-charmander.tar.gz'"},
	{"foo-1charmander.tar.gz", pypi.ErrInvalidSdistFilename, ""},
	{"foo-charmander.zip", pypi.ErrInvalidSdistFilename, ""},
	{"foo-1charmander.zip", pypi.ErrInvalidSdistFilename, ""},
	{"foo-1.2.3.junk.zip", pypi.ErrInvalidSdistFilename, ""},
	{"foo-1.2.3.junk.tar.gz", pypi.ErrInvalidSdistFilename, ""},
	{"foo-1.2.3.zip.tar.gz", pypi.ErrInvalidSdistFilename, ""},
	{"foo-1.2.3.tar.gz.zip", pypi.ErrInvalidSdistFilename, ""},
	// TestDistribution.
	{"invalid-name.tar.gz", pypi.ErrInvalidSdistFilename, "Invalid sdist filename (invalid version): 'invalid-name.tar.gz'"},
	{"invalid-name.whl", pypi.ErrInvalidWheelFilename, "Invalid wheel filename (wrong number of parts): 'invalid-name'"},
	{"complete.nonsense", pypi.ErrUnknownDistFormat, "unknown distribution format: complete.nonsense"},
	{"foo-bar-invalid-wheel.whl", pypi.ErrInvalidWheelFilename, "Invalid wheel filename (wrong number of parts): 'foo-bar-invalid-wheel'"},
	{"foo.tar.gz", pypi.ErrInvalidSdistFilename, "Invalid sdist filename: 'foo.tar.gz'"},
	{"foo-1.0-x1-py3-none-any.whl", pypi.ErrInvalidWheelFilename, "Invalid build number: x1 in 'foo-1.0-x1-py3-none-any'"},
	{"foo-1.0-1-2-py3-none-any.whl", pypi.ErrInvalidWheelFilename, ""},
	{"foo-1.0-py3-none.whl", pypi.ErrInvalidWheelFilename, ""},
	{"föo-bär-1.0-py3-none-any.whl", pypi.ErrInvalidWheelFilename, ""},
	{"foo+x-1.0-py3-none-any.whl", pypi.ErrInvalidWheelFilename, ""},
	// Path tricks and control characters.
	{"", pypi.ErrUnsafeFilename, ""},
	{".", pypi.ErrUnsafeFilename, ""},
	{"..", pypi.ErrUnsafeFilename, ""},
	{"../foo-1.0.tar.gz", pypi.ErrUnsafeFilename, ""},
	{"a/foo-1.0.tar.gz", pypi.ErrUnsafeFilename, ""},
	{`..\foo-1.0.tar.gz`, pypi.ErrUnsafeFilename, ""},
	{"foo-1.0.tar.gz\x00.whl", pypi.ErrUnsafeFilename, ""},
	{"foo\n-1.0-py3-none-any.whl", pypi.ErrUnsafeFilename, ""},
	{"foo-1.0.tar.gz\r", pypi.ErrUnsafeFilename, ""},
}

func TestParseFilenameInvalid(t *testing.T) {
	for _, tt := range invalidFilenames {
		_, err := pypi.ParseFilename(tt.in)
		if err == nil {
			t.Errorf("ParseFilename(%q) succeeded; want error", tt.in)
			continue
		}
		if !errors.Is(err, pypi.ErrInvalidFilename) || !errors.Is(err, tt.kind) {
			t.Errorf("ParseFilename(%q) error %q; want errors.Is %v", tt.in, err, tt.kind)
		}
		var fe *pypi.FilenameError
		if !errors.As(err, &fe) || fe.Filename != tt.in {
			t.Errorf("ParseFilename(%q) error %#v; want *FilenameError naming the input", tt.in, err)
		}
		if tt.msg != "" && err.Error() != tt.msg {
			t.Errorf("ParseFilename(%q) error = %q; want %q", tt.in, err.Error(), tt.msg)
		}
	}
}

func TestParseFilenameFields(t *testing.T) {
	f, err := pypi.ParseFilename("Foo.Bar-1.0.0-007build-py2.py3-none-any.whl")
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != pypi.Wheel || f.Kind.String() != "wheel" {
		t.Errorf("Kind = %v; want wheel", f.Kind)
	}
	if got, want := f.Name, "foo-bar"; got != want {
		t.Errorf("Name = %q; want %q", got, want)
	}
	if got, want := f.Version.String(), "1.0.0"; got != want {
		t.Errorf("Version = %q; want %q", got, want)
	}
	if f.Build == nil || f.Build.Num != "7" || f.Build.Tag != "build" {
		t.Errorf("Build = %+v; want {7 build}", f.Build)
	}
	var tags []string
	for _, tg := range f.Tags {
		tags = append(tags, tg.String())
	}
	if got, want := strings.Join(tags, ","), "py2-none-any,py3-none-any"; got != want {
		t.Errorf("Tags = %q; want %q", got, want)
	}

	s, err := pypi.ParseFilename("pypi_attestations-0.0.19.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != pypi.Sdist || s.Name != "pypi-attestations" || s.Version.String() != "0.0.19" || s.Build != nil || s.Tags != nil {
		t.Errorf("ParseFilename(pypi_attestations-0.0.19.tar.gz) = %s; want sdist pypi-attestations 0.0.19", s)
	}
	if got, want := s.String(), "(sdist pypi-attestations 0.0.19)"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}

func TestFilenameNotEqual(t *testing.T) {
	tests := []struct{ a, b string }{
		{"rfc8785-0.1.2-py3-none-any.whl", "wrong_name-0.1.2-py3-none-any.whl"},
		{"pypi_attestations-0.0.19.tar.gz", "pypi_attestations-0.0.20.tar.gz"},
		{"foo-1.0-py3-none-any.whl", "foo-1.0.tar.gz"},
		{"foo-1.0-py3-none-any.whl", "foo-1.0-1-py3-none-any.whl"},
		{"foo-1.0-1-py3-none-any.whl", "foo-1.0-2-py3-none-any.whl"},
		{"foo-1.0-1a-py3-none-any.whl", "foo-1.0-1b-py3-none-any.whl"},
		{"foo-1.0-py3-none-any.whl", "foo-1.0-py2.py3-none-any.whl"},
		{"foo-1.0-py3-none-any.whl", "foo-1.0+local-py3-none-any.whl"},
		{"foo-1.0.tar.gz", "foo-1.0.post0.tar.gz"},
	}
	for _, tt := range tests {
		a, err := pypi.ParseFilename(tt.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pypi.ParseFilename(tt.b)
		if err != nil {
			t.Fatal(err)
		}
		if a.Equal(b) || b.Equal(a) {
			t.Errorf("ParseFilename(%q) Equal ParseFilename(%q); want not equal", tt.a, tt.b)
		}
	}
}

func TestFilenameEqualUnsortedTags(t *testing.T) {
	a := pypi.Filename{Kind: pypi.Wheel, Name: "x", Version: pypi.MustParseVersion("1"),
		Tags: []pypi.Tag{{"py3", "none", "any"}, {"py2", "none", "any"}, {"py3", "none", "any"}}}
	b, err := pypi.ParseFilename("x-1-py2.py3-none-any.whl")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(b) || !b.Equal(a) {
		t.Errorf("hand-built %s not Equal to %s", a, b)
	}
}

func FuzzParseFilename(f *testing.F) {
	for _, s := range []string{
		"foo-1.0-py3-none-any.whl", "foo-1.0-1whatever-py3.py2-none.abi3-any.whl",
		"spt3g-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
		"pypi_attestations-0.0.19.tar.gz", "foo..bar-1.0.zip", "foo-1.2.3.zip.tar.gz",
		"foo__bar-1.0-py3-none-any.whl", "../x-1.tar.gz", "foo-1.0-١٢-py3-none-any.whl",
	} {
		f.Add(s)
	}
	for _, tt := range validFilenames {
		f.Add(tt.in)
		f.Add(tt.normalized)
	}
	for _, tt := range invalidFilenames {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fn, err := pypi.ParseFilename(s)
		if err != nil {
			if !errors.Is(err, pypi.ErrInvalidFilename) {
				t.Fatalf("ParseFilename(%q) error %v is not ErrInvalidFilename", s, err)
			}
			return
		}
		if strings.ContainsAny(s, "/\\\x00") {
			t.Fatalf("ParseFilename(%q) accepted a path separator or NUL", s)
		}
		if !fn.Equal(fn) {
			t.Fatalf("%s not Equal to itself", fn)
		}
		if pypi.NormalizeName(fn.Name) != fn.Name {
			t.Fatalf("Name %q is not normalised", fn.Name)
		}
		_ = fn.String()
	})
}
