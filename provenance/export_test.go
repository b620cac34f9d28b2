package provenance

import (
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

// VerifyBundleSigstore runs a Sigstore bundle through v's sigstore-go step,
// the one every attestation goes through after its conversion: verifier
// chosen by the log entry, sigstore-go's checks with the artifact digest
// sha256, failures as [*Error]. It lets tests check message-signature
// bundles, which no PEP 740 attestation can carry.
func (v *Verifier) VerifyBundleSigstore(b *bundle.Bundle, sha256 []byte) error {
	content, err := b.VerificationContent()
	if err != nil {
		return newError(ReasonFormat, err, "%v", err)
	}
	e, err := newSignedEntity(b, content)
	if err != nil {
		return err
	}
	return v.verifySigstore(e, verify.WithArtifactDigest("sha256", sha256))
}

// VerifyAttestationSigstore converts att as VerifyAttestation does and runs
// only the sigstore-go step, with the artifact digest sha256: it shows that
// an attestation passed every Sigstore check, which a later PEP 740 failure
// alone does not.
func (v *Verifier) VerifyAttestationSigstore(att []byte, sha256 []byte) error {
	a, err := ParseAttestation(att)
	if err != nil {
		return err
	}
	e, _, err := toBundle(a)
	if err != nil {
		return err
	}
	return v.verifySigstore(e, verify.WithArtifactDigest("sha256", sha256))
}
