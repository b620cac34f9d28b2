package provenance

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pipgate/pipgate/pypi"
)

const bundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// VerifierOptions configures a [Verifier].
type VerifierOptions struct {
	// TrustedRoot is the Sigstore trust material (Fulcio CAs, Rekor and CT
	// logs, timestamp authorities). Required.
	//
	// SCTs are required whenever the trusted root lists at least one CT log,
	// as every public-good and staging root does. A root without CT logs
	// (a private Sigstore, or provenancetest's fake one) cannot check SCTs,
	// so none are required.
	TrustedRoot root.TrustedMaterial
}

// Verifier verifies PEP 740 attestations and provenance objects offline. It
// is safe for concurrent use.
//
// Which sigstore-go verifier checks an attestation depends on its log entry
// (see [Verifier.verify]): a Rekor v1 entry (dsse 0.0.1) has its signed
// integrated time; a Rekor v2 entry (hashedrekord 0.0.2) has none, so an
// RFC 3161 timestamp from a timestamp authority in the trusted root is
// required and is the only signing time used.
type Verifier struct {
	tlog     *verify.Verifier // Rekor v1: integrated time as the signed time
	observer *verify.Verifier // Rekor v1 with timestamps: RFC 3161 timestamps or integrated time
	rekor2   *verify.Verifier // Rekor v2: RFC 3161 timestamps only
	trusted  root.TrustedMaterial
	logIDs   map[string]bool // hex IDs of the trusted root's transparency logs
}

// Result is what a successful verification established.
type Result struct {
	// Identity is the signer, read from the verified certificate.
	Identity pypi.Identity
	// Recorded is the publisher PyPI recorded (nil for a bare attestation).
	Recorded *pypi.Publisher
	// PredicateTypes lists the predicate type of each verified attestation.
	PredicateTypes []string
}

// NewVerifier returns a Verifier for opts.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	if opts.TrustedRoot == nil {
		return nil, errors.New("provenance: VerifierOptions.TrustedRoot is required")
	}
	common := []verify.VerifierOption{verify.WithTransparencyLog(1)}
	if len(opts.TrustedRoot.CTLogs()) > 0 {
		common = append(common, verify.WithSignedCertificateTimestamps(1))
	}
	tl, err := verify.NewVerifier(opts.TrustedRoot, append(common, verify.WithIntegratedTimestamps(1))...)
	if err != nil {
		return nil, fmt.Errorf("provenance: building verifier: %w", err)
	}
	ob, err := verify.NewVerifier(opts.TrustedRoot, append(common, verify.WithObserverTimestamps(1))...)
	if err != nil {
		return nil, fmt.Errorf("provenance: building verifier: %w", err)
	}
	// A Rekor v2 entry has no signed entry timestamp: sigstore-go then takes
	// no time from the log (it trusts an integrated time only with an
	// inclusion promise), and WithSignedTimestamps makes a verified RFC 3161
	// timestamp the time the certificate is checked at.
	r2, err := verify.NewVerifier(opts.TrustedRoot, append(common, verify.WithSignedTimestamps(1))...)
	if err != nil {
		return nil, fmt.Errorf("provenance: building verifier: %w", err)
	}
	logIDs := map[string]bool{}
	for id := range opts.TrustedRoot.RekorLogs() {
		logIDs[id] = true
	}
	return &Verifier{tlog: tl, observer: ob, rekor2: r2, trusted: opts.TrustedRoot, logIDs: logIDs}, nil
}

// VerifyAttestation verifies one attestation for the file d. When expect is
// not nil the certificate must also match that publisher (PyPI's rules);
// with nil, the identity is only reported, for the caller to check.
func (v *Verifier) VerifyAttestation(att []byte, d Dist, expect *pypi.Publisher) (*Result, error) {
	a, err := ParseAttestation(att)
	if err != nil {
		return nil, err
	}
	id, pt, err := v.verify(a, d, expect)
	if err != nil {
		return nil, err
	}
	return &Result{Identity: id, PredicateTypes: []string{pt}}, nil
}

// VerifyProvenance verifies an Integrity API provenance object for the file
// d: every attestation of every bundle must verify and match the publisher
// PyPI recorded in its bundle, and all must name the same signer.
func (v *Verifier) VerifyProvenance(prov []byte, d Dist) (*Result, error) {
	p, err := ParseProvenance(prov)
	if err != nil {
		return nil, err
	}
	return v.verifyParsed(p, d)
}

