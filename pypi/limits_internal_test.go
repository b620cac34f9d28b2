package pypi

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// pageOf builds a project page of n entries from entry(i), in HTML
// (after head, which may hold a <base href>) or JSON.
func pageOf(asJSON bool, head string, n int, entry func(i int) string) []byte {
	var b bytes.Buffer
	if asJSON {
		b.WriteString(`{"name":"a","files":[`)
	} else {
		b.WriteString("<html><head>" + head + "</head><body>\n")
	}
	for i := range n {
		if asJSON && i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(entry(i))
	}
	if asJSON {
		b.WriteString("]}")
	} else {
		b.WriteString("</body></html>")
	}
	return b.Bytes()
}

// TestPageLimitsEnforced: both parsers hold a page to the file-entry and
// memory limits they are given, at the boundary: a page at a limit is
// kept whole, one entry more is refused, with an error naming the limit.
// For memory, the page kept at the limit has a MemorySize within it, and
// the one refused holds within 1/16 of it or more. The limits here are smaller than the package's
// (defaultPageLimits), so that small pages reach them; TestPageLimits and
// TestPageShapesMemory hold the public parsers to MaxPageFiles and
// MaxPageMemory at full size.
func TestPageLimitsEnforced(t *testing.T) {
	const files = 1000
	lim := pageLimits{files: files, memory: 64 << 20}
	pageURL, _ := url.Parse("https://pypi.example/simple/a/")
	parse := func(asJSON bool, body []byte, lim pageLimits) (*ProjectPage, error) {
		if asJSON {
			return parseProjectJSON(bytes.NewReader(body), pageURL, lim)
		}
		return parseProjectHTML(bytes.NewReader(body), pageURL, lim)
	}
	sha := strings.Repeat("ab", 32)
	entry := map[bool]func(i int) string{
		false: func(i int) string { return fmt.Sprintf("<a href=\"a-%d.zip#sha256=%s\">", i, sha) },
		true: func(i int) string {
			return fmt.Sprintf(`{"filename":"a-%d.zip","url":"a-%d.zip","hashes":{"sha256":"%s"}}`, i, i, sha)
		},
	}
	// An entry the parsers count but drop (no usable file).
	junk := map[bool]func(i int) string{
		false: func(int) string { return "<a href=\"ftp://x/y\">" },
		true:  func(int) string { return "{}" },
	}
	for _, asJSON := range []bool{false, true} {
		format := map[bool]string{false: "HTML", true: "JSON"}[asJSON]
		for _, e := range []func(int) string{entry[asJSON], junk[asJSON]} {
			p, err := parse(asJSON, pageOf(asJSON, "", files, e), lim)
			if err != nil || len(p.Files)+p.DroppedCount != files {
				t.Errorf("%s, %d entries (the limit): %v; want the page whole", format, files, err)
			}
			_, err = parse(asJSON, pageOf(asJSON, "", files+1, e), lim)
			if !errors.Is(err, ErrPageTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d file entries", files)) {
				t.Errorf("%s, %d entries: %v; want ErrPageTooLarge naming the limit", format, files+1, err)
			}
		}
	}

	// Memory: pages that cost more than their size, each in its own way:
	// a long <base href> copied into every link, a long value in every
	// file, a list of versions (each a string and its header).
	lim = pageLimits{files: 1 << 20, memory: 256 << 10}
	long := strings.Repeat("p/", 500)
	for _, c := range []struct {
		name   string
		asJSON bool
		head   string
		entry  func(i int) string
		count  func(p *ProjectPage) int // entries kept
	}{
		{"HTML, long base", false, `<base href="https://x.example/` + long + `">`,
			func(i int) string { return fmt.Sprintf("<a href=a-%d.zip>", i) },
			func(p *ProjectPage) int { return len(p.Files) }},
		{"JSON, long values", true, "", func(i int) string {
			return fmt.Sprintf(`{"filename":"a-%d.zip","url":"a-%d.zip","hashes":{},"yanked":"%s"}`, i, i, long)
		}, func(p *ProjectPage) int { return len(p.Files) }},
		// The files array closed by the first entry, the rest versions
		// (a string and its header each).
		{"JSON, versions", true, "", func(i int) string {
			if i == 0 {
				return `],"versions":["1"`
			}
			return fmt.Sprintf(`"%d.%s"`, i, strings.Repeat("0.", 125))
		}, func(p *ProjectPage) int { return len(p.Versions) }},
	} {
		page := func(n int) []byte { return pageOf(c.asJSON, c.head, n, c.entry) }
		// n: the most entries the memory limit lets through, looked for
		// around what 64 entries hold.
		type result struct {
			p   *ProjectPage
			err error
		}
		tried := map[int]result{}
		ok := func(n int) bool {
			r, done := tried[n]
			if !done {
				r.p, r.err = parse(c.asJSON, page(n), lim)
				tried[n] = r
			}
			return r.err == nil
		}
		if !ok(64) {
			t.Fatalf("%s, 64 entries: %v", c.name, tried[64].err)
		}
		est := max(65, int(lim.memory*64/tried[64].p.MemorySize()))
		lo, hi := 64, est // ok(lo), !ok(hi)
		for step := 1; ok(hi); step *= 2 {
			if hi > 4*est {
				t.Fatalf("%s: %d entries, MemorySize %d, kept under a limit of 256 KiB", c.name, hi, tried[hi].p.MemorySize())
			}
			lo, hi = hi, hi+step
		}
		for step := 1; hi-step > lo; step *= 2 {
			if ok(hi - step) {
				lo = hi - step
				break
			}
			hi -= step
		}
		for hi-lo > 1 {
			if mid := (lo + hi) / 2; ok(mid) {
				lo = mid
			} else {
				hi = mid
			}
		}
		n, p := lo, tried[lo].p
		if n < 100 {
			t.Fatalf("%s: %d entries fit in 256 KiB; the page does not test the memory limit", c.name, n)
		}
		// What is kept fits: the page's MemorySize is within the limit.
		if c.count(p) != n || p.MemorySize() > lim.memory {
			t.Fatalf("%s, %d entries: %d kept, MemorySize %d; want the page whole, within 256 KiB", c.name, n, c.count(p), p.MemorySize())
		}
		// One more is refused, naming the limit, and refused because it
		// is over: parsed with room, it holds nearly 256 KiB or more.
		err := tried[n+1].err
		if !errors.Is(err, ErrPageTooLarge) || !strings.Contains(err.Error(), "more than 256 KiB of memory") {
			t.Errorf("%s, %d entries: %v; want ErrPageTooLarge naming the limit", c.name, n+1, err)
		}
		p, err = parse(c.asJSON, page(n+1), pageLimits{files: 1 << 20, memory: 64 << 20})
		if err != nil || p.MemorySize() <= lim.memory*15/16 {
			t.Errorf("%s, %d entries refused at 256 KiB; parsed with room: %v, MemorySize %d", c.name, n+1, err, p.MemorySize())
		}
		t.Logf("%s: %d entries kept within 256 KiB, %d refused (MemorySize %d)", c.name, n, n+1, p.MemorySize())
	}
}
