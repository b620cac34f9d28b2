package proxy

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// zipOf builds a zip of name/content pairs, deflated, in order.
func zipOf(t testing.TB, pairs ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: pairs[i], Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, pairs[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// metaResponse is a response with its status line, for the reason phrase.
type metaResponse struct {
	status int
	line   string // "403 metadata-mismatch: ..."
	header http.Header
	body   []byte
}

func getMeta(t testing.TB, c *http.Client, method, url string, hdr ...string) metaResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return metaResponse{resp.StatusCode, resp.Status, resp.Header, body}
}

// assertMetadataRefused: a 403 naming the reason and the file in the status
// line pip prints, not called verified, with none of the index's metadata.
func assertMetadataRefused(t testing.TB, what string, r metaResponse, reason, filename string, notInBody ...string) {
	t.Helper()
	if r.status != http.StatusForbidden || !strings.Contains(r.line, "metadata-"+reason+": ") || !strings.Contains(r.line, filename) {
		t.Errorf("%s: %q; want a 403 metadata-%s naming %s", what, r.line, reason, filename)
	}
	if v := r.header.Get(headerVerdict); v == string(pypi.VerdictVerified) {
		t.Errorf("%s: %s = %q on a refused metadata", what, headerVerdict, v)
	}
	if got := r.header.Get(headerReason); got != "metadata-"+reason {
		t.Errorf("%s: %s = %q; want metadata-%s", what, headerReason, got, reason)
	}
	for _, s := range notInBody {
		if bytes.Contains(r.body, []byte(s)) {
			t.Errorf("%s: the body holds %q", what, s)
		}
	}
}

// TestMetadataFromVerifiedWheel: the metadata of a verified wheel is the
// METADATA inside it, extracted once: pip asks for it before the file, so
// the wheel is filled (once) and the download that follows is a hit; the
// upstream's .metadata is never fetched; later requests read the cached blob.
func TestMetadataFromVerifiedWheel(t *testing.T) {
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
	opts := pypitest.WheelOptions{Requires: []string{"six>=1.0"}}
	d := signedDist(t, up, tp, "demo", "1.0", pypitest.MakeWheel("demo", "1.0", opts), nil)
	want := pypitest.Metadata("demo", "1.0", opts)
	url := tp.http.URL + "/files/demo/" + d.Filename + ".metadata"
	for i, c := range []gate.CacheState{gate.CacheMiss, gate.CacheHit} {
		r := getMeta(t, plainClient, "GET", url)
		if r.status != 200 || !bytes.Equal(r.body, want) || r.header.Get(headerVerdict) != "verified" {
			t.Fatalf("metadata request %d: %s %s %q; want 200 verified with the wheel's METADATA", i, r.line, r.header.Get(headerVerdict), r.body)
		}
		if r.header.Get("ETag") != `"`+sha(want)+`"` || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("metadata request %d: ETag %q, Content-Type %q", i, r.header.Get("ETag"), r.header.Get("Content-Type"))
		}
		if got := tp.srv.gate.HotMetadata(sha(d.Content), d.Filename); got != sha(want) {
			t.Errorf("metadata request %d (%s): hot ref %q; want %s", i, c, got, sha(want))
		}
	}
	if h := getMeta(t, plainClient, "HEAD", url); h.status != 200 || h.header.Get("Content-Length") != "" && h.header.Get("Content-Length") != strconv.Itoa(len(want)) {
		t.Errorf("HEAD metadata: %s, Content-Length %q", h.line, h.header.Get("Content-Length"))
	}
	if n := up.Hits("/files/" + sha(d.Content) + "/" + d.Filename + ".metadata"); n != 0 {
		t.Errorf("the upstream .metadata was fetched %d times; want never", n)
	}
	o := fetch(t, plainClient, "GET", tp.http.URL+"/files/demo/"+d.Filename)
	if !o.delivered() || o.sum != sha(d.Content) {
		t.Errorf("the wheel after its metadata: %v", o)
	}
	if n := up.Hits("/files/" + sha(d.Content) + "/" + d.Filename); n != 1 {
		t.Errorf("upstream wheel fetches = %d; want 1 (filled for the metadata, then a hit)", n)
	}

	// After a restart (empty memory), the ref in the store is enough.
	tp.srv.gate.ForgetHot()
	if r := getMeta(t, plainClient, "GET", url); r.status != 200 || !bytes.Equal(r.body, want) {
		t.Errorf("metadata from the stored ref: %s %q", r.line, r.body)
	}
	// The metadata blob changed on disk: quarantined, extracted again.
	p := filepath.Join(tp.dir, "blobs", "sha256", sha(want)[:2], sha(want))
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.ReplaceAll(want, []byte("six"), []byte("evl")), 0o400); err != nil {
		t.Fatal(err)
	}
	if r := getMeta(t, plainClient, "GET", url); r.status != 200 || !bytes.Equal(r.body, want) {
		t.Errorf("metadata after its blob changed on disk: %s %q; want the wheel's METADATA again", r.line, r.body)
	}
	if n := up.Hits("/files/"); n != 1 {
		t.Errorf("upstream file fetches = %d; want still 1", n)
	}
}

