package pypi_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/pypi"
)

// liveHeap returns the bytes live on the heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestPageShapesMemory parses pages of about 256 KiB in the shapes an
// index could use to make a small page cost a lot of memory, and checks
// the accounting the page limits rest on: what a page keeps live, measured
// on the heap, is at most 1.5 times its MemorySize (which the parsers hold
// to MaxPageMemory, with MaxPageFiles), so no shape of a page within
// MaxPageBytes costs more than the limits say. A shape past a limit must
// be refused, naming it.
func TestPageShapesMemory(t *testing.T) {
	const size = 256 << 10
	sha := strings.Repeat("ab", 32)
	long := strings.Repeat("x", 200)
	shapes := []struct {
		name   string
		asJSON bool
		entry  func(i int) string
	}{
		{"html small files", false, func(i int) string {
			return fmt.Sprintf("<a href=\"a-%d.tar.gz#sha256=%s\">a</a>\n", i, sha)
		}},
		{"html tiny links", false, func(i int) string { return fmt.Sprintf("<a href=a-%d.zip>", i) }},
		{"html junk links", false, func(i int) string { return fmt.Sprintf("<a href=%d>", i) }},
		{"html anchors without href", false, func(int) string { return "<a>" }},
		{"html long names", false, func(i int) string {
			return fmt.Sprintf("<a href=\"a-%d.%s.tar.gz\">", i, strings.Repeat("1.", 1000))
		}},
		{"html long base", false, func(i int) string {
			if i == 0 {
				return "<base href=\"https://x.example/" + strings.Repeat("p/", 8000) + "\">"
			}
			return fmt.Sprintf("<a href=a-%d.zip>", i)
		}},
		{"html big attributes", false, func(i int) string {
			return fmt.Sprintf("<a href=\"a-%d.zip\" data-requires-python=\"%s%d\" data-yanked=\"%s\" data-dist-info-metadata=\"sha256=%s\">",
				i, long, i, long, sha)
		}},
		{"html deep nesting", false, func(i int) string {
			return strings.Repeat("<div><span>", 50) + fmt.Sprintf("<a href=a-%d.zip>", i)
		}},
		{"html bad metadata", false, func(i int) string {
			return fmt.Sprintf("<a href=\"a-%d.zip\" data-core-metadata=\"sha256=%s\">", i, strings.Repeat("z", 300))
		}},
		{"json small files", true, func(i int) string {
			return fmt.Sprintf(`{"filename":"a-%d.tar.gz","url":"f/%d","hashes":{"sha256":"%s"}}`, i, i, sha)
		}},
		{"json many hashes", true, func(i int) string {
			var h []string
			for j := range 50 {
				h = append(h, fmt.Sprintf(`"h%d":"%02x"`, j, j))
			}
			return fmt.Sprintf(`{"filename":"a-%d.zip","url":"f","hashes":{%s}}`, i, strings.Join(h, ","))
		}},
		{"json duplicate names", true, func(int) string {
			return fmt.Sprintf(`{"filename":"a-1.zip","url":"a-1.zip","hashes":{"sha256":"%s"}}`, sha)
		}},
		{"json junk", true, func(int) string { return `{"filename":"x"}` }},
		// The files array closed by the first entry, the rest versions.
		{"json many versions", true, func(i int) string {
			if i == 0 {
				return `],"versions":["1"`
			}
			return fmt.Sprintf(`"1.%d"`, i)
		}},
		{"json big values", true, func(i int) string {
			return fmt.Sprintf(`{"filename":"a-%d.zip","url":"f","hashes":{},"requires-python":"%s%d","yanked":"%s","upload-time":"%s"}`,
				i, long, i, long, long)
		}},
	}
	// The shapes the limits refuse at this size, with what the refusal
	// says: the 16 KB <base href> copied into 16k links, at MaxPageMemory
	// (the HTML parser's own limit, as ParseProjectHTMLFrom sets it).
	refused := map[string]string{
		"html long base": fmt.Sprintf("more than %d MiB of memory", pypi.MaxPageMemory>>20),
	}
	page, _ := url.Parse("https://pypi.example/simple/a/")
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			n := 1
			body := pypi.PageOf(sh.asJSON, "", n, sh.entry)
			for len(body) < size {
				n *= 2
				body = pypi.PageOf(sh.asJSON, "", n, sh.entry)
			}
			before := liveHeap()
			var p *pypi.ProjectPage
			var err error
			if sh.asJSON {
				p, err = pypi.ParseProjectJSONFrom(bytes.NewReader(body), page)
			} else {
				p, err = pypi.ParseProjectHTMLFrom(bytes.NewReader(body), page)
			}
			if err != nil {
				if !errors.Is(err, pypi.ErrPageTooLarge) || !strings.Contains(err.Error(), "limit") {
					t.Fatalf("%d bytes: %v; want the page or a refusal naming a limit", len(body), err)
				}
				t.Logf("%d bytes: refused: %v", len(body), err)
				if want := refused[sh.name]; !strings.Contains(err.Error(), want) {
					t.Errorf("%d bytes: %v; want a refusal saying %q", len(body), err, want)
				}
				return
			}
			if want := refused[sh.name]; want != "" {
				t.Fatalf("%d bytes, %d files: kept; want a refusal saying %q", len(body), len(p.Files), want)
			}
			p.KeepDistributions("a")
			after := liveHeap()
			live := after - min(before, after)
			ms := p.MemorySize()
			t.Logf("%d bytes, %d files kept, %d dropped (%d samples): %d bytes live (%.1f× the page), MemorySize %d",
				len(body), len(p.Files), p.DroppedCount, len(p.Dropped), live, float64(live)/float64(len(body)), ms)
			if live > uint64(ms)*3/2+1<<20 {
				t.Errorf("a %d-byte page keeps %d bytes live; its MemorySize says %d", len(body), live, ms)
			}
			if ms > pypi.MaxPageMemory {
				t.Errorf("MemorySize %d is over MaxPageMemory", ms)
			}
			if len(p.Dropped) > pypi.MaxDroppedSamples {
				t.Errorf("%d dropped samples kept; want at most %d", len(p.Dropped), pypi.MaxDroppedSamples)
			}
			runtime.KeepAlive(p)
			runtime.KeepAlive(body)
		})
	}
}

