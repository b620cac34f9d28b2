package pypi

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"net/url"
	"strings"

	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

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
}

// maxHTMLToken bounds one token of an HTML page (a tag with its
// attributes, a text run, a comment): the tokenizer holds a token whole.
const maxHTMLToken = 1 << 20

// maxTitle bounds the <title> text kept (the project name is in it).
const maxTitle = 1024

// scanHTML tokenizes the page in r as it reads it, as pip's
// HTMLParser-based link collector does: every <a> anywhere, the first <base
// href>, the pypi:* meta tags and the SERIAL comment. Duplicate
// attributes: the last one wins, as in pip. Each <a> is handed to
// onAnchor: at its start tag with no text, or, with wantText, once it ends
// (its end tag, the next <a>, or the end of the page) with its text. The
// attributes are valid only during the call. An error of onAnchor, a read
// error or a token over maxHTMLToken ends the scan with that error.
func scanHTML(r io.Reader, wantText bool, onAnchor func(attrs htmlAttrs, text string) error) (htmlDoc, error) {
	var d htmlDoc
	z := xhtml.NewTokenizer(r)
	z.SetMaxBuf(maxHTMLToken)
	var attrs htmlAttrs
	var cur htmlAttrs // the open <a>'s attributes, with wantText
	open := false
	var text strings.Builder
	inTitle := false
	flush := func() error {
		if !open {
			return nil
		}
		open = false
		return onAnchor(cur, text.String())
	}
	for {
		tt := z.Next()
		switch tt {
		case xhtml.ErrorToken:
			err := z.Err()
			switch {
			case errors.Is(err, io.EOF):
				return d, flush()
			case errors.Is(err, xhtml.ErrBufferExceeded):
				return d, tooLarge(fmt.Sprintf("an HTML tag, text or comment over %d bytes (pipgate's limit)", maxHTMLToken))
			}
			return d, err
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			attrs = attrs[:0]
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
				if !wantText {
					if err := onAnchor(attrs, ""); err != nil {
						return d, err
					}
					continue
				}
				if err := flush(); err != nil { // unclosed <a>: a new one ends it
					return d, err
				}
				cur = append(cur[:0], attrs...)
				open = true
				text.Reset()
				if tt == xhtml.SelfClosingTagToken {
					if err := flush(); err != nil {
						return d, err
					}
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
				if err := flush(); err != nil {
					return d, err
				}
			case atom.Title:
				inTitle = false
			}
		case xhtml.TextToken:
			if open {
				text.Write(z.Text())
			} else if inTitle && len(d.title) < maxTitle {
				t := z.Text()
				d.title += string(t[:min(len(t), maxTitle-len(d.title))])
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
// "<hash>=<hex>"; Size is -1 and Versions nil, as HTML carries neither. A
// page over [MaxPageBytes], [MaxPageFiles] or [MaxPageMemory], or with one
// tag over 1 MiB, is refused ([ErrPageTooLarge]).
func ParseProjectHTML(body []byte, pageURL *url.URL) (*ProjectPage, error) {
	if err := checkPageSize(body); err != nil {
		return nil, err
	}
	return ParseProjectHTMLFrom(bytes.NewReader(body), pageURL)
}

// ParseProjectHTMLFrom is [ParseProjectHTML] reading the page from r as it
// parses: it never holds the body whole, and keeps of each link only the
// attributes it reads.
func ParseProjectHTMLFrom(r io.Reader, pageURL *url.URL) (*ProjectPage, error) {
	return parseProjectHTML(r, pageURL, defaultPageLimits)
}

// parseProjectHTML is [ParseProjectHTMLFrom] under the limits lim.
func parseProjectHTML(r io.Reader, pageURL *url.URL, lim pageLimits) (*ProjectPage, error) {
	// The links as scanned, before their URLs are resolved (a <base href>
	// may come after them): URL and Provenance hold the raw hrefs.
	var files []File
	attrErrs := map[int]error{} // links with an attribute that did not parse
	budget := pageBudget{limits: lim}
	rps := interner{}
	d, err := scanHTML(&pageReader{r: r}, false, func(attrs htmlAttrs, _ string) error {
		href := attrs.get("href")
		if href == "" {
			return nil
		}
		if err := budget.entry(); err != nil {
			return err
		}
		f := File{Size: -1, Hashes: Hashes{hashesEmpty}, URL: href, Provenance: attrs.get("data-provenance")}
		if err := readHTMLAttrs(attrs, &f); err != nil {
			attrErrs[len(files)] = err
		}
		rp, shared := rps.intern(f.RequiresPython)
		f.RequiresPython = rp
		// Its strings, then the array's growth: its new room, spare
		// included, as MemorySize counts it.
		n := f.memorySize() - fileStructSize
		if !shared {
			n += int64(len(rp))
		}
		if err := budget.add(n); err != nil {
			return err
		}
		c := cap(files)
		files = append(files, f)
		return budget.add(int64(cap(files)-c) * fileStructSize)
	})
	if err != nil {
		if errors.Is(err, ErrPageTooLarge) {
			return nil, errPageTooLarge(err)
		}
		return nil, pageError("reading the page: %v", err)
	}
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
	if err := budget.add(p.headerSize()); err != nil {
		return nil, err
	}
	base, err := htmlBase(pageURL, d.base)
	if err != nil {
		return nil, err
	}
	res := newHrefResolver(base)
	// Resolved in place: no second array of a page's files. A resolved URL
	// may be much longer than its href (a long <base href>): the budget
	// counts it.
	kept := files[:0]
	for i := range files {
		href := files[i].URL
		f, err := resolveHTMLFile(files[i], attrErrs[i], res)
		if err == nil {
			err = budget.add(f.memorySize() - files[i].memorySize())
			if errors.Is(err, ErrPageTooLarge) {
				return nil, err
			}
		}
		if err != nil {
			name := f.Filename
			if name == "" {
				name = href
			}
			p.drop(dropped(i, name, err))
			continue
		}
		kept = append(kept, f)
	}
	clear(files[len(kept):])
	p.Files = kept
	if p.Files == nil {
		p.Files = []File{}
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

// readHTMLAttrs reads an anchor's attributes into f (all but href and
// data-provenance, which are resolved once the page is read).
func readHTMLAttrs(attrs htmlAttrs, f *File) error {
	f.RequiresPython = attrs.get("data-requires-python")
	if r, ok := attrs.lookup("data-yanked"); ok {
		f.Yanked, f.YankedReason = true, r
	}
	if g, ok := attrs.lookup("data-gpg-sig"); ok {
		f.GPGSig = boolPtr(g == "true")
	}
	cm, ok := attrs.lookup("data-core-metadata")
	if !ok {
		cm, ok = attrs.lookup("data-dist-info-metadata")
	}
	if ok {
		switch hn, hv, isHash := strings.Cut(cm, "="); {
		case cm == "false":
			// PEP 714 allows only "true" or a hash; pip reads anything
			// else as "true", but "false" cannot mean that.
		case isHash:
			d, err := normalizeHash(hn, hv)
			if err != nil {
				return err
			}
			f.CoreMetadata, f.CoreMetadataHashes = true, HashesOf(hn, d)
		default:
			f.CoreMetadata = true
		}
	}
	return nil
}

var trueVal, falseVal = true, false

// boolPtr returns a shared pointer to b (a page's files share two).
func boolPtr(b bool) *bool {
	if b {
		return &trueVal
	}
	return &falseVal
}

// resolveHTMLFile finishes a scanned file: f.URL and f.Provenance hold the
// raw hrefs, attrErr is readHTMLAttrs' error.
func resolveHTMLFile(f File, attrErr error, res *hrefResolver) (File, error) {
	href, prov := f.URL, f.Provenance
	f.Provenance = ""
	var frag string
	var err error
	if f.URL, frag, f.Filename, err = res.resolve(href, true); err != nil {
		return f, err
	}
	if !safeFilename(f.Filename) {
		return f, pageError("unsafe filename %q in %q", truncate(f.Filename, 200), truncate(href, 200))
	}
	n, dg, err := parseFragmentHash(frag)
	if err != nil {
		return f, err
	}
	if n != "" {
		f.Hashes = HashesOf(n, dg)
	}
	if attrErr != nil {
		return f, attrErr
	}
	if prov != "" {
		if f.Provenance, _, _, err = res.resolve(prov, false); err != nil {
			return f, err
		}
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
		if b, ok := f.Hashes.appendSHA256(append(h.buf, "#sha256="...)); ok {
			h.buf = b // hex needs no escaping
		} else if n, d := bestHash(f.Hashes); n != "" {
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
	l := &ProjectList{}
	d, err := scanHTML(bytes.NewReader(body), true, func(_ htmlAttrs, text string) error {
		if name := strings.TrimSpace(text); name != "" {
			l.Projects = append(l.Projects, ProjectEntry{Name: name})
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrPageTooLarge) {
			return nil, err
		}
		return nil, pageError("reading the page: %v", err)
	}
	if err := checkAPIVersion(d.apiVersion); err != nil {
		return nil, err
	}
	l.APIVersion, l.LastSerial = d.apiVersion, d.serial
	if l.Projects == nil {
		l.Projects = []ProjectEntry{}
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
