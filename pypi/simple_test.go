package pypi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/pypi"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// fixtureDir returns the real PyPI fixtures folder (internal/fixtures).
func fixtureDir(t testing.TB) string {
	t.Helper()
	return fixtures.PyPI(t)
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir(t), "simple-index", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func boolp(b bool) *bool { return &b }

// samplePage exercises every field and the characters that need escaping.
func samplePage() *pypi.ProjectPage {
	const h1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const h2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	return &pypi.ProjectPage{
		Name:         "sample-project",
		APIVersion:   "1.4",
		LastSerial:   424242,
		Status:       "deprecated",
		StatusReason: `use "other" <instead> & don't`,
		Files: []pypi.File{
			{
				Filename:           "sample_project-1.0-py3-none-any.whl",
				URL:                "https://files.example/packages/ab/sample_project-1.0-py3-none-any.whl",
				Hashes:             pypi.MakeHashes(map[string]string{"sha256": h1, "md5": "0123456789abcdef0123456789abcdef"}),
				RequiresPython:     ">=3.8, <4",
				CoreMetadata:       true,
				CoreMetadataHashes: pypi.MakeHashes(map[string]string{"sha256": h2}),
				Size:               12345,
				UploadTime:         "2024-11-06T22:37:07.123456Z",
				Provenance:         "https://pypi.example/integrity/sample-project/1.0/sample_project-1.0-py3-none-any.whl/provenance",
			},
			{
				Filename:     "sample_project-1.0.tar.gz",
				URL:          "https://files.example/packages/cd/sample_project-1.0.tar.gz?a=1&b=2",
				Hashes:       pypi.MakeHashes(map[string]string{"sha256": h2}),
				Yanked:       true,
				YankedReason: `broken <build> & "bad" 'quote' — ünïcode`,
				Size:         0,
				UploadTime:   "2024-11-06T22:37:08Z",
			},
			{
				Filename:     "sample_project-0.9.zip",
				URL:          "https://files.example/packages/ef/sample_project-0.9.zip",
				Hashes:       pypi.MakeHashes(map[string]string{"sha256": h1}),
				Yanked:       true,
				CoreMetadata: true,
				Size:         -1,
				GPGSig:       boolp(false),
			},
		},
	}
}

func TestWriteProjectGolden(t *testing.T) {
	var j, h bytes.Buffer
	if err := pypi.WriteProjectJSON(&j, samplePage()); err != nil {
		t.Fatal(err)
	}
	golden(t, "project.json.golden", j.Bytes())
	if err := pypi.WriteProjectHTML(&h, samplePage()); err != nil {
		t.Fatal(err)
	}
	golden(t, "project.html.golden", h.Bytes())

	// The minimal page: no status, no serial, default API version, derived versions.
	minimal := &pypi.ProjectPage{Name: "m", Files: []pypi.File{
		{Filename: "m-2.0.tar.gz", URL: "https://f.example/m-2.0.tar.gz", Size: -1},
		{Filename: "m-1.0.0-py3-none-any.whl", URL: "https://f.example/m-1.0.0-py3-none-any.whl", Size: -1},
		{Filename: "m-1.0.tar.gz", URL: "https://f.example/m-1.0.tar.gz", Size: -1},
		{Filename: "m-1.0.win32.exe", URL: "https://f.example/m-1.0.win32.exe", Size: -1},
	}}
	j.Reset()
	h.Reset()
	if err := pypi.WriteProjectJSON(&j, minimal); err != nil {
		t.Fatal(err)
	}
	golden(t, "minimal.json.golden", j.Bytes())
	if err := pypi.WriteProjectHTML(&h, minimal); err != nil {
		t.Fatal(err)
	}
	golden(t, "minimal.html.golden", h.Bytes())
}

func TestWriteProjectJSONShape(t *testing.T) {
	var b bytes.Buffer
	if err := pypi.WriteProjectJSON(&b, samplePage()); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{
		`"core-metadata":{"sha256":"fedcba`, `"data-dist-info-metadata":{"sha256":"fedcba`,
		`"core-metadata":false`, `"core-metadata":true`, `"provenance":null`, `"requires-python":null`,
		`"yanked":false`, `"yanked":true`, `"yanked":"broken <build> & \"bad\" 'quote' — ünïcode"`,
		`"meta":{"_last-serial":424242,"api-version":"1.4"}`, `"versions":["0.9","1.0"]`,
		`"project-status":{"reason":"use \"other\" <instead> & don't","status":"deprecated"}`,
		`"size":0,`, `?a=1&b=2"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("WriteProjectJSON output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, `"dist-info-metadata"`) {
		t.Errorf("WriteProjectJSON wrote the key dist-info-metadata, which crashes old pip:\n%s", s)
	}
	if !strings.HasSuffix(s, "}\n") || strings.Contains(s, "\n{") || strings.Contains(s, ": ") {
		t.Errorf("WriteProjectJSON output is not compact with one trailing newline:\n%s", s)
	}
}

// TestWriteProjectHTMLFixture renders the parsed real PyPI page and expects
// PyPI's bytes back.
func TestWriteProjectHTMLFixture(t *testing.T) {
	body := readFixture(t, "iniconfig.pypi.html")
	p, err := pypi.ParseProjectHTML(body, mustURL(t, "https://pypi.org/simple/iniconfig/"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := pypi.WriteProjectHTML(&b, p); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), string(body); got != want {
		t.Errorf("WriteProjectHTML(ParseProjectHTML(iniconfig)) differs:\ngot:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseProjectHTMLFixture(t *testing.T) {
	p, err := pypi.ParseProjectHTML(readFixture(t, "iniconfig.pypi.html"), mustURL(t, "https://pypi.org/simple/iniconfig/"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "iniconfig" || p.APIVersion != "1.4" || p.LastSerial != 31878540 || p.Status != "active" {
		t.Errorf("page = {%q %q %d %q}; want {iniconfig 1.4 31878540 active}", p.Name, p.APIVersion, p.LastSerial, p.Status)
	}
	if len(p.Files) != 16 {
		t.Fatalf("len(Files) = %d; want 16", len(p.Files))
	}
	f := p.Files[12]
	want := pypi.File{
		Filename:           "iniconfig-2.2.0-py3-none-any.whl",
		URL:                "https://files.pythonhosted.org/packages/13/71/3970abe530a7a15e406874a30ed6cf1ead266444b4503ebb2f68b4d98f30/iniconfig-2.2.0-py3-none-any.whl",
		Hashes:             pypi.MakeHashes(map[string]string{"sha256": "eeea4a571b616cf2951fbeeda9490863f3d1882a21cf673cd3236545488d6f1e"}),
		RequiresPython:     ">=3.10",
		CoreMetadata:       true,
		CoreMetadataHashes: pypi.MakeHashes(map[string]string{"sha256": "90baa19b1d0046fde219307f7dc6332c0fe8eb0a65dafb9326c3d2c51edd7f7a"}),
		Size:               -1,
		Provenance:         "https://pypi.org/integrity/iniconfig/2.2.0/iniconfig-2.2.0-py3-none-any.whl/provenance",
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("Files[12] = %+v;\nwant %+v", f, want)
	}
	if p.Files[0].CoreMetadata || p.Files[0].Provenance != "" || p.Files[0].RequiresPython != "" {
		t.Errorf("Files[0] = %+v; want no metadata, provenance or requires-python", p.Files[0])
	}
}

func TestParseProjectJSONFixtures(t *testing.T) {
	page := mustURL(t, "https://pypi.org/simple/argset/")
	p, err := pypi.ParseProjectJSON(readFixture(t, "argset.pypi-json-reformatted.json"), page)
	if err != nil {
		t.Fatal(err)
	}
	want := &pypi.ProjectPage{
		Name: "argset", APIVersion: "1.0", LastSerial: 10562871, Versions: []string{"0.1.0"},
		Files: []pypi.File{
			{
				Filename:       "argset-0.1.0-py3-none-any.whl",
				URL:            "https://files.pythonhosted.org/packages/b5/2b/7aa284f345e37f955d86e4cd57b1039b573552b0fc29d1a522ec05c1ee41/argset-0.1.0-py3-none-any.whl",
				Hashes:         pypi.MakeHashes(map[string]string{"sha256": "107a632c7112faceb9fd6e93658dd461154713db250f7ffde5bd473e17cf1db5"}),
				RequiresPython: "~=3.6", Size: 5219, UploadTime: "2021-06-05T00:15:37.534150Z",
			},
			{
				Filename:       "argset-0.1.0.tar.gz",
				URL:            "https://files.pythonhosted.org/packages/d0/ee/1c25e68d029e8daaf3228dababbf3261fa5d9569f6f705867b2ad4df9b6d/argset-0.1.0.tar.gz",
				Hashes:         pypi.MakeHashes(map[string]string{"sha256": "8a41ee4789d37517c259984c11f2aa3639a90dc8fa446ff905ecc5fe6623c12d"}),
				RequiresPython: "~=3.6", Size: 6565, UploadTime: "2021-06-05T00:15:39.003726Z",
			},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("ParseProjectJSON(argset) = %+v;\nwant %+v", p, want)
	}

	y, err := pypi.ParseProjectJSON(readFixture(t, "yanked.pypi-json-reformatted.json"), page)
	if err != nil {
		t.Fatal(err)
	}
	if len(y.Files) != 2 || y.Versions != nil || y.LastSerial != 0 {
		t.Fatalf("ParseProjectJSON(yanked) = %+v; want 2 files, no versions, no serial", y)
	}
	if f := y.Files[0]; !f.Yanked || f.YankedReason != "" || f.Size != -1 {
		t.Errorf("yanked Files[0] = %+v; want yanked without reason, size -1", f)
	}
	if f := y.Files[1]; !f.Yanked || f.YankedReason != "not good" {
		t.Errorf("yanked Files[1] = %+v; want yanked with reason %q", f, "not good")
	}
}

// htmlView keeps the fields the HTML format carries.
func htmlView(p *pypi.ProjectPage) *pypi.ProjectPage {
	q := *p
	q.Versions = nil
	if q.APIVersion == "" {
		q.APIVersion = pypi.APIVersion
	}
	q.Files = make([]pypi.File, len(p.Files))
	for i, f := range p.Files {
		f.Size, f.UploadTime = -1, ""
		if h := f.SHA256(); h != "" {
			f.Hashes = pypi.MakeHashes(map[string]string{"sha256": h})
		} else if f.Hashes.Len() > 0 {
			panic("htmlView: a test page without sha256")
		} else {
			f.Hashes = pypi.MakeHashes(map[string]string{})
		}
		if h := f.CoreMetadataHashes.Get("sha256"); h != "" {
			f.CoreMetadataHashes = pypi.MakeHashes(map[string]string{"sha256": h})
		}
		q.Files[i] = f
	}
	return &q
}

// jsonView is what a page looks like after a JSON round trip.
func jsonView(p *pypi.ProjectPage) *pypi.ProjectPage {
	q := *p
	if q.Versions == nil {
		q.Versions = p.DeriveVersions()
	}
	if q.APIVersion == "" {
		q.APIVersion = pypi.APIVersion
	}
	if q.Status == "" {
		q.StatusReason = ""
	}
	q.Files = make([]pypi.File, len(p.Files))
	for i, f := range p.Files {
		if f.Hashes.IsNil() {
			f.Hashes = pypi.MakeHashes(map[string]string{})
		}
		if f.CoreMetadataHashes.Len() == 0 || !f.CoreMetadata {
			f.CoreMetadataHashes = pypi.Hashes{}
		}
		if !f.Yanked {
			f.YankedReason = ""
		}
		q.Files[i] = f
	}
	return &q
}

func roundTripJSON(t testing.TB, p *pypi.ProjectPage, page *url.URL) *pypi.ProjectPage {
	t.Helper()
	var b bytes.Buffer
	if err := pypi.WriteProjectJSON(&b, p); err != nil {
		t.Fatal(err)
	}
	q, err := pypi.ParseProjectJSON(b.Bytes(), page)
	if err != nil {
		t.Fatalf("ParseProjectJSON(WriteProjectJSON(page)): %v\n%s", err, b.Bytes())
	}
	return q
}

func roundTripHTML(t testing.TB, p *pypi.ProjectPage, page *url.URL) *pypi.ProjectPage {
	t.Helper()
	var b bytes.Buffer
	if err := pypi.WriteProjectHTML(&b, p); err != nil {
		t.Fatal(err)
	}
	q, err := pypi.ParseProjectHTML(b.Bytes(), page)
	if err != nil {
		t.Fatalf("ParseProjectHTML(WriteProjectHTML(page)): %v\n%s", err, b.Bytes())
	}
	return q
}

func TestRoundTripFixtures(t *testing.T) {
	tests := []struct {
		fixture, name string
		parse         func([]byte, *url.URL) (*pypi.ProjectPage, error)
	}{
		{"iniconfig.pypi.html", "iniconfig", pypi.ParseProjectHTML},
		{"argset.pypi-json-reformatted.json", "argset", pypi.ParseProjectJSON},
		{"yanked.pypi-json-reformatted.json", "yanked", pypi.ParseProjectJSON},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			page := mustURL(t, "https://pypi.org/simple/"+tt.name+"/")
			p, err := tt.parse(readFixture(t, tt.fixture), page)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := roundTripJSON(t, p, page), jsonView(p); !reflect.DeepEqual(got, want) {
				t.Errorf("JSON round trip:\ngot  %+v\nwant %+v", got, want)
			}
			if got, want := roundTripHTML(t, p, page), htmlView(p); !reflect.DeepEqual(got, want) {
				t.Errorf("HTML round trip:\ngot  %+v\nwant %+v", got, want)
			}
			// JSON then HTML then JSON keeps what HTML carries.
			j := roundTripJSON(t, roundTripHTML(t, roundTripJSON(t, p, page), page), page)
			if want := jsonView(htmlView(p)); !reflect.DeepEqual(j, want) {
				t.Errorf("JSON→HTML→JSON:\ngot  %+v\nwant %+v", j, want)
			}
		})
	}
}

func TestRoundTripSample(t *testing.T) {
	page := mustURL(t, "https://pypi.example/simple/sample-project/")
	p := samplePage()
	if got, want := roundTripJSON(t, p, page), jsonView(p); !reflect.DeepEqual(got, want) {
		t.Errorf("JSON round trip:\ngot  %+v\nwant %+v", got, want)
	}
	hv := htmlView(p)
	hv.Files[0].Hashes = pypi.MakeHashes(map[string]string{"sha256": p.Files[0].SHA256()})
	if got := roundTripHTML(t, p, page); !reflect.DeepEqual(got, hv) {
		t.Errorf("HTML round trip:\ngot  %+v\nwant %+v", got, hv)
	}
}

func TestParseProjectJSONCases(t *testing.T) {
	page := mustURL(t, "https://index.example/simple/foo/")
	const h = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
	file := func(extra string) string {
		return `{"meta":{"api-version":"1.1"},"name":"Foo","files":[{"filename":"foo-1.0.tar.gz","url":"../../files/foo-1.0.tar.gz","hashes":{"sha256":"` + h + `"}` + extra + `}]}`
	}
	tests := []struct {
		name, body string
		check      func(*pypi.File) string
	}{
		{"relative url", file(""), func(f *pypi.File) string {
			return eq(f.URL, "https://index.example/files/foo-1.0.tar.gz") + eq(f.SHA256(), strings.ToLower(h)) + eq(fmt.Sprint(f.Size), "-1")
		}},
		{"core-metadata true", file(`,"core-metadata":true`), func(f *pypi.File) string {
			return eq(fmt.Sprint(f.CoreMetadata, f.CoreMetadataHashes.IsNil()), "true true")
		}},
		{"core-metadata wins over dist-info-metadata", file(`,"core-metadata":false,"dist-info-metadata":true`), func(f *pypi.File) string {
			return eq(fmt.Sprint(f.CoreMetadata), "false")
		}},
		{"dist-info-metadata fallback", file(`,"core-metadata":null,"dist-info-metadata":{"sha256":"` + h + `"}`), func(f *pypi.File) string {
			return eq(f.CoreMetadataHashes.Get("sha256"), strings.ToLower(h))
		}},
		{"data-dist-info-metadata fallback", file(`,"data-dist-info-metadata":true`), func(f *pypi.File) string {
			return eq(fmt.Sprint(f.CoreMetadata), "true")
		}},
		{"yanked empty string", file(`,"yanked":""`), func(f *pypi.File) string {
			return eq(fmt.Sprint(f.Yanked), "false")
		}},
		{"yanked null", file(`,"yanked":null`), func(f *pypi.File) string { return eq(fmt.Sprint(f.Yanked), "false") }},
		{"provenance relative", file(`,"provenance":"/integrity/foo/1.0/foo-1.0.tar.gz/provenance"`), func(f *pypi.File) string {
			return eq(f.Provenance, "https://index.example/integrity/foo/1.0/foo-1.0.tar.gz/provenance")
		}},
		{"provenance null", file(`,"provenance":null`), func(f *pypi.File) string { return eq(f.Provenance, "") }},
		{"gpg-sig", file(`,"gpg-sig":true`), func(f *pypi.File) string {
			return eq(fmt.Sprint(f.GPGSig != nil && *f.GPGSig), "true")
		}},
		{"fragment hash", `{"name":"foo","files":[{"filename":"foo-1.0.tar.gz","url":"https://x.example/foo-1.0.tar.gz#md5=0123456789abcdef0123456789abcdef","hashes":{}}]}`, func(f *pypi.File) string {
			return eq(f.URL, "https://x.example/foo-1.0.tar.gz") + eq(f.Hashes.Get("md5"), "0123456789abcdef0123456789abcdef")
		}},
		{"unknown keys", file(`,"_private":1,"alternate-locations":[],"x":{"y":[null]}`), func(f *pypi.File) string {
			return eq(f.URL, "https://index.example/files/foo-1.0.tar.gz") + eq(fmt.Sprint(f.Yanked), "false")
		}},
	}
	for _, tt := range tests {
		p, err := pypi.ParseProjectJSON([]byte(tt.body), page)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if p.Name != "foo" {
			t.Errorf("%s: Name = %q; want %q", tt.name, p.Name, "foo")
		}
		if msg := tt.check(&p.Files[0]); msg != "" {
			t.Errorf("%s: %s", tt.name, msg)
		}
	}
}

func eq(got, want string) string {
	if got == want {
		return ""
	}
	return fmt.Sprintf("got %q; want %q. ", got, want)
}

func TestParseProjectJSONInvalid(t *testing.T) {
	page := mustURL(t, "https://index.example/simple/foo/")
	f := func(s string) string { return `{"name":"foo","files":[` + s + `]}` }
	tests := []struct {
		name, body string
		is         error
	}{
		{"not json", `<html>`, nil},
		{"array", `[]`, nil},
		{"null", `null`, nil},
		{"trailing data", `{"name":"foo","files":[]} {}`, nil},
		{"no name", `{"files":[]}`, nil},
		{"bad name", `{"name":"../etc","files":[]}`, nil},
		{"no files", `{"name":"foo"}`, nil},
		{"files not list", `{"name":"foo","files":{}}`, nil},
		{"api 2", `{"meta":{"api-version":"2.0"},"name":"foo","files":[]}`, pypi.ErrUnsupportedAPIVersion},
		{"api junk", `{"meta":{"api-version":"one"},"name":"foo","files":[]}`, nil},
		{"hashes list", f(`{"filename":"a.tar.gz","url":"https://x/a","hashes":["x"]}`), nil},
		{"hash not string", f(`{"filename":"a.tar.gz","url":"https://x/a","hashes":{"sha256":1}}`), nil},
		{"yanked number", f(`{"filename":"a.tar.gz","url":"https://x/a","hashes":{},"yanked":1}`), nil},
		{"core-metadata string", f(`{"filename":"a.tar.gz","url":"https://x/a","hashes":{},"core-metadata":"yes"}`), nil},
		{"size float", f(`{"filename":"a.tar.gz","url":"https://x/a","hashes":{},"size":1.5}`), nil},
		{"requires-python number", f(`{"filename":"a.tar.gz","url":"https://x/a","hashes":{},"requires-python":3}`), nil},
		{"deep nesting", `{"name":"foo","files":[],"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, nil},
		{"status not object", `{"name":"foo","files":[],"project-status":"active"}`, nil},
		{"versions not strings", `{"name":"foo","files":[],"versions":[1]}`, nil},
	}
	for _, tt := range tests {
		_, err := pypi.ParseProjectJSON([]byte(tt.body), page)
		if err == nil {
			t.Errorf("%s: ParseProjectJSON succeeded; want error", tt.name)
			continue
		}
		if !errors.Is(err, pypi.ErrInvalidPage) {
			t.Errorf("%s: error %v does not match ErrInvalidPage", tt.name, err)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: error %v does not match %v", tt.name, err, tt.is)
		}
	}
}

// TestParseProjectJSONDropsBadFiles: an unusable file entry (a URL that is
// not http(s) or does not parse, an unsafe filename, a bad hash) is left
// out and reported in Dropped; the rest of the page stays.
func TestParseProjectJSONDropsBadFiles(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	page := mustURL(t, "https://index.example/simple/foo/")
	good := `{"filename":"foo-1.0.tar.gz","url":"https://x/foo-1.0.tar.gz","hashes":{"sha256":"` + h + `"}}`
	f := func(s string) string { return `{"name":"foo","files":[` + good + `,` + s + `,` + good + `]}` }
	tests := []struct {
		name, body string
	}{
		{"no filename", f(`{"url":"https://x/a","hashes":{}}`)},
		{"no url", f(`{"filename":"a.tar.gz","hashes":{}}`)},
		{"no hashes", f(`{"filename":"a.tar.gz","url":"https://x/a"}`)},
		{"hash not hex", f(`{"filename":"a.tar.gz","url":"https://x/a","hashes":{"sha256":"zz"}}`)},
		{"hash wrong length", f(`{"filename":"a.tar.gz","url":"https://x/a","hashes":{"sha256":"abcd"}}`)},
		{"slash in filename", f(`{"filename":"../a.tar.gz","url":"https://x/a","hashes":{}}`)},
		{"backslash in filename", f(`{"filename":"a\\b.tar.gz","url":"https://x/a","hashes":{}}`)},
		{"NUL in filename", f(`{"filename":"a\u0000.tar.gz","url":"https://x/a","hashes":{}}`)},
		{"file url", f(`{"filename":"a.tar.gz","url":"file:///etc/passwd","hashes":{}}`)},
		{"bad url", f(`{"filename":"a.tar.gz","url":"https://x/%zz","hashes":{}}`)},
		{"size negative", f(`{"filename":"a.tar.gz","url":"https://x/a","hashes":{},"size":-5}`)},
		{"fragment hash bad", f(`{"filename":"a.tar.gz","url":"https://x/a#sha256=xyz","hashes":{}}`)},
		{"empty hash name", f(`{"filename":"a.tar.gz","url":"https://x/a","hashes":{"":"` + h + `"}}`)},
		{"ftp url", f(`{"filename":"foo-2.0.tar.gz","url":"ftp://x/foo-2.0.tar.gz","hashes":{}}`)},
		{"ftp provenance", f(`{"filename":"foo-2.0.tar.gz","url":"https://x/foo-2.0.tar.gz","hashes":{},"provenance":"ftp://x/p"}`)},
	}
	for _, tt := range tests {
		p, err := pypi.ParseProjectJSON([]byte(tt.body), page)
		if err != nil {
			t.Errorf("%s: %v; want the bad entry dropped", tt.name, err)
			continue
		}
		if len(p.Files) != 2 || p.Files[0].Filename != "foo-1.0.tar.gz" || len(p.Dropped) != 1 || p.Dropped[0].Index != 1 || p.Dropped[0].Reason == "" {
			t.Errorf("%s: files %d, dropped %+v; want the two good files and entry 1 dropped with a reason", tt.name, len(p.Files), p.Dropped)
		}
	}
}

func TestParsePageTooLarge(t *testing.T) {
	body := make([]byte, pypi.MaxPageBytes+1)
	for _, parse := range []func([]byte, *url.URL) (*pypi.ProjectPage, error){pypi.ParseProjectJSON, pypi.ParseProjectHTML} {
		if _, err := parse(body, nil); !errors.Is(err, pypi.ErrPageTooLarge) || !errors.Is(err, pypi.ErrInvalidPage) {
			t.Errorf("parse(%d bytes) error = %v; want ErrPageTooLarge", len(body), err)
		}
	}
	if _, err := pypi.ParseProjectListJSON(body); !errors.Is(err, pypi.ErrPageTooLarge) {
		t.Errorf("ParseProjectListJSON error = %v; want ErrPageTooLarge", err)
	}
	if _, err := pypi.ParseProjectListHTML(body); !errors.Is(err, pypi.ErrPageTooLarge) {
		t.Errorf("ParseProjectListHTML error = %v; want ErrPageTooLarge", err)
	}
}

func TestParseProjectHTMLCases(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	body := `<!DOCTYPE html><html><head>
<meta name="pypi:repository-version" content="1.3">
<meta name="pypi:project-status" content="archived"><meta name="pypi:project-status-reason" content="old &amp; done">
<title>Links for Foo.Bar</title></head><body>
<a href="../../files/foo_bar-1.0.tar.gz#sha256=` + strings.ToUpper(h) + `" data-requires-python="&gt;=3.8,&lt;4" data-yanked="">foo_bar-1.0.tar.gz</a><br/>
<a href="https://f.example/x/foo_bar-1.1.tar.gz?x=1&amp;y=2#sha256=` + h + `" data-yanked="bad &quot;one&quot;" data-dist-info-metadata="true">WRONG TEXT</a>
<a href="/f/foo_bar-1.2-py3-none-any.whl" data-core-metadata="sha256=` + h + `" data-dist-info-metadata="true" data-provenance="/integrity/foo-bar/1.2/foo_bar-1.2-py3-none-any.whl/provenance" data-gpg-sig="false">foo_bar-1.2-py3-none-any.whl</a>
<a href="/f/foo_bar-1.3.tar.gz" data-core-metadata="false" data-yanked>foo_bar-1.3.tar.gz</a>
<a>no href</a><a href="">empty</a>
<script>document.write('<a href="/f/evil-1.0.tar.gz">evil</a>')</script>
</body></html>
<!--SERIAL 77-->`
	p, err := pypi.ParseProjectHTML([]byte(body), mustURL(t, "https://idx.example/simple/Foo.Bar/"))
	if err != nil {
		t.Fatal(err)
	}
	want := &pypi.ProjectPage{
		Name: "foo-bar", APIVersion: "1.3", LastSerial: 77, Status: "archived", StatusReason: "old & done",
		Files: []pypi.File{
			{Filename: "foo_bar-1.0.tar.gz", URL: "https://idx.example/files/foo_bar-1.0.tar.gz",
				Hashes: pypi.MakeHashes(map[string]string{"sha256": h}), RequiresPython: ">=3.8,<4", Yanked: true, Size: -1},
			{Filename: "foo_bar-1.1.tar.gz", URL: "https://f.example/x/foo_bar-1.1.tar.gz?x=1&y=2",
				Hashes: pypi.MakeHashes(map[string]string{"sha256": h}), Yanked: true, YankedReason: `bad "one"`, CoreMetadata: true, Size: -1},
			{Filename: "foo_bar-1.2-py3-none-any.whl", URL: "https://idx.example/f/foo_bar-1.2-py3-none-any.whl",
				Hashes: pypi.MakeHashes(map[string]string{}), CoreMetadata: true, CoreMetadataHashes: pypi.MakeHashes(map[string]string{"sha256": h}), Size: -1,
				Provenance: "https://idx.example/integrity/foo-bar/1.2/foo_bar-1.2-py3-none-any.whl/provenance", GPGSig: boolp(false)},
			{Filename: "foo_bar-1.3.tar.gz", URL: "https://idx.example/f/foo_bar-1.3.tar.gz",
				Hashes: pypi.MakeHashes(map[string]string{}), Yanked: true, Size: -1},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("ParseProjectHTML =\n%+v\nwant\n%+v", p, want)
	}
}

func TestParseProjectHTMLBaseAndName(t *testing.T) {
	body := `<html><head><base href="https://mirror.example/pkgs/"><title>Links for Other</title></head>
<body><a href="a/foo-1.0.tar.gz">foo-1.0.tar.gz</a><base href="https://ignored.example/"></body></html>`
	p, err := pypi.ParseProjectHTML([]byte(body), mustURL(t, "https://idx.example/simple/foo/"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "foo" || len(p.Files) != 1 || p.Files[0].URL != "https://mirror.example/pkgs/a/foo-1.0.tar.gz" {
		t.Errorf("ParseProjectHTML = %+v; want name foo, URL under the first <base href>", p)
	}
	// Without a page URL the name comes from the title.
	body = `<html><head><title>Links for Other_Name</title></head><body><a href="https://x.example/other_name-1.0.tar.gz">other_name-1.0.tar.gz</a></body></html>`
	p, err = pypi.ParseProjectHTML([]byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "other-name" {
		t.Errorf("Name = %q; want %q", p.Name, "other-name")
	}
}

func TestParseProjectHTMLInvalid(t *testing.T) {
	page := mustURL(t, "https://idx.example/simple/foo/")
	tests := []struct {
		name, body string
		is         error
	}{
		{"api 2", `<meta name="pypi:repository-version" content="2.0"><a href="/a-1.tar.gz">a</a>`, pypi.ErrUnsupportedAPIVersion},
		{"api junk", `<meta name="pypi:repository-version" content="x">`, nil},
	}
	for _, tt := range tests {
		_, err := pypi.ParseProjectHTML([]byte(tt.body), page)
		if err == nil {
			t.Errorf("%s: ParseProjectHTML succeeded; want error", tt.name)
			continue
		}
		if !errors.Is(err, pypi.ErrInvalidPage) || tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: error %v; want ErrInvalidPage (and %v)", tt.name, err, tt.is)
		}
	}
}

// TestParseProjectHTMLDropsBadAnchors: an unusable anchor is left out and
// reported in Dropped; the other links stay.
func TestParseProjectHTMLDropsBadAnchors(t *testing.T) {
	page := mustURL(t, "https://idx.example/simple/foo/")
	good := `<a href="/foo-1.0.tar.gz">foo-1.0.tar.gz</a>`
	tests := []struct{ name, anchor string }{
		{"bad hash", `<a href="/a-1.tar.gz#sha256=abc">a</a>`},
		{"bad metadata hash", `<a href="/a-1.tar.gz" data-core-metadata="sha256=xyz">a</a>`},
		{"backslash filename", `<a href="/x/a%5Cb.tar.gz">a</a>`},
		{"dotdot filename", `<a href="https://x.example/%2E%2E">a</a>`},
		{"javascript url", `<a href="javascript:alert(1)">a</a>`},
		{"ftp url", `<a href="ftp://x.example/foo-2.0.tar.gz">foo-2.0.tar.gz</a>`},
		{"ftp provenance", `<a href="/a-1.tar.gz" data-provenance="ftp://x/p">a</a>`},
	}
	for _, tt := range tests {
		p, err := pypi.ParseProjectHTML([]byte(good+tt.anchor+`<a>no href</a>`+good), page)
		if err != nil {
			t.Errorf("%s: %v; want the bad anchor dropped", tt.name, err)
			continue
		}
		if len(p.Files) != 2 || p.Files[1].Filename != "foo-1.0.tar.gz" || len(p.Dropped) != 1 || p.Dropped[0].Index != 1 || p.Dropped[0].Reason == "" {
			t.Errorf("%s: files %d, dropped %+v; want the two good links and link 1 dropped with a reason", tt.name, len(p.Files), p.Dropped)
		}
	}
}

func TestProjectList(t *testing.T) {
	l := &pypi.ProjectList{LastSerial: 99, Projects: []pypi.ProjectEntry{
		{Name: "Foo_Bar", LastSerial: 5}, {Name: "iniconfig", LastSerial: 31878540}, {Name: "A&B.c", LastSerial: 7},
	}}
	var j, h bytes.Buffer
	if err := pypi.WriteProjectListJSON(&j, l); err != nil {
		t.Fatal(err)
	}
	golden(t, "list.json.golden", j.Bytes())
	if err := pypi.WriteProjectListHTML(&h, l); err != nil {
		t.Fatal(err)
	}
	golden(t, "list.html.golden", h.Bytes())

	gotJ, err := pypi.ParseProjectListJSON(j.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	wantJ := *l
	wantJ.APIVersion = pypi.APIVersion
	if !reflect.DeepEqual(gotJ, &wantJ) {
		t.Errorf("JSON list round trip = %+v; want %+v", gotJ, &wantJ)
	}
	gotH, err := pypi.ParseProjectListHTML(h.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	wantH := &pypi.ProjectList{APIVersion: pypi.APIVersion, Projects: []pypi.ProjectEntry{{Name: "Foo_Bar"}, {Name: "iniconfig"}, {Name: "A&B.c"}}}
	if !reflect.DeepEqual(gotH, wantH) {
		t.Errorf("HTML list round trip = %+v; want %+v", gotH, wantH)
	}
	if !strings.Contains(h.String(), `<a href="foo-bar/">Foo_Bar</a>`) || !strings.Contains(h.String(), `<a href="a&amp;b-c/">A&amp;B.c</a>`) {
		t.Errorf("WriteProjectListHTML links are not relative normalised names:\n%s", h.String())
	}

	// PyPI's own form, absolute links.
	pypiList := `<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.4"><title>Simple index</title></head>
<body><a href="/simple/0/">0</a><a href="/simple/foo-bar/">Foo_Bar</a><a href="/simple/x/"> </a></body></html>`
	got, err := pypi.ParseProjectListHTML([]byte(pypiList))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Projects) != 2 || got.Projects[1].Name != "Foo_Bar" || got.APIVersion != "1.4" {
		t.Errorf("ParseProjectListHTML = %+v; want 2 projects, the second Foo_Bar", got)
	}
	for _, bad := range []string{`{"meta":{"api-version":"2.0"},"projects":[]}`, `{"projects":[{"name":""}]}`, `{"meta":{}}`, `[]`} {
		if _, err := pypi.ParseProjectListJSON([]byte(bad)); !errors.Is(err, pypi.ErrInvalidPage) {
			t.Errorf("ParseProjectListJSON(%q) error = %v; want ErrInvalidPage", bad, err)
		}
	}
}

// seedPages adds the fixtures and the sample page to a fuzz corpus.
func seedPages(f *testing.F, html bool) {
	var b bytes.Buffer
	if html {
		_ = pypi.WriteProjectHTML(&b, samplePage())
	} else {
		_ = pypi.WriteProjectJSON(&b, samplePage())
	}
	f.Add(b.Bytes())
	dir := fixtures.Optional(f, "pypi")
	if dir == "" {
		return
	}
	names := []string{"argset.pypi-json-reformatted.json", "yanked.pypi-json-reformatted.json"}
	if html {
		names = []string{"iniconfig.pypi.html"}
	}
	for _, n := range names {
		if body, err := os.ReadFile(filepath.Join(dir, "simple-index", n)); err == nil {
			f.Add(body)
		}
	}
}

func FuzzParseProjectJSON(f *testing.F) {
	seedPages(f, false)
	f.Add([]byte(`{"name":"a","files":[{"filename":"a-1.tar.gz","url":"a-1.tar.gz#sha256=00","hashes":{},"yanked":"","core-metadata":{}}],"project-status":{"reason":"r"}}`))
	page, _ := url.Parse("https://pypi.example/simple/a/")
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := pypi.ParseProjectJSON(body, page)
		if err != nil {
			if !errors.Is(err, pypi.ErrInvalidPage) {
				t.Fatalf("error %v does not match ErrInvalidPage", err)
			}
			return
		}
		p.Dropped, p.DroppedCount = nil, 0 // not written out
		if got, want := roundTripJSON(t, p, page), jsonView(p); !reflect.DeepEqual(got, want) {
			t.Fatalf("JSON round trip:\ngot  %+v\nwant %+v", got, want)
		}
	})
}

func FuzzParseProjectHTML(f *testing.F) {
	seedPages(f, true)
	f.Add([]byte(`<base href="x/"><a href="a-1.tar.gz#md5=00112233445566778899aabbccddeeff" data-yanked data-core-metadata="md5=00112233445566778899aabbccddeeff">t</a>`))
	page, _ := url.Parse("https://pypi.example/simple/a/")
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := pypi.ParseProjectHTML(body, page)
		if err != nil {
			if !errors.Is(err, pypi.ErrInvalidPage) {
				t.Fatalf("error %v does not match ErrInvalidPage", err)
			}
			return
		}
		p.Dropped, p.DroppedCount = nil, 0 // not written out
		want := *p
		if want.APIVersion == "" {
			want.APIVersion = pypi.APIVersion
		}
		if got := roundTripHTML(t, p, page); !reflect.DeepEqual(got, &want) {
			t.Fatalf("HTML round trip:\ngot  %+v\nwant %+v", got, &want)
		}
	})
}

// benchPage builds a realistic 200-file page.
func benchPage() *pypi.ProjectPage {
	p := &pypi.ProjectPage{Name: "bench-project", APIVersion: "1.4", LastSerial: 123456789, Status: "active"}
	for i := range 200 {
		v := fmt.Sprintf("%d.%d.%d", i/100, (i/10)%10, i%10)
		name := "bench_project-" + v + "-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
		if i%2 == 1 {
			name = "bench_project-" + v + ".tar.gz"
		}
		p.Files = append(p.Files, pypi.File{
			Filename:           name,
			URL:                "https://files.pythonhosted.org/packages/13/71/5ad31e4a3cdc5d9d4b3f1fbeeda9490863f3d1882a21cf673cd3236545488d6f1e/" + name,
			Hashes:             pypi.MakeHashes(map[string]string{"sha256": "eeea9499863f3d1882a21cf673cd3236545488d6f1e5ad31e4a3cdc5d9d4b3f1"}),
			RequiresPython:     ">=3.9",
			CoreMetadata:       i%2 == 0,
			CoreMetadataHashes: pypi.MakeHashes(map[string]string{"sha256": "90baa19b1d0046fde219307f7dc6332c0fe8eb0a65dafb9326c3d2c51edd7f7a"}),
			Size:               int64(100000 + i),
			UploadTime:         "2024-11-06T22:37:07.123456Z",
			Provenance:         "https://pypi.org/integrity/bench-project/" + v + "/" + name + "/provenance",
		})
	}
	return p
}

func BenchmarkWriteProjectJSON(b *testing.B) {
	p := benchPage()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := pypi.WriteProjectJSON(&buf, p); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

func BenchmarkWriteProjectHTML(b *testing.B) {
	p := benchPage()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := pypi.WriteProjectHTML(&buf, p); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

func BenchmarkParseProjectJSON(b *testing.B) {
	var buf bytes.Buffer
	if err := pypi.WriteProjectJSON(&buf, benchPage()); err != nil {
		b.Fatal(err)
	}
	page, _ := url.Parse("https://pypi.org/simple/bench-project/")
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pypi.ParseProjectJSON(buf.Bytes(), page); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseProjectHTML(b *testing.B) {
	var buf bytes.Buffer
	if err := pypi.WriteProjectHTML(&buf, benchPage()); err != nil {
		b.Fatal(err)
	}
	page, _ := url.Parse("https://pypi.org/simple/bench-project/")
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pypi.ParseProjectHTML(buf.Bytes(), page); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseProjectListJSON(f *testing.F) {
	f.Add([]byte(`{"meta":{"_last-serial":9,"api-version":"1.4"},"projects":[{"_last-serial":5,"name":"Foo_Bar"},{"name":"x"}]}`))
	f.Add([]byte(`{"projects":[{"name":"a\u0000b","_last-serial":"x"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := pypi.ParseProjectListJSON(body)
		if err != nil {
			if !errors.Is(err, pypi.ErrInvalidPage) {
				t.Fatalf("error %v does not match ErrInvalidPage", err)
			}
			return
		}
		var b bytes.Buffer
		if err := pypi.WriteProjectListJSON(&b, l); err != nil {
			t.Fatal(err)
		}
		got, err := pypi.ParseProjectListJSON(b.Bytes())
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, b.Bytes())
		}
		want := *l
		if want.APIVersion == "" {
			want.APIVersion = pypi.APIVersion
		}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("JSON list round trip:\ngot  %+v\nwant %+v", got, &want)
		}
	})
}

func FuzzParseProjectListHTML(f *testing.F) {
	f.Add([]byte(`<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.4"></head><body><a href="/simple/foo-bar/">Foo_Bar</a><a href="x/"> a &amp; b </a></body></html><!--SERIAL 3-->`))
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := pypi.ParseProjectListHTML(body)
		if err != nil {
			if !errors.Is(err, pypi.ErrInvalidPage) {
				t.Fatalf("error %v does not match ErrInvalidPage", err)
			}
			return
		}
		var b bytes.Buffer
		if err := pypi.WriteProjectListHTML(&b, l); err != nil {
			t.Fatal(err)
		}
		got, err := pypi.ParseProjectListHTML(b.Bytes())
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, b.Bytes())
		}
		want := *l
		want.LastSerial = 0 // the root page carries no SERIAL comment
		if want.APIVersion == "" {
			want.APIVersion = pypi.APIVersion
		}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("HTML list round trip:\ngot  %+v\nwant %+v", got, &want)
		}
	})
}

// referenceProjectJSON renders p with encoding/json and the same key order,
// as an oracle for the hand-written WriteProjectJSON. encoding/json escapes
// U+2028 and U+2029, Python does not; the oracle undoes that.
func referenceProjectJSON(p *pypi.ProjectPage) []byte {
	type fileOut struct {
		CoreMetadata         any               `json:"core-metadata"`
		DataDistInfoMetadata any               `json:"data-dist-info-metadata"`
		Filename             string            `json:"filename"`
		GPGSig               *bool             `json:"gpg-sig,omitempty"`
		Hashes               map[string]string `json:"hashes"`
		Provenance           *string           `json:"provenance"`
		RequiresPython       *string           `json:"requires-python"`
		Size                 *int64            `json:"size,omitempty"`
		UploadTime           string            `json:"upload-time,omitempty"`
		URL                  string            `json:"url"`
		Yanked               any               `json:"yanked"`
	}
	type metaOut struct {
		LastSerial int64  `json:"_last-serial,omitempty"`
		APIVersion string `json:"api-version"`
	}
	type statusOut struct {
		Reason string `json:"reason,omitempty"`
		Status string `json:"status"`
	}
	var out struct {
		Files         []fileOut  `json:"files"`
		Meta          metaOut    `json:"meta"`
		Name          string     `json:"name"`
		ProjectStatus *statusOut `json:"project-status,omitempty"`
		Versions      []string   `json:"versions"`
	}
	out.Files = make([]fileOut, len(p.Files))
	out.Meta = metaOut{p.LastSerial, p.APIVersion}
	if out.Meta.APIVersion == "" {
		out.Meta.APIVersion = pypi.APIVersion
	}
	out.Name, out.Versions = p.Name, p.Versions
	if out.Versions == nil {
		out.Versions = p.DeriveVersions()
	}
	if p.Status != "" {
		out.ProjectStatus = &statusOut{p.StatusReason, p.Status}
	}
	for i := range p.Files {
		f := &p.Files[i]
		o := &out.Files[i]
		o.Filename, o.URL, o.GPGSig, o.UploadTime, o.Hashes = f.Filename, f.URL, f.GPGSig, f.UploadTime, f.Hashes.Map()
		if o.Hashes == nil {
			o.Hashes = map[string]string{}
		}
		var cm any = f.CoreMetadata
		if f.CoreMetadata && f.CoreMetadataHashes.Len() > 0 {
			cm = f.CoreMetadataHashes.Map()
		}
		o.CoreMetadata, o.DataDistInfoMetadata = cm, cm
		if f.Provenance != "" {
			o.Provenance = &f.Provenance
		}
		if f.RequiresPython != "" {
			o.RequiresPython = &f.RequiresPython
		}
		if f.Size >= 0 {
			o.Size = &f.Size
		}
		o.Yanked = f.Yanked
		if f.Yanked && f.YankedReason != "" {
			o.Yanked = f.YankedReason
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
	s := strings.NewReplacer(`\u2028`, "\u2028", `\u2029`, "\u2029").Replace(b.String())
	return []byte(s)
}

func TestWriteProjectJSONMatchesReference(t *testing.T) {
	pages := map[string]*pypi.ProjectPage{"sample": samplePage(), "bench": benchPage(), "empty": {Name: "e"}}
	odd := samplePage()
	odd.Files[0].YankedReason, odd.Files[1].YankedReason = "ignored", "\x00\x1f\x7f\u2028\u2029\"\\\b\f\n\r\t é \xff end"
	odd.Files[0].Hashes.Set("Z\n", "00")
	odd.Versions = []string{}
	pages["odd"] = odd
	for name, p := range pages {
		var b bytes.Buffer
		if err := pypi.WriteProjectJSON(&b, p); err != nil {
			t.Fatal(err)
		}
		if want := referenceProjectJSON(p); !bytes.Equal(b.Bytes(), want) {
			t.Errorf("%s: WriteProjectJSON =\n%s\nwant\n%s", name, b.Bytes(), want)
		}
	}
}

func FuzzWriteProjectJSON(f *testing.F) {
	f.Add("x", "\u2028\"\\\x01", "1.0", int64(5), true, false)
	f.Fuzz(func(t *testing.T, a, b, c string, n int64, y, m bool) {
		p := &pypi.ProjectPage{Name: a, APIVersion: c, LastSerial: n, Status: b, StatusReason: a + b,
			Files: []pypi.File{{Filename: a, URL: b, Hashes: pypi.MakeHashes(map[string]string{a: b, c: a}), RequiresPython: c,
				Yanked: y, YankedReason: b, CoreMetadata: m, CoreMetadataHashes: pypi.MakeHashes(map[string]string{b: c}),
				Size: n, UploadTime: a, Provenance: c, GPGSig: &y}}}
		var buf bytes.Buffer
		if err := pypi.WriteProjectJSON(&buf, p); err != nil {
			t.Fatal(err)
		}
		if want := referenceProjectJSON(p); !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("WriteProjectJSON =\n%q\nwant\n%q", buf.Bytes(), want)
		}
	})
}