// TestMetadataHostileIndex: metadata the index lists for a verified wheel
// that is not the wheel's own METADATA, byte for byte, is refused (403
// metadata-mismatch, counted): an added Requires-Dist, another name or
// version, a whitespace change. The refusal comes before any byte of it.
func TestMetadataHostileIndex(t *testing.T) {
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
	genuine := string(pypitest.Metadata("demo", "1.0", pypitest.WheelOptions{}))
	hostile := map[string]string{
		"injected Requires-Dist": genuine + "Requires-Dist: evil-dependency\n",
		"another name":           strings.Replace(genuine, "Name: demo", "Name: evil-dependency", 1),
		"another version":        strings.Replace(genuine, "Version: 1.0", "Version: 1.0.1", 1),
		"trailing whitespace":    genuine + "\n",
		"a header's case":        strings.Replace(genuine, "Name: demo", "name: demo", 1),
		"a trailing space":       strings.Replace(genuine, "Name: demo\n", "Name: demo \n", 1),
		"CRLF line ends":         strings.ReplaceAll(genuine, "\n", "\r\n"),
		"empty":                  "",
	}
	version := 0
	for what, meta := range hostile {
		version++
		v := "1." + strconv.Itoa(version)
		body := pypitest.MakeWheel("demo", v, pypitest.WheelOptions{})
		meta = strings.ReplaceAll(meta, "Version: 1.0\n", "Version: "+v+"\n")
		d := signedDist(t, up, tp, "demo", v, body, func(d *pypitest.Dist) { d.Metadata = []byte(meta) })
		r := getMeta(t, plainClient, "GET", tp.http.URL+"/files/demo/"+d.Filename+".metadata")
		assertMetadataRefused(t, what, r, metadataMismatch, d.Filename, "Requires-Dist", "Name:")
		if !strings.Contains(r.line, "the index's METADATA for "+d.Filename+" differs from the one inside the verified wheel") {
			t.Errorf("%s: status line %q", what, r.line)
		}
		if n := up.Hits("/files/" + sha(d.Content) + "/" + d.Filename + ".metadata"); n != 0 {
			t.Errorf("%s: the upstream .metadata was fetched %d times", what, n)
		}
		// The wheel itself is genuine and verified: it is still served.
		if o := fetch(t, plainClient, "GET", tp.http.URL+"/files/demo/"+d.Filename); !o.delivered() || o.sum != sha(body) {
			t.Errorf("%s: the verified wheel itself: %v", what, o)
		}
		// A second request is refused from the cached ref.
		assertMetadataRefused(t, what+", again", getMeta(t, plainClient, "GET", tp.http.URL+"/files/demo/"+d.Filename+".metadata"),
			metadataMismatch, d.Filename)
	}
	if got, want := testutil.ToFloat64(tp.srv.metrics.metadataRefused.WithLabelValues(metadataMismatch)), float64(2*len(hostile)); got != want {
		t.Errorf("pipgate_metadata_refused_total{reason=mismatch} = %v; want %v", got, want)
	}
	if !strings.Contains(tp.logs.String(), `"msg":"metadata refused"`) {
		t.Errorf("no 'metadata refused' log line:\n%s", tp.logs.String())
	}
}

