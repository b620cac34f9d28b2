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
type Verifier struct {
	tlog     *verify.Verifier // Rekor v1 integrated time as the signed time
	observer *verify.Verifier // RFC 3161 timestamps or integrated time
	logIDs   map[string]bool  // hex IDs of the trusted root's transparency logs
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
	logIDs := map[string]bool{}
	for id := range opts.TrustedRoot.RekorLogs() {
		logIDs[id] = true
	}
	return &Verifier{tlog: tl, observer: ob, logIDs: logIDs}, nil
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
			} else if !sameSigner(res.Identity, id) {
				return res, newError(ReasonIdentityMismatch, nil, "attestations name different signers: %s and %s", res.Identity, id)
			}
			res.PredicateTypes = append(res.PredicateTypes, pt)
		}
	}
	return res, nil
}

func sameSigner(a, b pypi.Identity) bool {
	return a.Kind == b.Kind && a.Issuer == b.Issuer && a.Repository == b.Repository &&
		a.Workflow == b.Workflow && a.Email == b.Email &&
		(a.Kind != pypi.KindIdentity || a.Subject == b.Subject)
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
	if kv.GetKind() != "dsse" || kv.GetVersion() != "0.0.1" {
		if kv.GetKind() == "dsse" && kv.GetVersion() == "0.0.2" {
			return nil, nil, newError(ReasonUnsupported, nil, "transparency log entry is Rekor v2 (dsse 0.0.2), which sigstore-go v1.3.0 cannot verify")
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
	b := &bundle.Bundle{Bundle: pb}
	entries, err := b.TlogEntries()
	if err != nil {
		return nil, nil, newError(ReasonFormat, err, "invalid transparency log entry: %v", err)
	}
	// The same goes for the certificate: sigstore-go's Bundle parses it
	// again on every VerificationContent call (twice per Verify). The
	// content is the one Bundle.VerificationContent builds for a single
	// certificate (no chain, so no intermediates), from the bytes above.
	return &signedEntity{Bundle: b, entries: entries, content: bundle.NewCertificate(cert)}, cert, nil
}

// signedEntity is a bundle whose transparency log entries and certificate
// are parsed once.
type signedEntity struct {
	*bundle.Bundle
	entries []*tlog.Entry
	content verify.VerificationContent
}

// TlogEntries returns the entries parsed when the bundle was built.
func (e *signedEntity) TlogEntries() ([]*tlog.Entry, error) { return e.entries, nil }

// VerificationContent returns the certificate parsed when the bundle was built.
func (e *signedEntity) VerificationContent() (verify.VerificationContent, error) {
	return e.content, nil
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
	sv := v.tlog
	if len(a.Timestamps) > 0 {
		sv = v.observer
	}
	_, verr := sv.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest), verify.WithoutIdentitiesUnsafe()))
	if verr != nil {
		// Tell a bad signature from a signed statement that does not fit
		// the file: the latter verifies without the artifact policy.
		// sigstore-go reports a statement it cannot parse only after every
		// cryptographic check passed, with this prefix (v1.3.0).
		_, err := sv.Verify(b, verify.NewPolicy(verify.WithoutArtifactUnsafe(), verify.WithoutIdentitiesUnsafe()))
		if err != nil && !strings.HasPrefix(err.Error(), "failed to fetch envelope statement") {
			return pypi.Identity{}, "", newError(ReasonSignature, verr, "%v", verr)
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
		return id, "", newError(ReasonSignature, verr, "%v", verr)
	}
	return id, predicate, nil
}
