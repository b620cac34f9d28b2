package pypi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Input shapes. encoding/json also matches keys case-insensitively
// ("URL" fills url), where Python matches exactly; pipgate re-renders every
// page it serves, so clients only ever see its own reading.
type (
	jsonPageIn struct {
		Files         *[]jsonFileIn `json:"files"`
		Meta          *jsonMetaIn   `json:"meta"`
		Name          *string       `json:"name"`
		ProjectStatus *jsonStatusIn `json:"project-status"`
		Versions      *[]string     `json:"versions"`
	}
	jsonMetaIn struct {
		APIVersion *string    `json:"api-version"`
		LastSerial lenientInt `json:"_last-serial"`
	}
	jsonStatusIn struct {
		Status *string `json:"status"`
		Reason *string `json:"reason"`
	}
	jsonFileIn struct {
		Filename             *string        `json:"filename"`
		URL                  *string        `json:"url"`
		Hashes               Hashes         `json:"hashes"`
		RequiresPython       *string        `json:"requires-python"`
		Yanked               jsonYankedIn   `json:"yanked"`
		CoreMetadata         jsonMetadataIn `json:"core-metadata"`
		DistInfoMetadata     jsonMetadataIn `json:"dist-info-metadata"`
		DataDistInfoMetadata jsonMetadataIn `json:"data-dist-info-metadata"`
		GPGSig               *bool          `json:"gpg-sig"`
		Size                 *int64         `json:"size"`
		UploadTime           *string        `json:"upload-time"`
		Provenance           *string        `json:"provenance"`
	}
)

// lenientInt is a private integer key (_last-serial): anything that is not
// an integer reads as 0 instead of failing the page.
type lenientInt int64

// UnmarshalJSON implements [json.Unmarshaler].
func (n *lenientInt) UnmarshalJSON(b []byte) error {
	if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		*n = lenientInt(v)
	}
	return nil
}

// jsonYankedIn is PEP 592 "yanked": a boolean or a reason string. As in
// pip, an empty string or null means not yanked.
type jsonYankedIn struct {
	yanked bool
	reason string
}

// UnmarshalJSON implements [json.Unmarshaler].
func (y *jsonYankedIn) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null", "false":
		return nil
	case "true":
		y.yanked = true
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("yanked: not a boolean or string")
	}
	y.yanked, y.reason = s != "", s
	return nil
}

// jsonMetadataIn is a PEP 714 value: a boolean or a hash object; set is
// false when the key is absent or null.
type jsonMetadataIn struct {
	set, present bool
	hashes       Hashes
}

// UnmarshalJSON implements [json.Unmarshaler].
func (m *jsonMetadataIn) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null":
		return nil
	case "true", "false":
		m.set, m.present = true, string(b) == "true"
		return nil
	}
	if err := json.Unmarshal(b, &m.hashes); err != nil || m.hashes.IsNil() {
		return errors.New("core metadata: not a boolean or hash object")
	}
	m.set, m.present = true, true
	return nil
}

// parseMeta reads meta.api-version, checking the major version, and the
// private meta._last-serial.
func parseMeta(m *jsonMetaIn) (apiVersion string, serial int64, err error) {
	if m == nil {
		return "", 0, nil
	}
	if m.APIVersion != nil {
		apiVersion = *m.APIVersion
	}
	if err := checkAPIVersion(apiVersion); err != nil {
		return "", 0, err
	}
	return apiVersion, int64(m.LastSerial), nil
}

// ParseProjectJSON parses a PEP 691 project page. Relative file and
// provenance URLs are resolved against pageURL (which may be nil when all
// URLs are absolute); URLs must end up http or https. Unknown keys are
// ignored (keys match case-insensitively, as encoding/json does); a
// missing or malformed required key, a file name with a path
// separator, a hash that is not hex, or an API major version other than 1
// is an error matching [ErrInvalidPage]. So is a page over
// [MaxPageBytes], [MaxPageFiles] or [MaxPageMemory] ([ErrPageTooLarge]).
func ParseProjectJSON(body []byte, pageURL *url.URL) (*ProjectPage, error) {
	if err := checkPageSize(body); err != nil {
		return nil, err
	}
	return ParseProjectJSONFrom(bytes.NewReader(body), pageURL)
}