func (v *Verifier) verifyParsed(p *Provenance, d Dist) (*Result, error) {
	rec := p.Bundles[0].Publisher
	res := &Result{Recorded: &rec}
	for i := range p.Bundles {
		b := &p.Bundles[i]
		for j := range b.Attestations {
			id, pt, err := v.verify(&b.Attestations[j], d, &b.Publisher)
			if err != nil {
				if len(p.Bundles) > 1 || len(b.Attestations) > 1 {
					var e *Error
					if errors.As(err, &e) {
						return res, &Error{Reason: e.Reason, Detail: fmt.Sprintf("attestation %d of bundle %d: %s", j, i, e.Detail), Err: e.Err}
					}
				}
				return res, err
			}
			if i == 0 && j == 0 {
				res.Identity = id
			} else if !res.Identity.SameSigner(id) {
				return res, newError(ReasonIdentityMismatch, nil, "attestations name different signers: %s and %s", res.Identity, id)
			}
			res.PredicateTypes = append(res.PredicateTypes, pt)
		}
	}
	return res, nil
}

// Facts verifies prov for d and maps the outcome onto a verdict: verified,
// unsupported, or invalid with the failure's Reason and Detail. Only a bad
// call (d.SHA256 not a sha256 hex digest) gives VerdictError.
func (v *Verifier) Facts(prov []byte, d Dist) pypi.Facts {
	p, err := ParseProvenance(prov)
	var res *Result
	if err == nil {
		res, err = v.verifyParsed(p, d)
	}
	var f pypi.Facts
	if res != nil {
		f.Recorded = res.Recorded
	}
	if err == nil {
		id := res.Identity
		f.Verdict = pypi.VerdictVerified
		f.Identity = &id
		return f
	}
	var e *Error
	if !errors.As(err, &e) {
		// Not a failed check but a bad call (a Dist without a sha256).
		f.Verdict, f.Detail = pypi.VerdictError, err.Error()
		return f
	}
	f.Verdict, f.Reason, f.Detail = pypi.VerdictInvalid, e.Reason, e.Detail
	if e.Reason == ReasonUnsupported {
		f.Verdict = pypi.VerdictUnsupported
	}
	return f
}

// The transparency log entries a PEP 740 attestation (a DSSE envelope) can
// carry, as sigstore-python 4.3's verify_dsse accepts them.
const (
	// rekorV1 is a Rekor v1 dsse 0.0.1 entry: the envelope's payload hash,
	// signature and certificate, with an inclusion promise (signed entry
	// timestamp) whose integrated time is the signing time.
	rekorV1 = "Rekor v1 dsse 0.0.1"
	// rekorV2 is a Rekor v2 hashedrekord 0.0.2 entry over the hash of the
	// envelope's PAE; it carries no time, so an RFC 3161 timestamp must.
	rekorV2 = "Rekor v2 hashedrekord 0.0.2"
)

// logKind names the kind of entry kv labels, "" for one pipgate does not
// verify. The label is checked against the entry body by sigstore-go
// (tlog.ParseTransparencyLogEntry), so it cannot select a weaker check.
func logKind(kv *protorekor.KindVersion) string {
	switch {
	case kv.GetKind() == "dsse" && kv.GetVersion() == "0.0.1":
		return rekorV1
	case kv.GetKind() == "hashedrekord" && kv.GetVersion() == "0.0.2":
		return rekorV2
	}
	return ""
}

