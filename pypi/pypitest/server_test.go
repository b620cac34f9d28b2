package pypitest_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/pypi/pypitest"
)

const pipAccept = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func get(t *testing.T, url string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

// newFooBar serves project Foo.Bar: a wheel 1.0 with provenance, an sdist
// 1.0 without, and a yanked wheel 0.9.
func newFooBar(t *testing.T) (*pypitest.Server, []byte, []byte) {
	s := pypitest.NewServer(t)
	whl := pypitest.MakeWheel("Foo.Bar", "1.0", pypitest.WheelOptions{RequiresPython: ">=3.8"})
	sdist := pypitest.MakeSdist("Foo.Bar", "1.0")
	s.AddDist("Foo.Bar", pypitest.Dist{Filename: pypitest.WheelFilename("Foo.Bar", "1.0"), Content: whl,
		RequiresPython: ">=3.8", Provenance: []byte(`{"version":1,"attestation_bundles":[]}`)})
	s.AddDist("Foo.Bar", pypitest.Dist{Filename: pypitest.SdistFilename("Foo.Bar", "1.0"), Content: sdist})
	s.AddDist("foo-bar", pypitest.Dist{Filename: pypitest.WheelFilename("foo-bar", "0.9"),
		Content: pypitest.MakeWheel("foo-bar", "0.9", pypitest.WheelOptions{}), Yanked: true, YankedReason: "broken"})
	return s, whl, sdist
}

type jsonPage struct {
	Meta struct {
		APIVersion string `json:"api-version"`
		LastSerial int64  `json:"_last-serial"`
	} `json:"meta"`
	Name     string   `json:"name"`
	Versions []string `json:"versions"`
	Files    []struct {
		Filename       string            `json:"filename"`
		URL            string            `json:"url"`
		Hashes         map[string]string `json:"hashes"`
		RequiresPython *string           `json:"requires-python"`
		CoreMetadata   any               `json:"core-metadata"`
		Provenance     *string           `json:"provenance"`
		Size           int64             `json:"size"`
		UploadTime     string            `json:"upload-time"`
		Yanked         any               `json:"yanked"`
	} `json:"files"`
}

func TestProjectPageJSON(t *testing.T) {
	s, whl, sdist := newFooBar(t)
	r := get(t, s.URL()+"simple/foo-bar/", "Accept", pipAccept)
	if r.code != http.StatusOK {
		t.Fatalf("got status %d; want 200", r.code)
	}
	for k, want := range map[string]string{"Content-Type": "application/vnd.pypi.simple.v1+json", "Vary": "Accept", "X-PyPI-Last-Serial": "3"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s: got %q; want %q", k, got, want)
		}
	}
	if bytes.Contains(r.body, []byte(`"dist-info-metadata"`)) {
		t.Error("JSON page carries dist-info-metadata, which PyPI never sends")
	}
	var p jsonPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Name != "foo-bar" || p.Meta.APIVersion != "1.4" || p.Meta.LastSerial != 3 {
		t.Errorf("got name %q api %q serial %d; want foo-bar 1.4 3", p.Name, p.Meta.APIVersion, p.Meta.LastSerial)
	}
	if got, want := strings.Join(p.Versions, ","), "0.9,1.0"; got != want {
		t.Errorf("got versions %q; want %q", got, want)
	}
	wantFiles := []string{"foo_bar-0.9-py3-none-any.whl", "foo_bar-1.0-py3-none-any.whl", "foo_bar-1.0.tar.gz"}
	if len(p.Files) != len(wantFiles) {
		t.Fatalf("got %d files; want %d", len(p.Files), len(wantFiles))
	}
	for i, f := range p.Files {
		if f.Filename != wantFiles[i] {
			t.Errorf("file %d: got %q; want %q", i, f.Filename, wantFiles[i])
		}
		if !strings.HasPrefix(f.URL, s.URL()+"files/") || !strings.HasSuffix(f.URL, "/"+f.Filename) {
			t.Errorf("file %d: got url %q; want one under %sfiles/", i, f.URL, s.URL())
		}
	}
	w, sd := p.Files[1], p.Files[2]
	if got := w.Hashes["sha256"]; got != sha(whl) {
		t.Errorf("wheel hash: got %q; want %q", got, sha(whl))
	}
	if w.Size != int64(len(whl)) || sd.Size != int64(len(sdist)) {
		t.Errorf("sizes: got %d, %d; want %d, %d", w.Size, sd.Size, len(whl), len(sdist))
	}
	if w.RequiresPython == nil || *w.RequiresPython != ">=3.8" || sd.RequiresPython != nil {
		t.Errorf("requires-python: got %v, %v; want >=3.8, null", w.RequiresPython, sd.RequiresPython)
	}
	wantProv := s.URL() + "integrity/foo-bar/1.0/foo_bar-1.0-py3-none-any.whl/provenance"
	if w.Provenance == nil || *w.Provenance != wantProv || sd.Provenance != nil {
		t.Errorf("provenance: got %v, %v; want %q, null", w.Provenance, sd.Provenance, wantProv)
	}
	if got := s.ProvenanceURL("Foo_Bar", w.Filename); got != wantProv {
		t.Errorf("ProvenanceURL: got %q; want %q", got, wantProv)
	}
	if cm, ok := w.CoreMetadata.(map[string]any); !ok || cm["sha256"] == "" {
		t.Errorf("wheel core-metadata: got %v; want a sha256 dict", w.CoreMetadata)
	}
	if sd.CoreMetadata != false {
		t.Errorf("sdist core-metadata: got %v; want false", sd.CoreMetadata)
	}
	if p.Files[0].Yanked != "broken" || w.Yanked != false {
		t.Errorf("yanked: got %v, %v; want \"broken\", false", p.Files[0].Yanked, w.Yanked)
	}
	if w.UploadTime != "2024-11-06T22:37:07Z" {
		t.Errorf("upload-time: got %q; want %q", w.UploadTime, "2024-11-06T22:37:07Z")
	}
}

