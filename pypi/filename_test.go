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
	f.Add("foo-1.0.tar.bz2")
	f.Add("foo-1.0-1.tgz")
	f.Fuzz(func(t *testing.T, s string) {
		// pip's formats: a superset of packaging's, parsed the same way, and
		// a file of the project it names.
		pf, perr := pypi.ParsePipFilename(s)
		if perr == nil {
			if strings.ContainsAny(s, "/\\\x00") {
				t.Fatalf("ParsePipFilename(%q) accepted a path separator or NUL", s)
			}
			if _, err := pypi.ParseProjectFilename(pf.Name, s); err != nil {
				t.Fatalf("ParsePipFilename(%q) = %s, but ParseProjectFilename of that name: %v", s, pf, err)
			}
		} else if !errors.Is(perr, pypi.ErrInvalidFilename) {
			t.Fatalf("ParsePipFilename(%q) error %v is not ErrInvalidFilename", s, perr)
		}
		fn, err := pypi.ParseFilename(s)
		if err != nil {
			if !errors.Is(err, pypi.ErrInvalidFilename) {
				t.Fatalf("ParseFilename(%q) error %v is not ErrInvalidFilename", s, err)
			}
			return
		}
		if perr != nil || !pf.Equal(fn) {
			t.Fatalf("ParseFilename(%q) = %s, but ParsePipFilename = %s, %v", s, fn, pf, perr)
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

// TestParsePipFilename: every sdist format pip installs parses like a
// .tar.gz; anything pip would not install is still an error.
func TestParsePipFilename(t *testing.T) {
	for _, ext := range []string{".tar.gz", ".zip", ".tgz", ".tar", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz", ".tar.lzma"} {
		fn, err := pypi.ParsePipFilename("Foo_Bar-2.0rc1" + ext)
		if err != nil || fn.Kind != pypi.Sdist || fn.Name != "foo-bar" || fn.Version.String() != "2.0rc1" {
			t.Errorf("ParsePipFilename(%q) = %v, %v; want sdist foo-bar 2.0rc1", "Foo_Bar-2.0rc1"+ext, fn, err)
		}
	}
	for _, name := range []string{"foo-1.0.TAR.BZ2", "foo-1.0.egg", "foo-1.0.exe", "foo-1.0.tar.Z", "foo.tar.bz2", "foo-.tgz", "foo-x y.tar.xz", "../foo-1.0.tgz", "foo-1.0-py3.9.tar.bz2"} {
		if fn, err := pypi.ParsePipFilename(name); err == nil {
			t.Errorf("ParsePipFilename(%q) = %v; want an error", name, fn)
		}
	}
	// ParseFilename stays packaging's: .tar.gz and .zip only.
	if _, err := pypi.ParseFilename("foo-1.0.tar.bz2"); !errors.Is(err, pypi.ErrUnknownDistFormat) {
		t.Errorf("ParseFilename(foo-1.0.tar.bz2) = %v; want unknown distribution format", err)
	}
}

// TestParseProjectFilename: a file whose name is not the project's, or
// whose version pip would read differently, is not a release of it.
func TestParseProjectFilename(t *testing.T) {
	tests := []struct {
		project, name, version string // version "": an error
	}{
		{"foo-bar", "foo_bar-1.0.tar.bz2", "1.0"},
		{"foo-bar", "Foo.Bar-1.0-py3-none-any.whl", "1.0"},
		{"foo", "foo-1!2.0+local.tgz", "1!2.0+local"},
		{"foo", "foo-1.0.post1.tar", "1.0.post1"},
		{"foo", "bar-1.0.tar.gz", ""},
		{"foo", "foo-1.0-1.tar.gz", ""},   // pip reads foo 1.0-1; packaging foo-1.0 1
		{"foo", "foo-bar-1.0.tar.gz", ""}, // another project
		{"foo", "foo-1.0.egg", ""},
		{"foo", "foo-1.0-py3-none-any.whl.metadata", ""},
	}
	for _, tt := range tests {
		fn, err := pypi.ParseProjectFilename(tt.project, tt.name)
		switch {
		case tt.version == "" && err == nil:
			t.Errorf("ParseProjectFilename(%q, %q) = %v; want an error", tt.project, tt.name, fn)
		case tt.version != "" && (err != nil || fn.Version.String() != tt.version):
			t.Errorf("ParseProjectFilename(%q, %q) = %v, %v; want version %s", tt.project, tt.name, fn, err, tt.version)
		}
	}
	p := &pypi.ProjectPage{Name: "foo", Files: []pypi.File{
		{Filename: "foo-1.0.tar.gz"}, {Filename: "foo-1.0.exe"}, {Filename: "foo-1.1.tar.bz2"}, {Filename: "other-1.0.tar.gz"},
	}}
	n := p.KeepDistributions("foo")
	dropped := p.Dropped
	if len(p.Files) != 2 || p.Files[0].Filename != "foo-1.0.tar.gz" || p.Files[1].Filename != "foo-1.1.tar.bz2" {
		t.Errorf("kept %v; want foo-1.0.tar.gz and foo-1.1.tar.bz2", p.Files)
	}
	if n != 2 || p.DroppedCount != 2 || len(dropped) != 2 || dropped[0].Index != 1 || dropped[0].Filename != "foo-1.0.exe" || dropped[1].Index != 3 || dropped[1].Reason == "" {
		t.Errorf("dropped %+v; want foo-1.0.exe (1) and other-1.0.tar.gz (3) with reasons", dropped)
	}
}

// benchFilenames are a page's usual file names: wheels with one tag or a
// few, an sdist.
var benchFilenames = []string{
	"huge_j1-3.12.45-py3-none-any.whl", "numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
	"requests-2.32.3.tar.gz", "six-1.16.0-py2.py3-none-any.whl",
}

// BenchmarkParsePipFilename is the whole parse of a filename; a page's
// render reads the version alone (BenchmarkPipFilenameVersion).
func BenchmarkParsePipFilename(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := pypi.ParsePipFilename(benchFilenames[i%len(benchFilenames)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPipFilenameVersion(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok := pypi.PipFilenameVersion(benchFilenames[i%len(benchFilenames)]); !ok {
			b.Fatal(benchFilenames[i%len(benchFilenames)])
		}
	}
}
