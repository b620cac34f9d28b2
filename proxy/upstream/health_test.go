package upstream_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/proxy/upstream"
)

// TestHealth: every failure (5xx, no answer) counts, names the upstream,
// its URL and the cause in one line, and shows in Health and the metrics;
// a good answer (a 404 included) resets the count and sets last success.
// The times are the client's clock (Options.Now), not the machine's.
func TestHealth(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	now := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	c, err := upstream.New(upstream.Options{Name: "pypi", URL: srv.URL + "/", Registerer: reg, Timeout: 5 * time.Second,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	failures := func() float64 {
		t.Helper()
		return gaugeValue(t, reg, "pipgate_upstream_consecutive_failures", "pypi")
	}
	if h := c.Health(); h != (upstream.Health{}) || failures() != 0 {
		t.Errorf("fresh client: health %+v, failures gauge %v; want zero (the series exists at 0)", h, failures())
	}
	for range 2 {
		if _, err := c.Project(t.Context(), "demo"); err == nil {
			t.Fatal("503: got no error")
		}
	}
	h := c.Health()
	if h.ConsecutiveFailures != 2 || !h.LastSuccess.IsZero() || !h.LastFailure.Equal(now) || !strings.Contains(h.LastError, "upstream pypi answered 503") {
		t.Errorf("after two 503s: %+v", h)
	}
	if failures() != 2 {
		t.Errorf("failures gauge %v; want 2", failures())
	}
	failedAt := now
	now = now.Add(time.Minute)
	status.Store(http.StatusNotFound)
	if _, err := c.Project(t.Context(), "demo"); !errors.Is(err, upstream.ErrNotFound) {
		t.Fatalf("404: %v", err)
	}
	h = c.Health()
	if h.ConsecutiveFailures != 0 || !h.LastSuccess.Equal(now) || !h.LastFailure.Equal(failedAt) {
		t.Errorf("after a 404 (a good answer): %+v; want no failures, a last success, the last failure kept", h)
	}
	if failures() != 0 || gaugeValue(t, reg, "pipgate_upstream_last_success_timestamp_seconds", "pypi") != float64(now.Unix()) {
		t.Error("metrics not updated by the success")
	}

	srv.Close() // unreachable now
	_, err = c.Project(t.Context(), "demo")
	ue, ok := errors.AsType[*upstream.UnreachableError](err)
	if !ok {
		t.Fatalf("connection refused: %v (%T); want an *UnreachableError", err, err)
	}
	want := "upstream pypi (" + srv.URL + "/) unreachable: dial tcp "
	if msg := ue.Error(); !strings.HasPrefix(msg, want) || !strings.Contains(msg, "connection refused") || strings.Contains(msg, `Get "`) {
		t.Errorf("error %q; want %q... connection refused, without net/http's prefix", msg, want)
	}
	if h := c.Health(); h.ConsecutiveFailures != 1 || h.LastError != ue.Error() {
		t.Errorf("health %+v; want one failure with the error", h)
	}
}

// A stalled upstream is a timeout naming the upstream; it still maps to a
// net.Error with Timeout() (504 in the proxy).
func TestHealthTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := upstream.New(upstream.Options{Name: "slow", URL: srv.URL + "/", Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"page", func() error { _, err := c.Project(t.Context(), "demo"); return err }},
		{"file", func() error {
			b, err := c.Open(t.Context(), srv.URL+"/f.whl", upstream.KindFile)
			if b != nil {
				b.Close()
			}
			return err
		}},
	} {
		err := call.do()
		var ne net.Error
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s: %v; want a timeout", call.name, err)
		}
		ue, ok := errors.AsType[*upstream.UnreachableError](err)
		if !ok || !strings.HasPrefix(ue.Error(), "upstream slow ("+srv.URL+"/) timed out: no progress on response headers for 50ms") {
			t.Errorf("%s: %v; want an *UnreachableError naming the upstream and the timeout", call.name, err)
		}
	}
	if h := c.Health(); h.ConsecutiveFailures != 2 {
		t.Errorf("health %+v; want 2 failures", h)
	}
	// A request the caller cancels is not the upstream's failure.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Project(ctx, "demo"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if h := c.Health(); h.ConsecutiveFailures != 2 {
		t.Errorf("after a cancelled request: %+v; want still 2 failures", h)
	}
}

// gaugeValue returns the gauge name{upstream=up} from reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name, up string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "upstream" && l.GetValue() == up {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{upstream=%q}", name, up)
	return 0
}
