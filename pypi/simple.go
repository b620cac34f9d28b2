package pypi

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
}

// File is one distribution file on a project page.
type File struct {
	// Filename is the file's name (the anchor text, or the JSON "filename").
	Filename string
	// URL is the absolute download URL, without the hash fragment.
	URL string
	// Hashes maps a hash name ("sha256") to its lower-case hex digest.
	Hashes map[string]string
	// RequiresPython is the requires-python specifier, unescaped; "" when absent.
	RequiresPython string
	// Yanked marks a PEP 592 yank; YankedReason is its reason ("" for none).
	Yanked       bool
	YankedReason string
	// CoreMetadata says a PEP 658/714 metadata file exists at URL+".metadata".
	// CoreMetadataHashes are its hashes; nil when the index said just "true".
	CoreMetadata       bool
	CoreMetadataHashes map[string]string
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
func (f *File) SHA256() string { return f.Hashes["sha256"] }

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
