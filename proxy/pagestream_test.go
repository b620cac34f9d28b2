package proxy

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestLargePageStreamed: a page too large for the page cache is written as
// it is rendered (chunked, no Content-Length), byte for byte the page a
// render gives, in both formats, HEAD included.
func TestLargePageStreamed(t *testing.T) {
	up := pypitest.NewServer(t)
	for i := range 300 {
		v := fmt.Sprintf("1.%d", i)
		addWheel(up, "big", v, func(d *pypitest.Dist) { d.RequiresPython = ">=3.8" })
	}
	signedDist(t, up, nil, "big", "2.0", nil, nil)
	small := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0; o.PageCacheBytes = 4 << 10 })
	large := newTestProxy(t, up, "", func(o *Options) { o.EagerReleases = 0 })
	p, _, err := large.srv.gate.Page(t.Context(), "big", gate.AnyAge)
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{pypi.ContentTypeV1JSON, pypi.ContentTypeHTML} {
		if !small.srv.gate.StreamsPage(p, ct) || large.srv.gate.StreamsPage(p, ct) {
			t.Fatalf("streamsPage(%s): %v with a 4 KiB page cache, %v with the default; want true, false", ct,
				small.srv.gate.StreamsPage(p, ct), large.srv.gate.StreamsPage(p, ct))
		}
	}
	for _, accept := range []string{pipAccept, "text/html"} {
		want := getMeta(t, plainClient, "GET", large.http.URL+"/simple/big/", "Accept", accept)
		if len(want.body) < 32<<10 {
			t.Fatalf("%s: the rendered page is %d bytes", accept, len(want.body))
		}
		for i := range 2 {
			got := getMeta(t, plainClient, "GET", small.http.URL+"/simple/big/", "Accept", accept)
			body := bytes.ReplaceAll(got.body, []byte(small.http.URL), []byte(large.http.URL))
			if got.status != 200 || !bytes.Equal(body, want.body) || got.header.Get("Content-Length") != "" {
				t.Errorf("%s, request %d: streamed page %s, Content-Length %q, %d bytes; want the rendered page's %d bytes, chunked",
					accept, i, got.line, got.header.Get("Content-Length"), len(got.body), len(want.body))
			}
			if got.header.Get("Content-Type") != want.header.Get("Content-Type") {
				t.Errorf("%s: Content-Type %q; want %q", accept, got.header.Get("Content-Type"), want.header.Get("Content-Type"))
			}
		}
		if h := fetch(t, plainClient, "HEAD", small.http.URL+"/simple/big/", "Accept", accept); h.status != 200 || h.n != 0 {
			t.Errorf("%s: HEAD %v", accept, h)
		}
	}
	if n := small.srv.gate.Renders(); n != 0 {
		t.Errorf("%d renders kept for a page that streams; want none", n)
	}
	page := parseJSONPage(t, getMeta(t, plainClient, "GET", small.http.URL+"/simple/big/", "Accept", pipAccept).body, small.http.URL+"/simple/big/")
	if len(page.Files) != 301 || page.Files[300].Provenance == "" {
		t.Errorf("streamed page: %d files, last provenance %q", len(page.Files), page.Files[len(page.Files)-1].Provenance)
	}
}
