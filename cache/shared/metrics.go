package shared

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values.
var (
	lookupResults = []string{"hit", "waited", "miss", "error", "skipped"}
	uploadResults = []string{"stored", "replaced", "exists", "conflict", "error", "skipped", "dropped", "gone"}
	rejectReasons = []string{"digest", "size"}
	errorOps      = []string{"get", "head", "put", "probe"}
)

type metrics struct {
	lookups       *prometheus.CounterVec
	uploads       *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	errors        *prometheus.CounterVec
	waits         prometheus.Counter
	readBytes     prometheus.Counter
	uploadedBytes prometheus.Counter
	open          prometheus.Gauge
	queued        func() float64
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_shared_lookups_total",
			Help: "Blobs looked up in the shared store (after a local miss), by result: hit, waited (another replica was filling it; its upload arrived), miss, error (the request failed), skipped (breaker open).",
		}, []string{"result"}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_shared_uploads_total",
			Help: "Background uploads of blobs filled from the upstream, by result: stored, replaced (a rejected object), exists (already there), conflict (another replica's conditional write won: 412/409), error, skipped (breaker open), dropped (queue full), gone (evicted locally first).",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_shared_rejected_objects_total",
			Help: "Shared store objects whose bytes did not match the blob's sha256 or the index size: never served, fetched from the upstream and replaced.",
		}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_shared_errors_total",
			Help: "Failed shared store requests (network, timeouts, 5xx, access denied), by operation; each counts towards the breaker.",
		}, []string{"op"}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipgate_shared_fill_waits_total",
			Help: "Lookups that found another replica filling the same blob (its claim under <prefix>fills/) and waited for its upload (up to 5 s; pipgate_shared_lookups_total{result=\"waited\"} counts those it arrived for).",
		}),
		readBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipgate_shared_read_bytes_total",
			Help: "Bytes read from the shared store (each blob is committed locally only when its sha256 matches).",
		}),
		uploadedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipgate_shared_uploaded_bytes_total",
			Help: "Bytes uploaded to the shared store.",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pipgate_shared_breaker_open",
			Help: "1 while the shared store's breaker is open (the bucket failed; it is skipped until a probe finds it answering), else 0.",
		}),
	}
	for _, r := range lookupResults {
		m.lookups.WithLabelValues(r)
	}
	for _, r := range uploadResults {
		m.uploads.WithLabelValues(r)
	}
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	for _, op := range errorOps {
		m.errors.WithLabelValues(op)
	}
	if reg == nil {
		return m, nil
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pipgate_shared_upload_queue",
		Help: "Uploads waiting for an uploader.",
	}, func() float64 {
		if m.queued == nil {
			return 0
		}
		return m.queued()
	})
	for _, c := range []prometheus.Collector{m.lookups, m.uploads, m.rejected, m.errors, m.waits, m.readBytes, m.uploadedBytes, m.open, queue} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("shared store: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) lookup(result string) { m.lookups.WithLabelValues(result).Inc() }
func (m *metrics) upload(result string) { m.uploads.WithLabelValues(result).Inc() }

func (m *metrics) setOpen(open bool) {
	if open {
		m.open.Set(1)
	} else {
		m.open.Set(0)
	}
}
