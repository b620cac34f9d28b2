package gate

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/pypi"
)

// TestMetricsSeries: the gate's series, their closed label sets created at
// zero, and values outside a set folded into "other".
func TestMetricsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.lookup(LookupIndex, CacheHit)
	m.lookup(LookupIndex, CacheStale)
	m.lookup(LookupVerdict, CacheMiss)
	m.lookup("project-name", CacheHit) // not a kind: folded
	m.served(SourceUpstream, 100)
	m.served(SourceUpstream, 0)
	m.served("elsewhere", 7)
	m.verification(pypi.VerdictVerified, "", time.Millisecond)
	m.verification(pypi.VerdictInvalid, "digest-mismatch", 3*time.Millisecond)
	m.verification(pypi.VerdictUntrustedPublisher, "identity-mismatch", time.Millisecond) // a policy verdict: folded
	const want = `
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
# HELP pipgate_served_bytes_total Bytes of distribution files sent to clients, by source (cache, upstream, shared: the shared blob store).
# TYPE pipgate_served_bytes_total counter
pipgate_served_bytes_total{source="cache"} 0
pipgate_served_bytes_total{source="other"} 7
pipgate_served_bytes_total{source="shared"} 0
pipgate_served_bytes_total{source="upstream"} 100
# HELP pipgate_verifications_total Provenance verifications run, by result and failure reason class (none when verified).
# TYPE pipgate_verifications_total counter
pipgate_verifications_total{reason="digest-mismatch",result="invalid"} 1
pipgate_verifications_total{reason="identity-mismatch",result="other"} 1
pipgate_verifications_total{reason="none",result="unattested"} 0
pipgate_verifications_total{reason="none",result="verified"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"pipgate_cache_lookups_total", "pipgate_served_bytes_total", "pipgate_verifications_total"); err != nil {
		t.Error(err)
	}
	m.verification(pypi.VerdictError, "fetch", 0) // nothing verified: counted, not timed
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

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.lookup(LookupFile, CacheHit)
	m.served(SourceCache, 1234)
	m.verification(pypi.VerdictInvalid, "signature", 2*time.Millisecond)
	m.fillsAbandoned.Inc()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
