package pypi

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"unsafe"
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
	// written out or stored. It holds the first [MaxDroppedSamples];
	// DroppedCount counts them all (a page of junk links costs a count,
	// not a record per link).
	Dropped      []DroppedFile `json:"-"`
	DroppedCount int           `json:"-"`
}

// MaxDroppedSamples bounds ProjectPage.Dropped.
const MaxDroppedSamples = 16

// drop records a dropped entry: its sample while there is room, its count.
func (p *ProjectPage) drop(d DroppedFile) {
	if len(p.Dropped) < MaxDroppedSamples {
		p.Dropped = append(p.Dropped, d)
	}
	p.DroppedCount++
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

// dropped returns the DroppedFile for entry i named name, failing with err
// (name and reason truncated: a bad value may be megabytes long).
func dropped(i int, name string, err error) DroppedFile {
	return DroppedFile{Index: i, Filename: truncate(name, 200), Reason: truncate(err.Error(), 500)}
}

// truncate returns s cut to at most n bytes (a copy, so that a short
// report never holds a long string alive), marked when cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return strings.Clone(s)
	}
	return strings.Clone(s[:n]) + "…"
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

// Limits on what one project page may cost once parsed, whatever its
// shape: a page within MaxPageBytes could otherwise decode to ten times
// its size (millions of tiny links, every relative link resolved against a
// long <base href>). A page over either is refused whole with an error
// naming the limit ([ErrPageTooLarge]); a smaller page is kept whole.
const (
	// MaxPageFiles is the most file entries (links with an href, JSON file
	// objects, usable or not) a project page may have. PyPI's largest
	// projects list tens of thousands of files.
	MaxPageFiles = 500_000
	// MaxPageMemory is the most memory a parsed project page may hold (its
	// files and their strings, as [ProjectPage.MemorySize] counts them).
	// A page of 390k small files takes about 100 MiB.
	MaxPageMemory = 160 << 20
)

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
		return tooLarge(fmt.Sprintf("%d bytes, over pipgate's limit of %d bytes (64 MiB)", len(body), MaxPageBytes))
	}
	return nil
}

func tooLarge(why string) error {
	return fmt.Errorf("%w: %w: %s", ErrInvalidPage, ErrPageTooLarge, why)
}

// errPageBytes is what pageReader returns past MaxPageBytes.
var errPageBytes = tooLarge(fmt.Sprintf("over pipgate's limit of %d bytes (64 MiB)", MaxPageBytes))

// pageReader reads a page body, failing with errPageBytes once it is past
// MaxPageBytes: the parsers read from the network as they go and never
// hold the body whole.
type pageReader struct {
	r io.Reader
	n int64 // bytes read so far
}

