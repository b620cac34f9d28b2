package pypi

import (
	"errors"
	"slices"
	"strings"
	"unicode"
)

// FileKind says whether a distribution file is a wheel or an sdist.
type FileKind uint8

// The distribution kinds [ParseFilename] recognises.
const (
	// Wheel is a built distribution, "name-version[-build]-tags.whl" (PEP 427).
	Wheel FileKind = iota + 1
	// Sdist is a source distribution, "name-version.tar.gz" or ".zip" (PEP 625).
	Sdist
)

// String returns "wheel" or "sdist".
func (k FileKind) String() string {
	switch k {
	case Wheel:
		return "wheel"
	case Sdist:
		return "sdist"
	}
	return "unknown"
}

// BuildTag is a wheel's optional build tag, split as packaging does into a
// leading number and the rest ("1whatever" is {"1", "whatever"}).
type BuildTag struct {
	// Num is the leading number as a canonical decimal string (no leading
	// zeros), so build numbers of any size compare exactly.
	Num string
	// Tag is whatever follows the number, verbatim.
	Tag string
}

// Tag is one compatibility tag of a wheel (PEP 425), lower-cased.
type Tag struct {
	Interpreter string
	ABI         string
	Platform    string
}

// String renders t as "py3-none-any".
func (t Tag) String() string { return t.Interpreter + "-" + t.ABI + "-" + t.Platform }

// Filename is a parsed distribution filename: the tuple packaging's
// parse_wheel_filename or parse_sdist_filename returns.
type Filename struct {
	// Kind is [Wheel] or [Sdist].
	Kind FileKind
	// Name is the PEP 503-normalised project name.
	Name string
	// Version is the parsed version.
	Version Version
	// Build is the wheel build tag; nil for sdists and wheels without one.
	Build *BuildTag
	// Tags is the expanded set of wheel tags ("py2.py3-none-any" gives two),
	// sorted and without duplicates; nil for sdists.
	Tags []Tag
}

// Filename parse errors. Every error of [ParseFilename] is a *FilenameError
// that matches [ErrInvalidFilename] and exactly one of the others with
// errors.Is.
var (
	ErrInvalidFilename      = errors.New("invalid distribution filename")
	ErrInvalidWheelFilename = errors.New("invalid wheel filename")
	ErrInvalidSdistFilename = errors.New("invalid sdist filename")
	ErrUnknownDistFormat    = errors.New("unknown distribution format")
	// ErrUnsafeFilename is for names with a path separator, NUL or another
	// control character, or that are "." or "..".
	ErrUnsafeFilename = errors.New("unsafe distribution filename")
)

// FilenameError is a distribution filename that [ParseFilename] rejects.
// Its message reads like packaging's (or pypi-attestations') for the same
// input.
type FilenameError struct {
	// Filename is the rejected input.
	Filename string
	// Kind is one of the sentinels ErrInvalidWheelFilename,
	// ErrInvalidSdistFilename, ErrUnknownDistFormat or ErrUnsafeFilename.
	Kind error
	// Msg is the full message.
	Msg string
}

// Error returns the message.
func (e *FilenameError) Error() string { return e.Msg }

// Is matches [ErrInvalidFilename] and the error's Kind.
func (e *FilenameError) Is(target error) bool {
	return target == ErrInvalidFilename || target == e.Kind
}

// ParseFilename parses a wheel (".whl") or sdist (".tar.gz", ".zip")
// filename exactly as packaging's parse_wheel_filename and
// parse_sdist_filename do; the extensions must be lower-case. Any other
// extension gives "unknown distribution format". Unlike packaging, it also
// rejects names containing "/", "\", NUL or another control character, and
// the names "." and "..", so a parsed name is always safe as a path element.
func ParseFilename(name string) (Filename, error) { return parseFilename(name, wantAll) }

// parseWant says what a parse computes beyond checking a filename and
// reading its version and build tag: the normalised name, the expanded
// tags. A caller that needs only the version (a page of 390k files is read
// for its versions several times per render) skips the rest; what is
// accepted and every error are the same (FuzzFilenameVersion).
type parseWant uint8

