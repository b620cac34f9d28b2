package pypi

import "testing"

func TestSameSigner(t *testing.T) {
	gh := Identity{Kind: KindGitHub, Issuer: "https://token.actions.githubusercontent.com", Repository: "o/r", Workflow: "release.yml", Ref: "refs/tags/v1", Commit: "aa"}
	other := func(mod func(*Identity)) Identity { id := gh; mod(&id); return id }
	bare := Identity{Kind: KindIdentity, Issuer: "https://issuer.example", Subject: "a"}
	for _, c := range []struct {
		name string
		a, b Identity
		want bool
	}{
		{"another build of the same workflow", gh, other(func(id *Identity) { id.Ref, id.Commit = "refs/tags/v2", "bb" }), true},
		{"another repository", gh, other(func(id *Identity) { id.Repository = "o/fork" }), false},
		{"another workflow", gh, other(func(id *Identity) { id.Workflow = "other.yml" }), false},
		{"another issuer", gh, other(func(id *Identity) { id.Issuer = "https://evil.example" }), false},
		{"another kind", gh, other(func(id *Identity) { id.Kind = KindGitLab }), false},
		{"a bare identity's subject counts", bare, Identity{Kind: KindIdentity, Issuer: bare.Issuer, Subject: "b"}, false},
		{"the same bare identity", bare, bare, true},
	} {
		if got := c.a.SameSigner(c.b); got != c.want {
			t.Errorf("%s: SameSigner = %v; want %v", c.name, got, c.want)
		}
	}
}