// toBundle converts an attestation to a Sigstore bundle v0.3 as
// pypi-attestations' to_bundle does, after rejecting what sigstore-go
// v1.3.0 cannot check.
func toBundle(a *Attestation) (*signedEntity, *x509.Certificate, error) {
	cert, err := x509.ParseCertificate(a.Certificate)
	if err != nil {
		return nil, nil, newError(ReasonFormat, err, "invalid X.509 certificate: %v", err)
	}
	raw := a.TransparencyEntries[0]
	tle := new(protorekor.TransparencyLogEntry)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, tle); err != nil {
		return nil, nil, newError(ReasonFormat, err, "invalid transparency log entry: %v", err)
	}
	kv := tle.GetKindVersion()
	if kv == nil {
		return nil, nil, newError(ReasonFormat, nil, "invalid transparency log entry: missing kindVersion")
	}
	kind := logKind(kv)
	if kind == "" {
		if kv.GetKind() == "dsse" && kv.GetVersion() == "0.0.2" {
			return nil, nil, newError(ReasonUnsupported, nil, "transparency log entry is Rekor v2 dsse 0.0.2, a deprecated kind sigstore-go v1.3.0 cannot verify (Rekor v2 logs DSSE envelopes as hashedrekord 0.0.2)")
		}
		return nil, nil, newError(ReasonUnsupported, nil, "transparency log entry kind %q version %q is not supported", kv.GetKind(), kv.GetVersion())
	}
	switch {
	case tle.GetLogId() == nil || len(tle.GetLogId().GetKeyId()) == 0:
		return nil, nil, newError(ReasonFormat, nil, "invalid transparency log entry: missing logId")
	case tle.GetInclusionProof() == nil:
		return nil, nil, newError(ReasonFormat, nil, "invalid transparency log entry: missing inclusionProof")
	case tle.GetInclusionProof().GetCheckpoint().GetEnvelope() == "":
		return nil, nil, newError(ReasonFormat, nil, "invalid transparency log entry: inclusion proof without checkpoint")
	case len(tle.GetCanonicalizedBody()) == 0:
		return nil, nil, newError(ReasonFormat, nil, "invalid transparency log entry: missing canonicalizedBody")
	}
	vm := &protobundle.VerificationMaterial{
		Content:     &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: a.Certificate}},
		TlogEntries: []*protorekor.TransparencyLogEntry{tle},
	}
	if len(a.Timestamps) > 0 {
		tv := &protobundle.TimestampVerificationData{}
		for _, t := range a.Timestamps {
			tv.Rfc3161Timestamps = append(tv.Rfc3161Timestamps, &protocommon.RFC3161SignedTimestamp{SignedTimestamp: t})
		}
		vm.TimestampVerificationData = tv
	}
	pb := &protobundle.Bundle{
		MediaType:            bundleMediaType,
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload:     a.Statement,
			PayloadType: inTotoPayloadType,
			Signatures:  []*protodsse.Signature{{Sig: a.Signature}},
		}},
	}
	// Everything bundle.NewBundle validates is built here, except the log
	// entry: parse it once and hand sigstore-go the parsed entry, instead
	// of letting NewBundle and Verify parse it again each.
	// The same goes for the certificate: sigstore-go's Bundle parses it
	// again on every VerificationContent call (twice per Verify). The
	// content is the one Bundle.VerificationContent builds for a single
	// certificate (no chain, so no intermediates), from the bytes above.
	e, err := newSignedEntity(&bundle.Bundle{Bundle: pb}, bundle.NewCertificate(cert))
	if err != nil {
		return nil, nil, err
	}
	return e, cert, nil
}

// newSignedEntity parses b's one transparency log entry and returns b
// with it and content, the verification content of b.
func newSignedEntity(b *bundle.Bundle, content verify.VerificationContent) (*signedEntity, error) {
	entries, err := b.TlogEntries()
	if err != nil {
		return nil, newError(ReasonFormat, err, "invalid transparency log entry: %v", err)
	}
	if len(entries) != 1 {
		return nil, newError(ReasonFormat, nil, "invalid bundle: %d transparency log entries, want 1", len(entries))
	}
	kv := entries[0].TransparencyLogEntry().GetKindVersion()
	kind := logKind(kv)
	if kind == "" {
		return nil, newError(ReasonUnsupported, nil, "transparency log entry kind %q version %q is not supported", kv.GetKind(), kv.GetVersion())
	}
	// sigstore-go tells Rekor v1 from v2 by the body, not the label: make
	// them agree, so the verifier chosen from the label is the right one.
	if entries[0].IsRekorV2() != (kind == rekorV2) {
		return nil, newError(ReasonFormat, nil, "invalid transparency log entry: its body is not the %s/%s entry its kindVersion says", kv.GetKind(), kv.GetVersion())
	}
	return &signedEntity{Bundle: b, entries: entries, content: content, kind: kind}, nil
}

// signedEntity is a bundle whose transparency log entries and certificate
// are parsed once.
type signedEntity struct {
	*bundle.Bundle
	entries []*tlog.Entry
	content verify.VerificationContent
	kind    string // rekorV1 or rekorV2
}

// TlogEntries returns the entries parsed when the bundle was built.
func (e *signedEntity) TlogEntries() ([]*tlog.Entry, error) { return e.entries, nil }

// VerificationContent returns the certificate parsed when the bundle was built.
func (e *signedEntity) VerificationContent() (verify.VerificationContent, error) {
	return e.content, nil
}

// sigstoreVerifier returns the sigstore-go verifier for b's log entry:
//   - Rekor v1 without timestamps: the entry's integrated time, from its
//     signed entry timestamp (as before Rekor v2);
//   - Rekor v1 with RFC 3161 timestamps: those or the integrated time;
//   - Rekor v2: RFC 3161 timestamps only, since the entry records no time.
func (v *Verifier) sigstoreVerifier(b *signedEntity) *verify.Verifier {
	switch {
	case b.kind == rekorV2:
		return v.rekor2
	case len(b.VerificationMaterial.GetTimestampVerificationData().GetRfc3161Timestamps()) > 0:
		return v.observer
	}
	return v.tlog
}

