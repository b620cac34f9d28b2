package proxy

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/audit"
	"github.com/pipgate/pipgate/pypi"
)

// touchAllMetrics moves every series of m once, so that a scrape shows each
// family with a sample.
func touchAllMetrics(m *metrics) {
	m.observeHTTP("simple_project", "GET", 200, 30*time.Millisecond)
	m.trackInFlight()()
	m.CacheLookup("file", "hit")
	m.Served("cache", 1234)
	m.Verification(pypi.VerdictInvalid, "signature", 2*time.Millisecond)
	m.policyDecision("block", "pypi-attestations")
	m.download(pypi.VerdictUnattested, "warn")
	m.auditLog(&audit.Log{})
}

func TestMetricsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, "1.2.3")
	m.observeHTTP("file", "GET", 200, 1500*time.Millisecond)
	m.observeHTTP("file", "BREW", 403, 10*time.Millisecond)
	m.observeHTTP("file", "GET", 1000, time.Millisecond)
	m.CacheLookup("index", "hit")
	m.CacheLookup("index", "stale")
	m.CacheLookup("verdict", "miss")
	m.CacheLookup("project-name", "hit") // not a kind: folded
	m.Served("upstream", 100)
	m.Served("upstream", 0)
	m.Served("elsewhere", 7)
	m.Verification(pypi.VerdictVerified, "", time.Millisecond)
	m.Verification(pypi.VerdictInvalid, "digest-mismatch", 3*time.Millisecond)
	m.Verification(pypi.VerdictUntrustedPublisher, "identity-mismatch", time.Millisecond) // a policy verdict: folded
	m.policyDecision("allow", "")
	m.policyDecision("yank", "internal-*")
	m.policyDecision("deny", "defaults")
	m.download(pypi.VerdictVerified, "allow")
	m.download(pypi.VerdictVerified, "allow")
	m.download(pypi.VerdictUntrustedPublisher, "block")
	m.download("evil\nverdict", "allow")

	const want = `
# HELP pipgate_build_info A metric with a constant 1 value labelled by the pipgate version and the Go version it was built with.
# TYPE pipgate_build_info gauge
pipgate_build_info{goversion="GOVERSION",version="1.2.3"} 1
# HELP pipgate_cache_lookups_total Cache lookups by kind (index, file, provenance, verdict) and result (hit, miss, stale).
# TYPE pipgate_cache_lookups_total counter
pipgate_cache_lookups_total{kind="file",result="hit"} 0
pipgate_cache_lookups_total{kind="file",result="miss"} 0
pipgate_cache_lookups_total{kind="file",result="stale"} 0
pipgate_cache_lookups_total{kind="index",result="hit"} 1
pipgate_cache_lookups_total{kind="index",result="miss"} 0
pipgate_cache_lookups_total{kind="index",result="stale"} 1
pipgate_cache_lookups_total{kind="other",result="hit"} 1
pipgate_cache_lookups_total{kind="provenance",result="hit"} 0
pipgate_cache_lookups_total{kind="provenance",result="miss"} 0
pipgate_cache_lookups_total{kind="provenance",result="stale"} 0
pipgate_cache_lookups_total{kind="verdict",result="hit"} 0
pipgate_cache_lookups_total{kind="verdict",result="miss"} 1
pipgate_cache_lookups_total{kind="verdict",result="stale"} 0
# HELP pipgate_http_requests_total HTTP requests answered, by route, method and status code.
# TYPE pipgate_http_requests_total counter
pipgate_http_requests_total{code="200",method="GET",route="file"} 1
pipgate_http_requests_total{code="403",method="OTHER",route="file"} 1
pipgate_http_requests_total{code="other",method="GET",route="file"} 1
# HELP pipgate_policy_decisions_total Policy decisions by action (allow, block, yank, warn) and matched rule.
# TYPE pipgate_policy_decisions_total counter
pipgate_policy_decisions_total{action="allow",rule="none"} 1
pipgate_policy_decisions_total{action="other",rule="defaults"} 1
pipgate_policy_decisions_total{action="yank",rule="internal-*"} 1
# HELP pipgate_served_bytes_total Bytes of distribution files sent to clients, by source (cache, upstream).
# TYPE pipgate_served_bytes_total counter
pipgate_served_bytes_total{source="cache"} 0
pipgate_served_bytes_total{source="other"} 7
pipgate_served_bytes_total{source="upstream"} 100
# HELP pipgate_verifications_total Provenance verifications run, by result and failure reason class (none when verified).
# TYPE pipgate_verifications_total counter
pipgate_verifications_total{reason="digest-mismatch",result="invalid"} 1
pipgate_verifications_total{reason="identity-mismatch",result="other"} 1
pipgate_verifications_total{reason="none",result="unattested"} 0
pipgate_verifications_total{reason="none",result="verified"} 1
`
	expected := strings.Replace(want, "GOVERSION", runtime.Version(), 1)
	names := []string{
		"pipgate_build_info", "pipgate_cache_lookups_total",
		"pipgate_http_requests_total", "pipgate_policy_decisions_total",
		"pipgate_served_bytes_total",
		"pipgate_verifications_total",
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), names...); err != nil {
		t.Error(err)
	}

	// The downloads series: every verdict × action exists from the start.
	if got, want := testutil.CollectAndCount(m.downloads), len(metricsVerdicts)*len(metricsActions)+1; got != want {
		t.Errorf("pipgate_downloads_total has %d series; want %d (6 verdicts × 4 actions + other)", got, want)
	}
	for _, tc := range []struct {
		verdict, action string
		want            float64
	}{
		{"verified", "allow", 2},
		{"untrusted-publisher", "block", 1},
		{"unattested", "warn", 0},
		{"other", "allow", 1},
	} {
		if got := testutil.ToFloat64(m.downloads.WithLabelValues(tc.verdict, tc.action)); got != tc.want {
			t.Errorf("pipgate_downloads_total{verdict=%q,action=%q} = %v; want %v", tc.verdict, tc.action, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight = %v; want 0", got)
	}
	done := m.trackInFlight()
	if got := testutil.ToFloat64(m.inFlight); got != 1 {
		t.Errorf("in flight during a request = %v; want 1", got)
	}
	done()
	if got := testutil.CollectAndCount(m.httpDuration); got != 1 {
		t.Errorf("duration series = %d; want 1 (route only)", got)
	}
	m.Verification(pypi.VerdictError, "fetch", 0) // nothing verified: counted, not timed
	if got := testutil.ToFloat64(m.verifications.WithLabelValues("error", "fetch")); got != 1 {
		t.Errorf("verifications{error,fetch} = %v; want 1", got)
	}
	// Three timed verifications: 1ms, 3ms, 1ms.
	const wantHist = `
# HELP pipgate_verification_duration_seconds Time to verify one file's provenance against the trust root.
# TYPE pipgate_verification_duration_seconds histogram
pipgate_verification_duration_seconds_bucket{le="0.0005"} 0
pipgate_verification_duration_seconds_bucket{le="0.001"} 2
pipgate_verification_duration_seconds_bucket{le="0.0025"} 2
pipgate_verification_duration_seconds_bucket{le="0.005"} 3
pipgate_verification_duration_seconds_bucket{le="0.01"} 3
pipgate_verification_duration_seconds_bucket{le="0.025"} 3
pipgate_verification_duration_seconds_bucket{le="0.05"} 3
pipgate_verification_duration_seconds_bucket{le="0.1"} 3
pipgate_verification_duration_seconds_bucket{le="0.25"} 3
pipgate_verification_duration_seconds_bucket{le="0.5"} 3
pipgate_verification_duration_seconds_bucket{le="1"} 3
pipgate_verification_duration_seconds_bucket{le="2.5"} 3
pipgate_verification_duration_seconds_bucket{le="+Inf"} 3
pipgate_verification_duration_seconds_sum 0.005
pipgate_verification_duration_seconds_count 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantHist), "pipgate_verification_duration_seconds"); err != nil {
		t.Error(err)
	}
}

func TestSanitizeMethod(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"GET", "GET"}, {"HEAD", "HEAD"}, {"POST", "POST"}, {"PUT", "PUT"}, {"PATCH", "PATCH"},
		{"DELETE", "DELETE"}, {"CONNECT", "CONNECT"}, {"OPTIONS", "OPTIONS"}, {"TRACE", "TRACE"},
		{"get", "OTHER"}, {"PROPFIND", "OTHER"}, {"", "OTHER"}, {"GET ", "OTHER"},
		{strings.Repeat("A", 10000), "OTHER"},
	} {
		if got := sanitizeMethod(tc.in); got != tc.want {
			t.Errorf("sanitizeMethod(%.20q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestMetricsLabelCap(t *testing.T) {
	c := newMetricsLabelCap(2)
	for _, tc := range []struct{ in, want string }{
		{"a", "a"},
		{"b", "b"},
		{"c", "other"}, // over the cap
		{"a", "a"},     // seen before: still passes
		{"", "other"},
		{strings.Repeat("x", metricsMaxLabel+1), "other"},
		{"tab\there", "other"},
		{"naïve", "other"},
	} {
		if got := c.value(tc.in); got != tc.want {
			t.Errorf("value(%.20q) = %q; want %q", tc.in, got, tc.want)
		}
	}

	// Rules past the cap fold into "other": the series count stays bounded
	// whatever the policy (or a bug) sends.
	m := newMetrics(nil, "dev")
	for i := 0; i < 3*metricsMaxRules; i++ {
		m.policyDecision("warn", "rule-"+strings.Repeat("r", i%50)+string(rune('a'+i%26)))
	}
	if got := testutil.CollectAndCount(m.policyDecisions); got > metricsMaxRules+1 {
		t.Errorf("policy decision series = %d; want at most %d", got, metricsMaxRules+1)
	}
}

func TestMetricsAudit(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, "dev")
	a, err := audit.New("-", failingWriter{})
	if err != nil {
		t.Fatal(err)
	}
	m.auditLog(a)
	a.Add(audit.Record{Event: audit.EventDownload})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	const want = `
# HELP pipgate_audit_records_lost_total Audit records that could not be written (queue full or write error).
# TYPE pipgate_audit_records_lost_total counter
pipgate_audit_records_lost_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pipgate_audit_records_lost_total"); err != nil {
		t.Error(err)
	}
}

