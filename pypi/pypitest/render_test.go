package pypitest

import (
	"bytes"
	"encoding/json"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/pipgate/pipgate/internal/fixtures"
)

// fixturesDir returns the real PyPI fixtures folder (internal/fixtures).
func fixturesDir(t *testing.T) string {
	t.Helper()
	return fixtures.PyPI(t)
}

var (
	anchorRE = regexp.MustCompile(`<a href="([^"#]*)#sha256=([0-9a-f]{64})"([^>]*)>([^<]*)</a>`)
	attrRE   = regexp.MustCompile(`(data-[a-z-]+)="([^"]*)"`)
	serialRE = regexp.MustCompile(`<!--SERIAL (\d+)-->`)
)

// TestRenderProjectHTMLMatchesPyPI rebuilds the real iniconfig page from
// its links and checks that the template reproduces it byte for byte.
func TestRenderProjectHTMLMatchesPyPI(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(fixturesDir(t), "simple-index", "iniconfig.pypi.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := projectPage{Name: "iniconfig"}
	m := serialRE.FindSubmatch(want)
	if m == nil {
		t.Fatal("fixture has no SERIAL comment")
	}
	page.Serial, _ = strconv.ParseInt(string(m[1]), 10, 64)
	for _, a := range anchorRE.FindAllSubmatch(want, -1) {
		f := pageFile{URL: html.UnescapeString(string(a[1])), SHA256: string(a[2]), Filename: html.UnescapeString(string(a[4]))}
		for _, kv := range attrRE.FindAllSubmatch(a[3], -1) {
			v := html.UnescapeString(string(kv[2]))
			switch string(kv[1]) {
			case "data-requires-python":
				f.RequiresPython = v
			case "data-core-metadata":
				f.MetadataSHA256 = v[len("sha256="):]
			case "data-provenance":
				f.Provenance = v
			case "data-yanked":
				f.Yanked, f.YankedReason = true, v
			}
		}
		page.Files = append(page.Files, f)
	}
	if len(page.Files) != 16 {
		t.Fatalf("got %d links in the fixture; want 16", len(page.Files))
	}
	var got bytes.Buffer
	renderProjectHTML(&got, page)
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("rendered page differs from PyPI's:\ngot:\n%s\nwant:\n%s", got.Bytes(), want)
	}
}