// ParseProjectJSONFrom is [ParseProjectJSON] reading the page from r as it
// parses (it never holds the body whole): one file object at a time, each
// converted before the next is read.
func ParseProjectJSONFrom(r io.Reader, pageURL *url.URL) (*ProjectPage, error) {
	pr := &pageReader{r: r}
	p, err := parseProjectJSON(pr, pageURL, defaultPageLimits)
	if err != nil && errors.Is(err, ErrPageTooLarge) {
		return nil, errPageTooLarge(err)
	}
	return p, err
}

// errPageTooLarge returns the size error inside err alone (not the
// decoder's wrapping of it).
func errPageTooLarge(err error) error {
	if errors.Is(err, errPageBytes) {
		return errPageBytes
	}
	return err
}

// parseProjectJSON parses a project page from r under the limits lim.
func parseProjectJSON(r io.Reader, pageURL *url.URL, lim pageLimits) (*ProjectPage, error) {
	var in jsonPageIn
	p := &ProjectPage{}
	var files []File
	// One budget for everything the page holds: its files and its
	// versions (a key given twice counts twice: the first value is held
	// while the second is read).
	budget := pageBudget{limits: lim}
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		key, _ := tok.(string)
		switch {
		case strings.EqualFold(key, "files"):
			in.Files = nil
			p.Dropped, p.DroppedCount = nil, 0
			files, err = decodeJSONFiles(dec, p, pageURL, &budget)
			if err != nil {
				return nil, err
			}
			if files != nil {
				in.Files = &[]jsonFileIn{}
			}
		case strings.EqualFold(key, "meta"):
			in.Meta = nil
			err = dec.Decode(&in.Meta)
		case strings.EqualFold(key, "name"):
			in.Name = nil
			err = dec.Decode(&in.Name)
		case strings.EqualFold(key, "project-status"):
			in.ProjectStatus = nil
			err = dec.Decode(&in.ProjectStatus)
		case strings.EqualFold(key, "versions"):
			in.Versions = nil
			var vs []string
			if vs, err = decodeJSONVersions(dec, &budget); vs != nil {
				in.Versions = &vs
			}
		default:
			err = skipJSONValue(dec)
		}
		if err != nil {
			return nil, jsonError(err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if errors.Is(err, ErrPageTooLarge) {
			return nil, err
		}
		return nil, pageError("JSON: data after the page object")
	}
	var err error
	if p.APIVersion, p.LastSerial, err = parseMeta(in.Meta); err != nil {
		return nil, err
	}
	if in.Name == nil || !ValidProjectName(*in.Name) {
		return nil, pageError("missing or invalid project name")
	}
	p.Name = NormalizeName(*in.Name)
	if in.Versions != nil {
		p.Versions = *in.Versions
		if p.Versions == nil {
			p.Versions = []string{}
		}
	}
	if st := in.ProjectStatus; st != nil {
		if st.Status != nil {
			p.Status = *st.Status
		}
		if st.Reason != nil {
			p.StatusReason = *st.Reason
		}
	}
	if in.Files == nil {
		return nil, pageError("missing files")
	}
	if err := budget.add(p.headerSize()); err != nil {
		return nil, err
	}
	p.Files = files
	return p, nil
}

// jsonError wraps a decoding error, keeping a size limit's error as it is.
func jsonError(err error) error {
	if errors.Is(err, ErrPageTooLarge) {
		return err
	}
	return pageError("JSON: %v", err)
}

// maxJSONDepth is encoding/json's own nesting limit.
const maxJSONDepth = 10000

// skipJSONValue reads and discards one value, token by token (a huge
// unknown value is never held whole).
func skipJSONValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			if depth > maxJSONDepth {
				return errors.New("exceeded max depth")
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// expectDelim reads the delimiter d from dec.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if tok != d {
		return pageError("JSON: want %v, got %v", d, tok)
	}
	return nil
}

// decodeJSONVersions reads the value of "versions": null (nil) or an
// array of strings (a null read as "", as encoding/json does), each
// counted in budget as [ProjectPage.MemorySize] counts it: a list of
// one-character versions holds four times its size in string headers.
func decodeJSONVersions(dec *json.Decoder, budget *pageBudget) ([]string, error) {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf("versions: want an array, got %v", tok)
	}
	vs := []string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		v, ok := tok.(string)
		if !ok && tok != nil {
			return nil, fmt.Errorf("versions[%d]: want a string, got %v", len(vs), tok)
		}
		c := cap(vs)
		vs = append(vs, v)
		// The string and, when the array grew, its new room.
		if err := budget.add(int64(len(v)) + int64(cap(vs)-c)*16); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // the "]"
		return nil, err
	}
	return vs, nil
}