func TestMetricsStatusCounts(t *testing.T) {
	m := newMetrics(nil, "dev")
	lookups, ratio, _ := m.statusCounts()
	if !math.IsNaN(ratio) {
		t.Errorf("hit ratio before any lookup = %v; want NaN", ratio)
	}
	if got := len(lookups); got != len(metricsCacheKinds) {
		t.Errorf("lookup kinds = %d; want %d", got, len(metricsCacheKinds))
	}
	m.CacheLookup("file", "hit")
	m.CacheLookup("file", "hit")
	m.CacheLookup("index", "miss")
	m.CacheLookup("provenance", "stale")
	m.CacheLookup("bogus", "hit") // not counted anywhere on the page
	m.download(pypi.VerdictVerified, "allow")
	m.download(pypi.VerdictInvalid, "block")
	m.download(pypi.VerdictInvalid, "block")
	lookups, ratio, downloads := m.statusCounts()
	if want := 0.5; ratio != want {
		t.Errorf("hit ratio = %v; want %v", ratio, want)
	}
	if got, want := lookups["file"], (statusLookups{Hit: 2}); got != want {
		t.Errorf("file lookups = %+v; want %+v", got, want)
	}
	if got, want := lookups["provenance"], (statusLookups{Stale: 1}); got != want {
		t.Errorf("provenance lookups = %+v; want %+v", got, want)
	}
	for v, want := range map[string]int64{"verified": 1, "invalid": 2, "unattested": 0} {
		if got := downloads[v]; got != want {
			t.Errorf("downloads[%q] = %d; want %d", v, got, want)
		}
	}
}

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	touchAllMetrics(newMetrics(reg, "dev"))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "pipgate_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

func BenchmarkMetricsDownload(b *testing.B) {
	m := newMetrics(nil, "dev")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.download(pypi.VerdictVerified, "allow")
			m.CacheLookup("file", "hit")
			m.observeHTTP("file", "GET", 200, time.Millisecond)
		}
	})
}

// failingWriter fails every write, as a full disk does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
