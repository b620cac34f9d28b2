package pypi

import (
	"encoding/binary"
	"errors"
	"regexp"
	"strings"
	"unicode/utf8"
)

// versionRE is packaging's VERSION_PATTERN (PEP 440, appendix B), matched
// case-insensitively against the whitespace-trimmed input. Go's regexp uses
// leftmost-first submatch semantics, like Python's re, so the groups it
// captures are the ones packaging sees.
var versionRE = regexp.MustCompile(`(?i)\Av?` +
	`(?:(?:(?P<epoch>[0-9]+)!)?` +
	`(?P<release>[0-9]+(?:\.[0-9]+)*)` +
	`(?P<pre>[-_\.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_\.]?(?P<pre_n>[0-9]+)?)?` +
	`(?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_\.]?(?P<post_l>post|rev|r)[-_\.]?(?P<post_n2>[0-9]+)?))?` +
	`(?P<dev>[-_\.]?(?P<dev_l>dev)[-_\.]?(?P<dev_n>[0-9]+)?)?)` +
	`(?:\+(?P<local>[a-z0-9]+(?:[-_\.][a-z0-9]+)*))?\z`)

// Submatch indexes of versionRE, looked up once.
var (
	reEpoch   = versionRE.SubexpIndex("epoch")
	reRelease = versionRE.SubexpIndex("release")
	rePre     = versionRE.SubexpIndex("pre")
	rePreL    = versionRE.SubexpIndex("pre_l")
	rePreN    = versionRE.SubexpIndex("pre_n")
	rePost    = versionRE.SubexpIndex("post")
	rePostN1  = versionRE.SubexpIndex("post_n1")
	rePostN2  = versionRE.SubexpIndex("post_n2")
	reDev     = versionRE.SubexpIndex("dev")
	reDevN    = versionRE.SubexpIndex("dev_n")
	reLocal   = versionRE.SubexpIndex("local")
)

// Version is a parsed PEP 440 version. Numbers are kept as canonical decimal
// strings (no leading zeros), so any size compares correctly. The zero Version
// is not a valid version; obtain one from [ParseVersion].
type Version struct {
	epoch   string   // "0" when absent
	release []string // at least one element
	preL    string   // "a", "b", "rc"; "" when there is no pre-release
	preN    string
	post    string // "" when there is no post-release
	dev     string // "" when there is no dev-release
	local   []string
}

// VersionError reports a string that is not a PEP 440 version.
type VersionError struct {
	Version string
}

// Error renders the error as packaging's InvalidVersion does.
func (e *VersionError) Error() string {
	return "Invalid version: " + pyRepr(e.Version)
}

// Is makes errors.Is(err, ErrInvalidVersion) hold for every *VersionError.
func (e *VersionError) Is(target error) bool { return target == ErrInvalidVersion }

// ErrInvalidVersion is matched (with errors.Is) by every error of [ParseVersion].
var ErrInvalidVersion = errors.New("invalid version")

// ParseVersion parses s as packaging.version.Version does: leading and
// trailing whitespace, a leading "v", alternate spellings (alpha, beta, c,
// pre, preview, rev, r), implicit post-releases ("1.0-1"), separators ".",
// "-" and "_", and any letter case are accepted.
func ParseVersion(s string) (Version, error) {
	t := trimPySpace(s)
	v, ok := parsePlainRelease(t)
	switch {
	case ok:
		return v, nil
	case onlyDigitsAndDots(t):
		// Past a plain release, packaging's pattern needs a letter, "!",
		// "-", "_" or "+": "1.", "1..2", a 2 KB junk version are refused
		// without running it.
		return Version{}, &VersionError{Version: s}
	}
	v, ok = parseVersionRE(t)
	if !ok {
		return Version{}, &VersionError{Version: s}
	}
	return v, nil
}

// parseVersionRE parses a trimmed version with packaging's regular
// expression.
func parseVersionRE(t string) (Version, bool) {
	m := versionRE.FindStringSubmatchIndex(t)
	if m == nil {
		return Version{}, false
	}
	group := func(i int) (string, bool) {
		if m[2*i] < 0 {
			return "", false
		}
		return t[m[2*i]:m[2*i+1]], true
	}
	var v Version
	v.epoch = "0"
	if e, ok := group(reEpoch); ok {
		v.epoch = canonNum(e)
	}
	rel, _ := group(reRelease)
	parts := strings.Split(rel, ".")
	v.release = make([]string, len(parts))
	for i, p := range parts {
		v.release[i] = canonNum(p)
	}
	if _, ok := group(rePre); ok {
		l, _ := group(rePreL)
		switch strings.ToLower(l) {
		case "a", "alpha":
			v.preL = "a"
		case "b", "beta":
			v.preL = "b"
		default: // c, rc, pre, preview
			v.preL = "rc"
		}
		v.preN = "0"
		if n, ok := group(rePreN); ok {
			v.preN = canonNum(n)
		}
	}
	if _, ok := group(rePost); ok {
		v.post = "0"
		if n, ok := group(rePostN1); ok {
			v.post = canonNum(n)
		} else if n, ok := group(rePostN2); ok {
			v.post = canonNum(n)
		}
	}
	if _, ok := group(reDev); ok {
		v.dev = "0"
		if n, ok := group(reDevN); ok {
			v.dev = canonNum(n)
		}
	}
	if l, ok := group(reLocal); ok {
		v.local = strings.FieldsFunc(l, func(r rune) bool { return r == '-' || r == '_' || r == '.' })
		for i, p := range v.local {
			if isDigits(p) {
				v.local[i] = canonNum(p)
			} else {
				v.local[i] = strings.ToLower(p)
			}
		}
	}
	return v, true
}

