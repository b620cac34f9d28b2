package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"
)

// UnreachableError is an upstream that gave no answer: the connection
// failed (refused, DNS, TLS, reset) or no response came in time. It names
// the upstream and its base URL, so one line says which index failed and
// why; it wraps the cause (a timeout still satisfies net.Error with
// Timeout() true, and errors.Is(err, context.DeadlineExceeded)).
type UnreachableError struct {
	// Upstream is the upstream's name.
	Upstream string
	// URL is the upstream's base URL (never with credentials).
	URL string
	// Err is the cause, e.g. "dial tcp 10.0.0.1:443: connect: connection refused".
	Err error
}

// Error implements error: "upstream pypi (https://pypi.org/) unreachable:
// dial tcp ...: connection refused".
func (e *UnreachableError) Error() string {
	if te, ok := errors.AsType[*TimeoutError](e.Err); ok {
		return fmt.Sprintf("upstream %s (%s) timed out: no progress on %s for %v", e.Upstream, e.URL, te.Op, te.After)
	}
	return fmt.Sprintf("upstream %s (%s) unreachable: %v", e.Upstream, e.URL, e.Err)
}

// Unwrap returns the cause.
func (e *UnreachableError) Unwrap() error { return e.Err }

// cause strips net/http's `Get "URL": ` prefix (the URL is known) and
// names a deadline as the timeout that expired.
func cause(err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		if _, ok := errors.AsType[*TimeoutError](err); !ok {
			return &TimeoutError{Op: "response headers", After: timeout}
		}
	}
	if ue, ok := errors.AsType[*url.Error](err); ok && ue.Err != nil {
		return ue.Err
	}
	return err
}

// Health is an upstream's recent record of answers, for /readyz, the status
// page and the metrics. A success is any answer that shows the index works
// (2xx, 3xx, 404); a failure is no answer, a timeout, a 5xx, a 401 or 403.
type Health struct {
	// LastSuccess is when the upstream last answered well; zero: never
	// since pipgate started.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastFailure is when it last failed; zero: never.
	LastFailure time.Time `json:"last_failure,omitzero"`
	// LastError says how it last failed, in one line (no credentials).
	LastError string `json:"last_error,omitempty"`
	// ConsecutiveFailures counts the failures since the last success.
	ConsecutiveFailures int `json:"consecutive_failures"`
}

// Failing reports whether the last answer was a failure.
func (h Health) Failing() bool { return h.ConsecutiveFailures > 0 }

type healthState struct {
	mu sync.Mutex
	h  Health
}

func (s *healthState) success(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.LastSuccess = at
	s.h.ConsecutiveFailures = 0
}

func (s *healthState) failure(at time.Time, err error) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.LastFailure = at
	s.h.LastError = redactUserinfo(err.Error())
	s.h.ConsecutiveFailures++
	return s.h.ConsecutiveFailures
}

func (s *healthState) get() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h
}

// Health returns the upstream's record of answers.
func (c *Client) Health() Health { return c.health.get() }

// recordSuccess notes an answer that shows the index works.
func (c *Client) recordSuccess() {
	now := c.now()
	c.health.success(now)
	c.m.healthSuccess(c.name, now)
}

// recordFailure notes a failed request.
func (c *Client) recordFailure(err error) {
	n := c.health.failure(c.now(), err)
	c.m.healthFailure(c.name, n)
}

// unreachable wraps a transport error of a request to this upstream.
func (c *Client) unreachable(err error) error {
	return &UnreachableError{Upstream: c.name, URL: c.base.String(), Err: cause(err, c.timeout)}
}