func (p *pageReader) Read(b []byte) (int, error) {
	if p.n > MaxPageBytes {
		return 0, errPageBytes
	}
	if rest := MaxPageBytes + 1 - p.n; int64(len(b)) > rest {
		b = b[:rest]
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n > MaxPageBytes {
		return n, errPageBytes
	}
	return n, err
}

// pageLimits are the limits a project page is parsed under.
type pageLimits struct {
	files  int   // most file entries
	memory int64 // most bytes held
}

// defaultPageLimits are the limits of every page the package's functions
// parse: [MaxPageFiles] and [MaxPageMemory]. The package's own tests pass
// smaller ones to the parsers, to reach them with smaller pages.
var defaultPageLimits = pageLimits{files: MaxPageFiles, memory: MaxPageMemory}

// kibOrMiB writes n bytes as "160 MiB", or "256 KiB" when not a whole MiB.
func kibOrMiB(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// pageBudget counts what a page being parsed holds, against its limits.
type pageBudget struct {
	limits  pageLimits
	entries int
	bytes   int64
}

// entry counts one more file entry.
func (b *pageBudget) entry() error {
	b.entries++
	if b.entries > b.limits.files {
		return tooLarge(fmt.Sprintf("more than %d file entries (pipgate's limit)", b.limits.files))
	}
	return nil
}

// add counts n more bytes held.
func (b *pageBudget) add(n int64) error {
	b.bytes += n
	if b.bytes > b.limits.memory {
		return tooLarge(fmt.Sprintf("it would take more than %s of memory parsed (pipgate's limit; %d file entries so far)", kibOrMiB(b.limits.memory), b.entries))
	}
	return nil
}

// fileStructSize is the memory of one File value.
const fileStructSize = int64(unsafe.Sizeof(File{}))

// memorySize is the memory f holds: the struct and its strings (a string
// that is part of another, the file name in its URL, counts once).
func (f *File) memorySize() int64 {
	n := fileStructSize + int64(len(f.URL)+len(f.YankedReason)+len(f.UploadTime)+len(f.Provenance)+
		f.Hashes.size()+f.CoreMetadataHashes.size())
	if !sameMemory(f.Filename, f.URL) {
		n += int64(len(f.Filename))
	}
	return n // RequiresPython is shared on a page: see MemorySize
}

// sameMemory reports whether sub lies within s's bytes.
func sameMemory(sub, s string) bool {
	if len(sub) == 0 || len(s) == 0 {
		return true
	}
	b, e := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(sub)))
	return e >= b && e+uintptr(len(sub)) <= b+uintptr(len(s))
}

// headerSize is the memory of p's struct and its own strings, its files
// and versions aside.
func (p *ProjectPage) headerSize() int64 {
	return int64(256 + len(p.Name) + len(p.APIVersion) + len(p.Status) + len(p.StatusReason))
}

// MemorySize estimates the memory p holds: its files, their strings, its
// versions.
func (p *ProjectPage) MemorySize() int64 {
	n := p.headerSize()
	for _, v := range p.Versions {
		n += int64(16 + len(v))
	}
	n += int64(cap(p.Versions)-len(p.Versions)) * 16
	n += int64(cap(p.Files)-len(p.Files)) * fileStructSize
	rps := map[*byte]bool{}
	for i := range p.Files {
		f := &p.Files[i]
		n += f.memorySize()
		if rp := f.RequiresPython; rp != "" && !rps[unsafe.StringData(rp)] {
			rps[unsafe.StringData(rp)] = true
			n += int64(len(rp))
		}
	}
	return n
}

// interner shares the copies of a value many files of a page carry
// (requires-python), up to a bound.
type interner map[string]string

func (in interner) intern(s string) (string, bool) {
	if v, ok := in[s]; ok {
		return v, true
	}
	if len(in) < 1024 {
		in[s] = s
	}
	return s, false
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
	// A copy of exactly its length: url.URL.String's builder leaves room
	// over, and a page keeps hundreds of thousands of these.
	return strings.Clone(u.String()), fragment, nil
}

// hrefResolver resolves the hrefs of one page against its base URL, as
// [resolveURL] does, with short cuts for the usual hrefs: an absolute
// URL of plain characters, which resolves to itself (see plainAbsolute),
// and a relative path of plain characters, such as
// "pkg-1.0.tar.gz#sha256=…" (see plainRef).
// url.ResolveReference writes such an href as the same prefix, the
// base's scheme, authority and directory, followed by the href's path as
// it is; the prefix is resolved once, and each such href costs one string
// of its resolved length instead of a parse, a resolution and a print of
// the whole URL (a page may hold 500k links under a 16 KB <base href>).
// FuzzHrefResolver holds it to resolveURL.
type hrefResolver struct {
	base *url.URL
	// prefix is what a plain href resolves to before its own text (ending
	// in "/"); "" when the base gives none (no base, not http(s)).
	prefix string
}