// MustParseVersion is like [ParseVersion] but panics on error. It is meant
// for constants in tests and tables.
func MustParseVersion(s string) Version {
	v, err := ParseVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String returns the canonical form of v, as str(Version) in packaging:
// "1!2.0rc1.post3.dev4+local.5".
func (v Version) String() string {
	return v.format(false)
}

// format renders v; stripZeros drops trailing ".0" release components (but
// keeps at least one), as canonicalize_version does.
func (v Version) format(stripZeros bool) string {
	var b strings.Builder
	if v.epoch != "0" && v.epoch != "" {
		b.WriteString(v.epoch)
		b.WriteByte('!')
	}
	rel := v.release
	if stripZeros {
		for len(rel) > 1 && rel[len(rel)-1] == "0" {
			rel = rel[:len(rel)-1]
		}
	}
	for i, r := range rel {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(r)
	}
	if v.preL != "" {
		b.WriteString(v.preL)
		b.WriteString(v.preN)
	}
	if v.post != "" {
		b.WriteString(".post")
		b.WriteString(v.post)
	}
	if v.dev != "" {
		b.WriteString(".dev")
		b.WriteString(v.dev)
	}
	if len(v.local) > 0 {
		b.WriteByte('+')
		b.WriteString(strings.Join(v.local, "."))
	}
	return b.String()
}

// Public returns v without its local segment ("1.0+abc" becomes "1.0").
func (v Version) Public() Version {
	v.local = nil
	return v
}

// Local returns the canonical local segment ("abc.5"), or "" when v has none.
func (v Version) Local() string { return strings.Join(v.local, ".") }

// IsPrerelease reports whether v is a pre- or dev-release, as packaging's
// Version.is_prerelease does.
func (v Version) IsPrerelease() bool { return v.preL != "" || v.dev != "" }

// CanonicalizeVersion returns packaging's canonicalize_version(s): the
// canonical form with trailing ".0" release components removed ("1.0.0"
// becomes "1", "1.0rc1" becomes "1rc1"). A string that is not a valid version
// is returned unchanged.
func CanonicalizeVersion(s string) string {
	v, err := ParseVersion(s)
	if err != nil {
		return s
	}
	return v.format(true)
}

// Equal reports whether v and w are the same version under PEP 440
// (1.0 == 1.0.0; local segments are significant).
func (v Version) Equal(w Version) bool { return v.Compare(w) == 0 }

// Compare returns -1, 0 or +1 as v sorts before, equal to or after w in
// PEP 440 order: epoch, release (trailing zeros ignored), then
// dev < pre < final < post, and finally the local segment (absent first;
// numeric parts after alphanumeric ones).
func (v Version) Compare(w Version) int {
	if c := cmpNum(nz(v.epoch), nz(w.epoch)); c != 0 {
		return c
	}
	if c := cmpRelease(v.release, w.release); c != 0 {
		return c
	}
	if c := cmpPre(v, w); c != 0 {
		return c
	}
	// Post: absent sorts first.
	if c := cmpOptional(v.post, w.post, -1); c != 0 {
		return c
	}
	// Dev: absent sorts last.
	if c := cmpOptional(v.dev, w.dev, +1); c != 0 {
		return c
	}
	return cmpLocal(v.local, w.local)
}

// parsePlainRelease parses the common case, a release alone ("1.2.3":
// digits and single dots, a digit at each end), without the regular
// expression, exactly as ParseVersion would: a page's versions are parsed
// hundreds of thousands of times.
func parsePlainRelease(t string) (Version, bool) {
	if t == "" || t[0] == '.' || t[len(t)-1] == '.' {
		return Version{}, false
	}
	n := 1
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c == '.':
			if t[i-1] == '.' {
				return Version{}, false
			}
			n++
		case c < '0' || c > '9':
			return Version{}, false
		}
	}
	v := Version{epoch: "0", release: make([]string, 0, n)}
	for p := range strings.SplitSeq(t, ".") {
		v.release = append(v.release, canonNum(p))
	}
	return v, true
}

