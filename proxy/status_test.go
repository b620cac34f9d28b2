package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// updateStatusGolden rewrites testdata/status*.golden. (Not plain -update:
// other test files of package proxy may define that flag.)
var updateStatusGolden = flag.Bool("update-status", false, "rewrite testdata/status*.golden")

// sampleStatusSnapshot is a status page with something in every section,
// including hostile strings.
func sampleStatusSnapshot() statusSnapshot {
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	return statusSnapshot{
		Version:         "v0.3.0",
		StartedAt:       t0.Add(-26 * time.Hour),
		GeneratedAt:     t0,
		Upstream:        "https://pypi.org/",
		PolicySource:    "/etc/pipgate/policy.yaml",
		PolicyDigest:    "5d41402abc4b2a76b9719d911017c592c2b1c8f4e8e1e9d1f7a2b3c4d5e6f7a8",
		PolicyLoadedAt:  t0.Add(-3 * time.Hour),
		TrustRoot:       "tuf (Sigstore public-good)",
		TrustRootDigest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		TrustRootAge:    50 * time.Hour,
		CacheBytes:      3*1024*1024*1024 + 200*1024*1024,
		CacheHitRatio:   0.8734,
		Lookups: map[string]statusLookups{
			"index": {Hit: 1200, Miss: 80, Stale: 12}, "file": {Hit: 940, Miss: 210},
			"provenance": {Hit: 900, Miss: 150}, "verdict": {Hit: 1000, Miss: 150},
		},
		Decisions: []statusDecision{
			{Time: t0.Add(-1 * time.Minute), Project: "pypi-attestations", Version: "0.0.19", Filename: "pypi_attestations-0.0.19.tar.gz",
				SHA256: "c2b3a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2", Verdict: "verified", Action: "allow",
				Rule: "pypi-attestations", Identity: "github:trailofbits/pypi-attestations@release.yml (refs/tags/v0.0.19)"},
			{Time: t0.Add(-2 * time.Minute), Project: "evil<script>alert(1)</script>", Version: "1.0", Filename: `evil-1.0.tar.gz"><img src=x onerror=alert(2)>`,
				SHA256: "0badc0de", Verdict: "invalid", Action: "block", Rule: "defaults",
				Reason: `pipgate: digest mismatch: "<b>bold</b>" & 'quoted'`},
			{Time: t0.Add(-5 * time.Minute), Project: "requests", Version: "2.32.3", Filename: "requests-2.32.3-py3-none-any.whl",
				SHA256: "70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6", Verdict: "unattested", Action: "warn", Rule: "defaults",
				Reason: "pipgate: requests 2.32.3: no provenance"},
		},
		Blocked: []statusDecision{
			{Time: t0.Add(-2 * time.Minute), Project: "evil<script>alert(1)</script>", Version: "1.0", Filename: `evil-1.0.tar.gz"><img src=x onerror=alert(2)>`,
				SHA256: "0badc0de", Verdict: "invalid", Action: "block", Rule: "defaults",
				Reason: `pipgate: digest mismatch: "<b>bold</b>" & 'quoted'`},
			{Time: t0.Add(-40 * time.Minute), Project: "example-pkg", Version: "1.0", Filename: "example_pkg-1.0-py3-none-any.whl",
				SHA256: "aa", Verdict: "untrusted-publisher", Action: "yank", Rule: "example-*",
				Reason: `pipgate: example-pkg 1.0: signed by github:evil/fork@release.yml; policy rule "example-*" trusts github:good/repo@release.yml`},
		},
		Counts: map[string]int64{"verified": 812, "unattested": 1290, "untrusted-publisher": 3, "invalid": 1, "unsupported": 4, "error": 0},
	}
}