const (
	wantName parseWant = 1 << iota // Filename.Name
	wantTags                       // Filename.Tags
	wantAll  = wantName | wantTags
)

// parseFilename is [ParseFilename] computing what want says.
func parseFilename(name string, want parseWant) (Filename, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsFunc(name, unsafeFilenameRune) {
		return Filename{}, &FilenameError{Filename: name, Kind: ErrUnsafeFilename,
			Msg: "Invalid distribution filename (path separator or control character): " + pyRepr(name)}
	}
	switch {
	case strings.HasSuffix(name, ".whl"):
		return parseWheelFilename(name, want)
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".zip"):
		return parseSdistFilename(name, want)
	}
	return Filename{}, &FilenameError{Filename: name, Kind: ErrUnknownDistFormat,
		Msg: "unknown distribution format: " + name}
}

// SdistExtensions are the source distribution formats pip installs from an
// index (pip's SUPPORTED_EXTENSIONS without ".whl": tar, gzip, bzip2, xz,
// lzip and lzma tarballs, and zip), lower-case as pip requires. PyPI takes
// only ".tar.gz" (and ".zip" before PEP 625), but other indexes and old
// releases list the rest, and pip installs them all.
var SdistExtensions = []string{".tar.gz", ".zip", ".tgz", ".tar", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz", ".tar.lzma"}

// ParsePipFilename parses every distribution filename pip installs from an
// index: a wheel as [ParseFilename] does, and an sdist in any of
// [SdistExtensions] as [ParseFilename] parses a ".tar.gz" (name and version
// split at the last "-"). Any other name is an error.
func ParsePipFilename(name string) (Filename, error) { return parsePipFilename(name, wantAll) }

// PipFilenameVersion returns the version in a filename [ParsePipFilename]
// accepts, and false for one it refuses. It reads exactly what
// ParsePipFilename reads, without normalising the project name or
// expanding the wheel's tags: what a caller wanting only the version would
// have thrown away.
func PipFilenameVersion(name string) (Version, bool) {
	fn, err := parsePipFilename(name, 0)
	return fn.Version, err == nil
}

// parsePipFilename is [ParsePipFilename] computing what want says.
func parsePipFilename(name string, want parseWant) (Filename, error) {
	if !strings.HasSuffix(name, ".whl") && !strings.ContainsFunc(name, unsafeFilenameRune) && name != "." && name != ".." {
		for _, ext := range SdistExtensions {
			if stem, ok := strings.CutSuffix(name, ext); ok {
				return parseSdistStem(name, stem, want)
			}
		}
	}
	return parseFilename(name, want)
}

// ParseProjectFilename parses name as a distribution file of project (PEP
// 503-normalised): [ParsePipFilename], and the name in it must be project.
// A file that passes is one pip would take as a release of project, at
// the same version: pip splits an sdist name at the first "-" whose prefix
// normalises to the project name, and when the last "-" does that it is the
// only one that does. A file that fails is not a release of the project as
// far as pipgate can tell, and is left off its page.
func ParseProjectFilename(project, name string) (Filename, error) {
	return parseProjectFilename(project, name, wantAll)
}

// parseProjectFilename is [ParseProjectFilename] computing what want says
// besides the name.
func parseProjectFilename(project, name string, want parseWant) (Filename, error) {
	fn, err := parsePipFilename(name, want|wantName)
	if err != nil {
		return fn, err
	}
	if fn.Name != project {
		return Filename{}, &FilenameError{Filename: name, Kind: ErrInvalidFilename,
			Msg: "distribution filename " + pyRepr(name) + " names project " + pyRepr(fn.Name) + ", not " + pyRepr(project)}
	}
	return fn, nil
}

// KeepDistributions leaves on p only the files whose names parse as
// distributions of project, PEP 503-normalised ([ParseProjectFilename]): a file whose release
// pipgate cannot tell could never be judged against the project's history.
// The files it removes are added to p.Dropped and p.DroppedCount, for the
// caller to log and count like any other unusable link (their Index is
// the position in p.Files); it returns how many it removed.
func (p *ProjectPage) KeepDistributions(project string) int {
	out := 0
	kept := p.Files[:0]
	for i := range p.Files {
		if _, err := parseProjectFilename(project, p.Files[i].Filename, 0); err != nil {
			p.drop(dropped(i, p.Files[i].Filename, err))
			out++
			continue
		}
		kept = append(kept, p.Files[i])
	}
	clear(p.Files[len(kept):])
	p.Files = kept
	return out
}

func unsafeFilenameRune(r rune) bool {
	return r == '/' || r == '\\' || r < 0x20 || r == 0x7f
}

func parseWheelFilename(full string, want parseWant) (Filename, error) {
	stem := strings.TrimSuffix(full, ".whl")
	fail := func(msg string) (Filename, error) {
		return Filename{}, &FilenameError{Filename: full, Kind: ErrInvalidWheelFilename, Msg: msg}
	}
	dashes := strings.Count(stem, "-")
	if dashes != 4 && dashes != 5 {
		return fail("Invalid wheel filename (wrong number of parts): " + pyRepr(stem))
	}
	// packaging's stem.split("-", dashes - 2): name, version, [build,]
	// and the tags, which hold the last two dashes.
	namePart, rest, _ := strings.Cut(stem, "-")
	if strings.Contains(namePart, "__") || !isWheelNamePart(namePart) {
		return fail("Invalid project name: " + pyRepr(stem))
	}
	versionPart, rest, _ := strings.Cut(rest, "-")
	v, err := ParseVersion(versionPart)
	if err != nil {
		return fail("Invalid wheel filename (invalid version): " + pyRepr(stem))
	}
	f := Filename{Kind: Wheel, Version: v}
	if want&wantName != 0 {
		f.Name = NormalizeName(namePart)
	}
	if dashes == 5 {
		var buildPart string
		buildPart, rest, _ = strings.Cut(rest, "-")
		b, ok := parseBuildTag(buildPart)
		if !ok {
			return fail("Invalid build number: " + buildPart + " in " + pyRepr(stem))
		}
		f.Build = &b
	}
	if want&wantTags != 0 {
		f.Tags = parseTags(rest)
	}
	return f, nil
}

// isWheelNamePart matches Python's ^[\w\d._]*$ (Unicode \w: letters,
// numbers and "_").
func isWheelNamePart(s string) bool {
	for _, r := range s {
		if r != '_' && r != '.' && !unicode.IsLetter(r) && !unicode.IsNumber(r) {
			return false
		}
	}
	return true
}

// parseBuildTag splits a build tag as the regex (\d+)(.*) does, with
// Unicode decimal digits, as Python's int() reads them.
func parseBuildTag(s string) (BuildTag, bool) {
	var num strings.Builder
	rest := s
	for i, r := range s {
		d, ok := decimalValue(r)
		if !ok {
			rest = s[i:]
			break
		}
		num.WriteByte('0' + byte(d))
		rest = ""
	}
	if num.Len() == 0 {
		return BuildTag{}, false
	}
	return BuildTag{Num: canonNum(num.String()), Tag: rest}, true
}

// decimalValue returns the value of a Unicode decimal digit (category Nd).
// Every Nd range in the Unicode tables is made of whole runs of ten digits
// starting at zero.
func decimalValue(r rune) (int, bool) {
	if r >= '0' && r <= '9' {
		return int(r - '0'), true
	}
	if !unicode.Is(unicode.Nd, r) {
		return 0, false
	}
	for _, rg := range unicode.Nd.R16 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10, true
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10, true
		}
	}
	return 0, false
}

