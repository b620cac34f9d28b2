// Package provenance verifies PEP 740 attestations the way PyPI's own
// verifier (pypi-attestations) does: it parses the Integrity API provenance
// object and single attestations, converts each attestation to a Sigstore
// bundle v0.3, verifies it offline with sigstore-go (certificate chain at the
// signed time, SCT, transparency-log inclusion proof, DSSE signature), then
// applies the PEP 740 checks sigstore-go does not do (exactly one subject, a subject name parsed-equal to the file name,
// the sha256 of the actual bytes, a known predicate type) and reads the
// signer identity from the verified certificate.
//
// Two kinds of transparency log entry are verified, the two sigstore-python
// 4.3's verify_dsse accepts: Rekor v1 dsse 0.0.1 (inclusion proof and
// signed entry timestamp; its integrated time, or an RFC 3161 timestamp,
// is the signed time) and Rekor v2 hashedrekord 0.0.2 over the hash of the
// envelope's PAE (inclusion proof against a signed checkpoint; sigstore-go
// rebuilds the entry from the envelope and the certificate). A Rekor v2
// entry records no time, so it needs an RFC 3161 timestamp
// (verification_material.timestamps) from a timestamp authority in the
// trusted root. Other kinds, the deprecated Rekor v2 dsse 0.0.2 among
// them, are [ReasonUnsupported].
//
// The package takes bytes and returns results; it fetches nothing except the
// Sigstore trusted root, through [TrustSource]. It is the only importer of
// sigstore-go in pipgate.
package provenance
