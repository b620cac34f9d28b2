// Package provenance verifies PEP 740 attestations the way PyPI's own
// verifier (pypi-attestations) does: it parses the Integrity API provenance
// object and single attestations, converts each attestation to a Sigstore
// bundle v0.3, verifies it offline with sigstore-go (certificate chain at the
// log's signed time, SCT, transparency-log inclusion proof and signed entry
// timestamp, DSSE signature), then applies the PEP 740 checks sigstore-go does
// not do (exactly one subject, a subject name parsed-equal to the file name,
// the sha256 of the actual bytes, a known predicate type) and reads the
// signer identity from the verified certificate.
//
// The package takes bytes and returns results; it fetches nothing except the
// Sigstore trusted root, through [TrustSource]. It is the only importer of
// sigstore-go in pipgate.
package provenance
