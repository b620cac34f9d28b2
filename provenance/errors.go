package provenance

import (
	"errors"
	"fmt"
)

// Reason is the class of a verification failure, a small closed set a user
// can act on. It is stored as pypi.Facts.Reason.
type Reason string

// The failure classes.
const (
	// ReasonFormat: the provenance, an attestation or its statement is malformed.
	ReasonFormat Reason = "format"
	// ReasonSignature: the signature, transparency log entry, certificate chain,
	// SCT or signed time does not verify.
	ReasonSignature Reason = "signature"
	// ReasonDigestMismatch: the attested sha256 is not the file's.
	ReasonDigestMismatch Reason = "digest-mismatch"
	// ReasonNameMismatch: the attested subject name is not the file's name.
	ReasonNameMismatch Reason = "name-mismatch"
	// ReasonPredicate: the predicate type is not one PyPI accepts.
	ReasonPredicate Reason = "predicate"
	// ReasonIdentityMismatch: the certificate's identity is not the expected publisher.
	ReasonIdentityMismatch Reason = "identity-mismatch"
	// ReasonUnsupported: a format this verifier cannot check (for example a
	// Rekor v2 entry); never treated as verified.
	ReasonUnsupported Reason = "unsupported"
)

// Sentinel errors, one per [Reason], all in the [ErrVerification] family, so
// errors.Is(err, ErrUnsupported) or errors.Is(err, ErrVerification) work on
// any error this package returns for a failed check.
var (
	ErrVerification     = errors.New("provenance verification failed")
	ErrFormat           = fmt.Errorf("%w: bad format", ErrVerification)
	ErrSignature        = fmt.Errorf("%w: signature", ErrVerification)
	ErrDigestMismatch   = fmt.Errorf("%w: digest mismatch", ErrVerification)
	ErrNameMismatch     = fmt.Errorf("%w: name mismatch", ErrVerification)
	ErrPredicate        = fmt.Errorf("%w: predicate", ErrVerification)
	ErrIdentityMismatch = fmt.Errorf("%w: identity mismatch", ErrVerification)
	ErrUnsupported      = fmt.Errorf("%w: unsupported", ErrVerification)
)

// ErrNoProvenance reports that a file has no provenance to verify.
var ErrNoProvenance = errors.New("no provenance")

// Error is a failed check: its class, a human-readable detail (for
// signature failures, sigstore-go's own message) and the underlying error.
type Error struct {
	Reason Reason
	Detail string
	Err    error
}

// Error renders "<reason>: <detail>".
func (e *Error) Error() string {
	return string(e.Reason) + ": " + e.Detail
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrX) true for the sentinel of e's Reason and for
// ErrVerification.
func (e *Error) Is(target error) bool {
	if target == ErrVerification {
		return true
	}
	return target == e.Reason.sentinel()
}

func (r Reason) sentinel() error {
	switch r {
	case ReasonFormat:
		return ErrFormat
	case ReasonSignature:
		return ErrSignature
	case ReasonDigestMismatch:
		return ErrDigestMismatch
	case ReasonNameMismatch:
		return ErrNameMismatch
	case ReasonPredicate:
		return ErrPredicate
	case ReasonIdentityMismatch:
		return ErrIdentityMismatch
	case ReasonUnsupported:
		return ErrUnsupported
	}
	return ErrVerification
}

func newError(r Reason, err error, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...), Err: err}
}

// ReasonOf returns the Reason of err, or "" when err is not an [*Error].
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
