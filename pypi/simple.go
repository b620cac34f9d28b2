package pypi

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Content types of the simple repository API (PEP 691).
const (
	ContentTypeHTML   = "text/html"                           // alias of v1 HTML
	ContentTypeV1HTML = "application/vnd.pypi.simple.v1+html" // PEP 691 HTML
	ContentTypeV1JSON = "application/vnd.pypi.simple.v1+json" // PEP 691 JSON
	// ContentTypeIntegrity is the preferred type of PyPI's Integrity API.
	ContentTypeIntegrity = "application/vnd.pypi.integrity.v1+json"
)

// APIVersion is the simple API version pipgate writes when the upstream gave none.
const APIVersion = "1.4"

// ProjectPage is one project's page of the simple index, parsed from either
// format. URLs are absolute once parsed.
type ProjectPage struct {
	// Name is the PEP 503-normalised project name.
	Name string
	// APIVersion is meta.api-version or the pypi:repository-version meta tag; empty if absent.
	APIVersion string
	// LastSerial is meta._last-serial (or the SERIAL comment); 0 when unknown.
	LastSerial int64
	// Versions is the PEP 700 versions list (nil when the upstream sent none).
	Versions []string
	// Status and StatusReason are the PEP 792 project status ("" when absent).
	Status       string
	StatusReason string
	// Files are the distribution files, in upstream order.
	Files []File
	// Dropped lists the file entries left out of Files because they were
	// unusable (a URL that does not parse or is not http(s), an unsafe
	// filename, a malformed hash): one bad link never takes the whole page
	// down. Set by the parsers for the caller to log and count; never
	// written out or stored.
	Dropped []DroppedFile `json:"-"`
}

// DroppedFile is a file entry a parser left out of a page, and why.
type DroppedFile struct {
	// Index is the entry's position among the page's file entries
	// (anchors with an href in HTML, the files array in JSON).
	Index int
	// Filename is the entry's filename, or the href when none could be
	// read (truncated to 200 bytes).
	Filename string
	// Reason says what was wrong with it.
	Reason string
}

// dropped returns the DroppedFile for entry i named name, failing with err.
func dropped(i int, name string, err error) DroppedFile {
	if len(name) > 200 {
		name = name[:200]
	}
	return DroppedFile{Index: i, Filename: name, Reason: err.Error()}
}

// File is one distribution file on a project page.
type File struct {
	// Filename is the file's name (the anchor text, or the JSON "filename").
	Filename string
	// URL is the absolute download URL, without the hash fragment.
	URL string
	// Hashes maps a hash name ("sha256") to its lower-case hex digest.
	Hashes Hashes
	// RequiresPython is the requires-python specifier, unescaped; "" when absent.
	RequiresPython string
	// Yanked marks a PEP 592 yank; YankedReason is its reason ("" for none).
	Yanked       bool
	YankedReason string
	// CoreMetadata says a PEP 658/714 metadata file exists at URL+".metadata".
	// CoreMetadataHashes are its hashes; nil when the index said just "true".
	CoreMetadata       bool
	CoreMetadataHashes Hashes
	// Size is the file size in bytes (PEP 700); -1 when unknown.
	Size int64
	// UploadTime is the PEP 700 upload-time string as the upstream wrote it; "" when absent.
	UploadTime string
	// Provenance is the absolute PEP 740 provenance URL; "" when the index said null or nothing.
	Provenance string
	// GPGSig is the legacy gpg-sig flag; nil when absent.
	GPGSig *bool
}

// SHA256 returns the file's sha256 hex digest from Hashes, or "".
func (f *File) SHA256() string { return f.Hashes.Get("sha256") }

// ProjectList is the root page of the simple index.
type ProjectList struct {
	APIVersion string
	LastSerial int64
	Projects   []ProjectEntry
}

// ProjectEntry is one project on the root page.
type ProjectEntry struct {
	// Name is the display name as the upstream wrote it (not normalised).
	Name       string
	LastSerial int64
}

// MaxPageBytes is the largest simple-index page (project page or project
// list) the parsers accept; PyPI's full project list is tens of megabytes.
const MaxPageBytes = 64 << 20

// Errors of the simple-index parsers. Every parse error matches
// [ErrInvalidPage] with errors.Is; the more specific ones match it too.
var (
	// ErrInvalidPage is a page that is not a valid simple-index page.
	ErrInvalidPage = errors.New("invalid simple index page")
	// ErrPageTooLarge is a page larger than MaxPageBytes.
	ErrPageTooLarge = errors.New("simple index page too large")
	// ErrUnsupportedAPIVersion is a page whose API major version is not 1.
	ErrUnsupportedAPIVersion = errors.New("unsupported simple API major version")
)

// pageError builds an error matching ErrInvalidPage with a short context.
func pageError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidPage}, args...)...)
}