// decodeJSONFiles reads the value of "files": null (files nil) or an array of
// file objects, converted one by one; unusable entries are dropped (into p).
func decodeJSONFiles(dec *json.Decoder, p *ProjectPage, pageURL *url.URL, budget *pageBudget) ([]File, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(err)
	}
	if tok == nil {
		return nil, nil
	}
	if tok != json.Delim('[') {
		return nil, pageError("JSON: files: want an array, got %v", tok)
	}
	files := []File{}
	res := newHrefResolver(pageURL)
	rps := interner{}
	for i := 0; dec.More(); i++ {
		if err := budget.entry(); err != nil {
			return nil, err
		}
		var in jsonFileIn
		if err := dec.Decode(&in); err != nil {
			if errors.Is(err, ErrPageTooLarge) {
				return nil, err
			}
			return nil, pageError("JSON: files[%d]: %v", i, err)
		}
		var f File
		if err := convertJSONFile(&in, res, &f); err != nil {
			name := ""
			if in.Filename != nil {
				name = *in.Filename
			}
			p.drop(dropped(i, name, err))
			continue
		}
		rp, shared := rps.intern(f.RequiresPython)
		f.RequiresPython = rp
		n := f.memorySize() + fileStructSize/4 // the slice grows by a quarter
		if !shared {
			n += int64(len(rp))
		}
		if err := budget.add(n); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, err
	}
	return slices.Clip(files), nil
}

func convertJSONFile(in *jsonFileIn, res *hrefResolver, f *File) error {
	f.Size = -1
	if in.Filename == nil {
		return errors.New("missing filename")
	}
	f.Filename = *in.Filename
	if !safeFilename(f.Filename) {
		return fmt.Errorf("unsafe filename %q", truncate(f.Filename, 200))
	}
	if in.URL == nil || *in.URL == "" {
		return fmt.Errorf("%s: missing url", f.Filename)
	}
	var frag string
	var err error
	if f.URL, frag, _, err = res.resolve(*in.URL, false); err != nil {
		return fmt.Errorf("%s: url: %w", f.Filename, err)
	}
	// The URL usually ends with the file name: share its bytes.
	if strings.HasSuffix(f.URL, "/"+f.Filename) {
		f.Filename = f.URL[len(f.URL)-len(f.Filename):]
	}
	if in.Hashes.IsNil() {
		return fmt.Errorf("%s: missing hashes", f.Filename)
	}
	if f.Hashes, err = normalizeHashes(in.Hashes); err != nil {
		return fmt.Errorf("%s: hashes: %w", f.Filename, err)
	}
	if n, d, err := parseFragmentHash(frag); err != nil {
		return fmt.Errorf("%s: url fragment: %w", f.Filename, err)
	} else if n != "" {
		if _, dup := f.Hashes.Lookup(n); !dup {
			f.Hashes.Set(n, d)
		}
	}
	if in.RequiresPython != nil {
		f.RequiresPython = *in.RequiresPython
	}
	f.Yanked, f.YankedReason = in.Yanked.yanked, in.Yanked.reason
	// pip reads core-metadata, then dist-info-metadata; PyPI's legacy key
	// is data-dist-info-metadata. The first non-null one wins.
	for _, m := range []*jsonMetadataIn{&in.CoreMetadata, &in.DistInfoMetadata, &in.DataDistInfoMetadata} {
		if !m.set {
			continue
		}
		f.CoreMetadata = m.present
		if !m.hashes.IsNil() {
			if f.CoreMetadataHashes, err = normalizeHashes(m.hashes); err != nil {
				return fmt.Errorf("%s: core metadata: %w", f.Filename, err)
			}
		}
		break
	}
	if in.Size != nil {
		if *in.Size < 0 {
			return fmt.Errorf("%s: size: negative", f.Filename)
		}
		f.Size = *in.Size
	}
	if in.UploadTime != nil {
		f.UploadTime = *in.UploadTime
	}
	if in.Provenance != nil && *in.Provenance != "" {
		if f.Provenance, _, _, err = res.resolve(*in.Provenance, false); err != nil {
			return fmt.Errorf("%s: provenance: %w", f.Filename, err)
		}
	}
	f.GPGSig = in.GPGSig
	return nil
}

// normalizeHashes validates and lower-cases a {"name": "hex"} object.
func normalizeHashes(h Hashes) (Hashes, error) {
	if h.isLoneSHA256() {
		return h, nil // already valid and lower-case: nothing to check or change
	}
	pairs := h.Pairs()
	changed := false
	for i, e := range pairs {
		d, err := normalizeHash(e.Name, e.Digest)
		if err != nil {
			return Hashes{}, err
		}
		if d != e.Digest {
			pairs[i].Digest, changed = d, true
		}
	}
	if !changed {
		return h, nil
	}
	return encodeHashes(pairs), nil
}