// TestPageLimits: the page limits are those of issue 17 (500k file
// entries, 160 MiB parsed), and the public parsers apply them: a JSON
// page of MaxPageFiles+1 entries is refused naming the limit (the HTML
// parser's MaxPageMemory is reached in TestPageShapesMemory, html long
// base; TestPageLimitsEnforced holds both parsers to each limit, at the
// boundary, with smaller limits). An HTML tag over 1 MiB is refused.
func TestPageLimits(t *testing.T) {
	if pypi.MaxPageFiles != 500_000 || pypi.MaxPageMemory != 160<<20 {
		t.Errorf("MaxPageFiles %d, MaxPageMemory %d; issue 17 set 500000 and 160 MiB", pypi.MaxPageFiles, pypi.MaxPageMemory)
	}
	page, _ := url.Parse("https://pypi.example/simple/a/")
	manyJSON := pypi.PageOf(true, "", pypi.MaxPageFiles+1, func(int) string { return "{}" })
	if _, err := pypi.ParseProjectJSONFrom(bytes.NewReader(manyJSON), page); !errors.Is(err, pypi.ErrPageTooLarge) ||
		!strings.Contains(err.Error(), fmt.Sprintf("more than %d file entries", pypi.MaxPageFiles)) {
		t.Errorf("%d JSON files: %v; want ErrPageTooLarge naming the limit", pypi.MaxPageFiles+1, err)
	}
	big := []byte(`<a href="a-1.zip" data-requires-python="` + strings.Repeat("x", 2<<20) + `">`)
	if _, err := pypi.ParseProjectHTMLFrom(bytes.NewReader(big), page); !errors.Is(err, pypi.ErrPageTooLarge) ||
		!strings.Contains(err.Error(), "1048576 bytes") {
		t.Errorf("a 2 MiB tag: %v; want ErrPageTooLarge naming the limit", err)
	}
}
