package pypi_test

import (
	"testing"

	"github.com/pipgate/pipgate/pypi"
)

func TestNegotiate(t *testing.T) {
	const (
		html   = pypi.ContentTypeHTML
		v1html = pypi.ContentTypeV1HTML
		v1json = pypi.ContentTypeV1JSON
	)
	tests := []struct{ accept, want string }{
		// protocol.md §a.
		{"", html},
		{"*/*", html},
		{"text/plain", html},
		{"text/html, application/vnd.pypi.simple.v1+html, application/vnd.pypi.simple.v1+json", html},
		{"application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html, text/html", html},
		{"text/html;q=0.01, application/vnd.pypi.simple.v1+html;q=0.2, application/vnd.pypi.simple.v1+json", v1json},
		// pip's exact header.
		{"application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01", v1json},
		{"application/vnd.pypi.simple.v1+json", v1json},
		{"application/vnd.pypi.simple.v1+html", v1html},
		{"text/html", html},
		{"APPLICATION/VND.PYPI.SIMPLE.V1+JSON", v1json},
		// latest maps to v1.
		{"application/vnd.pypi.simple.latest+json", v1json},
		{"application/vnd.pypi.simple.latest+html", v1html},
		// Wildcards: ties go to the server's order.
		{"application/*", v1html},
		{"application/*;q=0.9, text/html;q=0.5", v1html},
		{"application/*;q=0.5, application/vnd.pypi.simple.v1+json", v1json},
		{"*/*;q=0.1, application/vnd.pypi.simple.v1+json", v1json},
		{"*/*;q=0", html},
		{"text/html;q=0, application/vnd.pypi.simple.v1+json;q=0.5", v1json},
		{"application/vnd.pypi.simple.v1+json;q=0", html},
		// The most specific range wins, whatever its q.
		{"application/vnd.pypi.simple.v1+json;q=0.2, application/*;q=0.9", v1html},
		{"*/*, text/html;q=0", v1html},
		// Ranges with media-type parameters do not match parameterless offers.
		{"application/vnd.pypi.simple.v1+json;charset=utf-8", html},
		{"text/html;level=1, application/vnd.pypi.simple.v1+json;q=0.5", v1json},
		// Extension parameters after the weight are fine.
		{`application/vnd.pypi.simple.v1+json; q=0.5; ext="x y"`, v1json},
		{"application/vnd.pypi.simple.v1+json;q=1.000", v1json},
		{"application/vnd.pypi.simple.v1+json;Q=0.5", v1json},
		// Empty list elements are allowed.
		{", , application/vnd.pypi.simple.v1+json ,", v1json},
		// Invalid headers are treated as absent: text/html.
		{", ,", html},
		{"application/vnd.pypi.simple.v1+json, garbage", html},
		{"application/vnd.pypi.simple.v1+json;q=1.5", html},
		{"application/vnd.pypi.simple.v1+json;q=0.1234", html},
		{"application/vnd.pypi.simple.v1+json;q=", html},
		{"application/vnd.pypi.simple.v1+json;", html},
		{"application/vnd.pypi.simple.v1+json;charset", html},
		{"application/vnd.pypi.simple.v1+json;q=0.5x", html},
		{`application/vnd.pypi.simple.v1+json;a="unterminated`, html},
		{"application/", html},
	}
	for _, tt := range tests {
		if got := pypi.Negotiate(tt.accept); got != tt.want {
			t.Errorf("Negotiate(%q) = %q; want %q", tt.accept, got, tt.want)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	f.Add("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01")
	f.Add(`*/*;q=0.1;ext="a\"b"`)
	f.Fuzz(func(t *testing.T, accept string) {
		switch got := pypi.Negotiate(accept); got {
		case pypi.ContentTypeHTML, pypi.ContentTypeV1HTML, pypi.ContentTypeV1JSON:
		default:
			t.Fatalf("Negotiate(%q) = %q; not an offer", accept, got)
		}
	})
}
