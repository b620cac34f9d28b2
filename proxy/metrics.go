package proxy

import (
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pipgate/pipgate/internal/series"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// metricsOther is the label value every out-of-set input folds into, so that
// no label can grow without bound (Caddy folds unknown hosts the same way).
const metricsOther = "other"

// The closed label sets. Every combination of the fixed sets is created at
// zero in newMetrics, so rate() and absent() see a series before its first
// event.
var (
	// metricsVerdicts are the values of pipgate_downloads_total{verdict}, in
	// the order the status page lists them.
	metricsVerdicts = []pypi.Verdict{
		pypi.VerdictVerified, pypi.VerdictUnattested, pypi.VerdictUntrustedPublisher,
		pypi.VerdictInvalid, pypi.VerdictUnsupported, pypi.VerdictError,
	}
	// metricsActions are the policy actions: pipgate_policy_decisions_total{action}
	// and pipgate_downloads_total{action}.
	metricsActions = []policy.Action{policy.ActionAllow, policy.ActionBlock, policy.ActionYank, policy.ActionWarn}
	// metricsMethods are the HTTP methods kept as they are by sanitizeMethod.
	metricsMethods = []string{
		"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
	}
)

// Bounds of the policy rule names used as label values. They come from
// configuration and are bounded already; these caps only make sure a bug
// elsewhere cannot turn the label into an unbounded one.
const (
	metricsMaxRules = 200
	metricsMaxLabel = 64
)

// metricsHTTPBuckets are the buckets of pipgate_http_request_duration_seconds:
// index pages take milliseconds, large wheels from upstream take seconds.
var metricsHTTPBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// metrics holds every series the proxy package exports. It is built once
// per registry by newMetrics. The other components register their own
// series on the same registry: the upstream client (pipgate_upstream_*), the
// cache store (pipgate_cache_size_bytes, evictions), the trust source
// (pipgate_trust_root_*), the policy reloader (pipgate_config_*) and the
// egress proxy (pipgate_egress_*). All methods are safe for
// concurrent use and fold label values outside their closed sets into
// "other".
type metrics struct {
	reg prometheus.Registerer

	httpRequests     *prometheus.CounterVec   // pipgate_http_requests_total{route,method,code}
	httpDuration     *prometheus.HistogramVec // pipgate_http_request_duration_seconds{route}
	inFlight         prometheus.Gauge         // pipgate_http_requests_in_flight
	policyDecisions  *prometheus.CounterVec   // pipgate_policy_decisions_total{action,rule}
	downloads        *prometheus.CounterVec   // pipgate_downloads_total{verdict,action}
	findings         *prometheus.CounterVec   // pipgate_policy_findings_total{finding,action}
	digestMismatches *prometheus.CounterVec   // pipgate_file_digest_mismatches_total{outcome}
	metadataRefused  *prometheus.CounterVec   // pipgate_metadata_refused_total{reason}

	rules *metricsLabelCap // pipgate_policy_decisions_total{rule}

	// The series a request touches, resolved once per label tuple.
	httpRequestsBy *series.Cache[httpKey, prometheus.Counter]
	httpDurationBy *series.Cache[string, prometheus.Observer]
	decisionsBy    *series.Cache[decisionSeriesKey, prometheus.Counter]
	downloadsBy    *series.Cache[downloadKey, prometheus.Counter]
}

// The label tuples of the cached series, as the callers give them (each
// Get folds them as WithLabelValues was called before).
type (
	httpKey struct {
		route, method string // method sanitised
		code          int
	}
	decisionSeriesKey struct {
		action policy.Action
		rule   string
	}
	downloadKey struct {
		verdict pypi.Verdict
		action  policy.Action
		byRule  bool
	}
)

// newMetrics creates the proxy's series and registers them on reg, together
// with pipgate_build_info{version,goversion} (always 1) and the Go and process
// collectors. A nil reg gets a private registry: the series still count, and
// nothing is exported. It panics if reg already holds any of these series,
// as a second newMetrics on one registry is a wiring bug.
func newMetrics(reg prometheus.Registerer, version string) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		reg: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_http_requests_total",
			Help: "HTTP requests answered, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pipgate_http_request_duration_seconds",
			Help:    "Time from request to the end of the response body, by route.",
			Buckets: metricsHTTPBuckets,
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pipgate_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		policyDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_policy_decisions_total",
			Help: "Policy decisions by action (allow, block, yank, warn) and matched rule.",
		}, []string{"action", "rule"}),
		downloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_downloads_total",
			Help: "Distribution file downloads served or refused, by verdict, policy action, and what decided: policy=\"rule\" a package rule, \"defaults\" the policy defaults (observed, no rule for the project).",
		}, []string{"verdict", "action", "policy"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_policy_findings_total",
			Help: "Download decisions with a trust-over-time finding (publisher-changed, attestation-lost, cooldown), by finding and the action applied.",
		}, []string{"finding", "action"}),
		digestMismatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_file_digest_mismatches_total",
			Help: "Client responses for upstream bytes that did not match the index sha256 or size, by outcome (refused: a 403 before the status line; aborted: a stream cut before its last bytes).",
		}, []string{"outcome"}),
		metadataRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipgate_metadata_refused_total",
			Help: "PEP 658 metadata requests for verified wheels refused, by reason (mismatch: the index's metadata differs from the wheel's METADATA; unreadable: the wheel has no usable METADATA).",
		}, []string{"reason"}),
		rules: newMetricsLabelCap(metricsMaxRules),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pipgate_build_info",
		Help:        "A metric with a constant 1 value labelled by the pipgate version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	reg.MustRegister(
		m.httpRequests, m.httpDuration, m.inFlight, m.policyDecisions, m.downloads, m.findings,
		m.digestMismatches, m.metadataRefused,
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.httpRequestsBy = series.New(func(k httpKey) prometheus.Counter {
		return m.httpRequests.WithLabelValues(k.route, k.method, metricsCode(k.code))
	})
	m.httpDurationBy = series.New(func(route string) prometheus.Observer { return m.httpDuration.WithLabelValues(route) })
	m.decisionsBy = series.New(func(k decisionSeriesKey) prometheus.Counter {
		rule := k.rule
		if rule == "" {
			rule = "none"
		}
		return m.policyDecisions.WithLabelValues(metricsOneOf(k.action, metricsActions), m.rules.value(rule))
	})
	m.downloadsBy = series.New(func(k downloadKey) prometheus.Counter {
		by := decidedByDefaults
		if k.byRule {
			by = decidedByRule
		}
		return m.downloads.WithLabelValues(metricsOneOf(k.verdict, metricsVerdicts), metricsOneOf(k.action, metricsActions), by)
	})
	for _, r := range metricsMetadataRefusals {
		m.metadataRefused.WithLabelValues(r)
	}
	for _, v := range metricsVerdicts {
		for _, a := range metricsActions {
			for _, by := range metricsDecidedBy {
				m.downloads.WithLabelValues(string(v), string(a), by)
			}
		}
	}
	for _, f := range policy.Findings {
		for _, a := range metricsActions {
			m.findings.WithLabelValues(string(f), string(a))
		}
	}
	for _, o := range []string{"refused", "aborted"} {
		m.digestMismatches.WithLabelValues(o)
	}
	return m
}

