package pypi

import (
	"net/url"
	"testing"
)

// checkHrefResolver fails t unless the hrefResolver of base (resolved
// against page, as htmlBase does) resolves ref exactly as resolveURL and
// urlFilename do: the same URL, fragment, file name and failure.
func checkHrefResolver(t *testing.T, page, base, ref string) (short bool) {
	t.Helper()
	p, err := url.Parse(page)
	if err != nil {
		return false
	}
	b, err := htmlBase(p, base)
	if err != nil {
		return false
	}
	r := newHrefResolver(b)
	got, gotFrag, gotName, gotErr := r.resolve(ref, true)
	want, wantFrag, wantErr := resolveURL(b, ref)
	wantName := ""
	if wantErr == nil {
		wantName = urlFilename(want)
	}
	if got != want || gotFrag != wantFrag || gotName != wantName || (gotErr == nil) != (wantErr == nil) {
		t.Errorf("page %q, base %q, href %q: resolved %q, fragment %q, file %q, error %v; url.ResolveReference gives %q, %q, %q, %v",
			page, base, ref, got, gotFrag, gotName, gotErr, want, wantFrag, wantName, wantErr)
	}
	return r.prefix != "" && plainRef(cutFragment(ref)) || plainAbsolute(cutFragment(ref))
}

func cutFragment(ref string) string {
	for i := range len(ref) {
		if ref[i] == '#' {
			return ref[:i]
		}
	}
	return ref
}

var (
	resolverPages = []string{"https://pypi.example/simple/a/", "https://pypi.example/simple/a", "http://h", "https:opaque/x", "ftp://h/a/", ""}
	resolverBases = []string{"", "https://x.example/p/p/", "https://x.example/p/p", "/other/dir/", "sub/", "../up/", "./",
		"https://h/a/../b/./c/", "https://h/a/..", "https://h/a/.", "https://h/%20a/b%2Fc/d", "https://h/a%zz/", "https://h/a b/",
		"https://u:p@h:8080/a/b?q=1#f", "https://h?q", "https:opaque", "https:///x/", "http://h//a//", "//h2/d/", "https://h/..", "https://h/../..",
		"https://h/:a/", "mailto:x@y", "https://h/a;b=c/d@e/", "https://h/~u/+x/"}
	resolverRefs = []string{"a-1.zip", "a-1.tar.gz#sha256=abc", "sub/a.whl", "s/t/u-1.0+local.whl#md5=00&x=y", "a/./b", "a/../b", "../a", "./a",
		".", "..", "...", "a/...", "a/", "a//b", "a%20b", "a#x%41", "a#", "a?b", "?q", "https://other/x", "//h2/x", "a:b", "", "#frag",
		"~x/+y", "a b", "a\x7fb", "/abs/a.zip", "A_Z-0.9~",
		"https://files.example/packages/ab/cd/pkg-1.0-py3-none-any.whl#sha256=00", "http://h:8080/a.zip", "HTTPS://h/a", "https://H/a",
		"https://h:/a", "https://h:x/a", "https://h:80:80/a", "https://u@h/a", "https://u:p@h/a", "https://h/a/../b", "https://h/./b",
		"https://h", "https://h/", "https://h//a", "https://h/a//b", "https://h/a/", "https://h/a%20b", "https://h/a?x", "https://[::1]/a",
		"https://h/a#x%41", "https:/h/a", "https:h/a", "http://h.-/a", "ftp://h/a", "https://h/a:b", "https://-/a", "https://h/~a/+b"}
)

// TestHrefResolver: the short cut gives what url.ResolveReference gives,
// on hrefs and bases of every kind, and is taken for the usual ones.
func TestHrefResolver(t *testing.T) {
	for _, page := range resolverPages {
		for _, base := range resolverBases {
			for _, ref := range resolverRefs {
				checkHrefResolver(t, page, base, ref)
			}
		}
	}
	for _, c := range []struct{ base, ref, want string }{
		{"", "a-1.zip", "https://pypi.example/simple/a/a-1.zip"},
		{"https://x.example/p/p/", "a-1.tar.gz#sha256=abc", "https://x.example/p/p/a-1.tar.gz"},
		{"../up/", "sub/a.whl", "https://pypi.example/simple/up/sub/a.whl"},
		{"", "https://files.example/p/ab/pkg-1.0.tar.gz#sha256=ab", "https://files.example/p/ab/pkg-1.0.tar.gz"},
		{"https://x.example/p/", "http://h:8080/a.zip", "http://h:8080/a.zip"},
	} {
		if !checkHrefResolver(t, "https://pypi.example/simple/a/", c.base, c.ref) {
			t.Errorf("base %q, href %q: the short cut was not taken", c.base, c.ref)
		}
		b, _ := htmlBase(&url.URL{Scheme: "https", Host: "pypi.example", Path: "/simple/a/"}, c.base)
		if got, _, _, _ := newHrefResolver(b).resolve(c.ref, true); got != c.want {
			t.Errorf("base %q, href %q: %q, want %q", c.base, c.ref, got, c.want)
		}
	}
}

// FuzzHrefResolver holds hrefResolver to url.ResolveReference.
func FuzzHrefResolver(f *testing.F) {
	for _, base := range resolverBases {
		for _, ref := range resolverRefs {
			f.Add(resolverPages[0], base, ref)
		}
	}
	f.Fuzz(func(t *testing.T, page, base, ref string) {
		checkHrefResolver(t, page, base, ref)
	})
}
