package pypitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"slices"
	"strconv"
	"strings"
	"time"
)

// projectPage is what the templates render for one project.
type projectPage struct {
	Name     string // normalised
	Serial   int64
	Versions []string
	Files    []pageFile
}

type pageFile struct {
	Filename       string
	URL            string // absolute, without fragment
	SHA256         string
	RequiresPython string
	Yanked         bool
	YankedReason   string
	MetadataSHA256 string // "" when there is no metadata file
	MetadataNoHash bool   // the metadata file is listed as just true
	Provenance     string // "" for null
	Size           int64
	UploadTime     time.Time
}

type listEntry struct {
	Name       string // display name
	Normalized string
	Serial     int64
}

// renderProjectHTML writes PyPI's detail.html template, quirks included:
// the stray space before ">" or "data-provenance" after a link without
// core metadata, and the SERIAL comment after </html>.
func renderProjectHTML(buf *bytes.Buffer, p projectPage) {
	e := html.EscapeString
	buf.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n  <head>\n")
	fmt.Fprintf(buf, "    <meta name=\"pypi:repository-version\" content=\"%s\">\n", apiVersion)
	buf.WriteString("<meta name=\"pypi:project-status\" content=\"active\">")
	fmt.Fprintf(buf, "    <title>Links for %s</title>\n  </head>\n  <body>\n    <h1>Links for %s</h1>\n", e(p.Name), e(p.Name))
	for _, f := range p.Files {
		fmt.Fprintf(buf, "<a href=\"%s#sha256=%s\"", e(f.URL), f.SHA256)
		if f.RequiresPython != "" {
			fmt.Fprintf(buf, " data-requires-python=\"%s\"", e(f.RequiresPython))
		}
		if f.Yanked {
			fmt.Fprintf(buf, " data-yanked=\"%s\"", e(f.YankedReason))
		}
		buf.WriteByte(' ')
		switch {
		case f.MetadataNoHash:
			buf.WriteString(`data-dist-info-metadata="true" data-core-metadata="true"`)
		case f.MetadataSHA256 != "":
			fmt.Fprintf(buf, "data-dist-info-metadata=\"sha256=%s\" data-core-metadata=\"sha256=%s\"", f.MetadataSHA256, f.MetadataSHA256)
		}
		if f.Provenance != "" {
			fmt.Fprintf(buf, " data-provenance=\"%s\"", e(f.Provenance))
		}
		fmt.Fprintf(buf, ">%s</a><br />\n", e(f.Filename))
	}
	fmt.Fprintf(buf, "</body>\n</html>\n<!--SERIAL %d-->\n", p.Serial)
}

// renderListHTML writes PyPI's index.html template.
func renderListHTML(buf *bytes.Buffer, entries []listEntry) {
	buf.WriteString("<!DOCTYPE html>\n<html>\n  <head>\n")
	fmt.Fprintf(buf, "    <meta name=\"pypi:repository-version\" content=\"%s\">\n", apiVersion)
	buf.WriteString("    <title>Simple index</title>\n  </head>\n  <body>\n")
	for _, p := range entries {
		fmt.Fprintf(buf, "    <a href=\"/simple/%s/\">%s</a>\n", html.EscapeString(p.Normalized), html.EscapeString(p.Name))
	}
	buf.WriteString("  </body>\n</html>")
}

type sha256Digest struct {
	SHA256 string `json:"sha256"`
}

// jsonFile has its fields in sorted key order, as PyPI renders them.
type jsonFile struct {
	CoreMetadata         any               `json:"core-metadata"`
	DataDistInfoMetadata any               `json:"data-dist-info-metadata"`
	Filename             string            `json:"filename"`
	Hashes               map[string]string `json:"hashes"`
	Provenance           *string           `json:"provenance"`
	RequiresPython       *string           `json:"requires-python"`
	Size                 int64             `json:"size"`
	UploadTime           string            `json:"upload-time"`
	URL                  string            `json:"url"`
	Yanked               any               `json:"yanked"`
}

type jsonMeta struct {
	LastSerial int64  `json:"_last-serial"`
	APIVersion string `json:"api-version"`
}

type jsonProjectStatus struct {
	Status string `json:"status"`
}

type jsonProject struct {
	Files         []jsonFile        `json:"files"`
	Meta          jsonMeta          `json:"meta"`
	Name          string            `json:"name"`
	ProjectStatus jsonProjectStatus `json:"project-status"`
	Versions      []string          `json:"versions"`
}

type jsonListEntry struct {
	LastSerial int64  `json:"_last-serial"`
	Name       string `json:"name"`
}

type jsonList struct {
	Meta     jsonMeta        `json:"meta"`
	Projects []jsonListEntry `json:"projects"`
}

// uploadTime formats t as Python's isoformat()+"Z": no fraction when the
// microseconds are zero.
func uploadTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05") + "Z"
	}
	return t.Format("2006-01-02T15:04:05.000000") + "Z"
}

// encodeJSON writes v compactly, without HTML or ASCII escaping, with a
// trailing newline (PyPI's renderer).
func encodeJSON(buf *bytes.Buffer, v any) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("pypitest: encoding JSON: %v", err)) // plain structs cannot fail
	}
}