// TestMetadataUnreadableWheel: a verified wheel whose METADATA pip could not
// read where it reads it (two .dist-info folders, another project's, none,
// a zip bomb, a corrupt zip), or could read another way when it installs
// it (a METADATA or .dist-info twin differing in case or with a backslash),
// gets no metadata: 403 metadata-unreadable.
func TestMetadataUnreadableWheel(t *testing.T) {
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
	meta := string(pypitest.Metadata("demo", "1.0", pypitest.WheelOptions{}))
	evil := meta + "Requires-Dist: evil-dependency\n"
	good := pypitest.MakeWheel("demo", "1.0", pypitest.WheelOptions{})
	cases := map[string][]byte{
		"two .dist-info folders": zipOf(t, "demo-1.0.dist-info/METADATA", meta, "demo-2.0.dist-info/METADATA", evil),
		"another project's":      zipOf(t, "evil-1.0.dist-info/METADATA", meta),
		"two METADATA members":   zipOf(t, "demo-1.0.dist-info/METADATA", meta, "demo-1.0.dist-info/METADATA", evil),
		// Read one way here, installed another way on Windows or macOS.
		"a METADATA twin in another case":  zipOf(t, "demo-1.0.dist-info/METADATA", meta, "demo-1.0.dist-info/Metadata", evil),
		"a METADATA twin with a backslash": zipOf(t, "demo-1.0.dist-info/METADATA", meta, "demo-1.0.dist-info\\METADATA", evil),
		"a dist-info twin in another case": zipOf(t, "demo-1.0.dist-info/METADATA", meta, "DEMO-1.0.dist-info/METADATA", evil),
		"no METADATA":                      zipOf(t, "demo-1.0.dist-info/RECORD", ""),
		"zip bomb":                         pypitest.FillZip("demo-1.0.dist-info/METADATA", []byte(meta), ' ', 20<<20),
		"corrupt zip":                      good[:len(good)-30],
		"not a zip":                        []byte("#!/bin/sh\necho hello\n"),
	}
	build := 0
	for what, body := range cases {
		build++
		d := signedDist(t, up, tp, "demo", "1.0", body, func(d *pypitest.Dist) {
			// A build tag: each case is demo 1.0, as its .dist-info says.
			d.Filename = "demo-1.0-" + strconv.Itoa(build) + "-py3-none-any.whl"
			d.Metadata = []byte(meta)
		})
		r := getMeta(t, plainClient, "GET", tp.http.URL+"/files/demo/"+d.Filename+".metadata")
		assertMetadataRefused(t, what, r, metadataUnreadable, d.Filename, "Requires-Dist")
	}
	if got := testutil.ToFloat64(tp.srv.metrics.metadataRefused.WithLabelValues(metadataUnreadable)); got != float64(len(cases)) {
		t.Errorf("pipgate_metadata_refused_total{reason=unreadable} = %v; want %d", got, len(cases))
	}
}

// TestMetadataOtherVerdicts: only a verified wheel's metadata comes from
// the wheel. An unattested wheel's is the upstream's, checked against the
// index's sha256 and not called verified; an sdist's is neither served nor
// advertised, whatever its verdict; a wheel whose fill fails gets the
// file's refusal; the metadata of a blocked file is refused unread.
func TestMetadataOtherVerdicts(t *testing.T) {
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, demoTrustsGoodRepo, func(o *Options) { o.EagerReleases = 0 })
	injected := append(pypitest.Metadata("plain", "1.0", pypitest.WheelOptions{}), "Requires-Dist: evil-dependency\n"...)
	unattested := addWheel(up, "plain", "1.0", func(d *pypitest.Dist) { d.Metadata = injected })
	sdist := pypitest.Dist{Filename: pypitest.SdistFilename("demo", "2.0"), Content: pypitest.MakeSdist("demo", "2.0"),
		Metadata: pypitest.Metadata("demo", "2.0", pypitest.WheelOptions{}), Provenance: []byte(`{"version":1,"attestation_bundles":[]}`)}
	up.AddDist("demo", sdist)
	tp.verifier.set(sdist.Filename, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: testIdentity})
	tampered := signedDist(t, up, tp, "demo", "3.0", nil, nil)
	up.SetFault("/files/"+sha(tampered.Content)+"/"+tampered.Filename, pypitest.Fault{Tamper: true})
	blocked := signedDist(t, up, tp, "demo", "4.0", nil, nil)
	tp.verifier.set(blocked.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork", Workflow: "release.yml"}})
	base := tp.http.URL + "/files/demo/"

	r := getMeta(t, plainClient, "GET", tp.http.URL+"/files/plain/"+unattested.Filename+".metadata")
	if r.status != 200 || !bytes.Equal(r.body, injected) || r.header.Get(headerVerdict) != string(pypi.VerdictUnattested) {
		t.Errorf("unattested wheel: %s %s; want the index's metadata, called unattested", r.line, r.header.Get(headerVerdict))
	}
	r = getMeta(t, plainClient, "GET", base+sdist.Filename+".metadata")
	if r.status != 404 || up.Hits("/files/"+sha(sdist.Content)) != 0 {
		t.Errorf("verified sdist: %s, %d upstream fetches; want 404 and none", r.line, up.Hits("/files/"+sha(sdist.Content)))
	}
	o := fetch(t, plainClient, "GET", base+tampered.Filename+".metadata")
	assertRefused(t, "metadata of a wheel the upstream tampers with", o, nil)
	assertNothingLeft(t, tp, sha(injected))
	r = getMeta(t, plainClient, "GET", base+blocked.Filename+".metadata")
	if r.status != 403 || r.header.Get(headerVerdict) != string(pypi.VerdictUntrustedPublisher) || up.Hits("/files/"+sha(blocked.Content)) != 0 {
		t.Errorf("blocked wheel: %s %s; want the policy's 403 and nothing fetched", r.line, r.header.Get(headerVerdict))
	}
	for _, accept := range []string{pipAccept, "text/html"} {
		o := fetch(t, plainClient, "GET", tp.http.URL+"/simple/demo/", "Accept", accept)
		var page *pypi.ProjectPage
		if accept == pipAccept {
			page = parseJSONPage(t, o.body, tp.http.URL+"/simple/demo/")
		} else {
			page = parseHTMLPage(t, o.body, tp.http.URL+"/simple/demo/")
		}
		for _, f := range page.Files {
			if want := strings.HasSuffix(f.Filename, ".whl"); f.CoreMetadata != want {
				t.Errorf("%s page: %s core-metadata %v; want %v (wheels only)", accept, f.Filename, f.CoreMetadata, want)
			}
		}
	}
}