// parseTags expands a compressed tag set ("py2.py3-none-any") as
// packaging's parse_tag does, lower-casing every part.
func parseTags(s string) []Tag {
	interp, rest, _ := strings.Cut(s, "-")
	abi, plat, _ := strings.Cut(rest, "-")
	if !strings.Contains(s, ".") { // one tag, the usual case
		return []Tag{{Interpreter: pyLower(interp), ABI: pyLower(abi), Platform: pyLower(plat)}}
	}
	interps, abis, plats := strings.Split(interp, "."), strings.Split(abi, "."), strings.Split(plat, ".")
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

func cmpTag(a, b Tag) int {
	if c := strings.Compare(a.Interpreter, b.Interpreter); c != 0 {
		return c
	}
	if c := strings.Compare(a.ABI, b.ABI); c != 0 {
		return c
	}
	return strings.Compare(a.Platform, b.Platform)
}

// pyLower lower-cases s as Python's str.lower does for the cases tags and
// names can contain.
func pyLower(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c >= 'A' && c <= 'Z' {
			var b strings.Builder
			b.Grow(len(s))
			for _, r := range s {
				writeLower(&b, r)
			}
			return b.String()
		}
	}
	return s
}

func parseSdistFilename(full string, want parseWant) (Filename, error) {
	stem, ok := strings.CutSuffix(full, ".tar.gz")
	if !ok {
		stem = strings.TrimSuffix(full, ".zip")
	}
	return parseSdistStem(full, stem, want)
}