// WriteProjectJSON writes p as PyPI renders a PEP 691 project page (Python's
// json.dumps with sort_keys=True, compact separators, ensure_ascii=False)
// plus a trailing newline. Every file carries "core-metadata" and the
// legacy "data-dist-info-metadata" (false, true or a hash object), never
// "dist-info-metadata", which crashes pip 22.3–23.1. "provenance" and
// "requires-python" are written as null when empty, "size" when known (not
// -1), "upload-time" when set, "gpg-sig" when not nil. Versions nil is
// derived from the file names ([ProjectPage.DeriveVersions]).
// meta.api-version is p.APIVersion, or [APIVersion] when that is empty;
// meta._last-serial is written when non-zero; "project-status" when
// p.Status is set.
func WriteProjectJSON(w io.Writer, p *ProjectPage) error {
	return WriteProjectJSONFunc(w, p, nil)
}

// FileFunc changes f, a copy of a page's i-th file, before it is written.
type FileFunc func(i int, f *File)

// WriteProjectJSONFunc is [WriteProjectJSON] with each file passed through
// fn first: fn(i, f) may change f, a copy of p.Files[i], before it is
// written. p is not modified. The page is written in pieces of about 1 MiB.
func WriteProjectJSONFunc(w io.Writer, p *ProjectPage, fn FileFunc) error {
	b := make([]byte, 0, min(256+writtenSizeHint(p, 200), writeChunk+64<<10))
	b = append(b, `{"files":[`...)
	for i := range p.Files {
		if i > 0 {
			b = append(b, ',')
		}
		f := &p.Files[i]
		if fn != nil {
			c := *f
			fn(i, &c)
			f = &c
		}
		b = appendJSONFile(b, f)
		if len(b) >= writeChunk {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	b = append(b, `],"meta":{`...)
	b = appendJSONMeta(b, p.LastSerial, p.APIVersion)
	b = append(b, `},"name":`...)
	b = appendJSONString(b, p.Name)
	if p.Status != "" {
		b = append(b, `,"project-status":{`...)
		if p.StatusReason != "" {
			b = append(b, `"reason":`...)
			b = appendJSONString(b, p.StatusReason)
			b = append(b, ',')
		}
		b = append(b, `"status":`...)
		b = appendJSONString(b, p.Status)
		b = append(b, '}')
	}
	versions := p.Versions
	if versions == nil {
		versions = p.DeriveVersions()
	}
	b = append(b, `,"versions":[`...)
	for i, v := range versions {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	b = append(b, "]}\n"...)
	_, err := w.Write(b)
	return err
}

// writeChunk is how much of a page the writers build before they write it:
// a page of 390k files goes out in pieces, never whole in memory.
const writeChunk = 1 << 20

// WrittenSizeHint estimates the bytes p takes when written as JSON (json) or
// HTML, for a caller that collects them.
func WrittenSizeHint(p *ProjectPage, json bool) int {
	if json {
		return 256 + writtenSizeHint(p, 200)
	}
	return 512 + writtenSizeHint(p, 150)
}

// writtenSizeHint estimates the bytes a page's files take when written:
// their strings plus perFile for the markup (a capacity hint, so a page of
// 390k files is not regrown and copied on the way, nor over-allocated).
func writtenSizeHint(p *ProjectPage, perFile int) int {
	n := 0
	for i := range p.Files {
		f := &p.Files[i]
		n += perFile + len(f.Filename) + len(f.URL) + len(f.RequiresPython) + len(f.YankedReason) +
			len(f.UploadTime) + len(f.Provenance)
		n += f.Hashes.size() + 2*f.CoreMetadataHashes.size()
	}
	return n + 16*len(p.Versions)
}

func appendJSONMeta(b []byte, serial int64, api string) []byte {
	if serial != 0 {
		b = append(b, `"_last-serial":`...)
		b = strconv.AppendInt(b, serial, 10)
		b = append(b, ',')
	}
	if api == "" {
		api = APIVersion
	}
	b = append(b, `"api-version":`...)
	return appendJSONString(b, api)
}

// appendJSONFile appends one file object, keys in sorted order.
func appendJSONFile(b []byte, f *File) []byte {
	cm := func(b []byte) []byte {
		switch {
		case f.CoreMetadata && f.CoreMetadataHashes.Len() > 0:
			return appendJSONHashes(b, f.CoreMetadataHashes)
		case f.CoreMetadata:
			return append(b, "true"...)
		}
		return append(b, "false"...)
	}
	b = append(b, `{"core-metadata":`...)
	b = cm(b)
	b = append(b, `,"data-dist-info-metadata":`...)
	b = cm(b)
	b = append(b, `,"filename":`...)
	b = appendJSONString(b, f.Filename)
	if f.GPGSig != nil {
		b = append(b, `,"gpg-sig":`...)
		b = strconv.AppendBool(b, *f.GPGSig)
	}
	b = append(b, `,"hashes":`...)
	b = appendJSONHashes(b, f.Hashes)
	b = append(b, `,"provenance":`...)
	b = appendJSONStringOrNull(b, f.Provenance)
	b = append(b, `,"requires-python":`...)
	b = appendJSONStringOrNull(b, f.RequiresPython)
	if f.Size >= 0 {
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, f.Size, 10)
	}
	if f.UploadTime != "" {
		b = append(b, `,"upload-time":`...)
		b = appendJSONString(b, f.UploadTime)
	}
	b = append(b, `,"url":`...)
	b = appendJSONString(b, f.URL)
	b = append(b, `,"yanked":`...)
	switch {
	case f.Yanked && f.YankedReason != "":
		b = appendJSONString(b, f.YankedReason)
	default:
		b = strconv.AppendBool(b, f.Yanked)
	}
	return append(b, '}')
}

// appendJSONHashes appends a hash object with its keys sorted (as Hashes are).
func appendJSONHashes(b []byte, h Hashes) []byte {
	if len(h.enc) == sha256Len {
		b = append(b, `{"sha256":"`...)
		b, _ = h.appendSHA256(b)
		return append(b, `"}`...)
	}
	b = append(b, '{')
	first := true
	for n, d := range h.All() {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, n)
		b = append(b, ':')
		b = appendJSONString(b, d)
	}
	return append(b, '}')
}

func appendJSONStringOrNull(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, s)
}