// renderProjectJSON writes a PEP 691 project page as PyPI does.
func renderProjectJSON(buf *bytes.Buffer, p projectPage) {
	out := jsonProject{
		Files:         []jsonFile{},
		Meta:          jsonMeta{LastSerial: p.Serial, APIVersion: apiVersion},
		Name:          p.Name,
		ProjectStatus: jsonProjectStatus{Status: "active"},
		Versions:      slices.Clone(p.Versions),
	}
	if out.Versions == nil {
		out.Versions = []string{}
	}
	for _, f := range p.Files {
		jf := jsonFile{
			CoreMetadata:         false,
			DataDistInfoMetadata: false,
			Filename:             f.Filename,
			Hashes:               map[string]string{"sha256": f.SHA256},
			Size:                 f.Size,
			UploadTime:           uploadTime(f.UploadTime),
			URL:                  f.URL,
			Yanked:               false,
		}
		switch {
		case f.MetadataNoHash:
			jf.CoreMetadata, jf.DataDistInfoMetadata = true, true
		case f.MetadataSHA256 != "":
			jf.CoreMetadata = sha256Digest{f.MetadataSHA256}
			jf.DataDistInfoMetadata = sha256Digest{f.MetadataSHA256}
		}
		if f.Provenance != "" {
			jf.Provenance = &f.Provenance
		}
		if f.RequiresPython != "" {
			jf.RequiresPython = &f.RequiresPython
		}
		if f.Yanked {
			jf.Yanked = true
			if f.YankedReason != "" {
				jf.Yanked = f.YankedReason
			}
		}
		out.Files = append(out.Files, jf)
	}
	encodeJSON(buf, out)
}

// renderListJSON writes the PEP 691 project list.
func renderListJSON(buf *bytes.Buffer, entries []listEntry, serial int64) {
	out := jsonList{Meta: jsonMeta{LastSerial: serial, APIVersion: apiVersion}, Projects: []jsonListEntry{}}
	for _, e := range entries {
		out.Projects = append(out.Projects, jsonListEntry{LastSerial: e.Serial, Name: e.Name})
	}
	encodeJSON(buf, out)
}

// negotiate picks an offer the way PyPI (WebOb's acceptable_offers) does:
// each offer takes the q of the most specific media range that matches it,
// offers sort by q with ties in server order, and q=0 rules an offer out.
// It returns def when nothing is acceptable or no Accept header was sent.
func negotiate(accept []string, offers []string, def string) string {
	type rng struct {
		typ, sub string
		q        float64
	}
	var ranges []rng
	for _, line := range accept {
		for part := range strings.SplitSeq(line, ",") {
			params := strings.Split(part, ";")
			mt := strings.ToLower(strings.TrimSpace(params[0]))
			typ, sub, ok := strings.Cut(mt, "/")
			if !ok || typ == "" || sub == "" {
				continue
			}
			q := 1.0
			for _, p := range params[1:] {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0
					}
					q = f
				}
			}
			ranges = append(ranges, rng{typ, sub, q})
		}
	}
	if len(ranges) == 0 {
		return def
	}
	best, bestQ := def, 0.0
	for _, offer := range offers {
		typ, sub, _ := strings.Cut(offer, "/")
		spec, q := -1, 0.0
		for _, r := range ranges {
			s := -1
			switch {
			case r.typ == typ && r.sub == sub:
				s = 2
			case r.typ == typ && r.sub == "*":
				s = 1
			case r.typ == "*" && r.sub == "*":
				s = 0
			}
			if s > spec || (s == spec && s >= 0 && r.q > q) {
				spec, q = s, r.q
			}
		}
		if q > bestQ {
			best, bestQ = offer, q
		}
	}
	return best
}

// canonicalVersion approximates packaging.canonicalize_version for the
// Integrity API route: case, a leading "v" and trailing ".0"s do not matter.
func canonicalVersion(v string) string {
	v = strings.TrimPrefix(strings.ToLower(v), "v")
	for strings.HasSuffix(v, ".0") {
		v = strings.TrimSuffix(v, ".0")
	}
	return v
}

// compareVersions orders versions well enough for test data: numeric
// segments compare as numbers, and a pre-release suffix (a, b, rc, dev)
// sorts before the bare release.
func compareVersions(a, b string) int {
	ta, tb := versionTokens(a), versionTokens(b)
	for i := 0; i < len(ta) || i < len(tb); i++ {
		switch {
		case i >= len(ta):
			return -tailSign(tb[i])
		case i >= len(tb):
			return tailSign(ta[i])
		}
		x, y := ta[i], tb[i]
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		switch {
		case ex == nil && ey == nil:
			if nx != ny {
				return compareInt(nx, ny)
			}
		case ex == nil:
			return 1 // a number beats a pre-release tag at the same place
		case ey == nil:
			return -1
		default:
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
		}
	}
	return 0
}

// tailSign says how a version with this extra token compares to the same
// version without it: a pre-release tag makes it smaller.
func tailSign(tok string) int {
	if _, err := strconv.Atoi(tok); err == nil || tok == "post" {
		return 1
	}
	return -1
}

func compareInt(a, b int) int {
	if a < b {
		return -1
	}
	return 1
}

// versionTokens splits a version into runs of digits and of letters.
func versionTokens(v string) []string {
	var toks []string
	cur := strings.Builder{}
	digit := false
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, cur.String())
			cur.Reset()
		}
	}
	for _, r := range strings.ToLower(v) {
		isDigit := r >= '0' && r <= '9'
		isLetter := r >= 'a' && r <= 'z'
		if !isDigit && !isLetter {
			flush()
			continue
		}
		if cur.Len() > 0 && isDigit != digit {
			flush()
		}
		digit = isDigit
		cur.WriteRune(r)
	}
	flush()
	return toks
}