// parseSdistStem parses an sdist filename full whose extension is cut off
// (stem), as packaging does: name and version split at the last "-".
func parseSdistStem(full, stem string, want parseWant) (Filename, error) {
	i := strings.LastIndexByte(stem, '-')
	if i < 0 {
		return Filename{}, &FilenameError{Filename: full, Kind: ErrInvalidSdistFilename,
			Msg: "Invalid sdist filename: " + pyRepr(full)}
	}
	v, err := ParseVersion(stem[i+1:])
	if err != nil {
		return Filename{}, &FilenameError{Filename: full, Kind: ErrInvalidSdistFilename,
			Msg: "Invalid sdist filename (invalid version): " + pyRepr(full)}
	}
	f := Filename{Kind: Sdist, Version: v}
	if want&wantName != 0 {
		f.Name = NormalizeName(stem[:i])
	}
	return f, nil
}

// Equal reports whether f and g are the same distribution as packaging's
// parsed tuples see it: same kind, normalised name, version (PEP 440
// equality), build tag, and the same set of tags. Like pypi-attestations,
// it ignores the sdist extension (".tar.gz" vs ".zip"); compare digests to
// tell files apart.
func (f Filename) Equal(g Filename) bool {
	if f.Kind != g.Kind || f.Name != g.Name || !f.Version.Equal(g.Version) {
		return false
	}
	if (f.Build == nil) != (g.Build == nil) || f.Build != nil && *f.Build != *g.Build {
		return false
	}
	// Tags are sorted and compacted by ParseFilename; normalise anyway in
	// case a caller built the Filename by hand.
	return slices.Equal(normTags(f.Tags), normTags(g.Tags))
}

func normTags(t []Tag) []Tag {
	strict := true
	for i := 1; i < len(t) && strict; i++ {
		strict = cmpTag(t[i-1], t[i]) < 0
	}
	if strict {
		return t
	}
	t = slices.Clone(t)
	slices.SortFunc(t, cmpTag)
	return slices.Compact(t)
}

// String renders f for messages, as a tuple: "(wheel spt3g 1.0 build=() tags={cp310-cp310-manylinux_2_17_x86_64, …})".
func (f Filename) String() string {
	var b strings.Builder
	b.WriteString("(")
	b.WriteString(f.Kind.String())
	b.WriteString(" ")
	b.WriteString(f.Name)
	b.WriteString(" ")
	b.WriteString(f.Version.String())
	if f.Kind == Wheel {
		b.WriteString(" build=(")
		if f.Build != nil {
			b.WriteString(f.Build.Num)
			b.WriteString(", ")
			b.WriteString(pyRepr(f.Build.Tag))
		}
		b.WriteString(") tags={")
		for i, t := range f.Tags {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(t.String())
		}
		b.WriteString("}")
	}
	b.WriteString(")")
	return b.String()
}