// checkPageSize rejects bodies over MaxPageBytes.
func checkPageSize(body []byte) error {
	if len(body) > MaxPageBytes {
		return fmt.Errorf("%w: %w: %d bytes (limit %d)", ErrInvalidPage, ErrPageTooLarge, len(body), MaxPageBytes)
	}
	return nil
}

// checkAPIVersion accepts "" (absent: clients assume 1.0) and any "1.N";
// another major version is an error, as PEP 629 requires.
func checkAPIVersion(v string) error {
	if v == "" {
		return nil
	}
	major, minor, _ := strings.Cut(v, ".")
	if !isDigits(major) || minor != "" && !isDigits(minor) {
		return pageError("malformed api-version %q", v)
	}
	if canonNum(major) != "1" {
		return fmt.Errorf("%w: %w: %q", ErrInvalidPage, ErrUnsupportedAPIVersion, v)
	}
	return nil
}

// resolveURL resolves ref against base (which may be nil) and drops the
// fragment, returned separately. Only http and https results are accepted.
func resolveURL(base *url.URL, ref string) (resolved, fragment string, err error) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", "", err
	}
	if base != nil {
		u = base.ResolveReference(u)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", fmt.Errorf("not an absolute http(s) URL: %q", ref)
	}
	fragment = u.Fragment
	u.Fragment, u.RawFragment = "", ""
	return u.String(), fragment, nil
}

// urlFilename returns the last path component of an absolute URL,
// unescaped, as pip's Link.filename does (trailing slashes are ignored).
func urlFilename(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	p := strings.TrimRight(u.Path, "/")
	return p[strings.LastIndexByte(p, '/')+1:]
}

// safeFilename reports whether a file name on a page is usable as a single
// path element: non-empty, not "." or "..", no separator or control character.
func safeFilename(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsFunc(name, unsafeFilenameRune)
}

// hashPreference is pip's order of preference for a URL's hash fragment.
var hashPreference = []string{"sha512", "sha384", "sha256", "sha224", "sha1", "md5"}

// hashDigestLen is the hex length of each supported hash.
var hashDigestLen = map[string]int{"sha512": 128, "sha384": 96, "sha256": 64, "sha224": 56, "sha1": 40, "md5": 32}

// normalizeHash validates a hex digest for hash name and lower-cases it.
func normalizeHash(name, digest string) (string, error) {
	if name == "" {
		return "", errors.New("empty hash name")
	}
	if digest == "" || len(digest)%2 != 0 {
		return "", fmt.Errorf("hash %s: %q is not hex", name, digest)
	}
	for i := 0; i < len(digest); i++ {
		c := digest[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", fmt.Errorf("hash %s: %q is not hex", name, digest)
		}
	}
	if n, ok := hashDigestLen[name]; ok && len(digest) != n {
		return "", fmt.Errorf("hash %s: %d hex digits, want %d", name, len(digest), n)
	}
	return strings.ToLower(digest), nil
}

// parseFragmentHash reads "sha256=hex" (possibly among other "&"-joined
// pairs) from a URL fragment, as pip does. It returns no hash when the
// fragment names none of the supported hashes.
func parseFragmentHash(fragment string) (name, digest string, err error) {
	for _, kv := range strings.Split(fragment, "&") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !slices.Contains(hashPreference, k) {
			continue
		}
		d, err := normalizeHash(k, v)
		if err != nil {
			return "", "", err
		}
		return k, d, nil
	}
	return "", "", nil
}

// bestHash returns the preferred (name, digest) of hashes: sha256 when
// present, as PyPI always writes, else the strongest pip knows, else the
// alphabetically first.
func bestHash(hashes Hashes) (string, string) {
	if d, ok := hashes.Lookup("sha256"); ok {
		return "sha256", d
	}
	for _, n := range hashPreference {
		if d, ok := hashes.Lookup(n); ok {
			return n, d
		}
	}
	if len(hashes) == 0 {
		return "", ""
	}
	return hashes[0].Name, hashes[0].Digest // sorted by name
}

// DeriveVersions returns the sorted, de-duplicated canonical versions of the
// page's files whose names parse as wheels or sdists, for the PEP 700
// versions list when the upstream sent none.
func (p *ProjectPage) DeriveVersions() []string {
	var vs []Version
	for i := range p.Files {
		f, err := ParseFilename(p.Files[i].Filename)
		if err != nil {
			continue
		}
		vs = append(vs, f.Version)
	}
	slices.SortStableFunc(vs, Version.Compare)
	out := make([]string, 0, len(vs))
	for i, v := range vs {
		if i > 0 && vs[i-1].Equal(v) {
			continue // 1.0 and 1.0.0 are one release
		}
		out = append(out, v.String())
	}
	return out
}
