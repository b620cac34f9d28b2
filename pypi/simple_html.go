package pypi

import (
	"bytes"
	"html"
	"io"
	"net/url"
	"strings"

	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlAnchor is one <a> of a page, before URL resolution.
type htmlAnchor struct {
	attrs htmlAttrs
	text  string
}

// htmlAttrs are the attributes of a tag that a parser reads (see
// keptAttr), in document order: a short slice, not a map, as a page may
// hold hundreds of thousands of anchors.
type htmlAttrs []htmlAttr

type htmlAttr struct{ k, v string }

// lookup returns the value of the last attribute named k (duplicates: the
// last one wins, as in pip).
func (a htmlAttrs) lookup(k string) (string, bool) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i].k == k {
			return a[i].v, true
		}
	}
	return "", false
}

func (a htmlAttrs) get(k string) string { v, _ := a.lookup(k); return v }

// keptAttr returns the shared name of an attribute a parser reads, or "".
func keptAttr(k []byte) string {
	switch string(k) {
	case "href":
		return "href"
	case "name":
		return "name"
	case "content":
		return "content"
	case "data-requires-python":
		return "data-requires-python"
	case "data-yanked":
		return "data-yanked"
	case "data-core-metadata":
		return "data-core-metadata"
	case "data-dist-info-metadata":
		return "data-dist-info-metadata"
	case "data-provenance":
		return "data-provenance"
	case "data-gpg-sig":
		return "data-gpg-sig"
	}
	return ""
}

// htmlDoc is what the tokenizer collected from a simple-index page.
type htmlDoc struct {
	base       string // first <base href>, "" if none
	apiVersion string
	status     string
	reason     string
	serial     int64
	title      string
	anchors    []htmlAnchor
}

// scanHTML tokenizes body once, as pip's HTMLParser-based link collector
// does: every <a> anywhere, the first <base href>, the pypi:* meta tags and
// the SERIAL comment. Duplicate attributes: the last one wins, as in pip.
func scanHTML(body []byte) htmlDoc {
	var d htmlDoc
	z := xhtml.NewTokenizer(bytes.NewReader(body))
	var cur *htmlAnchor
	var text strings.Builder
	inTitle := false
	for {
		tt := z.Next()
		switch tt {
		case xhtml.ErrorToken:
			if cur != nil {
				cur.text = text.String()
				d.anchors = append(d.anchors, *cur)
			}
			return d
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			var attrs htmlAttrs
			if hasAttr && (a == atom.A || a == atom.Base || a == atom.Meta) {
				for {
					k, v, more := z.TagAttr()
					if name := keptAttr(k); name != "" {
						attrs = append(attrs, htmlAttr{name, string(v)})
					}
					if !more {
						break
					}
				}
			}
			switch a {
			case atom.A:
				if cur != nil { // unclosed <a>: a new one ends it
					cur.text = text.String()
					d.anchors = append(d.anchors, *cur)
				}
				cur = &htmlAnchor{attrs: attrs}
				text.Reset()
				if tt == xhtml.SelfClosingTagToken {
					d.anchors = append(d.anchors, *cur)
					cur = nil
				}
			case atom.Base:
				if href, ok := attrs.lookup("href"); ok && d.base == "" {
					d.base = href
				}
			case atom.Meta:
				switch attrs.get("name") {
				case "pypi:repository-version":
					d.apiVersion = attrs.get("content")
				case "pypi:project-status":
					d.status = attrs.get("content")
				case "pypi:project-status-reason":
					d.reason = attrs.get("content")
				}
			case atom.Title:
				inTitle = true
			}
		case xhtml.EndTagToken:
			name, _ := z.TagName()
			switch atom.Lookup(name) {
			case atom.A:
				if cur != nil {
					cur.text = text.String()
					d.anchors = append(d.anchors, *cur)
					cur = nil
				}
			case atom.Title:
				inTitle = false
			}
		case xhtml.TextToken:
			if cur != nil {
				text.Write(z.Text())
			} else if inTitle {
				d.title += string(z.Text())
			}
		case xhtml.CommentToken:
			c := strings.TrimSpace(string(z.Text()))
			if rest, ok := strings.CutPrefix(c, "SERIAL "); ok {
				if n, ok := parseSerial(strings.TrimSpace(rest)); ok {
					d.serial = n
				}
			}
		}
	}
}