func TestProjectPageHTML(t *testing.T) {
	s, whl, _ := newFooBar(t)
	for _, accept := range []string{"", "text/html", "*/*", "application/vnd.pypi.simple.v1+html"} {
		r := get(t, s.URL()+"simple/foo-bar/", "Accept", accept)
		want := "text/html"
		if accept == "application/vnd.pypi.simple.v1+html" {
			want = accept
		}
		if got := r.header.Get("Content-Type"); got != want {
			t.Errorf("Accept %q: got Content-Type %q; want %q", accept, got, want)
		}
		body := string(r.body)
		for _, frag := range []string{
			`<meta name="pypi:repository-version" content="1.4">`,
			`<a href="` + s.FileURL("foo-bar", "foo_bar-1.0-py3-none-any.whl") + `#sha256=` + sha(whl) + `" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=`,
			` data-provenance="` + s.URL() + `integrity/foo-bar/1.0/foo_bar-1.0-py3-none-any.whl/provenance">foo_bar-1.0-py3-none-any.whl</a><br />`,
			`#sha256=` + sha(pypitest.MakeSdist("Foo.Bar", "1.0")) + `" >foo_bar-1.0.tar.gz</a>`,
			` data-yanked="broken" data-dist-info-metadata=`,
			"<!--SERIAL 3-->\n",
		} {
			if !strings.Contains(body, frag) {
				t.Errorf("Accept %q: page lacks %q:\n%s", accept, frag, body)
			}
		}
	}
}

func TestProjectList(t *testing.T) {
	s, _, _ := newFooBar(t)
	s.AddDist("Zed", pypitest.Dist{Filename: "zed-1.0.tar.gz", Content: []byte("z")})
	r := get(t, s.URL()+"simple/", "Accept", pipAccept)
	want := `{"meta":{"_last-serial":4,"api-version":"1.4"},"projects":[{"_last-serial":3,"name":"Foo.Bar"},{"_last-serial":4,"name":"Zed"}]}` + "\n"
	if string(r.body) != want {
		t.Errorf("got %q; want %q", r.body, want)
	}
	r = get(t, s.URL()+"simple/")
	for _, frag := range []string{`<a href="/simple/foo-bar/">Foo.Bar</a>`, `<a href="/simple/zed/">Zed</a>`} {
		if !strings.Contains(string(r.body), frag) {
			t.Errorf("HTML list lacks %q:\n%s", frag, r.body)
		}
	}
}

