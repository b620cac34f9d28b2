package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

// TestStatusFor holds the one error→status mapping (STYLE.md §4), with the
// causes wrapped as the handlers wrap them.
func TestStatusFor(t *testing.T) {
	denied := policy.Decision{Action: policy.ActionBlock, Verdict: pypi.VerdictUnattested, Rule: "defaults",
		Reason: "pipgate: demo: no provenance (rule defaults)"}.Err()
	tests := []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"nil", nil, http.StatusOK, ""},
		{"policy deny", fmt.Errorf("unattested: %w", denied), http.StatusForbidden, "pipgate: demo: no provenance (rule defaults)"},
		{"http error", errorf(http.StatusBadRequest, "pipgate: invalid project name %q", "a/b"), http.StatusBadRequest, `pipgate: invalid project name "a/b"`},
		{"upstream 404", fmt.Errorf("project: %w", upstream.ErrNotFound), http.StatusNotFound, "not found"},
		{"cache miss", cache.ErrNotFound, http.StatusNotFound, "not found"},
		{"not on the page", &gate.NotOnPageError{Project: "demo", Filename: "demo-9.whl"}, http.StatusNotFound, "pipgate: demo-9.whl is not a file of project demo"},
		{"client gone", fmt.Errorf("reading: %w", context.Canceled), statusClientClosed, ""},
		{"timeout", fmt.Errorf("fetching: %w", context.DeadlineExceeded), http.StatusGatewayTimeout, "gateway timeout: the upstream index did not answer in time"},
		{"no hash", fmt.Errorf("a.whl: %w", gate.ErrUpstreamNoHash), http.StatusBadGateway, "bad gateway: a.whl: the index lists no sha256 for this file"},
		{"other", errors.New("boom"), http.StatusInternalServerError, "Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := statusFor(tt.err)
			if code != tt.code {
				t.Fatalf("statusFor = %d; want %d", code, tt.code)
			}
			if tt.msg == "" {
				return
			}
			if got := clientMessage(tt.err, code); got != tt.msg {
				t.Errorf("clientMessage = %q; want %q", got, tt.msg)
			}
		})
	}
	if (policy.Decision{Action: policy.ActionWarn}).Err() != nil {
		t.Error("a warn decision has an error; want nil (served)")
	}
}