func parseSerial(s string) (int64, bool) {
	if !isDigits(s) || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// ParseProjectHTML parses a PEP 503 project page. The project name comes
// from pageURL's last path segment, normalised (HTML pages carry it only
// in prose; when pageURL is nil or has no segment, the "Links for X" title
// is used). Hrefs are resolved against <base href> (itself resolved against
// pageURL) or pageURL; the "#sha256=…" fragment goes into Hashes and is
// removed from URL. File names come from the URL's last path component, as
// pip takes them, whatever the anchor text says. Anchors without an href
// are skipped. data-yanked present means yanked (its value is the reason);
// data-core-metadata (or data-dist-info-metadata) is "true", "false" or
// "<hash>=<hex>"; Size is -1 and Versions nil, as HTML carries neither.
func ParseProjectHTML(body []byte, pageURL *url.URL) (*ProjectPage, error) {
	if err := checkPageSize(body); err != nil {
		return nil, err
	}
	d := scanHTML(body)
	if err := checkAPIVersion(d.apiVersion); err != nil {
		return nil, err
	}
	p := &ProjectPage{
		APIVersion:   d.apiVersion,
		LastSerial:   d.serial,
		Status:       d.status,
		StatusReason: d.reason,
	}
	if pageURL != nil {
		seg := strings.TrimRight(pageURL.Path, "/")
		p.Name = NormalizeName(seg[strings.LastIndexByte(seg, '/')+1:])
	}
	if p.Name == "" {
		if n, ok := strings.CutPrefix(strings.TrimSpace(d.title), "Links for "); ok {
			p.Name = NormalizeName(strings.TrimSpace(n))
		}
	}
	base, err := htmlBase(pageURL, d.base)
	if err != nil {
		return nil, err
	}
	p.Files = make([]File, 0, len(d.anchors))
	n := 0
	for _, a := range d.anchors {
		href := a.attrs.get("href")
		if href == "" {
			continue
		}
		f, err := parseHTMLAnchor(a, base)
		if err != nil {
			name := f.Filename
			if name == "" {
				name = href
			}
			p.Dropped = append(p.Dropped, dropped(n, name, err))
		} else {
			p.Files = append(p.Files, f)
		}
		n++
	}
	return p, nil
}

// htmlBase resolves a <base href> against the page URL.
func htmlBase(pageURL *url.URL, href string) (*url.URL, error) {
	if href == "" {
		return pageURL, nil
	}
	b, err := url.Parse(href)
	if err != nil {
		return nil, pageError("base href %q: %v", href, err)
	}
	if pageURL != nil {
		b = pageURL.ResolveReference(b)
	}
	return b, nil
}

func parseHTMLAnchor(a htmlAnchor, base *url.URL) (File, error) {
	f := File{Size: -1, Hashes: Hashes{}}
	href := a.attrs.get("href")
	var frag string
	var err error
	if f.URL, frag, err = resolveURL(base, href); err != nil {
		return f, err
	}
	f.Filename = urlFilename(f.URL)
	if !safeFilename(f.Filename) {
		return f, pageError("unsafe filename %q in %q", f.Filename, href)
	}
	n, dg, err := parseFragmentHash(frag)
	if err != nil {
		return f, err
	}
	if n != "" {
		f.Hashes = Hashes{{internHashName(n), dg}}
	}
	f.RequiresPython = a.attrs.get("data-requires-python")
	if r, ok := a.attrs.lookup("data-yanked"); ok {
		f.Yanked, f.YankedReason = true, r
	}
	cm, ok := a.attrs.lookup("data-core-metadata")
	if !ok {
		cm, ok = a.attrs.lookup("data-dist-info-metadata")
	}
	if ok {
		switch hn, hv, isHash := strings.Cut(cm, "="); {
		case cm == "false":
			// PEP 714 allows only "true" or a hash; pip reads anything
			// else as "true", but "false" cannot mean that.
		case isHash:
			d, err := normalizeHash(hn, hv)
			if err != nil {
				return f, err
			}
			f.CoreMetadata, f.CoreMetadataHashes = true, Hashes{{internHashName(hn), d}}
		default:
			f.CoreMetadata = true
		}
	}
	if prov := a.attrs.get("data-provenance"); prov != "" {
		if f.Provenance, _, err = resolveURL(base, prov); err != nil {
			return f, err
		}
	}
	if g, ok := a.attrs.lookup("data-gpg-sig"); ok {
		b := g == "true"
		f.GPGSig = &b
	}
	return f, nil
}

// htmlWriter accumulates a page before the single Write.
type htmlWriter struct {
	buf []byte
}

func (h *htmlWriter) s(parts ...string) {
	for _, p := range parts {
		h.buf = append(h.buf, p...)
	}
}

// esc appends s escaped as Jinja's autoescape (markupsafe) does, which is
// exactly html.EscapeString: & < > " '.
func (h *htmlWriter) esc(s string) { h.buf = append(h.buf, html.EscapeString(s)...) }

// WriteProjectHTML writes p as PyPI's project-page template renders it,
// byte for byte (see testdata and the iniconfig fixture): the
// pypi:repository-version meta (p.APIVersion or [APIVersion]), the
// pypi:project-status(-reason) metas when p.Status is set, one
// <a href="URL#sha256=hex"> per file with data-requires-python, data-yanked,
// data-dist-info-metadata + data-core-metadata and data-provenance as PyPI
// writes them, and the SERIAL comment when p.LastSerial is non-zero. Every
// value is HTML-escaped.
func WriteProjectHTML(w io.Writer, p *ProjectPage) error {
	return WriteProjectHTMLFunc(w, p, nil)
}

// WriteProjectHTMLFunc is [WriteProjectHTML] with each file passed through
// fn first: fn(i, f) may change f, a copy of p.Files[i], before it is
// written. p is not modified. The page is written in pieces of about 1 MiB.
func WriteProjectHTMLFunc(w io.Writer, p *ProjectPage, fn FileFunc) error {
	h := &htmlWriter{buf: make([]byte, 0, min(512+writtenSizeHint(p, 150), writeChunk+64<<10))}
	api := p.APIVersion
	if api == "" {
		api = APIVersion
	}
	h.s("<!DOCTYPE html>\n<html lang=\"en\">\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"")
	h.esc(api)
	h.s("\">\n")
	if p.Status != "" {
		h.s(`<meta name="pypi:project-status" content="`)
		h.esc(p.Status)
		h.s(`">`)
	}
	if p.StatusReason != "" {
		h.s(`<meta name="pypi:project-status-reason" content="`)
		h.esc(p.StatusReason)
		h.s(`">`)
	}
	h.s("    <title>Links for ")
	h.esc(p.Name)
	h.s("</title>\n  </head>\n  <body>\n    <h1>Links for ")
	h.esc(p.Name)
	h.s("</h1>\n")
	for i := range p.Files {
		f := &p.Files[i]
		if fn != nil {
			c := *f
			fn(i, &c)
			f = &c
		}
		h.s(`<a href="`)
		h.esc(f.URL)
		if n, d := bestHash(f.Hashes); n != "" {
			h.esc("#" + n + "=" + d)
		}
		h.s(`" `)
		if f.RequiresPython != "" {
			h.s(`data-requires-python="`)
			h.esc(f.RequiresPython)
			h.s(`" `)
		}
		if f.Yanked {
			h.s(`data-yanked="`)
			h.esc(f.YankedReason)
			h.s(`" `)
		}
		if f.CoreMetadata {
			v := "true"
			if n, d := bestHash(f.CoreMetadataHashes); n != "" {
				v = n + "=" + d
			}
			h.s(`data-dist-info-metadata="`)
			h.esc(v)
			h.s(`" data-core-metadata="`)
			h.esc(v)
			h.s(`"`)
		}
		if f.Provenance != "" {
			h.s(` data-provenance="`)
			h.esc(f.Provenance)
			h.s(`"`)
		}
		if f.GPGSig != nil {
			if *f.GPGSig {
				h.s(` data-gpg-sig="true"`)
			} else {
				h.s(` data-gpg-sig="false"`)
			}
		}
		h.s(">")
		h.esc(f.Filename)
		h.s("</a><br />\n")
		if len(h.buf) >= writeChunk {
			if _, err := w.Write(h.buf); err != nil {
				return err
			}
			h.buf = h.buf[:0]
		}
	}
	h.s("</body>\n</html>\n")
	if p.LastSerial != 0 {
		h.s("<!--SERIAL ", formatSerial(p.LastSerial), "-->\n")
	}
	_, err := w.Write(h.buf)
	return err
}

// ParseProjectListHTML parses a PEP 503 root page: one project per anchor,
// named by the anchor text (as written, not normalised). Anchors with an
// empty text are skipped.
func ParseProjectListHTML(body []byte) (*ProjectList, error) {
	if err := checkPageSize(body); err != nil {
		return nil, err
	}
	d := scanHTML(body)
	if err := checkAPIVersion(d.apiVersion); err != nil {
		return nil, err
	}
	l := &ProjectList{APIVersion: d.apiVersion, LastSerial: d.serial, Projects: make([]ProjectEntry, 0, len(d.anchors))}
	for _, a := range d.anchors {
		name := strings.TrimSpace(a.text)
		if name == "" {
			continue
		}
		l.Projects = append(l.Projects, ProjectEntry{Name: name})
	}
	return l, nil
}

// WriteProjectListHTML writes l as PyPI's root-page template does, except
// that each link is relative to the root page, <a href="normalized/">Name</a>,
// instead of PyPI's absolute "/simple/normalized/", so the page works
// wherever the index is mounted (the root page's URL must end in "/", as
// PyPI's does).
func WriteProjectListHTML(w io.Writer, l *ProjectList) error {
	h := &htmlWriter{buf: make([]byte, 0, 256+len(l.Projects)*64)}
	api := l.APIVersion
	if api == "" {
		api = APIVersion
	}
	h.s("<!DOCTYPE html>\n<html lang=\"en\">\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"")
	h.esc(api)
	h.s("\">\n    <title>Simple index</title>\n  </head>\n  <body>\n")
	for _, e := range l.Projects {
		h.s(`<a href="`)
		h.esc(url.PathEscape(NormalizeName(e.Name)) + "/")
		h.s(`">`)
		h.esc(e.Name)
		h.s("</a>\n")
	}
	h.s("</body>\n</html>\n")
	_, err := w.Write(h.buf)
	return err
}