// appendJSONString appends s as Python's json.dumps(ensure_ascii=False)
// does: only '"', '\\' and control characters are escaped (\b \f \n \r \t
// or \u00XX). Invalid UTF-8, which a Python str cannot hold, becomes \ufffd.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// ParseProjectListJSON parses the PEP 691 root page
// {"meta":{...},"projects":[{"name":"Display_Name","_last-serial":N},...]}.
// Names are kept as written (not normalised) but must be non-empty.
func ParseProjectListJSON(body []byte) (*ProjectList, error) {
	if err := checkPageSize(body); err != nil {
		return nil, err
	}
	var in struct {
		Meta     *jsonMetaIn `json:"meta"`
		Projects *[]struct {
			Name       *string    `json:"name"`
			LastSerial lenientInt `json:"_last-serial"`
		} `json:"projects"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, pageError("JSON: %v", err)
	}
	l := &ProjectList{}
	var err error
	if l.APIVersion, l.LastSerial, err = parseMeta(in.Meta); err != nil {
		return nil, err
	}
	if in.Projects == nil {
		return nil, pageError("missing projects")
	}
	l.Projects = make([]ProjectEntry, len(*in.Projects))
	for i, e := range *in.Projects {
		if e.Name == nil || *e.Name == "" {
			return nil, pageError("projects[%d]: missing name", i)
		}
		l.Projects[i] = ProjectEntry{Name: *e.Name, LastSerial: int64(e.LastSerial)}
	}
	return l, nil
}

// WriteProjectListJSON writes l as PyPI's PEP 691 root page, in PyPI's
// style (sorted keys, compact, trailing newline). meta.api-version is
// l.APIVersion or [APIVersion]; meta._last-serial is written when non-zero.
func WriteProjectListJSON(w io.Writer, l *ProjectList) error {
	b := make([]byte, 0, 64+len(l.Projects)*48)
	b = append(b, `{"meta":{`...)
	b = appendJSONMeta(b, l.LastSerial, l.APIVersion)
	b = append(b, `},"projects":[`...)
	for i, e := range l.Projects {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"_last-serial":`...)
		b = strconv.AppendInt(b, e.LastSerial, 10)
		b = append(b, `,"name":`...)
		b = appendJSONString(b, e.Name)
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	_, err := w.Write(b)
	return err
}

// formatSerial renders a serial for the HTML SERIAL comment.
func formatSerial(n int64) string { return strconv.FormatInt(n, 10) }
