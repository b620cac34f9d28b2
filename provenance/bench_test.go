package provenance

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/pypi"
)

func benchFixture(b *testing.B, rel string) []byte {
	data, err := os.ReadFile(filepath.Join(fixtures.PyPI(b), rel))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

const benchSHA = "9bb1add04b1b4e182be6b0b80931593f7a291eb49d69b4fd728a5d4cbcdc4bd3"

func benchRoot(b *testing.B) *root.TrustedRoot {
	tr, err := root.NewTrustedRootFromJSON(benchFixture(b, "trust/trusted_root.production.json"))
	if err != nil {
		b.Fatal(err)
	}
	return tr
}

// BenchmarkVerifyRealAttestation is pipgate's whole path on a real
// attestation: parse, convert, sigstore-go, PEP 740 checks, identity and
// publisher check. Compare with BenchmarkSigstoreGoOnly.
func BenchmarkVerifyRealAttestation(b *testing.B) {
	att := benchFixture(b, "pypi-attestations/pypi_attestations-0.0.19.tar.gz.publish.attestation")
	v, err := NewVerifier(VerifierOptions{TrustedRoot: benchRoot(b)})
	if err != nil {
		b.Fatal(err)
	}
	d := Dist{Filename: "pypi_attestations-0.0.19.tar.gz", SHA256: benchSHA}
	pub := pypi.Publisher{Kind: pypi.KindGitHub, Repository: "trailofbits/pypi-attestations", Workflow: "release.yml"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyAttestation(att, d, &pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSigstoreGoOnly is sigstore-go's Verify alone on a prebuilt bundle
// of the same attestation, with the same verifier options and policy.
func BenchmarkSigstoreGoOnly(b *testing.B) {
	a, err := ParseAttestation(benchFixture(b, "pypi-attestations/pypi_attestations-0.0.19.tar.gz.publish.attestation"))
	if err != nil {
		b.Fatal(err)
	}
	ent, _, err := toBundle(a)
	if err != nil {
		b.Fatal(err)
	}
	bun, err := bundle.NewBundle(ent.Bundle.Bundle) // a plain sigstore-go bundle
	if err != nil {
		b.Fatal(err)
	}
	sv, err := verify.NewVerifier(benchRoot(b), verify.WithSignedCertificateTimestamps(1), verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1))
	if err != nil {
		b.Fatal(err)
	}
	digest, _ := hex.DecodeString(benchSHA)
	policy := verify.NewPolicy(verify.WithArtifactDigest("sha256", digest), verify.WithoutIdentitiesUnsafe())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sv.Verify(bun, policy); err != nil {
			b.Fatal(err)
		}
	}
}