func TestRoutesRedirectsAndNotFound(t *testing.T) {
	s, _, _ := newFooBar(t)
	tests := []struct {
		path     string
		code     int
		location string
	}{
		{"simple/foo-bar/", 200, ""},
		{"simple/Foo.Bar/", 301, "/simple/foo-bar/"},
		{"simple/foo_bar/", 301, "/simple/foo-bar/"},
		{"simple/foo-bar", 301, "/simple/foo-bar/"},
		{"simple", 301, "/simple/"},
		{"simple/nope/", 404, ""},
		{"simple/foo-bar/extra", 404, ""},
		{"elsewhere", 404, ""},
		{"files/0000/foo_bar-1.0.tar.gz", 404, ""},
		{"integrity/foo-bar/1.0/missing.whl/provenance", 404, ""},
	}
	for _, tt := range tests {
		r := get(t, s.URL()+tt.path)
		if r.code != tt.code || r.header.Get("Location") != tt.location {
			t.Errorf("GET /%s: got %d %q; want %d %q", tt.path, r.code, r.header.Get("Location"), tt.code, tt.location)
		}
	}
}

func TestFilesAndMetadata(t *testing.T) {
	s, whl, sdist := newFooBar(t)
	wurl := s.FileURL("foo-bar", "foo_bar-1.0-py3-none-any.whl")
	r := get(t, wurl)
	if r.code != 200 || !bytes.Equal(r.body, whl) || r.header.Get("Content-Length") != itoa(len(whl)) {
		t.Errorf("wheel: got %d, %d bytes, Content-Length %q; want 200 and %d bytes", r.code, len(r.body), r.header.Get("Content-Length"), len(whl))
	}
	r = get(t, wurl, "Range", "bytes=0-3")
	if r.code != http.StatusPartialContent || string(r.body) != "PK\x03\x04" {
		t.Errorf("range: got %d %q; want 206 %q", r.code, r.body, "PK\x03\x04")
	}
	r = get(t, wurl+".metadata")
	if want := pypitest.Metadata("Foo.Bar", "1.0", pypitest.WheelOptions{RequiresPython: ">=3.8"}); !bytes.Equal(r.body, want) {
		t.Errorf("metadata: got %q; want %q", r.body, want)
	}
	surl := s.FileURL("foo-bar", "foo_bar-1.0.tar.gz")
	if r := get(t, surl); !bytes.Equal(r.body, sdist) {
		t.Errorf("sdist: got %d bytes; want %d", len(r.body), len(sdist))
	}
	if r := get(t, surl+".metadata"); r.code != 404 {
		t.Errorf("sdist metadata: got %d; want 404", r.code)
	}
	if s.Hits("/files/") != 5 || s.Hits("/files/"+sha(whl)) != 3 {
		t.Errorf("hits: got %d files, %d wheel; want 5, 3", s.Hits("/files/"), s.Hits("/files/"+sha(whl)))
	}
}

func TestWrongHashAndExplicitMetadata(t *testing.T) {
	s := pypitest.NewServer(t)
	good := []byte("good bytes")
	s.AddDist("evil", pypitest.Dist{Filename: "evil-1.0-py3-none-any.whl", Content: good, ServeContent: []byte("evil bytes"), Metadata: []byte("Name: evil\n")})
	r := get(t, s.URL()+"simple/evil/", "Accept", pipAccept)
	if !strings.Contains(string(r.body), sha(good)) {
		t.Errorf("index does not promise sha256(Content): %s", r.body)
	}
	url := s.FileURL("evil", "evil-1.0-py3-none-any.whl")
	if r := get(t, url); string(r.body) != "evil bytes" {
		t.Errorf("got %q; want %q", r.body, "evil bytes")
	}
	if r := get(t, url+".metadata"); string(r.body) != "Name: evil\n" {
		t.Errorf("metadata: got %q; want %q", r.body, "Name: evil\n")
	}
}

