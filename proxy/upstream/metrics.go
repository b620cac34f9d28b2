package upstream

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's instruments; a nil *metrics records nothing.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	dropped  *prometheus.CounterVec
	success  *prometheus.GaugeVec
	failures *prometheus.GaugeVec
}

// durationBuckets span a cached CDN hit to a slow page or provenance fetch.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_upstream_requests_total",
			Help: "Requests to the upstream indexes, by upstream (the configured name), kind (index, file, metadata, provenance) and HTTP status code (or error, timeout, refused).",
		}, []string{"upstream", "kind", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pipgate_upstream_request_duration_seconds",
			Help:    "Time until the upstream's response headers arrived, by upstream (the configured name) and kind (index, file, metadata, provenance).",
			Buckets: durationBuckets,
		}, []string{"upstream", "kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_upstream_links_dropped_total",
			Help: "File links left out of upstream project pages because they were unusable (not an http(s) URL, unparsable, an unsafe filename, a malformed hash), by upstream.",
		}, []string{"upstream"}),
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pipgate_upstream_last_success_timestamp_seconds",
			Help: "Unix time of the upstream's last good answer (2xx, 3xx, 404), by upstream; absent until its first since pipgate started.",
		}, []string{"upstream"}),
		failures: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pipgate_upstream_consecutive_failures",
			Help: "Requests to the upstream that failed (no answer, timeout, 5xx, 401 or 403) since its last good answer, by upstream.",
		}, []string{"upstream"}),
	}
	var err error
	m.requests, err = register(reg, m.requests)
	if err != nil {
		return nil, err
	}
	m.duration, err = register(reg, m.duration)
	if err != nil {
		return nil, err
	}
	m.dropped, err = register(reg, m.dropped)
	if err != nil {
		return nil, err
	}
	m.success, err = register(reg, m.success)
	if err != nil {
		return nil, err
	}
	m.failures, err = register(reg, m.failures)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the identical collector already
// registered (two clients may share a registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) observe(upstream string, kind Kind, code string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(upstream, string(kind), code).Inc()
	m.duration.WithLabelValues(upstream, string(kind)).Observe(d.Seconds())
}

// healthInit creates upstream's consecutive-failures series at 0, so that
// alerts see it before the first request.
func (m *metrics) healthInit(upstream string) {
	if m == nil {
		return
	}
	m.failures.WithLabelValues(upstream).Set(0)
}

func (m *metrics) healthSuccess(upstream string, at time.Time) {
	if m == nil {
		return
	}
	m.success.WithLabelValues(upstream).Set(float64(at.UnixNano()) / 1e9)
	m.failures.WithLabelValues(upstream).Set(0)
}

func (m *metrics) healthFailure(upstream string, consecutive int) {
	if m == nil {
		return
	}
	m.failures.WithLabelValues(upstream).Set(float64(consecutive))
}

// droppedLinks counts n file links left out of a page of upstream.
func (m *metrics) droppedLinks(upstream string, n int) {
	if m == nil {
		return
	}
	m.dropped.WithLabelValues(upstream).Add(float64(n))
}

const slogDebug = slog.LevelDebug

func attrUpstream(name string) slog.Attr     { return slog.String("upstream", name) }
func attrKind(kind Kind) slog.Attr           { return slog.String("kind", string(kind)) }
func attrURL(u string) slog.Attr             { return slog.String("upstream_url", u) }
func attrStatus(code int) slog.Attr          { return slog.Int("status", code) }
func attrDuration(d time.Duration) slog.Attr { return slog.Float64("duration_seconds", d.Seconds()) }
func attrErr(err error) slog.Attr            { return slog.Any("err", err) }
