package provenance

import (
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/pipgate/pipgate/pypi"
)

// OIDC issuers of the trusted publishers PyPI supports.
const (
	IssuerGitHub = "https://token.actions.githubusercontent.com"
	IssuerGitLab = "https://gitlab.com"
	IssuerGoogle = "https://accounts.google.com"
)

// certFacts are the identity-bearing values of a Fulcio certificate.
type certFacts struct {
	issuerV1, issuerV2 string
	repoURI            string
	digest, ref        string
	buildConfigURI     string
	sans               []string // every SAN: URIs, e-mails and OtherName (.7)
	emails             []string // the rfc822Name SANs
}

func readCertFacts(cert *x509.Certificate) (certFacts, error) {
	var f certFacts
	for _, e := range cert.Extensions {
		var dst *string
		switch {
		case e.Id.Equal(certificate.OIDIssuer): //nolint:staticcheck // the v1 issuer extension (.1) of older certificates, read on purpose
			f.issuerV1 = string(e.Value) // raw, not DER
			continue
		case e.Id.Equal(certificate.OIDIssuerV2):
			dst = &f.issuerV2
		case e.Id.Equal(certificate.OIDSourceRepositoryURI):
			dst = &f.repoURI
		case e.Id.Equal(certificate.OIDSourceRepositoryDigest):
			dst = &f.digest
		case e.Id.Equal(certificate.OIDSourceRepositoryRef):
			dst = &f.ref
		case e.Id.Equal(certificate.OIDBuildConfigURI):
			dst = &f.buildConfigURI
		default:
			continue
		}
		var s string
		rest, err := asn1.UnmarshalWithParams(e.Value, &s, "utf8")
		if err != nil || len(rest) != 0 {
			return certFacts{}, newError(ReasonFormat, err, "certificate extension %s is not a DER UTF8String", e.Id)
		}
		*dst = s
	}
	f.sans = cryptoutils.GetSubjectAlternateNames(cert)
	f.emails = cert.EmailAddresses
	return f, nil
}

// issuer is the OIDC issuer: extension .8, falling back to .1.
func (f certFacts) issuer() string {
	if f.issuerV2 != "" {
		return f.issuerV2
	}
	return f.issuerV1
}

// identityFromCert reads the signer identity from a verified certificate
// (see [pypi.Identity]): Kind from the issuer, Repository from the Source
// Repository URI, Workflow only when the Build Config URI has PyPI's exact
// expected form with an "@" suffix equal to the commit or the ref.
func identityFromCert(f certFacts) pypi.Identity {
	id := pypi.Identity{
		Kind:           pypi.KindIdentity,
		Issuer:         f.issuer(),
		Ref:            f.ref,
		Commit:         f.digest,
		BuildConfigURI: f.buildConfigURI,
	}
	if len(f.sans) > 0 {
		id.Subject = f.sans[0]
	}
	if len(f.emails) > 0 {
		id.Email = f.emails[0]
	}
	switch {
	case f.issuerV2 == IssuerGitHub && strings.HasPrefix(f.repoURI, "https://github.com/"):
		id.Kind = pypi.KindGitHub
		id.Repository = strings.TrimPrefix(f.repoURI, "https://github.com/")
		if f.digest != "" || f.ref != "" {
			id.Workflow = workflowFrom(f.buildConfigURI, "https://github.com/"+id.Repository+"/.github/workflows/", f.digest, f.ref, false)
		}
	case f.issuerV2 == IssuerGitLab && strings.HasPrefix(f.repoURI, "https://gitlab.com/"):
		id.Kind = pypi.KindGitLab
		id.Repository = strings.TrimPrefix(f.repoURI, "https://gitlab.com/")
		if f.digest != "" && f.ref != "" {
			id.Workflow = workflowFrom(f.buildConfigURI, "https://gitlab.com/"+id.Repository+"//", f.digest, f.ref, true)
		}
	case f.issuerV1 == IssuerGoogle && id.Email != "":
		id.Kind = pypi.KindGoogle
	}
	return id
}

// workflowFrom returns the workflow W such that buildConfigURI is exactly
// prefix + W + "@" + suffix for suffix the commit or the ref, or "".
func workflowFrom(buildConfigURI, prefix, digest, ref string, path bool) string {
	if !strings.HasPrefix(buildConfigURI, prefix) {
		return ""
	}
	for _, suffix := range []string{digest, ref} {
		if suffix == "" || !strings.HasSuffix(buildConfigURI, "@"+suffix) {
			continue
		}
		w := buildConfigURI[len(prefix) : len(buildConfigURI)-len(suffix)-1]
		if w == "" || (!path && strings.Contains(w, "/")) {
			continue
		}
		return w
	}
	return ""
}

// checkPublisher checks the certificate against the publisher p the way
// pypi-attestations' publisher policies do, with their error texts; the
// final word is p.Matches(id), so the identity and the check never disagree.
func checkPublisher(p pypi.Publisher, f certFacts, id pypi.Identity) error {
	mismatch := func(format string, args ...any) error {
		return newError(ReasonIdentityMismatch, nil, format, args...)
	}
	switch p.Kind {
	case pypi.KindGitHub, pypi.KindGitLab:
		issuer, host := IssuerGitHub, "https://github.com/"
		if p.Kind == pypi.KindGitLab {
			issuer, host = IssuerGitLab, "https://gitlab.com/"
		}
		if f.issuerV2 != issuer {
			return mismatch("Certificate's Issuer does not match (got %q, expected %q)", f.issuerV2, issuer)
		}
		if f.repoURI != host+p.Repository {
			return mismatch("Certificate's SourceRepositoryURI does not match (got %q, expected %q)", f.repoURI, host+p.Repository)
		}
		if p.Kind == pypi.KindGitHub && f.digest == "" && f.ref == "" {
			return mismatch("Certificate must contain either Source Repository Digest or Source Repository Ref")
		}
		if p.Kind == pypi.KindGitLab && (f.digest == "" || f.ref == "") {
			return mismatch("Certificate must contain both Source Repository Digest and Source Repository Ref")
		}
		if p.Workflow != "" && id.Workflow != p.Workflow {
			return mismatch("Certificate's Build Config URI (%s) does not match expected Trusted Publisher (%s @ %s)", f.buildConfigURI, p.Workflow, p.Repository)
		}
	case pypi.KindGoogle:
		if f.issuerV1 != IssuerGoogle {
			return mismatch("Certificate's Issuer does not match (got %q, expected %q)", f.issuerV1, IssuerGoogle)
		}
		if !slices.Contains(f.sans, p.Email) {
			return mismatch("Certificate's SANs do not match %s (got %s)", p.Email, strings.Join(f.sans, ", "))
		}
	case pypi.KindIdentity:
		if id.Issuer != p.Issuer {
			return mismatch("Certificate's Issuer does not match (got %q, expected %q)", id.Issuer, p.Issuer)
		}
		if id.Subject != p.Subject {
			return mismatch("Certificate's SANs do not match %s (got %s)", p.Subject, strings.Join(f.sans, ", "))
		}
	default:
		return mismatch("unknown publisher kind %q", p.Kind)
	}
	if !p.Matches(id) {
		return mismatch("certificate identity %s does not match expected Trusted Publisher %s", id, p)
	}
	return nil
}