func newHrefResolver(base *url.URL) *hrefResolver {
	r := &hrefResolver{base: base}
	if base != nil {
		// The prefix is kept only if the URL it makes parses back, with
		// the href's last segment as its file name ("http://::/x" does not).
		if u, frag, err := resolveURL(base, "x"); err == nil && frag == "" && strings.HasSuffix(u, "/x") && urlFilename(u) == "x" {
			r.prefix = u[:len(u)-1]
		}
	}
	return r
}

// resolve is resolveURL(r.base, ref); with wantName, name is the
// resolved URL's file name, as urlFilename gives it.
func (r *hrefResolver) resolve(ref string, wantName bool) (resolved, fragment, name string, err error) {
	path, frag, _ := strings.Cut(ref, "#")
	if !strings.Contains(frag, "%") {
		switch {
		case r.prefix != "" && plainRef(path):
			resolved = r.prefix + path // a new string of exactly its length
		case plainAbsolute(path):
			resolved = strings.Clone(path) // url.URL.String gives it back as it is
		}
		if resolved != "" {
			if wantName {
				name = resolved[strings.LastIndexByte(resolved, '/')+1:]
			}
			return resolved, frag, name, nil
		}
	}
	if resolved, fragment, err = resolveURL(r.base, ref); err != nil {
		return "", "", "", err
	}
	if wantName {
		name = urlFilename(resolved)
	}
	return resolved, fragment, name, nil
}

// plainRef reports whether path, an href without its fragment, is a
// relative path that url.ResolveReference appends to the base's directory
// as it is: not empty, not starting or ending with "/", no "." or ".."
// segment, and only characters that URL paths need not escape and that
// cannot start a scheme, query or escape (letters, digits, "-._~+" and
// "/"). Its unescaped last segment is then its own last segment.
func plainRef(path string) bool {
	if path == "" || path[0] == '/' || path[len(path)-1] == '/' {
		return false
	}
	seg := 0 // start of the current segment
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' {
			if s := path[seg:i]; s == "." || s == ".." {
				return false
			}
			seg = i + 1
			continue
		}
		switch c := path[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '+':
		default:
			return false
		}
	}
	return true
}

// plainAbsolute reports whether path, an href without its fragment, is an
// absolute URL that url.Parse, ResolveReference and String give back as
// it is: "http://" or "https://", a host of lower-case letters, digits,
// "." and "-" with an optional ":port", then "/" and a path plainRef
// accepts (PyPI's own links: "https://files.pythonhosted.org/packages/…").
func plainAbsolute(path string) bool {
	rest, ok := strings.CutPrefix(path, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(path, "http://"); !ok {
			return false
		}
	}
	host, rest, ok := strings.Cut(rest, "/")
	if !ok || host == "" || !plainRef(rest) {
		return false
	}
	host, port, hasPort := strings.Cut(host, ":")
	if host == "" || hasPort && port == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	for i := 0; i < len(port); i++ {
		if c := port[i]; c < '0' || c > '9' {
			return false
		}
	}
	return true
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
	for n, d := range hashes.All() {
		return n, d // sorted by name
	}
	return "", ""
}

// DeriveVersions returns the sorted, de-duplicated canonical versions of the
// page's files whose names parse as wheels or sdists, for the PEP 700
// versions list when the upstream sent none. It sorts compact keys
// ([Version.SortKey]), not Versions: a page may list 390k releases.
func (p *ProjectPage) DeriveVersions() []string {
	type keyed struct {
		key  string
		file int
	}
	var ks []keyed
	var buf []byte
	for i := range p.Files {
		f, err := parseFilename(p.Files[i].Filename, 0)
		if err != nil {
			continue
		}
		buf = f.Version.appendKey(buf[:0])
		ks = append(ks, keyed{string(buf), i})
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	out := make([]string, 0, len(ks))
	for i, k := range ks {
		if i > 0 && ks[i-1].key == k.key {
			continue // 1.0 and 1.0.0 are one release
		}
		f, _ := parseFilename(p.Files[k.file].Filename, 0)
		out = append(out, f.Version.String())
	}
	return out
}
