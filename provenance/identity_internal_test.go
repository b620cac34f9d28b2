package provenance

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/pypi"
)

func loadPEM(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures.PyPI(t), "pypi-attestations", name))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCertificateIdentityFixtures(t *testing.T) {
	swift := pypi.Publisher{Kind: pypi.KindGitHub, Repository: "SWIFTSIM/swiftgalaxy", Workflow: "python-publish.yml"}
	google := pypi.Publisher{Kind: pypi.KindGoogle, Email: "919436158236-compute@developer.gserviceaccount.com"}
	cases := []struct {
		pem    string
		edit   func(*certFacts)
		p      pypi.Publisher
		want   string // "" means the publisher matches
		wantID string
	}{
		{pem: "no-source-repository-ref-extension.pem", p: swift, wantID: "github:SWIFTSIM/swiftgalaxy@python-publish.yml"},
		{pem: "no-source-repository-ref-extension.pem", p: with(swift, func(p *pypi.Publisher) { p.Repository = "swiftsim/swiftgalaxy" }), want: "SourceRepositoryURI does not match"},
		{pem: "no-source-repository-ref-extension.pem", edit: func(f *certFacts) { f.digest = "" }, p: swift,
			want: "Certificate must contain either Source Repository Digest or Source Repository Ref"},
		{pem: "200170367.pem", p: google, wantID: "google:919436158236-compute@developer.gserviceaccount.com"},
		{pem: "200170367.pem", p: with(google, func(p *pypi.Publisher) { p.Email = "x@developer.gserviceaccount.com" }), want: "SANs do not match"},
	}
	for _, c := range cases {
		t.Run(c.pem+" "+c.p.String(), func(t *testing.T) {
			f, err := readCertFacts(loadPEM(t, c.pem))
			if err != nil {
				t.Fatal(err)
			}
			if c.edit != nil {
				c.edit(&f)
			}
			id := identityFromCert(f)
			err = checkPublisher(c.p, f, id)
			if c.want == "" {
				if err != nil {
					t.Fatalf("got %v; want a match", err)
				}
				if got := id.String(); got != c.wantID {
					t.Errorf("got identity %q; want %q", got, c.wantID)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v; want an error containing %q", err, c.want)
			}
			if ReasonOf(err) != ReasonIdentityMismatch {
				t.Errorf("got reason %q; want %q", ReasonOf(err), ReasonIdentityMismatch)
			}
		})
	}
}

func with(p pypi.Publisher, f func(*pypi.Publisher)) pypi.Publisher {
	f(&p)
	return p
}

func TestWorkflowFrom(t *testing.T) {
	const gh = "https://github.com/o/r/.github/workflows/"
	cases := []struct {
		uri, prefix, digest, ref string
		path                     bool
		want                     string
	}{
		{gh + "release.yml@refs/tags/v1", gh, "abc", "refs/tags/v1", false, "release.yml"},
		{gh + "release.yml@abc", gh, "abc", "refs/tags/v1", false, "release.yml"},
		{gh + "release.yml@refs/heads/main", gh, "abc", "refs/tags/v1", false, ""},
		{gh + "sub/release.yml@abc", gh, "abc", "", false, ""},
		{gh + "@abc", gh, "abc", "", false, ""},
		{"https://github.com/o/other/.github/workflows/release.yml@abc", gh, "abc", "", false, ""},
		{"https://gitlab.com/g/p//ci/release.yml@refs/heads/main", "https://gitlab.com/g/p//", "abc", "refs/heads/main", true, "ci/release.yml"},
	}
	for _, c := range cases {
		if got := workflowFrom(c.uri, c.prefix, c.digest, c.ref, c.path); got != c.want {
			t.Errorf("workflowFrom(%q) = %q; want %q", c.uri, got, c.want)
		}
	}
}