func TestRenderProjectJSONShape(t *testing.T) {
	page := projectPage{
		Name: "foo-bar", Serial: 7, Versions: []string{"1.0"},
		Files: []pageFile{
			{Filename: "foo_bar-1.0-py3-none-any.whl", URL: "http://x/f.whl", SHA256: "aa", MetadataSHA256: "bb",
				Provenance: "http://x/p", RequiresPython: ">=3.8", Size: 3, UploadTime: time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)},
			{Filename: "foo_bar-1.0.tar.gz", URL: "http://x/f.tgz", SHA256: "cc", Yanked: true, YankedReason: "bad <build>",
				Size: 4, UploadTime: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
			{Filename: "foo_bar-1.0.zip", URL: "http://x/f.zip", SHA256: "dd", Yanked: true, UploadTime: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		},
	}
	var got bytes.Buffer
	renderProjectJSON(&got, page)
	want := `{"files":[` +
		`{"core-metadata":{"sha256":"bb"},"data-dist-info-metadata":{"sha256":"bb"},"filename":"foo_bar-1.0-py3-none-any.whl","hashes":{"sha256":"aa"},"provenance":"http://x/p","requires-python":">=3.8","size":3,"upload-time":"2024-01-02T03:04:05.123456Z","url":"http://x/f.whl","yanked":false},` +
		`{"core-metadata":false,"data-dist-info-metadata":false,"filename":"foo_bar-1.0.tar.gz","hashes":{"sha256":"cc"},"provenance":null,"requires-python":null,"size":4,"upload-time":"2024-01-02T03:04:05Z","url":"http://x/f.tgz","yanked":"bad <build>"},` +
		`{"core-metadata":false,"data-dist-info-metadata":false,"filename":"foo_bar-1.0.zip","hashes":{"sha256":"dd"},"provenance":null,"requires-python":null,"size":0,"upload-time":"2024-01-02T03:04:05Z","url":"http://x/f.zip","yanked":true}` +
		`],"meta":{"_last-serial":7,"api-version":"1.4"},"name":"foo-bar","project-status":{"status":"active"},"versions":["1.0"]}` + "\n"
	if got.String() != want {
		t.Errorf("got %s\nwant %s", got.String(), want)
	}
	if !json.Valid(got.Bytes()) {
		t.Error("output is not valid JSON")
	}
}

func TestRenderListJSON(t *testing.T) {
	var got bytes.Buffer
	renderListJSON(&got, []listEntry{{Name: "Foo_Bar", Normalized: "foo-bar", Serial: 3}}, 9)
	want := `{"meta":{"_last-serial":9,"api-version":"1.4"},"projects":[{"_last-serial":3,"name":"Foo_Bar"}]}` + "\n"
	if got.String() != want {
		t.Errorf("got %q; want %q", got.String(), want)
	}
}

func TestNegotiate(t *testing.T) {
	offers := []string{typeHTML, typeV1HTML, typeV1JSON}
	tests := []struct {
		accept []string
		want   string
	}{
		{nil, typeHTML},
		{[]string{""}, typeHTML},
		{[]string{"*/*"}, typeHTML},
		{[]string{"text/plain"}, typeHTML},
		{[]string{"application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"}, typeV1JSON},
		{[]string{"text/html;q=0.01, application/vnd.pypi.simple.v1+html;q=0.2, application/vnd.pypi.simple.v1+json"}, typeV1JSON},
		{[]string{"text/html, application/vnd.pypi.simple.v1+html, application/vnd.pypi.simple.v1+json"}, typeHTML},
		{[]string{"application/vnd.pypi.simple.v1+html"}, typeV1HTML},
		{[]string{"application/vnd.pypi.simple.v1+json;q=0.5", "text/html;q=0.4"}, typeV1JSON},
		{[]string{"application/*;q=0.9, text/html;q=0"}, typeV1HTML},
		{[]string{"*/*;q=0.1, application/vnd.pypi.simple.v1+json"}, typeV1JSON},
		{[]string{"APPLICATION/VND.PYPI.SIMPLE.V1+JSON"}, typeV1JSON},
		{[]string{"garbage,;;q=x,/"}, typeHTML},
	}
	for _, tt := range tests {
		if got := negotiate(tt.accept, offers, typeHTML); got != tt.want {
			t.Errorf("negotiate(%q) = %q; want %q", tt.accept, got, tt.want)
		}
	}
	integrity := []string{typeIntegrity, typeJSON}
	for _, tt := range []struct {
		accept, want string
	}{
		{"application/json", typeJSON},
		{"*/*", typeIntegrity},
		{"text/html", ""},
		{"application/vnd.pypi.integrity.v1+json, application/json;q=0.9", typeIntegrity},
	} {
		if got := negotiate([]string{tt.accept}, integrity, ""); got != tt.want {
			t.Errorf("negotiate(%q, integrity) = %q; want %q", tt.accept, got, tt.want)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	f.Add("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01")
	f.Add("*/*;q=0")
	f.Add(";;,,/;q=1e9")
	offers := []string{typeHTML, typeV1HTML, typeV1JSON}
	f.Fuzz(func(t *testing.T, accept string) {
		got := negotiate([]string{accept}, offers, typeHTML)
		if got != typeHTML && got != typeV1HTML && got != typeV1JSON {
			t.Errorf("negotiate(%q) = %q; want one of the offers", accept, got)
		}
	})
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.10", "1.9", 1},
		{"1.0", "1.0.1", -1},
		{"1.0a1", "1.0", -1},
		{"1.0rc1", "1.0a2", 1},
		{"1.0.dev0", "1.0", -1},
		{"1.0.post1", "1.0", 1},
		{"2", "10", -1},
	}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d; want %d", tt.a, tt.b, got, tt.want)
		}
		if got := compareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("compareVersions(%q, %q) = %d; want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestCanonicalVersionAndFilename(t *testing.T) {
	for _, tt := range []struct{ in, want string }{{"4.0.0", "4"}, {"v4.0.0", "4"}, {"4", "4"}, {"1.0RC1", "1.0rc1"}} {
		if got := canonicalVersion(tt.in); got != tt.want {
			t.Errorf("canonicalVersion(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		in      string
		version string
		wheel   bool
	}{
		{"foo_bar-1.0-py3-none-any.whl", "1.0", true},
		{"foo_bar-1.0-1-py3-none-any.whl", "1.0", true},
		{"foo-bar-2.0.tar.gz", "2.0", false},
		{"foo.zip", "", false},
	} {
		v, w := splitFilename(tt.in)
		if v != tt.version || w != tt.wheel {
			t.Errorf("splitFilename(%q) = %q, %v; want %q, %v", tt.in, v, w, tt.version, tt.wheel)
		}
	}
}
