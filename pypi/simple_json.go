package pypi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// rawObject is a JSON object with its keys matched exactly (encoding/json
// matches struct fields case-insensitively, Python does not).
type rawObject map[string]json.RawMessage

// isNull reports whether a key is absent or JSON null.
func (o rawObject) isNull(key string) bool {
	v, ok := o[key]
	return !ok || bytes.Equal(v, []byte("null"))
}

// decodeObject decodes body as one JSON object and nothing after it.
func decodeObject(body []byte) (rawObject, error) {
	var o rawObject
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&o); err != nil {
		return nil, pageError("JSON: %v", err)
	}
	if o == nil {
		return nil, pageError("JSON: not an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, pageError("JSON: trailing data after the object")
	}
	return o, nil
}

// str decodes key as a string; absent or null gives ("", false, nil).
func (o rawObject) str(key string) (string, bool, error) {
	if o.isNull(key) {
		return "", false, nil
	}
	s, err := rawString(o[key])
	if err != nil {
		return "", false, fmt.Errorf("%s: not a string", key)
	}
	return s, true, nil
}

// rawString decodes a JSON string value. Values come from an already
// validated document, so a string without escapes is its bytes verbatim.
func rawString(raw json.RawMessage) (string, error) {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' &&
		bytes.IndexByte(raw[1:n-1], '\\') < 0 && bytes.IndexByte(raw[1:n-1], '"') < 0 && utf8.Valid(raw) {
		return string(raw[1 : n-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// rawBool decodes a JSON boolean value.
func rawBool(raw json.RawMessage) (bool, bool) {
	switch string(raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// parseMeta reads meta.api-version (checking the major version) and the
// private meta._last-serial (ignored when it is not an integer).
func parseMeta(top rawObject) (apiVersion string, serial int64, err error) {
	if top.isNull("meta") {
		return "", 0, nil
	}
	var meta rawObject
	if err := json.Unmarshal(top["meta"], &meta); err != nil || meta == nil {
		return "", 0, pageError("meta: not an object")
	}
	apiVersion, _, err = meta.str("api-version")
	if err != nil {
		return "", 0, pageError("meta.%v", err)
	}
	if err := checkAPIVersion(apiVersion); err != nil {
		return "", 0, err
	}
	if !meta.isNull("_last-serial") {
		_ = json.Unmarshal(meta["_last-serial"], &serial)
	}
	return apiVersion, serial, nil
}

// ParseProjectJSON parses a PEP 691 project page. Relative file and
// provenance URLs are resolved against pageURL (which may be nil when all
// URLs are absolute); URLs must end up http or https. Unknown keys are
// ignored; a missing or malformed required key, a file name with a path
// separator, a hash that is not hex, or an API major version other than 1
// is an error matching [ErrInvalidPage].
func ParseProjectJSON(body []byte, pageURL *url.URL) (*ProjectPage, error) {
	if err := checkPageSize(body); err != nil {
		return nil, err
	}
	top, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	p := &ProjectPage{}
	if p.APIVersion, p.LastSerial, err = parseMeta(top); err != nil {
		return nil, err
	}
	name, ok, err := top.str("name")
	if err != nil || !ok || !ValidProjectName(name) {
		return nil, pageError("missing or invalid project name")
	}
	p.Name = NormalizeName(name)
	if !top.isNull("versions") {
		if err := json.Unmarshal(top["versions"], &p.Versions); err != nil {
			return nil, pageError("versions: not a list of strings")
		}
		if p.Versions == nil {
			p.Versions = []string{}
		}
	}
	if !top.isNull("project-status") {
		var st rawObject
		if err := json.Unmarshal(top["project-status"], &st); err != nil || st == nil {
			return nil, pageError("project-status: not an object")
		}
		s, _, err1 := st.str("status")
		r, _, err2 := st.str("reason")
		if err1 != nil || err2 != nil {
			return nil, pageError("project-status: status and reason must be strings")
		}
		p.Status, p.StatusReason = s, r
	}
	if top.isNull("files") {
		return nil, pageError("missing files")
	}
	var files []rawObject
	if err := json.Unmarshal(top["files"], &files); err != nil {
		return nil, pageError("files: not a list of objects")
	}
	p.Files = make([]File, 0, len(files))
	for i, fo := range files {
		f, err := parseJSONFile(fo, pageURL)
		if err != nil {
			return nil, pageError("files[%d]: %v", i, err)
		}
		p.Files = append(p.Files, f)
	}
	return p, nil
}

func parseJSONFile(o rawObject, pageURL *url.URL) (File, error) {
	f := File{Size: -1}
	if o == nil {
		return f, fmt.Errorf("not an object")
	}
	var ok bool
	var err error
	if f.Filename, ok, err = o.str("filename"); err != nil || !ok {
		return f, fmt.Errorf("missing filename")
	}
	if !safeFilename(f.Filename) {
		return f, fmt.Errorf("unsafe filename %q", f.Filename)
	}
	rawURL, ok, err := o.str("url")
	if err != nil || !ok || rawURL == "" {
		return f, fmt.Errorf("%s: missing url", f.Filename)
	}
	var frag string
	if f.URL, frag, err = resolveURL(pageURL, rawURL); err != nil {
		return f, fmt.Errorf("%s: url: %w", f.Filename, err)
	}
	if o.isNull("hashes") {
		return f, fmt.Errorf("%s: missing hashes", f.Filename)
	}
	if f.Hashes, err = parseHashDict(o["hashes"]); err != nil {
		return f, fmt.Errorf("%s: hashes: %w", f.Filename, err)
	}
	if n, d, err := parseFragmentHash(frag); err != nil {
		return f, fmt.Errorf("%s: url fragment: %w", f.Filename, err)
	} else if n != "" {
		if _, dup := f.Hashes[n]; !dup {
			f.Hashes[n] = d
		}
	}
	if f.RequiresPython, _, err = o.str("requires-python"); err != nil {
		return f, fmt.Errorf("%s: %w", f.Filename, err)
	}
	if err := parseYanked(o, &f); err != nil {
		return f, fmt.Errorf("%s: %w", f.Filename, err)
	}
	// pip reads core-metadata, then dist-info-metadata; PyPI's legacy key
	// is data-dist-info-metadata. The first non-null one wins.
	for _, key := range []string{"core-metadata", "dist-info-metadata", "data-dist-info-metadata"} {
		if o.isNull(key) {
			continue
		}
		if err := parseCoreMetadata(o[key], &f); err != nil {
			return f, fmt.Errorf("%s: %s: %w", f.Filename, key, err)
		}
		break
	}
	if !o.isNull("size") {
		if err := json.Unmarshal(o["size"], &f.Size); err != nil || f.Size < 0 {
			return f, fmt.Errorf("%s: size: not a non-negative integer", f.Filename)
		}
	}
	if f.UploadTime, _, err = o.str("upload-time"); err != nil {
		return f, fmt.Errorf("%s: %w", f.Filename, err)
	}
	prov, ok, err := o.str("provenance")
	if err != nil {
		return f, fmt.Errorf("%s: %w", f.Filename, err)
	}
	if ok && prov != "" {
		if f.Provenance, _, err = resolveURL(pageURL, prov); err != nil {
			return f, fmt.Errorf("%s: provenance: %w", f.Filename, err)
		}
	}
	if !o.isNull("gpg-sig") {
		b, ok := rawBool(o["gpg-sig"])
		if !ok {
			return f, fmt.Errorf("%s: gpg-sig: not a boolean", f.Filename)
		}
		f.GPGSig = &b
	}
	return f, nil
}

// parseHashDict decodes a {"name": "hex"} object, lower-casing the digests.
func parseHashDict(raw json.RawMessage) (map[string]string, error) {
	var h map[string]string
	if err := json.Unmarshal(raw, &h); err != nil || h == nil {
		return nil, fmt.Errorf("not an object of strings")
	}
	for k, v := range h {
		d, err := normalizeHash(k, v)
		if err != nil {
			return nil, err
		}
		h[k] = d
	}
	return h, nil
}

// parseYanked reads PEP 592 "yanked": a boolean or a reason string. As in
// pip, an empty string or null means not yanked.
func parseYanked(o rawObject, f *File) error {
	if o.isNull("yanked") {
		return nil
	}
	raw := o["yanked"]
	if b, ok := rawBool(raw); ok {
		f.Yanked = b
		return nil
	}
	s, err := rawString(raw)
	if err != nil {
		return fmt.Errorf("yanked: not a boolean or string")
	}
	f.Yanked, f.YankedReason = s != "", s
	return nil
}

// parseCoreMetadata reads a PEP 714 value: a boolean or a hash object.
func parseCoreMetadata(raw json.RawMessage, f *File) error {
	if b, ok := rawBool(raw); ok {
		f.CoreMetadata = b
		return nil
	}
	h, err := parseHashDict(raw)
	if err != nil {
		return fmt.Errorf("not a boolean or hash object")
	}
	f.CoreMetadata, f.CoreMetadataHashes = true, h
	return nil
}

// JSON output shapes, fields in alphabetical order of their keys (PyPI
// renders with sort_keys=True).
type (
	jsonPageOut struct {
		Files         []jsonFileOut  `json:"files"`
		Meta          jsonMetaOut    `json:"meta"`
		Name          string         `json:"name"`
		ProjectStatus *jsonStatusOut `json:"project-status,omitempty"`
		Versions      []string       `json:"versions"`
	}
	jsonMetaOut struct {
		LastSerial int64  `json:"_last-serial,omitempty"`
		APIVersion string `json:"api-version"`
	}
	jsonStatusOut struct {
		Reason string `json:"reason,omitempty"`
		Status string `json:"status"`
	}
	jsonFileOut struct {
		CoreMetadata         any               `json:"core-metadata"`
		DataDistInfoMetadata any               `json:"data-dist-info-metadata"`
		Filename             string            `json:"filename"`
		GPGSig               *bool             `json:"gpg-sig,omitempty"`
		Hashes               map[string]string `json:"hashes"`
		Provenance           *string           `json:"provenance"`
		RequiresPython       *string           `json:"requires-python"`
		Size                 *int64            `json:"size,omitempty"`
		UploadTime           string            `json:"upload-time,omitempty"`
		URL                  string            `json:"url"`
		Yanked               any               `json:"yanked"`
	}
)

// WriteProjectJSON writes p as PyPI renders a PEP 691 project page: sorted
// keys, compact, no HTML escaping, a trailing newline. Every file carries
// "core-metadata" and the legacy "data-dist-info-metadata" (false, true or
// a hash object), never "dist-info-metadata", which crashes pip 22.3–23.1.
// "provenance" and "requires-python" are written as null when empty,
// "size" when known (not -1), "upload-time" when set. Versions nil is
// derived from the file names ([ProjectPage.DeriveVersions]).
// meta.api-version is p.APIVersion, or [APIVersion] when that is empty.
func WriteProjectJSON(w io.Writer, p *ProjectPage) error {
	out := jsonPageOut{
		Files:    make([]jsonFileOut, len(p.Files)),
		Meta:     jsonMetaOut{LastSerial: p.LastSerial, APIVersion: p.APIVersion},
		Name:     p.Name,
		Versions: p.Versions,
	}
	if out.Meta.APIVersion == "" {
		out.Meta.APIVersion = APIVersion
	}
	if out.Versions == nil {
		out.Versions = p.DeriveVersions()
	}
	if p.Status != "" {
		out.ProjectStatus = &jsonStatusOut{Status: p.Status, Reason: p.StatusReason}
	}
	for i := range p.Files {
		f := &p.Files[i]
		o := &out.Files[i]
		o.Filename, o.URL, o.GPGSig, o.UploadTime = f.Filename, f.URL, f.GPGSig, f.UploadTime
		o.Hashes = f.Hashes
		if o.Hashes == nil {
			o.Hashes = map[string]string{}
		}
		var cm any = f.CoreMetadata
		if f.CoreMetadata && len(f.CoreMetadataHashes) > 0 {
			cm = f.CoreMetadataHashes
		}
		o.CoreMetadata, o.DataDistInfoMetadata = cm, cm
		if f.Provenance != "" {
			o.Provenance = &f.Provenance
		}
		if f.RequiresPython != "" {
			o.RequiresPython = &f.RequiresPython
		}
		if f.Size >= 0 {
			o.Size = &f.Size
		}
		switch {
		case f.Yanked && f.YankedReason != "":
			o.Yanked = f.YankedReason
		default:
			o.Yanked = f.Yanked
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// ParseProjectListJSON parses the PEP 691 root page
// {"meta":{...},"projects":[{"name":"Display_Name","_last-serial":N},...]}.
// Names are kept as written (not normalised) but must be non-empty.
func ParseProjectListJSON(body []byte) (*ProjectList, error) {
	if err := checkPageSize(body); err != nil {
		return nil, err
	}
	top, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	l := &ProjectList{}
	if l.APIVersion, l.LastSerial, err = parseMeta(top); err != nil {
		return nil, err
	}
	if top.isNull("projects") {
		return nil, pageError("missing projects")
	}
	var projects []rawObject
	if err := json.Unmarshal(top["projects"], &projects); err != nil {
		return nil, pageError("projects: not a list of objects")
	}
	l.Projects = make([]ProjectEntry, 0, len(projects))
	for i, po := range projects {
		name, ok, err := po.str("name")
		if err != nil || !ok || name == "" {
			return nil, pageError("projects[%d]: missing name", i)
		}
		e := ProjectEntry{Name: name}
		if !po.isNull("_last-serial") {
			_ = json.Unmarshal(po["_last-serial"], &e.LastSerial)
		}
		l.Projects = append(l.Projects, e)
	}
	return l, nil
}

type (
	jsonListOut struct {
		Meta     jsonMetaOut        `json:"meta"`
		Projects []jsonListEntryOut `json:"projects"`
	}
	jsonListEntryOut struct {
		LastSerial int64  `json:"_last-serial"`
		Name       string `json:"name"`
	}
)

// WriteProjectListJSON writes l as PyPI's PEP 691 root page, in PyPI's
// style (sorted keys, compact, trailing newline). meta.api-version is
// l.APIVersion or [APIVersion]; meta._last-serial is written when non-zero.
func WriteProjectListJSON(w io.Writer, l *ProjectList) error {
	out := jsonListOut{
		Meta:     jsonMetaOut{LastSerial: l.LastSerial, APIVersion: l.APIVersion},
		Projects: make([]jsonListEntryOut, len(l.Projects)),
	}
	if out.Meta.APIVersion == "" {
		out.Meta.APIVersion = APIVersion
	}
	for i, e := range l.Projects {
		out.Projects[i] = jsonListEntryOut{LastSerial: e.LastSerial, Name: e.Name}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// formatSerial renders a serial for the HTML SERIAL comment.
func formatSerial(n int64) string { return strconv.FormatInt(n, 10) }
