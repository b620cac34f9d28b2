package proxy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/internal/htmltest"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/policy/reload"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// updateStatusGolden rewrites testdata/status*.golden. (Not plain -update:
// other test files of package proxy may define that flag.)
var updateStatusGolden = flag.Bool("update-status", false, "rewrite testdata/status*.golden")

// sampleStatusSnapshot is a status page with something in every section,
// including hostile strings.
func sampleStatusSnapshot() statusSnapshot {
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	return statusSnapshot{
		Version:              "v0.3.0",
		StartedAt:            t0.Add(-26 * time.Hour),
		GeneratedAt:          t0,
		Upstream:             "https://pypi.org/",
		PolicySource:         "/etc/pipgate/policy.yaml",
		PolicyDigest:         "5d41402abc4b2a76b9719d911017c592c2b1c8f4e8e1e9d1f7a2b3c4d5e6f7a8",
		PolicyRules:          4,
		PolicyLoadedAt:       t0.Add(-3 * time.Hour),
		PolicyReloadError:    `/etc/pipgate/policy.yaml:4: defaults: unknown key "acton" (did you mean "action"?) <script>`,
		PolicyReloadFailedAt: t0.Add(-10 * time.Minute),
		TrustRoot:            "tuf (Sigstore public-good)",
		TrustRootDigest:      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		TrustRootAge:         50 * time.Hour,
		CacheBlobBytes:       3*1024*1024*1024 + 200*1024*1024,
		CacheMaxBytes:        16 << 30,
		CacheDBBytes:         24 << 20,
		CacheBytes:           3*1024*1024*1024 + 224*1024*1024,
		CacheHitRatio:        0.8734,
		Lookups: map[gate.LookupKind]gate.LookupCounts{
			"index": {Hit: 1200, Miss: 80, Stale: 12}, "file": {Hit: 940, Miss: 210},
			"provenance": {Hit: 900, Miss: 150}, "verdict": {Hit: 1000, Miss: 150},
		},
		Decisions: []statusDecision{
			{Time: t0.Add(-1 * time.Minute), Project: "pypi-attestations", Version: "0.0.19", Filename: "pypi_attestations-0.0.19.tar.gz",
				SHA256: "c2b3a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2", Verdict: "verified", Action: "allow",
				Rule: "pypi-attestations", RuleLine: 7, Identity: "github:trailofbits/pypi-attestations@release.yml (refs/tags/v0.0.19)", Count: 3},
			{Time: t0.Add(-2 * time.Minute), Project: "evil<script>alert(1)</script>", Version: "1.0", Filename: `evil-1.0.tar.gz"><img src=x onerror=alert(2)>`,
				SHA256: "0badc0de", Verdict: "invalid", Action: "block", Rule: "defaults",
				Reason: `pipgate: digest mismatch: "<b>bold</b>" & 'quoted'`, Count: 1},
			{Time: t0.Add(-5 * time.Minute), Project: "requests", Version: "2.32.3", Filename: "requests-2.32.3-py3-none-any.whl",
				SHA256: "70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6", Verdict: "unattested", Action: "warn", Rule: "defaults",
				Reason: "pipgate: requests 2.32.3: no provenance", Count: 1},
		},
		Blocked: []statusDecision{
			{Time: t0.Add(-2 * time.Minute), Project: "evil<script>alert(1)</script>", Version: "1.0", Filename: `evil-1.0.tar.gz"><img src=x onerror=alert(2)>`,
				SHA256: "0badc0de", Verdict: "invalid", Action: "block", Rule: "defaults",
				Reason: `pipgate: digest mismatch: "<b>bold</b>" & 'quoted'`},
			{Time: t0.Add(-40 * time.Minute), Project: "example-pkg", Version: "1.0", Filename: "example_pkg-1.0-py3-none-any.whl",
				SHA256: "aa", Verdict: "untrusted-publisher", Action: "yank", Rule: "example-*",
				Reason: `pipgate: example-pkg 1.0: signed by github:evil/fork@release.yml; policy rule "example-*" trusts github:good/repo@release.yml`},
		},
		Counts: map[pypi.Verdict]int64{"verified": 812, "unattested": 1290, "untrusted-publisher": 3, "invalid": 1, "unsupported": 4, "error": 0},
	}
}