// TestMetadataEgress: the same through the egress tunnel, on a
// files.pythonhosted.org URL pipgate never wrote.
func TestMetadataEgress(t *testing.T) {
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
	c := startTunnel(t, tp.srv).client(true)
	good := signedDist(t, up, tp, "demo", "1.0", nil, nil)
	injected := append(pypitest.Metadata("demo", "2.0", pypitest.WheelOptions{}), "Requires-Dist: evil-dependency\n"...)
	hostile := signedDist(t, up, tp, "demo", "2.0", nil, func(d *pypitest.Dist) { d.Metadata = injected })
	r := getMeta(t, c, "GET", "https://files.pythonhosted.org/packages/ab/cd/ef/"+good.Filename+".metadata")
	if want := pypitest.Metadata("demo", "1.0", pypitest.WheelOptions{}); r.status != 200 || !bytes.Equal(r.body, want) ||
		r.header.Get(headerVerdict) != "verified" {
		t.Errorf("verified metadata through the tunnel: %s %q", r.line, r.body)
	}
	r = getMeta(t, c, "GET", "https://files.pythonhosted.org/packages/ab/cd/ef/"+hostile.Filename+".metadata")
	assertMetadataRefused(t, "hostile metadata through the tunnel", r, metadataMismatch, hostile.Filename, "evil-dependency")
	r = getMeta(t, c, "GET", "https://pypi.org/files/demo/"+hostile.Filename+".metadata")
	assertMetadataRefused(t, "hostile metadata through the tunnel, pipgate's URL", r, metadataMismatch, hostile.Filename, "evil-dependency")
}