func TestIntegrityAPI(t *testing.T) {
	s, _, _ := newFooBar(t)
	base := s.URL() + "integrity/"
	tests := []struct {
		name, path, accept string
		code               int
		ctype, body        string
	}{
		{"provenance", "foo-bar/1.0/foo_bar-1.0-py3-none-any.whl/provenance", "", 200, "application/vnd.pypi.integrity.v1+json", `{"version":1,"attestation_bundles":[]}`},
		{"any spelling", "Foo_Bar/v1.0.0/foo_bar-1.0-py3-none-any.whl/provenance", "application/vnd.pypi.integrity.v1+json", 200, "application/vnd.pypi.integrity.v1+json", `{"version":1,"attestation_bundles":[]}`},
		{"plain json", "foo-bar/1.0/foo_bar-1.0-py3-none-any.whl/provenance", "application/json", 200, "application/json", `{"version":1,"attestation_bundles":[]}`},
		{"not acceptable", "foo-bar/1.0/foo_bar-1.0-py3-none-any.whl/provenance", "text/html", 406, "application/json", `{"message": "Request not acceptable"}`},
		{"none", "foo-bar/1.0/foo_bar-1.0.tar.gz/provenance", "", 404, "application/json", `{"message":"No provenance available for foo_bar-1.0.tar.gz"}`},
		{"wrong version", "foo-bar/2.0/foo_bar-1.0.tar.gz/provenance", "", 404, "text/html; charset=UTF-8", ""},
		{"unknown file", "foo-bar/1.0/nope.whl/provenance", "", 404, "text/html; charset=UTF-8", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.accept == "" {
				r = get(t, base+tt.path)
			} else {
				r = get(t, base+tt.path, "Accept", tt.accept)
			}
			if r.code != tt.code || r.header.Get("Content-Type") != tt.ctype {
				t.Errorf("got %d %q; want %d %q", r.code, r.header.Get("Content-Type"), tt.code, tt.ctype)
			}
			if tt.body != "" && string(r.body) != tt.body {
				t.Errorf("got body %q; want %q", r.body, tt.body)
			}
		})
	}
}

func TestRawPageAndHTMLOnly(t *testing.T) {
	s, _, _ := newFooBar(t)
	s.SetRawPage("Foo_Bar", "text/html", []byte("<a href=javascript:alert(1)>x</a>"))
	if r := get(t, s.URL()+"simple/foo-bar/", "Accept", pipAccept); string(r.body) != "<a href=javascript:alert(1)>x</a>" || r.header.Get("Content-Type") != "text/html" {
		t.Errorf("raw page: got %q %q", r.header.Get("Content-Type"), r.body)
	}
	s.SetRawPage("foo-bar", "", nil)
	s.HTMLOnly(true)
	if r := get(t, s.URL()+"simple/foo-bar/", "Accept", pipAccept); r.header.Get("Content-Type") != "text/html" {
		t.Errorf("HTMLOnly: got Content-Type %q; want text/html", r.header.Get("Content-Type"))
	}
	s.HTMLOnly(false)
	if r := get(t, s.URL()+"simple/foo-bar/", "Accept", pipAccept); r.header.Get("Content-Type") != "application/vnd.pypi.simple.v1+json" {
		t.Errorf("after HTMLOnly(false): got Content-Type %q; want JSON", r.header.Get("Content-Type"))
	}
}

func TestFaults(t *testing.T) {
	s, whl, _ := newFooBar(t)
	wurl := s.FileURL("foo-bar", "foo_bar-1.0-py3-none-any.whl")

	t.Run("status", func(t *testing.T) {
		s.SetFault("/integrity/", pypitest.Fault{Status: 403, Body: []byte(`{"message":"Attestations temporarily disabled"}`), ContentType: "application/json"})
		defer s.ClearFaults()
		r := get(t, s.URL()+"integrity/foo-bar/1.0/foo_bar-1.0-py3-none-any.whl/provenance")
		if r.code != 403 || string(r.body) != `{"message":"Attestations temporarily disabled"}` || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("got %d %q %q; want 403 with the JSON body", r.code, r.header.Get("Content-Type"), r.body)
		}
		if r := get(t, s.URL()+"simple/foo-bar/"); r.code != 200 {
			t.Errorf("unfaulted path: got %d; want 200", r.code)
		}
	})
	t.Run("longest prefix wins", func(t *testing.T) {
		s.SetFault("", pypitest.Fault{Status: 500})
		s.SetFault("/simple/foo-bar/", pypitest.Fault{Status: 502})
		defer s.ClearFaults()
		if r := get(t, s.URL()+"simple/foo-bar/"); r.code != 502 {
			t.Errorf("got %d; want 502", r.code)
		}
		if r := get(t, s.URL()+"simple/"); r.code != 500 {
			t.Errorf("got %d; want 500", r.code)
		}
	})
	t.Run("delay", func(t *testing.T) {
		s.SetFault("/simple/", pypitest.Fault{Delay: 5 * time.Second})
		defer s.ClearFaults()
		c := &http.Client{Timeout: 100 * time.Millisecond}
		start := time.Now()
		_, err := c.Get(s.URL() + "simple/foo-bar/")
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("got %v; want a timeout", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v; want about 100ms", d)
		}
	})
	t.Run("truncate", func(t *testing.T) {
		s.SetFault("/files/", pypitest.Fault{TruncateAfter: 100})
		defer s.ClearFaults()
		resp, err := http.Get(wurl)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ContentLength != int64(len(whl)) {
			t.Errorf("got Content-Length %d; want %d", resp.ContentLength, len(whl))
		}
		body, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 100 {
			t.Errorf("got %d bytes, err %v; want 100 bytes and %v", len(body), err, io.ErrUnexpectedEOF)
		}
	})
	t.Run("stall", func(t *testing.T) {
		s.SetFault("/files/", pypitest.Fault{Stall: 5 * time.Second, TruncateAfter: 10})
		defer s.ClearFaults()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, wurl, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("headers should arrive before the stall: %v", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil || len(body) != 10 {
			t.Errorf("got %d bytes, err %v; want 10 bytes then an error", len(body), err)
		}
	})
	t.Run("clear", func(t *testing.T) {
		s.SetFault("", pypitest.Fault{Status: 500})
		s.ClearFaults()
		if r := get(t, wurl); r.code != 200 || !bytes.Equal(r.body, whl) {
			t.Errorf("got %d; want 200 and the wheel", r.code)
		}
	})
}

