package policy

import (
	"testing"

	"github.com/pipgate/pipgate/pypi"
)

// TestRenderMatchesPypi keeps the allocation-free renderings of reasons in
// step with pypi's String methods.
func TestRenderMatchesPypi(t *testing.T) {
	ids := []pypi.Identity{
		{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: "release.yml", Ref: "refs/tags/v1"},
		{Kind: pypi.KindGitHub, Repository: "o/r"},
		{Kind: pypi.KindGitLab, Repository: "g/s/p", Workflow: ".gitlab-ci.yml"},
		{Kind: pypi.KindGoogle, Email: "sa@p.iam.gserviceaccount.com"},
		{Kind: pypi.KindIdentity, Issuer: "https://github.com/login/oauth", Subject: "me@example.com"},
		{Kind: "", Issuer: "https://issuer", Subject: "s"},
	}
	for _, id := range ids {
		var b reasonBuilder
		b.identity(&id)
		if got, want := b.String(), id.String(); got != want {
			t.Errorf("identity: got %q; want %q", got, want)
		}
	}
	pubs := []pypi.Publisher{
		{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: "release.yml"},
		{Kind: pypi.KindGitLab, Repository: "g/p"},
		{Kind: pypi.KindGoogle, Email: "sa@p.iam.gserviceaccount.com"},
		{Kind: pypi.KindIdentity, Issuer: "https://github.com/login/oauth", Subject: "me@example.com"},
		{Kind: "other"},
	}
	for _, p := range pubs {
		var b reasonBuilder
		b.publisher(p)
		if got, want := b.String(), p.String(); got != want {
			t.Errorf("publisher: got %q; want %q", got, want)
		}
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\nb\tc\x7f", 10, "a b c "},
		{"0123456789abc", 10, "0123456..."},
		{"ééééé", 8, "éé..."}, // never cuts inside a rune
	}
	for _, tt := range tests {
		if got := oneLine(tt.in, tt.max); got != tt.want {
			t.Errorf("oneLine(%q, %d) = %q; want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