// TestMetadataPip: real pip against a hostile index that adds a
// Requires-Dist to the metadata of a genuinely signed wheel. Through
// pipgate pip never sees the dependency: it stops at the refused metadata
// and never asks for the injected project. The control: the same
// injection on an unattested wheel (no claim) reaches pip, which goes
// looking for the dependency, so the test can see one.
func TestMetadataPip(t *testing.T) {
	t.Parallel() // after the sequential tests (the heap measurements among them), beside the other slow ones
	if testing.Short() {
		t.Skip("-short: skipping the real-pip run")
	}
	pip := pypitest.NewPip(t)
	up := pypitest.NewServer(t)
	tp := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
	inject := func(name string) func(*pypitest.Dist) {
		return func(d *pypitest.Dist) {
			d.Metadata = append(pypitest.Metadata(name, "1.0", pypitest.WheelOptions{}), "Requires-Dist: injected-dependency\n"...)
		}
	}
	signed := signedDist(t, up, tp, "signed", "1.0", nil, inject("signed"))
	addWheel(up, "unsigned", "1.0", inject("unsigned"))
	dep := pypitest.WheelOptions{Requires: []string{"helper"}}
	genuine := signedDist(t, up, tp, "genuine", "1.0", pypitest.MakeWheel("genuine", "1.0", dep), nil)
	helper := signedDist(t, up, tp, "helper", "1.0", nil, nil)
	resolve := func(req string) (string, error) {
		return pip.Run(t.Context(), "", "download", "--index-url", tp.http.URL+"/simple/", "-d", t.TempDir(), req)
	}

	out, err := resolve("signed==1.0")
	if err == nil || !strings.Contains(out, "403 Client Error: metadata-mismatch: the index's METADATA for "+signed.Filename) {
		t.Errorf("pip with injected metadata on a signed wheel: %v; want pip to stop at the 403 metadata-mismatch\n%s", err, out)
	}
	if strings.Contains(out, "injected-dependency") || strings.Contains(out, "injected_dependency") || up.Hits("/simple/injected-dependency/") != 0 {
		t.Errorf("pip saw the injected dependency of a signed wheel (%d upstream page requests)\n%s",
			up.Hits("/simple/injected-dependency/"), out)
	}
	out, err = resolve("unsigned==1.0")
	if err == nil || !strings.Contains(out, "injected-dependency") || up.Hits("/simple/injected-dependency/") == 0 {
		t.Errorf("control: pip did not see the dependency injected into an unattested wheel's metadata: %v\n%s", err, out)
	}
	// Genuine metadata resolves through the metadata route, dependency
	// included, and each wheel is fetched from the upstream once.
	out, err = resolve("genuine==1.0")
	if err != nil || !strings.Contains(out, "Obtaining dependency information for genuine==1.0") ||
		!strings.Contains(out, "helper-1.0-py3-none-any.whl") {
		t.Errorf("pip with genuine metadata: %v\n%s", err, out)
	}
	for _, d := range []pypitest.Dist{genuine, helper} {
		if n := up.Hits("/files/" + sha(d.Content) + "/"); n != 1 {
			t.Errorf("%s: %d upstream fetches; want 1 (the wheel, filled for its metadata, then a hit)", d.Filename, n)
		}
	}
}

// BenchmarkMetadata is the cost of PEP 658 metadata for pip: a verified
// wheel's (read from the wheel: the whole wheel is fetched on a miss) against
// an unattested wheel's (the upstream .metadata, as every wheel's was before
// issue 17), cold (a fresh proxy per request) and cached.
func BenchmarkMetadata(b *testing.B) {
	for _, size := range []int{100 << 10, 8 << 20} {
		up := pypitest.NewServer(b)
		files := map[string][]byte{"demo/blob.bin": content(size, "bench")}
		verified := signedDist(b, up, nil, "signed", "1.0", pypitest.MakeWheel("signed", "1.0", pypitest.WheelOptions{Files: files}), nil)
		unattested := addWheel(up, "plain", "1.0", func(d *pypitest.Dist) {
			d.Content = pypitest.MakeWheel("plain", "1.0", pypitest.WheelOptions{Files: files})
		})
		for _, c := range []struct {
			name, project string
			d             pypitest.Dist
		}{{"verified", "signed", verified}, {"unattested", "plain", unattested}} {
			b.Run(fmt.Sprintf("%s/%dKiB/cold", c.name, size>>10), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					tp := newTestProxy(b, up, "", func(o *Options) { o.EagerReleases = 0 })
					tp.verifier.set(verified.Filename, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: testIdentity})
					if r := getMeta(b, plainClient, "GET", tp.http.URL+"/simple/"+c.project+"/"); r.status != 200 {
						b.Fatal(r.line)
					}
					b.StartTimer()
					if r := getMeta(b, plainClient, "GET", tp.http.URL+"/files/"+c.project+"/"+c.d.Filename+".metadata"); r.status != 200 {
						b.Fatal(r.line)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/%dKiB/cached", c.name, size>>10), func(b *testing.B) {
				tp := newTestProxy(b, up, "", func(o *Options) { o.EagerReleases = 0 })
				tp.verifier.set(verified.Filename, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: testIdentity})
				url := tp.http.URL + "/files/" + c.project + "/" + c.d.Filename + ".metadata"
				if r := getMeta(b, plainClient, "GET", url); r.status != 200 {
					b.Fatal(r.line)
				}
				b.ResetTimer()
				for range b.N {
					if r := getMeta(b, plainClient, "GET", url); r.status != 200 {
						b.Fatal(r.line)
					}
				}
			})
		}
	}
}