// sanitizeMethod returns m when it is a standard HTTP method and "OTHER"
// otherwise, so that a client cannot mint label values (Caddy's
// internal/metrics does the same). Methods are case-sensitive (RFC 9110), so
// "get" is OTHER.
func sanitizeMethod(m string) string {
	for _, k := range metricsMethods {
		if m == k {
			return k
		}
	}
	return "OTHER"
}

// metricsCode returns the label value of an HTTP status code: the three
// digits for 100–599, "other" for anything else.
func metricsCode(code int) string {
	if code < 100 || code > 599 {
		return metricsOther
	}
	return strconv.Itoa(code)
}

// metricsOneOf returns v when it is in set and "other" otherwise.
func metricsOneOf[T ~string](v T, set []T) string {
	for _, s := range set {
		if v == s {
			return string(v)
		}
	}
	return metricsOther
}

// observeHTTP counts one answered request and its duration. route must be one
// of the router's fixed route names, never a path; method is sanitised here.
func (m *metrics) observeHTTP(route, method string, code int, d time.Duration) {
	// The method folded first: a client does not mint cache entries.
	m.httpRequestsBy.Get(httpKey{route, sanitizeMethod(method), code}).Inc()
	m.httpDurationBy.Get(route).Observe(d.Seconds())
}

// trackInFlight counts a request as in flight until the returned function is
// called: defer m.trackInFlight()().
func (m *metrics) trackInFlight() func() {
	m.inFlight.Inc()
	return m.inFlight.Dec
}

// policyDecision counts one policy decision. rule is the matched rule's name
// as configured (a bounded set), "" counted as "none".
func (m *metrics) policyDecision(action policy.Action, rule string) {
	m.decisionsBy.Get(decisionSeriesKey{action, rule}).Inc()
}

// download counts one distribution file served (allow, warn, yank) or
// refused (block) to a client, by its final verdict and whether a package
// rule (byRule) or the defaults decided: the series behind the
// "unverified installs" panels and alerts, which tell a file a rule allows
// on purpose (require: none for a private package) from one merely
// observed under the defaults.
func (m *metrics) download(verdict pypi.Verdict, action policy.Action, byRule bool) {
	m.downloadsBy.Get(downloadKey{verdict, action, byRule}).Inc()
}

// The values of pipgate_downloads_total{policy}: what decided.
const (
	decidedByRule     = "rule"
	decidedByDefaults = "defaults"
)

var metricsDecidedBy = []string{decidedByDefaults, decidedByRule}

// digestMismatch counts a client response to a bad upstream body: outcome
// "refused" (403) or "aborted" (stream cut short).
func (m *metrics) digestMismatch(outcome string) { m.digestMismatches.WithLabelValues(outcome).Inc() }

// metricsMetadataRefusals are the values of pipgate_metadata_refused_total{reason}.
var metricsMetadataRefusals = []string{metadataMismatch, metadataUnreadable}

func (m *metrics) metadataRefusal(reason string) { m.metadataRefused.WithLabelValues(reason).Inc() }

// metricsLabelCap passes through at most max distinct label values (each at
// most metricsMaxLabel bytes of printable ASCII) and folds the rest into
// "other".
type metricsLabelCap struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

// newMetricsLabelCap returns a cap passing at most maxValues distinct values.
func newMetricsLabelCap(maxValues int) *metricsLabelCap {
	return &metricsLabelCap{max: maxValues, seen: make(map[string]struct{})}
}

// value returns v if it is printable ASCII of at most metricsMaxLabel bytes
// and either already seen or within the cap; "other" otherwise.
func (c *metricsLabelCap) value(v string) string {
	if len(v) == 0 || len(v) > metricsMaxLabel {
		return metricsOther
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return metricsOther
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[v]; ok {
		return v
	}
	if len(c.seen) >= c.max {
		return metricsOther
	}
	c.seen[v] = struct{}{}
	return v
}

// finding counts one download decision with a trust-over-time finding;
// a decision without one is not counted.
func (m *metrics) finding(d policy.Decision) {
	if d.Finding == "" {
		return
	}
	m.findings.WithLabelValues(string(d.Finding), metricsOneOf(d.Action, metricsActions)).Inc()
}