// verifySigstore runs sigstore-go's offline verification of b (log entry,
// signing time, certificate chain and SCT at that time, signature, and the
// artifact policy art) with the verifier for b's log entry; a failure is a
// signature [*Error] with sigstore-go's message, or with a sentence when a
// Rekor v2 entry has no usable timestamp.
func (v *Verifier) verifySigstore(b *signedEntity, art verify.ArtifactPolicyOption) error {
	_, err := v.sigstoreVerifier(b).Verify(b, verify.NewPolicy(art, verify.WithoutIdentitiesUnsafe()))
	if err == nil {
		return nil
	}
	if terr := v.explainTime(b); terr != nil {
		return terr
	}
	return newError(ReasonSignature, err, "%v", err)
}

// noTime starts the detail of a Rekor v2 attestation without a usable
// signing time.
const noTime = "no usable signing time: a Rekor v2 log entry records none"

// explainTime returns, for a Rekor v2 attestation that sigstore-go refused
// although its log entry verifies, an error that says in words that it has
// no usable RFC 3161 timestamp, when that is why (sigstore-go's own message
// is "threshold not met for verified signed timestamps"); nil otherwise,
// leaving sigstore-go's message. It only explains a failure: the checks are
// sigstore-go's, run again.
func (v *Verifier) explainTime(b *signedEntity) error {
	if b.kind != rekorV2 {
		return nil
	}
	if _, err := verify.VerifyTlogEntry(b, v.trusted, 1, false); err != nil {
		return nil // the log entry fails first, as in Verify
	}
	n := len(b.VerificationMaterial.GetTimestampVerificationData().GetRfc3161Timestamps())
	if n == 0 {
		return newError(ReasonSignature, nil, "%s, and the attestation has no RFC 3161 timestamp (verification_material.timestamps)", noTime)
	}
	if len(v.trusted.TimestampingAuthorities()) == 0 {
		return newError(ReasonSignature, nil, "%s, and the trusted root lists no timestamp authority to check the attestation's RFC 3161 timestamps", noTime)
	}
	ok, errs, err := verify.VerifySignedTimestamp(b, v.trusted)
	if err != nil || len(ok) > 0 {
		return nil
	}
	joined := errors.Join(errs...)
	return newError(ReasonSignature, joined, "%s, and none of the attestation's %d RFC 3161 timestamps is over this signature from a timestamp authority in the trusted root: %s",
		noTime, n, strings.ReplaceAll(joined.Error(), "\n", "; "))
}

// verify runs the whole path for one parsed attestation: conversion,
// sigstore-go, the PEP 740 statement checks, identity and publisher.
func (v *Verifier) verify(a *Attestation, d Dist, expect *pypi.Publisher) (pypi.Identity, string, error) {
	digest, err := hex.DecodeString(d.SHA256)
	if err != nil || len(digest) != 32 {
		return pypi.Identity{}, "", fmt.Errorf("provenance: Dist.SHA256 %q is not a sha256 hex digest", d.SHA256)
	}
	b, cert, err := toBundle(a)
	if err != nil {
		return pypi.Identity{}, "", err
	}
	verr := v.verifySigstore(b, verify.WithArtifactDigest("sha256", digest))
	if verr != nil {
		// Tell a bad signature from a signed statement that does not fit
		// the file: the latter verifies without the artifact policy.
		// sigstore-go reports a statement it cannot parse only after every
		// cryptographic check passed, with this prefix (v1.3.0).
		_, err := v.sigstoreVerifier(b).Verify(b, verify.NewPolicy(verify.WithoutArtifactUnsafe(), verify.WithoutIdentitiesUnsafe()))
		if err != nil && !strings.HasPrefix(err.Error(), "failed to fetch envelope statement") {
			return pypi.Identity{}, "", verr
		}
	}
	env, err := b.Envelope()
	if err != nil {
		return pypi.Identity{}, "", newError(ReasonFormat, err, "%v", err)
	}
	if pt := env.RawEnvelope().PayloadType; pt != inTotoPayloadType {
		return pypi.Identity{}, "", newError(ReasonFormat, nil, "expected JSON envelope, got %s", pt)
	}
	// The publisher check comes first, as in pypi-attestations (its policy
	// runs inside the Sigstore verification), then the statement checks.
	facts, err := readCertFacts(cert)
	if err != nil {
		return pypi.Identity{}, "", err
	}
	id := identityFromCert(facts)
	if expect != nil {
		if err := checkPublisher(*expect, facts, id); err != nil {
			return id, "", err
		}
	}
	// The statement bytes are exactly the envelope payload sigstore-go verified.
	predicate, err := checkStatement(a.Statement, d)
	if err != nil {
		return id, "", err
	}
	if verr != nil {
		return id, "", verr
	}
	return id, predicate, nil
}