func TestDecisionLogRing(t *testing.T) {
	d := newDecisionLog(3, time.Now)
	if got := d.recentDecisions(); len(got) != 0 {
		t.Fatalf("new log has %d decisions; want 0", len(got))
	}
	for i := 1; i <= 5; i++ {
		d.add(statusDecision{Filename: fmt.Sprint(i), Action: "allow"})
	}
	var got []string
	for _, x := range d.recentDecisions() {
		got = append(got, x.Filename)
		if x.Time.IsZero() {
			t.Errorf("decision %s has no time", x.Filename)
		}
	}
	if want := []string{"5", "4", "3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("recent = %q; want %q", got, want)
	}
	if n := newDecisionLog(0, time.Now).size; n != statusDefaultDecisions {
		t.Errorf("default size = %d; want %d", n, statusDefaultDecisions)
	}
}

// TestDecisionLogCollapses: a decision identical to a kept one moves it to
// the top with a count; a different decision about the same file is its own
// row.
func TestDecisionLogCollapses(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := newDecisionLog(3, time.Now)
	a := statusDecision{Project: "demo", Filename: "a.whl", SHA256: "aa", Verdict: "verified", Action: "allow"}
	b := statusDecision{Project: "demo", Filename: "b.whl", SHA256: "bb", Verdict: "unattested", Action: "warn"}
	for i, x := range []statusDecision{a, b, a, a, b, a} {
		x.Time = t0.Add(time.Duration(i) * time.Second)
		d.add(x)
	}
	bBlocked := b
	bBlocked.Action, bBlocked.Time = "block", t0.Add(10*time.Second)
	d.add(bBlocked)
	var got []string
	for _, x := range d.recentDecisions() {
		got = append(got, fmt.Sprintf("%s/%s x%d @%d", x.Filename, x.Action, x.Count, x.Time.Sub(t0)/time.Second))
	}
	want := []string{"b.whl/block x1 @10", "a.whl/allow x4 @5", "b.whl/warn x2 @4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("recent = %q; want %q", got, want)
	}
	// The bound holds on distinct decisions; the oldest goes.
	d.add(statusDecision{Project: "demo", Filename: "c.whl", SHA256: "cc", Action: "allow", Time: t0.Add(11 * time.Second)})
	got = got[:0]
	for _, x := range d.recentDecisions() {
		got = append(got, fmt.Sprintf("%s/%s x%d", x.Filename, x.Action, x.Count))
	}
	if want := []string{"c.whl/allow x1", "b.whl/block x1", "a.whl/allow x4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("recent after a fourth = %q; want %q", got, want)
	}
	if len(d.byKey) != 3 {
		t.Errorf("index holds %d keys; want 3", len(d.byKey))
	}
}