func TestDecisionLogRing(t *testing.T) {
	d := newDecisionLog(3)
	if got := d.recent(); len(got) != 0 {
		t.Fatalf("new log has %d decisions; want 0", len(got))
	}
	for i := 1; i <= 5; i++ {
		d.add(statusDecision{Filename: fmt.Sprint(i), Action: "allow"})
	}
	var got []string
	for _, x := range d.recent() {
		got = append(got, x.Filename)
		if x.Time.IsZero() {
			t.Errorf("decision %s has no time", x.Filename)
		}
	}
	if want := []string{"5", "4", "3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("recent = %q; want %q", got, want)
	}
	if n := len(newDecisionLog(0).ring); n != statusDefaultDecisions {
		t.Errorf("default size = %d; want %d", n, statusDefaultDecisions)
	}
}

func TestDecisionLogBlocked(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		adds []statusDecision
		want []string // filenames in blocked(), newest first
	}{
		{"block and yank are held", []statusDecision{
			{Time: t0, SHA256: "a", Filename: "a.whl", Action: "block"},
			{Time: t0.Add(time.Second), SHA256: "b", Filename: "b.whl", Action: "yank"},
			{Time: t0.Add(2 * time.Second), SHA256: "c", Filename: "c.whl", Action: "warn"},
		}, []string{"b.whl", "a.whl"}},
		{"a later allow releases the file", []statusDecision{
			{Time: t0, SHA256: "a", Filename: "a.whl", Action: "block"},
			{Time: t0.Add(time.Second), SHA256: "a", Filename: "a.whl", Action: "allow"},
		}, nil},
		{"a later warn releases the file", []statusDecision{
			{Time: t0, SHA256: "a", Filename: "a.whl", Action: "yank"},
			{Time: t0.Add(time.Second), SHA256: "a", Filename: "a.whl", Action: "warn"},
		}, nil},
		{"re-blocking replaces the entry", []statusDecision{
			{Time: t0, SHA256: "a", Filename: "a.whl", Action: "yank", Rule: "old"},
			{Time: t0.Add(time.Second), SHA256: "a", Filename: "a.whl", Action: "block", Rule: "new"},
		}, []string{"a.whl"}},
		{"no sha256: keyed by project and filename", []statusDecision{
			{Time: t0, Project: "p", Filename: "x.whl", Action: "block"},
			{Time: t0.Add(time.Second), Project: "q", Filename: "x.whl", Action: "block"},
			{Time: t0.Add(2 * time.Second), Project: "p", Filename: "x.whl", Action: "allow"},
		}, []string{"x.whl"}},
		{"same time: by filename", []statusDecision{
			{Time: t0, SHA256: "2", Filename: "z.whl", Action: "block"},
			{Time: t0, SHA256: "1", Filename: "y.whl", Action: "block"},
		}, []string{"y.whl", "z.whl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecisionLog(10)
			for _, x := range tc.adds {
				d.add(x)
			}
			var got []string
			for _, x := range d.blocked() {
				got = append(got, x.Filename)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("blocked = %q; want %q", got, tc.want)
			}
		})
	}
	d := newDecisionLog(10)
	d.add(statusDecision{Time: t0, SHA256: "a", Action: "yank", Rule: "old"})
	d.add(statusDecision{Time: t0.Add(time.Second), SHA256: "a", Action: "block", Rule: "new"})
	if got := d.blocked()[0].Rule; got != "new" {
		t.Errorf("re-blocked rule = %q; want %q", got, "new")
	}
}

func TestDecisionLogBounded(t *testing.T) {
	d := newDecisionLog(50)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < statusMaxBlocked/3; i++ { // 4 × 333 > statusMaxBlocked: some are evicted
				n := w*statusMaxBlocked + i
				d.add(statusDecision{Time: t0.Add(time.Duration(n) * time.Second), SHA256: fmt.Sprint(n), Action: "block"})
				if i%100 == 0 {
					d.recent()
					d.blocked()
				}
			}
		}()
	}
	wg.Wait()
	if got := len(d.recent()); got != 50 {
		t.Errorf("recent holds %d; want 50", got)
	}
	b := d.blocked()
	if got := len(b); got != statusMaxBlocked {
		t.Fatalf("blocked holds %d; want %d", got, statusMaxBlocked)
	}
	// The oldest went first: the newest decision of all is still held.
	if got, want := b[0].SHA256, fmt.Sprint(3*statusMaxBlocked+statusMaxBlocked/3-1); got != want {
		t.Errorf("newest blocked = %q; want %q", got, want)
	}
}

