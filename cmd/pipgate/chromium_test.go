package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/pipgate/pipgate/internal/htmltest"
	"github.com/pipgate/pipgate/internal/testbin"
)

// The status pages are checked once, in a real headless browser, against the
// real binary (TestE2E's status-pages-in-chromium): the DOM the browser
// builds, and screenshots kept in the test's artifact directory
// (go test -artifacts -outputdir DIR), or in $PIPGATE_SCREENSHOT_DIR.

// chromium returns the browser's path, or skips t saying why.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH (Debian: apt-get install chromium); skipping the browser check")
	return ""
}

// browserPage is one page loaded in headless chromium.
type browserPage struct {
	dom  *html.Node
	shot string // the screenshot's path
}

// loadInChromium loads url in a hermetic headless chromium (no network of
// its own, a fresh profile), returns the DOM it built and takes a
// width x height screenshot named name.png.
func loadInChromium(t *testing.T, browser, url, name string, width, height int) browserPage {
	t.Helper()
	dir := t.ArtifactDir()
	if d := os.Getenv("PIPGATE_SCREENSHOT_DIR"); d != "" {
		dir = d
	}
	shot := filepath.Join(dir, name+".png")
	run := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
		cmd := testbin.Command(ctx, t, browser, append(base, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(browser), args[0], err, stderr.Bytes())
		}
		return out
	}
	// One browser start does both: the DOM of the page it loaded goes to
	// stdout, the screenshot of that same load to shot (a chromium start
	// costs about 0.8 s of CPU).
	dom, err := html.Parse(bytes.NewReader(run("--dump-dom", "--screenshot="+shot, "--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), url)))
	if err != nil {
		t.Fatal(err)
	}
	if n := htmltest.Count(dom, "img") + htmltest.Count(dom, "script"); n != 0 {
		t.Errorf("%s: the browser DOM has %d img/script elements; want 0", url, n)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", shot, err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Errorf("screenshot is %dx%d; want %dx%d", b.Dx(), b.Dy(), width, height)
	}
	if n := distinctColours(img, 64); n < 8 {
		t.Errorf("screenshot %s has %d colours; want a rendered page, not a blank one", shot, n)
	}
	t.Logf("screenshot: %s", shot)
	return browserPage{dom: dom, shot: shot}
}

// section returns the text of the element with id, and its table rows
// (without the header row); it fails t when there is no such element.
func (p browserPage) section(t *testing.T, id string) (text string, rows int) {
	t.Helper()
	n := htmltest.ByID(p.dom, id)
	if n == nil {
		t.Errorf("browser DOM has no #%s", id)
		return "", 0
	}
	return htmltest.Text(n), htmltest.Count(n, "tr") - 1
}

// links returns the href of every <a> in the page.
func (p browserPage) links() []string {
	var out []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" {
			for _, a := range n.Attr {
				if a.Key == "href" {
					out = append(out, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(p.dom)
	return out
}

// distinctColours counts the distinct colours of img (every third pixel),
// up to limit.
func distinctColours(img image.Image, limit int) int {
	seen := make(map[[4]uint32]bool)
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}