// TestDecisionLogRedecide: blocked rows follow the decision function (the
// policy in force): dropped when it allows, updated when it blocks
// differently, and a row decided again meanwhile is left alone.
func TestDecisionLogRedecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := newDecisionLog(10, time.Now)
	d.add(statusDecision{Time: t0, Project: "p", Filename: "x.whl", SHA256: "x", Action: "block", Reason: "old x"})
	d.add(statusDecision{Time: t0, Project: "p", Filename: "y.whl", SHA256: "y", Action: "yank", Reason: "old y"})
	d.mark(statusDecision{Time: t0, Project: "p", Filename: "z.whl", SHA256: "z", Action: "block", Reason: "old z"})
	got := d.redecide(func(x statusDecision) statusDecision {
		switch x.SHA256 {
		case "x":
			x.Action, x.Reason = "allow", "now allowed"
		case "y":
			x.Action, x.Reason, x.Rule = "block", "now blocked", "new-rule"
		case "z":
			// z is decided again while the log is unlocked: that wins.
			d.mark(statusDecision{Time: t0.Add(time.Second), Project: "p", Filename: "z.whl", SHA256: "z", Action: "yank", Reason: "fresh z"})
			x.Action = "allow"
		}
		return x
	})
	var rows []string
	for _, x := range got {
		rows = append(rows, x.SHA256+":"+string(x.Action)+":"+x.Reason+":"+x.Rule)
	}
	if want := []string{"z:yank:fresh z:", "y:block:now blocked:new-rule"}; !reflect.DeepEqual(rows, want) {
		t.Errorf("redecided = %q; want %q", rows, want)
	}
	if b := d.blocked(); len(b) != 2 || b[1].Reason != "now blocked" || !b[1].Time.Equal(t0) {
		t.Errorf("blocked after redecide = %+v; want y updated (blocked since t0) and z, not x", b)
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
			d := newDecisionLog(10, time.Now)
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
	d := newDecisionLog(10, time.Now)
	d.add(statusDecision{Time: t0, SHA256: "a", Action: "yank", Rule: "old"})
	d.add(statusDecision{Time: t0.Add(time.Second), SHA256: "a", Action: "block", Rule: "new"})
	if got := d.blocked()[0].Rule; got != "new" {
		t.Errorf("re-blocked rule = %q; want %q", got, "new")
	}
}

func TestDecisionLogBounded(t *testing.T) {
	d := newDecisionLog(50, time.Now)
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
					d.recentDecisions()
					d.blocked()
				}
			}
		}()
	}
	wg.Wait()
	if got := len(d.recentDecisions()); got != 50 {
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
	text := htmltest.Text(doc)
	for _, want := range []string{
		"evil<script>alert(1)</script>",
		`evil-1.0.tar.gz"><img src=x onerror=alert(2)>`,
		`pipgate: digest mismatch: "<b>bold</b>" & 'quoted'`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page text lacks %q", want)
		}
	}
	if n := htmltest.Count(doc, "img") + htmltest.Count(doc, "script") + htmltest.Count(doc, "b"); n != 0 {
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
		{"stale trust root", statusSnapshot{TrustRootAge: 50 * time.Hour, CacheHitRatio: 0.5}, []string{">updated 2d 2h ago (stale)<", "hit ratio 50.0%"}},
		{"fresh trust root", statusSnapshot{TrustRootAge: 90 * time.Minute, CacheHitRatio: 1}, []string{">updated 1h 30m ago<", "hit ratio 100.0%"}},
		{"unknown", statusSnapshot{TrustRootAge: -1, CacheHitRatio: math.NaN()}, []string{">age unknown<", "hit ratio no lookups yet", "built-in default"}},
		{"policy headline", statusSnapshot{PolicySource: "/etc/pipgate/policy.yaml", PolicyDigest: "5d41402abc4b2a76b9719d911017c592", PolicyRules: 3},
			[]string{`<div class="big">policy.yaml <span class="muted">3 package rules</span>`, "/etc/pipgate/policy.yaml · sha256 <code"}},
		{"cache size", statusSnapshot{CacheBlobBytes: 1536, CacheDBBytes: 32 << 20, CacheBytes: 1536 + 32<<20},
			[]string{">1.5 KiB<", "files (no cache.max_size limit) · database 32.0 MiB"}},
		{"cache size and limit", statusSnapshot{CacheBlobBytes: 3 << 30, CacheMaxBytes: 16 << 30, CacheDBBytes: 1 << 20},
			[]string{">3.0 GiB<", "files of 16.0 GiB (cache.max_size) · database 1.0 MiB"}},
		{"memory limit", statusSnapshot{MemoryLimit: 384 << 20, MemoryOrigin: "cgroup"}, []string{`<span id="memory-limit" title="the Go soft memory limit and its origin">memory limit 384.0 MiB (cgroup)</span>`}},
		{"no memory limit", statusSnapshot{MemoryLimit: math.MaxInt64, MemoryOrigin: "GOMEMLIMIT"}, []string{">memory limit none (GOMEMLIMIT)<"}},
		{"extra verdict counted", statusSnapshot{Counts: map[pypi.Verdict]int64{"other": 7}}, []string{">other</td><td class=\"num\">7<"}},
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
			SHA256: identity, Verdict: pypi.Verdict(reason), Action: policy.Action(project), Rule: filename}
		s := statusSnapshot{Version: project, Upstream: filename, PolicySource: reason, TrustRoot: identity,
			TrustRootAge: -1, CacheHitRatio: math.NaN(), Decisions: []statusDecision{x}, Blocked: []statusDecision{x},
			Counts: map[pypi.Verdict]int64{pypi.Verdict(reason): 1}, Lookups: map[gate.LookupKind]gate.LookupCounts{gate.LookupKind(project): {Hit: 1}}}
		var buf bytes.Buffer
		if err := writeStatusHTML(&buf, s); err != nil {
			t.Fatal(err)
		}
		doc, err := html.Parse(&buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{"script", "img", "iframe", "h3", "svg", "form"} {
			if n := htmltest.Count(doc, tag); n != 0 {
				t.Fatalf("%d <%s> elements from input %q %q %q %q", n, tag, project, filename, reason, identity)
			}
		}
		for tag, want := range map[string]int{"table": 4, "h2": 7, "style": 1, "a": 3} { // the page's own (two project links, /-/report)
			if got := htmltest.Count(doc, tag); got != want {
				t.Fatalf("%d <%s> elements; want %d", got, tag, want)
			}
		}
		// The project links stay relative links to the status pages: no
		// scheme, no host, a path under status/ (a ":" after "status/"
		// cannot start a scheme); the other is the report's.
		for _, href := range htmltest.Hrefs(doc) {
			if href == "report" {
				continue
			}
			u, err := url.Parse(href)
			if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || !strings.HasPrefix(href, "status/") {
				t.Fatalf("link %q from input %q", href, project)
			}
		}
	})
}

