package gate

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pipgate/pipgate/internal/series"
	"github.com/pipgate/pipgate/pypi"
)

// CacheState is the result of a cache lookup: the X-Pipgate-Cache header,
// the access log's cache attribute and pipgate_cache_lookups_total{result}.
type CacheState string

// The cache states. The zero value means no lookup was made.
const (
	CacheHit   CacheState = "hit"
	CacheMiss  CacheState = "miss"
	CacheStale CacheState = "stale" // the upstream failed; the last good copy
)

// LookupKind is what a cache lookup looked for:
// pipgate_cache_lookups_total{kind}.
type LookupKind string

// The lookup kinds.
const (
	LookupIndex      LookupKind = "index"      // a project page or the project list
	LookupFile       LookupKind = "file"       // a file or metadata blob
	LookupProvenance LookupKind = "provenance" // a provenance object
	LookupVerdict    LookupKind = "verdict"    // the verification facts of a file
)

// Source is where served bytes came from: pipgate_served_bytes_total{source}.
type Source string

// The sources.
const (
	SourceCache    Source = "cache"
	SourceUpstream Source = "upstream"
	SourceShared   Source = "shared" // the shared blob store (cache.shared), verified before it is served
)

// The closed label sets; every combination is created at zero, so rate()
// and absent() see a series before its first event.
var (
	lookupKinds   = []LookupKind{LookupIndex, LookupFile, LookupProvenance, LookupVerdict}
	cacheStates   = []CacheState{CacheHit, CacheMiss, CacheStale}
	sources       = []Source{SourceCache, SourceUpstream, SourceShared}
	verifyResults = []pypi.Verdict{ // the verdicts verification itself reaches
		pypi.VerdictVerified, pypi.VerdictUnattested, pypi.VerdictInvalid, pypi.VerdictUnsupported, pypi.VerdictError,
	}
)

// LookupKinds returns every lookup kind, in the order the status page
// lists them.
func LookupKinds() []LookupKind { return append([]LookupKind(nil), lookupKinds...) }

// metricsOther is the label value an out-of-set value folds into.
const metricsOther = "other"

// verifyBuckets are the buckets of pipgate_verification_duration_seconds:
// an offline Sigstore verification takes about a millisecond.
var verifyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// metrics holds the gate's series, registered on the registry it is handed
// (Options.Registerer).
type metrics struct {
	cacheLookups   *prometheus.CounterVec // pipgate_cache_lookups_total{kind,result}
	servedBytes    *prometheus.CounterVec // pipgate_served_bytes_total{source}
	verifications  *prometheus.CounterVec // pipgate_verifications_total{result,reason}
	verifyDuration prometheus.Histogram   // pipgate_verification_duration_seconds
	fillsAbandoned prometheus.Counter     // pipgate_file_fills_abandoned_total

	// lookups and servedBy are the series a download touches, resolved
	// once per label tuple.
	lookups  *series.Cache[lookupKey, prometheus.Counter]
	servedBy *series.Cache[Source, prometheus.Counter]
}

type lookupKey struct {
	kind   LookupKind
	result CacheState
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_cache_lookups_total",
			Help: "Cache lookups by kind (index, file, provenance, verdict) and result (hit, miss, stale).",
		}, []string{"kind", "result"}),
		servedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_served_bytes_total",
			Help: "Bytes of distribution files sent to clients, by source (cache, upstream, shared: the shared blob store).",
		}, []string{"source"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_verifications_total",
			Help: "Provenance verifications run, by result and failure reason class (none when verified).",
		}, []string{"result", "reason"}),
		verifyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pipgate_verification_duration_seconds",
			Help:    "Time to verify one file's provenance against the trust root.",
			Buckets: verifyBuckets,
		}),
		fillsAbandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipgate_file_fills_abandoned_total",
			Help: "Upstream file downloads stopped because every client had left (after the grace period).",
		}),
	}
	reg.MustRegister(m.cacheLookups, m.servedBytes, m.verifications, m.verifyDuration, m.fillsAbandoned)
	m.lookups = series.New(func(k lookupKey) prometheus.Counter {
		return m.cacheLookups.WithLabelValues(oneOf(k.kind, lookupKinds), oneOf(k.result, cacheStates))
	})
	m.servedBy = series.New(func(s Source) prometheus.Counter { return m.servedBytes.WithLabelValues(oneOf(s, sources)) })
	for _, k := range lookupKinds {
		for _, r := range cacheStates {
			m.cacheLookups.WithLabelValues(string(k), string(r))
		}
	}
	for _, s := range sources {
		m.servedBytes.WithLabelValues(string(s))
	}
	m.verifications.WithLabelValues(string(pypi.VerdictVerified), "none")
	m.verifications.WithLabelValues(string(pypi.VerdictUnattested), "none")
	return m
}

// oneOf returns v when it is in set and "other" otherwise.
func oneOf[T ~string](v T, set []T) string {
	for _, s := range set {
		if v == s {
			return string(v)
		}
	}
	return metricsOther
}

// lookup counts one cache lookup.
func (m *metrics) lookup(kind LookupKind, result CacheState) {
	m.lookups.Get(lookupKey{kind, result}).Inc()
}

// served counts n bytes of a file from source.
func (m *metrics) served(source Source, n int64) {
	if n <= 0 {
		return
	}
	m.servedBy.Get(source).Add(float64(n))
}

// verification counts one verification and its duration. reason is the
// failure reason class ("" when there is none, counted as "none"). A d <= 0
// means nothing was verified (the provenance could not be fetched): the
// result is counted and the latency histogram left alone.
func (m *metrics) verification(result pypi.Verdict, reason pypi.Reason, d time.Duration) {
	label := "none"
	if reason != "" {
		label = oneOf(reason, pypi.Reasons)
	}
	m.verifications.WithLabelValues(oneOf(result, verifyResults), label).Inc()
	if d > 0 {
		m.verifyDuration.Observe(d.Seconds())
	}
}

// LookupCounts counts one kind of cache lookup by result.
type LookupCounts struct {
	Hit   int64 `json:"hit"`
	Miss  int64 `json:"miss"`
	Stale int64 `json:"stale"`
}

// Lookups returns the cache lookups since start by kind, read from the
// gate's own counters (so the status page and /metrics agree).
func (s *Gate) Lookups() map[LookupKind]LookupCounts {
	out := make(map[LookupKind]LookupCounts, len(lookupKinds))
	for _, k := range lookupKinds {
		c := func(r CacheState) int64 {
			return counterValue(s.metrics.cacheLookups.WithLabelValues(string(k), string(r)))
		}
		out[k] = LookupCounts{Hit: c(CacheHit), Miss: c(CacheMiss), Stale: c(CacheStale)}
	}
	return out
}

// counterValue reads the current value of a counter that counts events.
func counterValue(c prometheus.Counter) int64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return int64(d.GetCounter().GetValue())
}
