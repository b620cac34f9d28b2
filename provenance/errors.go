package provenance

import (
	"errors"
	"fmt"

	"github.com/pipgate/pipgate/pypi"
)

// Reason is the class of a verification failure, stored as
// [pypi.Facts.Reason]. This package produces the first seven of
// [pypi.Reasons]; the constants below name them.
type Reason = pypi.Reason

// The failure classes this package produces.
const (
	ReasonFormat           = pypi.ReasonFormat
	ReasonSignature        = pypi.ReasonSignature
	ReasonDigestMismatch   = pypi.ReasonDigestMismatch
	ReasonNameMismatch     = pypi.ReasonNameMismatch
	ReasonPredicate        = pypi.ReasonPredicate
	ReasonIdentityMismatch = pypi.ReasonIdentityMismatch
	ReasonUnsupported      = pypi.ReasonUnsupported
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
	return target == sentinel(e.Reason)
}

// sentinel returns the sentinel error of r.
func sentinel(r Reason) error {
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