func TestCloseRefusesConnections(t *testing.T) {
	s, _, _ := newFooBar(t)
	url := s.URL() + "simple/foo-bar/"
	if r := get(t, url); r.code != 200 {
		t.Fatalf("got %d; want 200", r.code)
	}
	s.Close()
	s.Close()
	_, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Errorf("got %v; want a dial error", err)
	}
}

func TestMakeWheel(t *testing.T) {
	opts := pypitest.WheelOptions{Requires: []string{"dep>=1"}, RequiresPython: ">=3.8", Files: map[string][]byte{"my_pkg/data.txt": []byte("x")}}
	whl := pypitest.MakeWheel("My.Pkg", "2.0", opts)
	if !bytes.Equal(whl, pypitest.MakeWheel("My.Pkg", "2.0", opts)) {
		t.Error("two builds differ; want reproducible bytes")
	}
	if got, want := pypitest.WheelFilename("My.Pkg", "2.0"), "my_pkg-2.0-py3-none-any.whl"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	zr, err := zip.NewReader(bytes.NewReader(whl), int64(len(whl)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	if got, want := string(files["my_pkg/__init__.py"]), "__version__ = \"2.0\"\n"; got != want {
		t.Errorf("__init__.py: got %q; want %q", got, want)
	}
	meta := string(files["my_pkg-2.0.dist-info/METADATA"])
	for _, line := range []string{"Metadata-Version: 2.1\n", "Name: My.Pkg\n", "Version: 2.0\n", "Requires-Dist: dep>=1\n", "Requires-Python: >=3.8\n"} {
		if !strings.Contains(meta, line) {
			t.Errorf("METADATA lacks %q:\n%s", line, meta)
		}
	}
	record := strings.TrimSpace(string(files["my_pkg-2.0.dist-info/RECORD"]))
	lines := strings.Split(record, "\n")
	if len(lines) != len(files) {
		t.Errorf("RECORD has %d lines; want one per member (%d)", len(lines), len(files))
	}
	for _, line := range lines {
		parts := strings.Split(line, ",")
		if parts[0] == "my_pkg-2.0.dist-info/RECORD" {
			continue
		}
		sum := sha256.Sum256(files[parts[0]])
		if want := "sha256=" + base64.RawURLEncoding.EncodeToString(sum[:]); parts[1] != want || parts[2] != itoa(len(files[parts[0]])) {
			t.Errorf("RECORD %s: got %q,%q; want %q,%d", parts[0], parts[1], parts[2], want, len(files[parts[0]]))
		}
	}
}

func TestMakeSdist(t *testing.T) {
	sd := pypitest.MakeSdist("My.Pkg", "2.0")
	if got, want := pypitest.SdistFilename("My.Pkg", "2.0"), "my_pkg-2.0.tar.gz"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	gz, err := gzip.NewReader(bytes.NewReader(sd))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if got, want := strings.Join(names, " "), "my_pkg-2.0/PKG-INFO my_pkg-2.0/my_pkg/__init__.py"; got != want {
		t.Errorf("got members %q; want %q", got, want)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
