package pypi

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// refParseWheelFilename and refParseTags are the wheel parser as it was
// before the parts were cut without allocating and a lone tag skipped the
// splitting (kept here as the reference FuzzFilenameVersion holds the
// parser to).
func refParseWheelFilename(full string) (Filename, error) {
	stem := strings.TrimSuffix(full, ".whl")
	fail := func(msg string) (Filename, error) {
		return Filename{}, &FilenameError{Filename: full, Kind: ErrInvalidWheelFilename, Msg: msg}
	}
	dashes := strings.Count(stem, "-")
	if dashes != 4 && dashes != 5 {
		return fail("Invalid wheel filename (wrong number of parts): " + pyRepr(stem))
	}
	parts := strings.SplitN(stem, "-", dashes-1)
	namePart := parts[0]
	if strings.Contains(namePart, "__") || !isWheelNamePart(namePart) {
		return fail("Invalid project name: " + pyRepr(stem))
	}
	v, err := ParseVersion(parts[1])
	if err != nil {
		return fail("Invalid wheel filename (invalid version): " + pyRepr(stem))
	}
	f := Filename{Kind: Wheel, Name: NormalizeName(namePart), Version: v}
	if dashes == 5 {
		b, ok := parseBuildTag(parts[2])
		if !ok {
			return fail("Invalid build number: " + parts[2] + " in " + pyRepr(stem))
		}
		f.Build = &b
	}
	f.Tags = refParseTags(parts[len(parts)-1])
	return f, nil
}

func refParseTags(s string) []Tag {
	f := strings.SplitN(s, "-", 3)
	interps, abis, plats := strings.Split(f[0], "."), strings.Split(f[1], "."), strings.Split(f[2], ".")
	tags := make([]Tag, 0, len(interps)*len(abis)*len(plats))
	for _, i := range interps {
		for _, a := range abis {
			for _, p := range plats {
				tags = append(tags, Tag{Interpreter: pyLower(i), ABI: pyLower(a), Platform: pyLower(p)})
			}
		}
	}
	slices.SortFunc(tags, cmpTag)
	return slices.Compact(tags)
}

// FuzzFilenameVersion: the parsers that skip the name or the tags accept
// and refuse what the whole parse does, with the same error and the same
// version, and the whole wheel parse gives what the reference gives (and
// trimPySpace's short cut what strings.TrimFunc gives).
func FuzzFilenameVersion(f *testing.F) {
	for _, s := range []string{
		"foo-1.0-py3-none-any.whl", "Foo_Bar-1.0-1whatever-py3.py2-none.abi3-any.whl", "foo-1.0-PY3-NONE-ANY.whl",
		"spt3g-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "foo-1.0-py3--any.whl",
		"foo-1.0-x-py3-none-any.whl", "foo__bar-1.0-py3-none-any.whl", "foo-1.0-py3-none-any-x.whl",
		"foo- 1.0\t-py3-none-any.whl", "foo-1.0\u00a0-py3-none-any.whl", "foo-\u00a01.0-py3-none-any.whl",
		"foo-1.0-١٢-py3-none-any.whl", "pypi_attestations-0.0.19.tar.gz", "foo-1.0.tar.bz2", "Foo.Bar-1.0.zip",
		"huge_j1-3.12.45-py3-none-any.whl", "../x-1.tar.gz", "x-1.whl", "-1.0-py3-none-any.whl",
	} {
		f.Add(s, "foo")
	}
	f.Fuzz(func(t *testing.T, s, project string) {
		if got, want := trimPySpace(s), strings.TrimFunc(s, isPySpace); got != want {
			t.Fatalf("trimPySpace(%q) = %q; want %q", s, got, want)
		}
		if strings.HasSuffix(s, ".whl") {
			got, gerr := ParseFilename(s)
			want, werr := refParseWheelFilename(s)
			if !strings.ContainsFunc(s, unsafeFilenameRune) && s != "." && s != ".." &&
				(!reflect.DeepEqual(got, want) || !reflect.DeepEqual(gerr, werr)) {
				t.Fatalf("ParseFilename(%q) = %#v, %v; the reference gives %#v, %v", s, got, gerr, want, werr)
			}
		}
		for _, pip := range []bool{false, true} {
			parse := parseFilename
			if pip {
				parse = parsePipFilename
			}
			all, err := parse(s, wantAll)
			for _, want := range []parseWant{0, wantName, wantTags} {
				fn, ferr := parse(s, want)
				if !reflect.DeepEqual(ferr, err) {
					t.Fatalf("parse(%q, pip %v, want %d): error %v; the whole parse: %v", s, pip, want, ferr, err)
				}
				if err != nil {
					continue
				}
				if !reflect.DeepEqual(fn.Version, all.Version) || fn.Kind != all.Kind || !reflect.DeepEqual(fn.Build, all.Build) {
					t.Fatalf("parse(%q, pip %v, want %d) = %s; the whole parse: %s", s, pip, want, fn, all)
				}
				if want&wantName != 0 && fn.Name != all.Name || want&wantTags != 0 && !reflect.DeepEqual(fn.Tags, all.Tags) {
					t.Fatalf("parse(%q, pip %v, want %d) = %s; the whole parse: %s", s, pip, want, fn, all)
				}
			}
			if pip {
				v, ok := PipFilenameVersion(s)
				if ok != (err == nil) || ok && !reflect.DeepEqual(v, all.Version) {
					t.Fatalf("PipFilenameVersion(%q) = %s, %v; ParsePipFilename: %s, %v", s, v, ok, all, err)
				}
			}
		}
		pf, perr := ParseProjectFilename(project, s)
		_, qerr := parseProjectFilename(project, s, 0)
		if !reflect.DeepEqual(perr, qerr) {
			t.Fatalf("parseProjectFilename(%q, %q) without tags: %v; ParseProjectFilename: %s, %v", project, s, qerr, pf, perr)
		}
	})
}
