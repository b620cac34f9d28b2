package proxy

import (
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/pypi"
)

// touchAllMetrics moves every series of m once, so that a scrape shows each
// family with a sample.
func touchAllMetrics(m *metrics) {
	m.observeHTTP("simple_project", "GET", 200, 30*time.Millisecond)
	m.trackInFlight()()
	m.policyDecision("block", "pypi-attestations")
	m.download(pypi.VerdictUnattested, "warn", false)
}

func TestMetricsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, "1.2.3")
	m.observeHTTP("file", "GET", 200, 1500*time.Millisecond)
	m.observeHTTP("file", "BREW", 403, 10*time.Millisecond)
	m.observeHTTP("file", "GET", 1000, time.Millisecond)
	m.policyDecision("allow", "")
	m.policyDecision("yank", "internal-*")
	m.policyDecision("deny", "defaults")
	m.download(pypi.VerdictVerified, "allow", true)
	m.download(pypi.VerdictVerified, "allow", false)
	m.download(pypi.VerdictUntrustedPublisher, "block", true)
	m.download("evil\nverdict", "allow", false)

	const want = `
# HELP pipgate_build_info A metric with a constant 1 value labelled by the pipgate version and the Go version it was built with.
# TYPE pipgate_build_info gauge
pipgate_build_info{goversion="GOVERSION",version="1.2.3"} 1
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
`
	expected := strings.Replace(want, "GOVERSION", runtime.Version(), 1)
	names := []string{
		"pipgate_build_info",
		"pipgate_http_requests_total", "pipgate_policy_decisions_total",
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), names...); err != nil {
		t.Error(err)
	}

	// The downloads series: every verdict × action × policy exists from the start.
	if got, want := testutil.CollectAndCount(m.downloads), len(metricsVerdicts)*len(metricsActions)*2+1; got != want {
		t.Errorf("pipgate_downloads_total has %d series; want %d (6 verdicts × 4 actions × rule or defaults + other)", got, want)
	}
	for _, tc := range []struct {
		verdict, action, by string
		want                float64
	}{
		{"verified", "allow", "rule", 1},
		{"verified", "allow", "defaults", 1},
		{"untrusted-publisher", "block", "rule", 1},
		{"untrusted-publisher", "block", "defaults", 0},
		{"unattested", "warn", "defaults", 0},
		{"other", "allow", "defaults", 1},
	} {
		if got := testutil.ToFloat64(m.downloads.WithLabelValues(tc.verdict, tc.action, tc.by)); got != tc.want {
			t.Errorf("pipgate_downloads_total{verdict=%q,action=%q,policy=%q} = %v; want %v", tc.verdict, tc.action, tc.by, got, tc.want)
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

func TestMetricsStatusCounts(t *testing.T) {
	m := newMetrics(nil, "dev")
	if ratio, _ := m.statusCounts(map[gate.LookupKind]gate.LookupCounts{gate.LookupFile: {}}); !math.IsNaN(ratio) {
		t.Errorf("hit ratio before any lookup = %v; want NaN", ratio)
	}
	m.download(pypi.VerdictVerified, "allow", false)
	m.download(pypi.VerdictInvalid, "block", true)
	m.download(pypi.VerdictInvalid, "block", false)
	ratio, downloads := m.statusCounts(map[gate.LookupKind]gate.LookupCounts{
		gate.LookupFile: {Hit: 2}, gate.LookupIndex: {Miss: 1}, gate.LookupProvenance: {Stale: 1}})
	if want := 0.5; ratio != want {
		t.Errorf("hit ratio = %v; want %v", ratio, want)
	}
	for v, want := range map[pypi.Verdict]int64{"verified": 1, "invalid": 2, "unattested": 0} {
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
			m.download(pypi.VerdictVerified, "allow", false)
			m.observeHTTP("file", "GET", 200, time.Millisecond)
		}
	})
}