func TestStatusHTMLEscapesHostileStrings(t *testing.T) {
	var buf bytes.Buffer
	if err := writeStatusHTML(&buf, sampleStatusSnapshot()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, bad := range []string{"<script>alert", "<img src=x", "<b>bold</b>", `"><img`} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains unescaped %q", bad)
		}
	}
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Error("page contains a script element")
	}
	// The text survives, escaped: a browser shows the name as written.
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	text := htmlText(doc)
	for _, want := range []string{
		"evil<script>alert(1)</script>",
		`evil-1.0.tar.gz"><img src=x onerror=alert(2)>`,
		`pipgate: digest mismatch: "<b>bold</b>" & 'quoted'`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page text lacks %q", want)
		}
	}
	if n := countElements(doc, "img") + countElements(doc, "script") + countElements(doc, "b"); n != 0 {
		t.Errorf("page has %d injected elements; want 0", n)
	}
}

func TestStatusHTMLGolden(t *testing.T) {
	tests := []struct {
		name string
		s    statusSnapshot
	}{
		{"status.golden", sampleStatusSnapshot()},
		{"status-empty.golden", statusSnapshot{
			GeneratedAt: time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC), TrustRootAge: -1, CacheHitRatio: math.NaN(),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeStatusHTML(&buf, tc.s); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name)
			if *updateStatusGolden {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestStatusHTMLGolden -update-status)", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("%s differs (go test -update-status to accept):\ngot  %q\nwant %q", path, got, want)
			}
		})
	}
}

func TestStatusHTMLFigures(t *testing.T) {
	tests := []struct {
		name string
		s    statusSnapshot
		want []string
	}{
		{"stale trust root", statusSnapshot{TrustRootAge: 50 * time.Hour, CacheHitRatio: 0.5}, []string{"2d 2h (stale)", "hit ratio 50.0%"}},
		{"fresh trust root", statusSnapshot{TrustRootAge: 90 * time.Minute, CacheHitRatio: 1}, []string{">1h 30m<", "hit ratio 100.0%"}},
		{"unknown", statusSnapshot{TrustRootAge: -1, CacheHitRatio: math.NaN()}, []string{">unknown<", "hit ratio no lookups yet", "built-in default"}},
		{"cache size", statusSnapshot{CacheBytes: 1536}, []string{">1.5 KiB<"}},
		{"extra verdict counted", statusSnapshot{Counts: map[string]int64{"other": 7}}, []string{">other</td><td class=\"num\">7<"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeStatusHTML(&buf, tc.s); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("page lacks %q", w)
				}
			}
		})
	}
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {42 * time.Second, "42s"}, {61 * time.Second, "1m 1s"}, {3*time.Hour + 5*time.Minute, "3h 5m"},
		{50 * time.Hour, "2d 2h"},
	} {
		if got := statusDuration(tc.d); got != tc.want {
			t.Errorf("statusDuration(%v) = %q; want %q", tc.d, got, tc.want)
		}
	}
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {5 << 20, "5.0 MiB"}, {3 << 40, "3.0 TiB"},
	} {
		if got := statusBytes(tc.n); got != tc.want {
			t.Errorf("statusBytes(%d) = %q; want %q", tc.n, got, tc.want)
		}
	}
}