// BenchmarkStatusHTML renders a full page: 200 recent decisions and 200
// blocked files.
func BenchmarkStatusHTML(b *testing.B) {
	s := sampleStatusSnapshot()
	d := newDecisionLog(200, time.Now)
	for i := 0; i < 400; i++ {
		x := s.Decisions[i%len(s.Decisions)]
		x.SHA256 = fmt.Sprint(i)
		x.Action = []policy.Action{policy.ActionAllow, policy.ActionBlock, policy.ActionYank, policy.ActionWarn}[i%4]
		d.add(x)
	}
	s.Decisions, s.Blocked = d.recentDecisions(), d.blocked()
	b.ReportAllocs()
	for b.Loop() {
		if err := writeStatusHTML(io.Discard, s); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStatusFollowsPolicy: /-/status says when the policy was loaded, shows
// a failed reload with its error until a good one, and its blocked list is
// what the policy in force blocks (a relaxed policy empties it).
func TestStatusFollowsPolicy(t *testing.T) {
	up := pypitest.NewServer(t)
	prov := []byte(`{"version":1,"attestation_bundles":[]}`)
	evil := addWheel(up, "demo", "2.0", func(d *pypitest.Dist) { d.Provenance = prov })
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(demoTrustsGoodRepo), 0o600); err != nil {
		t.Fatal(err)
	}
	rl, err := reload.New(reload.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	tp := newTestProxy(t, up, "", func(o *Options) { o.Policy = rl })
	tp.verifier.set(evil.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork", Workflow: "release.yml"}})
	status := func() map[string]any {
		t.Helper()
		_, body := tp.get("/-/status", "Accept", "application/json")
		var st map[string]any
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("status JSON: %v\n%s", err, body)
		}
		return st
	}
	for range 3 {
		if resp, _ := tp.get("/files/demo/" + evil.Filename); resp.StatusCode != 403 {
			t.Fatalf("download = %d; want 403", resp.StatusCode)
		}
	}
	st := status()
	loaded, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(st["policy_loaded_at"]))
	if loaded.IsZero() || loaded.Year() < 2000 {
		t.Errorf("policy_loaded_at = %v; want the load time", st["policy_loaded_at"])
	}
	blocked, _ := st["blocked"].([]any)
	decisions, _ := st["decisions"].([]any)
	if len(blocked) != 1 || len(decisions) != 1 {
		t.Fatalf("blocked %v, decisions %v; want the one file, its three downloads as one row", blocked, decisions)
	}
	row := decisions[0].(map[string]any)
	if row["count"] != 3.0 || row["rule_line"] != 3.0 {
		t.Errorf("decision row = %v; want count 3 and the rule's line 3", row)
	}

	// A bad file: the old policy stays, the page says why.
	if err := os.WriteFile(path, []byte("version: 1\npackages:\n  - nme: demo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rl.Reload() == nil {
		t.Fatal("a bad policy reloaded")
	}
	st = status()
	if e := fmt.Sprint(st["policy_reload_error"]); !strings.Contains(e, "nme") || st["policy_loaded_at"] != fmt.Sprint(loaded.Format(time.RFC3339Nano)) {
		t.Errorf("after a bad reload: error %q, loaded %v; want the error naming the bad key and the old load time", e, st["policy_loaded_at"])
	}
	_, page := tp.get("/-/status")
	if !strings.Contains(string(page), `id="policy-reload-failed"`) || !strings.Contains(string(page), "nme") {
		t.Errorf("the HTML page does not show the failed reload")
	}

	// A good file that trusts evil/fork: the error goes, and so does the row.
	if err := os.WriteFile(path, []byte(strings.Replace(demoTrustsGoodRepo, "good/repo", "evil/fork", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	st = status()
	if _, ok := st["policy_reload_error"]; ok {
		t.Errorf("policy_reload_error = %v after a good reload; want none", st["policy_reload_error"])
	}
	if b, _ := st["blocked"].([]any); len(b) != 0 {
		t.Errorf("blocked = %v under a policy that trusts evil/fork; want none", b)
	}
	if b := tp.srv.decisions.blocked(); len(b) != 0 {
		t.Errorf("the log still holds %d blocked rows", len(b))
	}
}

// TestProjectStatus: /-/status/<project> lists every file of the page with
// verdict, signer, finding, rule and line, action and reason, as HTML and as
// JSON; a file not verified yet says so.
func TestProjectStatus(t *testing.T) {
	up := pypitest.NewServer(t)
	prov := []byte(`{"version":1,"attestation_bundles":[]}`)
	good := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = prov })
	evil := addWheel(up, "demo", "2.0", func(d *pypitest.Dist) { d.Provenance = prov })
	bad := addWheel(up, "demo", "2.1", func(d *pypitest.Dist) { d.Provenance = prov })
	none := addWheel(up, "demo", "0.5", nil)
	later := addWheel(up, "demo", "0.9", func(d *pypitest.Dist) { d.Provenance = prov })
	tp := newTestProxy(t, up, demoTrustsGoodRepo, func(o *Options) { o.EagerReleases = 0 })
	tp.verifier.set(good.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}})
	tp.verifier.set(evil.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork", Workflow: "release.yml"}})
	tp.verifier.set(bad.Filename, pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: "digest-mismatch", Detail: "the statement's digest is not the file's"})
	for _, f := range []string{good.Filename, evil.Filename, bad.Filename} {
		tp.get("/files/demo/" + f)
	}

	resp, body := tp.get("/-/status/Demo", "Accept", "application/json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("project status JSON = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var ps projectStatus
	if err := json.Unmarshal(body, &ps); err != nil {
		t.Fatal(err)
	}
	if ps.Project != "demo" || ps.Rule != "demo" || ps.RuleLine != 3 || ps.Require != policy.RequireTrustedPublisher {
		t.Errorf("project status head = %+v", ps)
	}
	var rows []string
	for _, f := range ps.Files {
		rows = append(rows, strings.Join([]string{f.Filename, string(f.Verdict), f.Signer, f.Finding, f.Rule, fmt.Sprint(f.RuleLine), string(f.Action)}, "|"))
		if f.Action == policy.ActionBlock && !strings.Contains(f.Reason, "pipgate: demo:") {
			t.Errorf("%s: reason %q; want the policy's", f.Filename, f.Reason)
		}
	}
	want := []string{
		bad.Filename + "|invalid||digest-mismatch|demo|3|block",
		evil.Filename + "|untrusted-publisher|github:evil/fork@release.yml||demo|3|block",
		good.Filename + "|verified|github:good/repo@release.yml||demo|3|allow",
		later.Filename + "|not-verified|||demo|3|",
		none.Filename + "|unattested|||demo|3|block",
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("files =\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}

	resp, body = tp.get("/-/status/demo")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("project status HTML = %d %v", resp.StatusCode, resp.Header)
	}
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	files := htmltest.ByID(doc, "files")
	if files == nil || htmltest.Count(files, "tr")-1 != 5 || !strings.Contains(htmltest.Text(files), "github:evil/fork@release.yml") ||
		!strings.Contains(htmltest.Text(files), "demo (line 3)") || !strings.Contains(htmltest.Text(files), "digest-mismatch") {
		t.Errorf("project status HTML files section = %q", htmltest.Text(files))
	}
	// The main page links the project there.
	_, body = tp.get("/-/status")
	if !strings.Contains(string(body), `<a href="status/demo">demo</a>`) {
		t.Errorf("/-/status does not link demo to its status page")
	}
	if resp, _ := tp.get("/-/status/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown project = %d; want 404", resp.StatusCode)
	}
	if resp, _ := tp.get("/-/status/bad%20name"); resp.StatusCode != 400 {
		t.Errorf("invalid name = %d; want 400", resp.StatusCode)
	}
}

// TestStatusHTMLPolicyInPlace: a policy file changed in place (not
// adopted until SIGHUP) is shown, and nothing is shown otherwise.
func TestStatusHTMLPolicyInPlace(t *testing.T) {
	s := sampleStatusSnapshot()
	for _, at := range []time.Time{{}, s.GeneratedAt.Add(-time.Minute)} {
		s.PolicyInPlaceAt = at
		var buf bytes.Buffer
		if err := writeStatusHTML(&buf, s); err != nil {
			t.Fatal(err)
		}
		shown := strings.Contains(buf.String(), `id="policy-changed-in-place"`) && strings.Contains(buf.String(), "Send SIGHUP once it is complete")
		if shown == at.IsZero() {
			t.Errorf("in-place change at %v: note shown %v", at, shown)
		}
	}
}

// A file the index lists as blocked (judged on a page view, never
// downloaded) is on the status page with its version.
func TestBlockedFromPageViewHasVersion(t *testing.T) {
	up := pypitest.NewServer(t)
	addWheel(up, "demo", "1.5", nil) // no provenance: unattested
	tp := newTestProxy(t, up, "version: 1\npackages:\n  - {name: demo, require: attestation, action: block}\n", func(o *Options) { o.EagerReleases = 0 })
	if resp, _ := tp.get("/simple/demo/", "Accept", pypi.ContentTypeV1JSON); resp.StatusCode != http.StatusOK {
		t.Fatalf("/simple/demo/ = %d", resp.StatusCode)
	}
	_, body := tp.get("/-/status", "Accept", "application/json")
	var st struct {
		Blocked []statusDecision `json:"blocked"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Blocked) != 1 || st.Blocked[0].Version != "1.5" || st.Blocked[0].Action != "block" {
		t.Errorf("blocked = %+v; want demo 1.5 blocked, with its version", st.Blocked)
	}
	_, html := tp.get("/-/status")
	if !strings.Contains(string(html), "<td>1.5</td>") {
		t.Error("the status page's blocked row lacks the version")
	}
}
