package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/proxy/upstream"
)

// httpError is an error with the status and the message a client sees. Msg
// goes to the client; Err (which may hold more detail) goes to the log.
type httpError struct {
	Code int
	Msg  string
	Err  error
}

func (e *httpError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Msg, e.Err)
	}
	return e.Msg
}

func (e *httpError) Unwrap() error { return e.Err }

// errorf returns an *httpError with code and a formatted client message.
func errorf(code int, format string, args ...any) *httpError {
	return &httpError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// statusClientClosed is the nginx/Caddy convention for a client that went away.
const statusClientClosed = 499

// statusFor maps an error to the HTTP status the client gets: the one place
// that knows the mapping (STYLE.md §4).
func statusFor(err error) int {
	var he *httpError
	var se *upstream.StatusError
	var de *cache.DigestError
	var ne net.Error
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &he):
		return he.Code
	case errors.Is(err, policy.ErrDenied):
		return http.StatusForbidden
	case errors.Is(err, context.Canceled):
		return statusClientClosed
	case errors.Is(err, errBlobGone), errors.Is(err, cache.ErrCorrupt):
		return http.StatusServiceUnavailable // the file exists: never a 404
	case errors.Is(err, upstream.ErrBusy):
		return http.StatusServiceUnavailable // other large pages hold the page memory
	case errors.Is(err, upstream.ErrNotFound), errors.Is(err, cache.ErrNotFound), errors.As(err, new(*gate.NotOnPageError)):
		return http.StatusNotFound
	case errors.Is(err, upstream.ErrHostNotAllowed), errors.Is(err, upstream.ErrBadResponse):
		return http.StatusBadGateway
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout
	case errors.As(err, &se), errors.As(err, &de), errors.Is(err, gate.ErrDigestMismatch), errors.Is(err, gate.ErrUpstreamNoHash),
		errors.Is(err, gate.ErrUpstreamBody), errors.Is(err, gate.ErrFileTooLarge), errors.Is(err, gate.ErrFillAbandoned):
		return http.StatusBadGateway
	case errors.As(err, &ne):
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// clientMessage is the text body for err: the httpError's Msg, or a short
// generic sentence for the status (internal details stay in the log).
func clientMessage(err error, code int) string {
	var he *httpError
	if errors.As(err, &he) {
		return he.Msg
	}
	if de, ok := errors.AsType[*policy.DeniedError](err); ok {
		return de.Reason // names the project, the verdict and the rule
	}
	if ne, ok := errors.AsType[*gate.NotOnPageError](err); ok {
		return ne.Error()
	}
	switch code {
	case http.StatusNotFound:
		return "not found"
	case http.StatusBadGateway:
		var se *upstream.StatusError
		if errors.Is(err, upstream.ErrAuth) && errors.As(err, &se) {
			return fmt.Sprintf("bad gateway: upstream %s refused pipgate's credentials (%d)", se.Upstream, se.Code)
		}
		if ue, ok := errors.AsType[*upstream.UnreachableError](err); ok {
			return "pipgate: " + ue.Error()
		}
		if errors.As(err, &se) {
			return "pipgate: " + se.Error()
		}
		if errors.Is(err, gate.ErrDigestMismatch) || errors.Is(err, gate.ErrUpstreamNoHash) || errors.Is(err, upstream.ErrHostNotAllowed) ||
			errors.Is(err, upstream.ErrBadResponse) || errors.Is(err, gate.ErrUpstreamBody) || errors.Is(err, gate.ErrFileTooLarge) {
			return "bad gateway: " + err.Error()
		}
		return "bad gateway: the upstream index failed"
	case http.StatusGatewayTimeout:
		if ue, ok := errors.AsType[*upstream.UnreachableError](err); ok {
			return "pipgate: " + ue.Error()
		}
		return "gateway timeout: the upstream index did not answer in time"
	case http.StatusServiceUnavailable:
		if errors.Is(err, errBlobGone) {
			return "service unavailable: " + errBlobGone.Error() + "; try again"
		}
		if errors.Is(err, cache.ErrCorrupt) {
			return "service unavailable: pipgate's cache database is damaged and being replaced; try again"
		}
		if errors.Is(err, upstream.ErrBusy) {
			return "service unavailable: " + err.Error() + "; try again"
		}
	}
	return http.StatusText(code)
}