// onlyDigitsAndDots reports whether t has no byte but ASCII digits and ".".
func onlyDigitsAndDots(t string) bool {
	for i := 0; i < len(t); i++ {
		if c := t[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// SortKey returns a byte string whose order is v's PEP 440 order: for
// any v and w, strings.Compare(v.SortKey(), w.SortKey()) ==
// v.Compare(w). A key is a few bytes longer than the version: a list of
// 390k versions is sorted by their keys without holding 390k Versions.
func (v Version) SortKey() string { return string(v.appendKey(nil)) }

// appendKey appends v's sort key to b. Numbers are canonical decimal
// strings, ordered by length then digits; every list ends with a byte
// below any of its elements' tags, so a shorter list sorts first.
func (v Version) appendKey(b []byte) []byte {
	b = appendNumKey(b, nz(v.epoch))
	for _, r := range trimZeros(v.release) {
		b = append(b, 1)
		b = appendNumKey(b, r)
	}
	b = append(b, 0)
	switch {
	case v.preL == "" && v.post == "" && v.dev != "":
		b = append(b, 0) // 1.0.dev0 sorts before 1.0a0
	case v.preL == "":
		b = append(b, 2) // a final release after its pre-releases
	default:
		b = append(b, 1)
		b = append(b, v.preL...)
		b = append(b, 0)
		b = appendNumKey(b, v.preN)
	}
	if v.post == "" { // absent sorts first
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendNumKey(b, v.post)
	}
	if v.dev == "" { // absent sorts last
		b = append(b, 1)
	} else {
		b = append(b, 0)
		b = appendNumKey(b, v.dev)
	}
	if v.local == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	for _, l := range v.local {
		if isDigits(l) { // numbers sort after strings
			b = append(b, 2)
			b = appendNumKey(b, l)
		} else {
			b = append(b, 1)
			b = append(b, l...)
			b = append(b, 0)
		}
	}
	return append(b, 0)
}

// appendNumKey appends a number ordered as cmpNum orders them: its length
// (one byte, or 255 and four), then its digits.
func appendNumKey(b []byte, n string) []byte {
	if len(n) < 255 {
		b = append(b, byte(len(n)))
	} else {
		b = append(b, 255)
		b = binary.BigEndian.AppendUint32(b, uint32(len(n))) // a page is at most 64 MiB
	}
	return append(b, n...)
}

// nz maps the zero Version's empty epoch to "0".
func nz(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// cmpOptional compares two optional numbers; absent is ordered at the end
// given by absent (-1: before every number, +1: after every number).
func cmpOptional(a, b string, absent int) int {
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return absent
	case b == "":
		return -absent
	}
	return cmpNum(a, b)
}

// cmpPre compares the pre-release keys of packaging's _cmpkey.
func cmpPre(v, w Version) int {
	rank := func(x Version) int {
		switch {
		case x.preL == "" && x.post == "" && x.dev != "":
			return -1 // 1.0.dev0 sorts before 1.0a0
		case x.preL == "":
			return 1 // a final release sorts after its pre-releases
		}
		return 0
	}
	rv, rw := rank(v), rank(w)
	if rv != rw {
		return cmpInt(rv, rw)
	}
	if rv != 0 {
		return 0
	}
	if c := strings.Compare(v.preL, w.preL); c != 0 {
		return c
	}
	return cmpNum(v.preN, w.preN)
}

func cmpRelease(a, b []string) int {
	a, b = trimZeros(a), trimZeros(b)
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := cmpNum(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmpInt(len(a), len(b))
}

func trimZeros(r []string) []string {
	for len(r) > 0 && r[len(r)-1] == "0" {
		r = r[:len(r)-1]
	}
	return r
}

func cmpLocal(a, b []string) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		an, bn := isDigits(a[i]), isDigits(b[i])
		var c int
		switch {
		case an && bn:
			c = cmpNum(a[i], b[i])
		case an:
			c = 1 // numbers sort after strings
		case bn:
			c = -1
		default:
			c = strings.Compare(a[i], b[i])
		}
		if c != 0 {
			return c
		}
	}
	return cmpInt(len(a), len(b))
}

// cmpNum compares canonical decimal strings of any length.
func cmpNum(a, b string) int {
	if len(a) != len(b) {
		return cmpInt(len(a), len(b))
	}
	return strings.Compare(a, b)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// canonNum strips leading zeros from an ASCII decimal string ("007" → "7", "00" → "0").
func canonNum(s string) string {
	i := 0
	for i < len(s)-1 && s[i] == '0' {
		i++
	}
	return s[i:]
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isPySpace reports whether r is whitespace for Python's str.isspace and
// the re module's \s (Unicode): ASCII blanks, U+001C–U+001F, and the
// Unicode space separators.
func isPySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f,
		0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

func trimPySpace(s string) string {
	if s != "" && !mayBePySpace(s[0]) && !mayBePySpace(s[len(s)-1]) {
		return s // the usual case, without decoding runes
	}
	return strings.TrimFunc(s, isPySpace)
}

// mayBePySpace reports whether byte c of a string may belong to a rune
// isPySpace accepts: an ASCII blank, or any byte of a multi-byte rune.
func mayBePySpace(c byte) bool {
	return c >= utf8.RuneSelf || isPySpace(rune(c))
}

// pyRepr quotes s roughly as Python's repr does (single quotes unless s
// contains one), for error messages that match packaging's.
func pyRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&0xf])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}