func TestStatusJSONRoundTrip(t *testing.T) {
	s := sampleStatusSnapshot()
	var buf bytes.Buffer
	if err := writeStatusJSON(&buf, s); err != nil {
		t.Fatal(err)
	}
	var got statusJSONView
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.TrustRootAgeSeconds == nil || *got.TrustRootAgeSeconds != s.TrustRootAge.Seconds() {
		t.Errorf("trust_root_age_seconds = %v; want %v", got.TrustRootAgeSeconds, s.TrustRootAge.Seconds())
	}
	if got.CacheHitRatio == nil || *got.CacheHitRatio != s.CacheHitRatio {
		t.Errorf("cache_hit_ratio = %v; want %v", got.CacheHitRatio, s.CacheHitRatio)
	}
	if want := 26 * 3600.0; got.UptimeSeconds != want {
		t.Errorf("uptime_seconds = %v; want %v", got.UptimeSeconds, want)
	}
	// The rest comes back field for field.
	back := got.statusSnapshot
	back.TrustRootAge, back.CacheHitRatio = s.TrustRootAge, s.CacheHitRatio
	if !reflect.DeepEqual(back, s) {
		t.Errorf("round trip:\ngot  %+v\nwant %+v", back, s)
	}

	// Unknown age and no lookups are null, not 0 or NaN (which JSON cannot hold).
	buf.Reset()
	if err := writeStatusJSON(&buf, statusSnapshot{TrustRootAge: -1, CacheHitRatio: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"trust_root_age_seconds": null`, `"cache_hit_ratio": null`, `"decisions": []`, `"blocked": []`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, buf.String())
		}
	}
}

// htmlText returns the concatenated text content of n.
func htmlText(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// countElements counts the elements named tag under n.
func countElements(n *html.Node, tag string) int {
	c := 0
	if n.Type == html.ElementNode && n.Data == tag {
		c++
	}
	for k := n.FirstChild; k != nil; k = k.NextSibling {
		c += countElements(k, tag)
	}
	return c
}

// findByID returns the element with id under n, or nil.
func findByID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode {
		for _, a := range n.Attr {
			if a.Key == "id" && a.Val == id {
				return n
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := findByID(c, id); f != nil {
			return f
		}
	}
	return nil
}

// chromiumArgs are the flags for a hermetic headless run: no network of its
// own, no first-run work, a fresh profile.
func chromiumArgs(profile string, extra ...string) []string {
	return append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + profile,
	}, extra...)
}

// TestStatusPageInChromium renders the sample page in a real headless
// browser: the DOM it builds must hold both tables with the hostile strings
// as text, and a screenshot must be a real picture. The screenshot is kept
// at $PIPGATE_STATUS_SCREENSHOT when set (scripts/status-screenshot.sh).
func TestStatusPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the headless browser check")
	}
	var browser string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no chromium on PATH (Debian: apt-get install chromium); skipping the browser check")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", statusCSP)
		if err := writeStatusHTML(w, sampleStatusSnapshot()); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	url := srv.URL + "/-/status"
	// PIPGATE_STATUS_URL points the check at a running pipgate instead:
	// then only the page's structure is checked, not the sample's rows.
	live := os.Getenv("PIPGATE_STATUS_URL")
	if live != "" {
		url = live
	}

	run := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, browser, chromiumArgs(t.TempDir(), args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", filepath.Base(browser), err, stderr.Bytes())
		}
		return out
	}

	dom := run("--dump-dom", url)
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	// Each section, the rows of its table (-1: a card, no row count), and
	// text the sample puts in it (live: only the first, a heading).
	for _, tc := range []struct {
		section string
		rows    int
		text    []string
	}{
		{"policy", -1, []string{"Policy", "/etc/pipgate/policy.yaml"}},
		{"trust-root", -1, []string{"Trust root", "2d 2h (stale)"}},
		{"cache", -1, []string{"Cache", "3.2 GiB", "hit ratio 87.3%"}},
		{"decisions", 3, []string{"Recent decisions", "evil<script>alert(1)</script>", "pypi_attestations-0.0.19.tar.gz", "github:trailofbits/pypi-attestations@release.yml"}},
		{"blocked", 2, []string{"Blocked and yanked files", `pipgate: digest mismatch: "<b>bold</b>" & 'quoted'`, "untrusted-publisher", "example-*"}},
		{"lookups", 4, []string{"Cache lookups", "provenance"}},
	} {
		sec := findByID(doc, tc.section)
		if sec == nil {
			t.Errorf("browser DOM has no #%s", tc.section)
			continue
		}
		text := tc.text
		if live != "" {
			text = text[:1]
		} else if got := countElements(sec, "tr") - 1; tc.rows >= 0 && got != tc.rows { // minus the header row
			t.Errorf("#%s: %d rows; want %d", tc.section, got, tc.rows)
		}
		for _, w := range text {
			if !strings.Contains(htmlText(sec), w) {
				t.Errorf("#%s lacks %q", tc.section, w)
			}
		}
	}
	if n := countElements(doc, "img") + countElements(doc, "script"); n != 0 {
		t.Errorf("browser DOM has %d img/script elements; want 0 (an injection got through)", n)
	}

	shot := os.Getenv("PIPGATE_STATUS_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "status.png")
	}
	run("--screenshot="+shot, "--window-size=1280,900", url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 900 {
		t.Errorf("screenshot is %dx%d; want 1280x900", b.Dx(), b.Dy())
	}
	if n := distinctColours(img, 64); n < 8 {
		t.Errorf("screenshot has %d colours; want a rendered page, not a blank one", n)
	}
	t.Logf("screenshot: %s", shot)
}

// distinctColours counts the distinct colours of img, up to limit.
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

// FuzzStatusHTML feeds arbitrary strings (project names, filenames, reasons
// and identities come from upstream pages and attestations) through the page:
// it must stay one well-formed document with no element the input injected,
// and show the input as text.
func FuzzStatusHTML(f *testing.F) {
	f.Add("evil<script>alert(1)</script>", `x.whl"><img src=x onerror=alert(1)>`, "</td></tr></table><h2>", "javascript:alert(1)")
	f.Add("requests", "requests-2.32.3-py3-none-any.whl", "pipgate: no provenance", "github:psf/requests@publish.yml")
	f.Add("<!--", "]]>", "{{.S.Version}}", "\x00\xff")
	f.Fuzz(func(t *testing.T, project, filename, reason, identity string) {
		x := statusDecision{Project: project, Filename: filename, Reason: reason, Identity: identity,
			SHA256: identity, Verdict: reason, Action: project, Rule: filename}
		s := statusSnapshot{Version: project, Upstream: filename, PolicySource: reason, TrustRoot: identity,
			TrustRootAge: -1, CacheHitRatio: math.NaN(), Decisions: []statusDecision{x}, Blocked: []statusDecision{x},
			Counts: map[string]int64{reason: 1}, Lookups: map[string]statusLookups{project: {Hit: 1}}}
		var buf bytes.Buffer
		if err := writeStatusHTML(&buf, s); err != nil {
			t.Fatal(err)
		}
		doc, err := html.Parse(&buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{"script", "img", "iframe", "h3", "a", "svg", "form"} {
			if n := countElements(doc, tag); n != 0 {
				t.Fatalf("%d <%s> elements from input %q %q %q %q", n, tag, project, filename, reason, identity)
			}
		}
		for tag, want := range map[string]int{"table": 4, "h2": 7, "style": 1} { // the page's own
			if got := countElements(doc, tag); got != want {
				t.Fatalf("%d <%s> elements; want %d", got, tag, want)
			}
		}
	})
}

// BenchmarkStatusHTML renders a full page: 200 recent decisions and 200
// blocked files.
func BenchmarkStatusHTML(b *testing.B) {
	s := sampleStatusSnapshot()
	d := newDecisionLog(200)
	for i := 0; i < 400; i++ {
		x := s.Decisions[i%len(s.Decisions)]
		x.SHA256 = fmt.Sprint(i)
		x.Action = []string{"allow", "block", "yank", "warn"}[i%4]
		d.add(x)
	}
	s.Decisions, s.Blocked = d.recent(), d.blocked()
	b.ReportAllocs()
	for b.Loop() {
		if err := writeStatusHTML(io.Discard, s); err != nil {
			b.Fatal(err)
		}
	}
}
