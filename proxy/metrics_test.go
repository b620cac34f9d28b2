package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/egress"
	"github.com/pipgate/pipgate/policy/reload"
	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

// touchAllMetrics moves every series of m once, so that a scrape shows each
// family with a sample.
func touchAllMetrics(m *metrics) {
	m.observeHTTP("simple_project", "GET", 200, 30*time.Millisecond)
	m.trackInFlight()()
	m.cacheLookup("file", "hit")
	m.served("cache", 1234)
	m.verification(pypi.VerdictInvalid, "signature", 2*time.Millisecond)
	m.policyDecision("block", "pypi-attestations")
	m.download(pypi.VerdictUnattested, "warn")
	m.auditLog(&AuditLog{})
}

func TestMetricsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, "1.2.3")
	m.observeHTTP("file", "GET", 200, 1500*time.Millisecond)
	m.observeHTTP("file", "BREW", 403, 10*time.Millisecond)
	m.observeHTTP("file", "GET", 1000, time.Millisecond)
	m.cacheLookup("index", "hit")
	m.cacheLookup("index", "stale")
	m.cacheLookup("verdict", "miss")
	m.cacheLookup("project-name", "hit") // not a kind: folded
	m.served("upstream", 100)
	m.served("upstream", 0)
	m.served("elsewhere", 7)
	m.verification(pypi.VerdictVerified, "", time.Millisecond)
	m.verification(pypi.VerdictInvalid, "digest-mismatch", 3*time.Millisecond)
	m.verification(pypi.VerdictUntrustedPublisher, "identity-mismatch", time.Millisecond) // a policy verdict: folded
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
	a, err := NewAuditLog("-", &failingWriter{})
	if err != nil {
		t.Fatal(err)
	}
	m.auditLog(a)
	a.Log(auditRecord{Event: auditEventDownload})
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
	m.cacheLookup("file", "hit")
	m.cacheLookup("file", "hit")
	m.cacheLookup("index", "miss")
	m.cacheLookup("provenance", "stale")
	m.cacheLookup("bogus", "hit") // not counted anywhere on the page
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

// TestMetricsPromtool runs `promtool check metrics` on a scrape of the
// registry with every series touched, as the issue requires (node_exporter's
// checkmetrics.sh does the same).
func TestMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not on PATH (Debian: apt-get install prometheus); skipping promtool check metrics")
	}
	reg := prometheus.NewRegistry()
	touchAllMetrics(newMetrics(reg, "dev"))
	registerComponents(t, reg)
	text := gatherText(t, reg)
	for _, name := range []string{"pipgate_downloads_total", "pipgate_cache_size_bytes", "pipgate_build_info", "go_goroutines", "process_cpu_seconds_total"} {
		if !bytes.Contains(text, []byte("\n"+name)) {
			t.Errorf("scrape lacks %s", name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// gatherText returns the registry's text exposition, scraped through
// promhttp as /metrics serves it.
func gatherText(t *testing.T, g prometheus.Gatherer) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

func BenchmarkMetricsDownload(b *testing.B) {
	m := newMetrics(nil, "dev")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.download(pypi.VerdictVerified, "allow")
			m.cacheLookup("file", "hit")
			m.observeHTTP("file", "GET", 200, time.Millisecond)
		}
	})
}

// ---------------------------------------------------------------------------
// deploy/: the files that refer to these metrics and run this binary. These
// tests are the offline validation of deploy/ (scripts/check-deploy.sh runs
// them next to promtool, systemd-analyze and docker-compose).

// repoFile returns the path of a repository file from the package directory.
func repoFile(parts ...string) string {
	return filepath.Join(append([]string{".."}, parts...)...)
}

// describeRecorder is a Registerer that records the name of every metric
// described by a registered collector, observed or not.
type describeRecorder struct {
	prometheus.Registerer
	names map[string]bool
}

func (d *describeRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := descName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return d.Registerer.Register(c)
}

func (d *describeRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// registerComponents builds, on reg, every component serve wires beside
// the proxy that owns metrics: the upstream client, the cache store, the
// trust source, the policy reloader and the egress proxy.
func registerComponents(t *testing.T, reg prometheus.Registerer) {
	t.Helper()
	if _, err := upstream.New(upstream.Options{URL: "https://pypi.org/", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(cache.Options{Dir: t.TempDir(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	root := provenancetest.New(t).WriteTrustedRoot(t.TempDir())
	if _, err := provenance.NewTrustSource(t.Context(), provenance.TrustSourceOptions{TrustedRootPath: root, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := reload.New(reload.Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := egress.GenerateCA("metrics test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := egress.New(egress.Options{Handler: http.NotFoundHandler(), CA: ca, Intercept: []string{"pypi.org"}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
}

// registeredMetricNames returns every pipgate_ metric the binary registers:
// this package's and those of the components serve wires beside it.
func registeredMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	rec := &describeRecorder{Registerer: prometheus.NewRegistry(), names: make(map[string]bool)}
	newMetrics(rec, "dev").auditLog(nil)
	registerComponents(t, rec)
	out := make(map[string]bool)
	for n := range rec.names {
		if strings.HasPrefix(n, "pipgate_") {
			out[n] = true
		}
	}
	return out
}

// deployFiles returns the deploy/ files whose name ends in one of exts.
func deployFiles(t *testing.T, exts ...string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(repoFile("deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, e := range exts {
			if !d.IsDir() && strings.HasSuffix(p, e) {
				files = append(files, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no %v files under deploy/", exts)
	}
	return files
}

var metricRef = regexp.MustCompile(`pipgate_[a-z_]+`)

func TestDeployMetricNames(t *testing.T) {
	have := registeredMetricNames(t)
	used := make(map[string]bool)
	for _, f := range deployFiles(t, ".json", ".yml", ".yaml") {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range metricRef.FindAllString(string(data), -1) {
			name := ref
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(ref, suf); ok && have[b] {
					name = b
				}
			}
			used[name] = true
			if !have[name] {
				t.Errorf("%s refers to %s, which pipgate does not export", f, ref)
			}
		}
	}
	// The series the issue asks the dashboard and the alerts to show.
	for _, want := range []string{
		"pipgate_downloads_total", "pipgate_policy_decisions_total", "pipgate_verifications_total",
		"pipgate_cache_lookups_total", "pipgate_upstream_request_duration_seconds",
		"pipgate_upstream_requests_total", "pipgate_verification_duration_seconds",
		"pipgate_trust_root_last_refresh_timestamp_seconds", "pipgate_config_last_reload_successful",
		"pipgate_policy_findings_total",
	} {
		if !used[want] {
			t.Errorf("deploy/ never uses %s", want)
		}
	}
}

// yamlDocs decodes every document of a YAML file (duplicate keys are errors).
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

func TestDeploySyntax(t *testing.T) {
	for _, f := range deployFiles(t, ".yml", ".yaml") {
		if len(yamlDocs(t, f)) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
	}
	for _, f := range deployFiles(t, ".json") {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// productConfigKeys are the server configuration keys of product.md.
var productConfigKeys = []string{
	"listen", "data_dir", "upstream", "upstream.url", "upstream.file_hosts", "upstream.index_ttl",
	"upstream.timeout", "trust", "trust.trusted_root", "policy", "metrics_listen", "audit_log",
	"egress", "egress.listen", "egress.ca_cert", "egress.ca_key", "egress.intercept",
	"tls", "tls.cert", "tls.key", "cache", "cache.max_size",
}

// configKeys flattens the keys of a decoded pipgate.yaml: "upstream.url".
func configKeys(prefix string, m map[string]any, out map[string]bool) {
	for k, v := range m {
		out[prefix+k] = true
		if sub, ok := v.(map[string]any); ok {
			configKeys(prefix+k+".", sub, out)
		}
	}
}

// checkPipgateConfig checks that cfg (one pipgate.yaml) spells exactly the
// product.md keys and returns it decoded.
func checkPipgateConfig(t *testing.T, name string, cfg []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(cfg))
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got := make(map[string]bool)
	configKeys("", m, got)
	for _, k := range productConfigKeys {
		if !got[k] {
			t.Errorf("%s: missing key %s", name, k)
		}
		delete(got, k)
	}
	for k := range got {
		t.Errorf("%s: key %s is not in product.md's configuration", name, k)
	}
	return m
}

func TestDeployKubernetes(t *testing.T) {
	dir := repoFile("deploy", "kubernetes")
	byKind := make(map[string]map[string]any)
	kust := yamlDocs(t, filepath.Join(dir, "kustomization.yaml"))[0]
	for _, r := range kust["resources"].([]any) {
		for _, doc := range yamlDocs(t, filepath.Join(dir, r.(string))) {
			kind, _ := doc["kind"].(string)
			if doc["apiVersion"] == nil || kind == "" || dig(doc, "metadata", "name") == nil {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name", r)
				continue
			}
			byKind[kind] = doc
		}
	}
	for _, k := range []string{"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
		if byKind[k] == nil {
			t.Fatalf("kustomization.yaml has no %s", k)
		}
	}
	dep := byKind["Deployment"]
	podLabels := dig(dep, "spec", "template", "metadata", "labels").(map[string]any)
	if !subset(dig(dep, "spec", "selector", "matchLabels"), podLabels) {
		t.Error("Deployment selector does not match its pod labels")
	}
	if n, ok := dig(dep, "spec", "replicas").(int); ok {
		t.Errorf("Deployment replicas = %d beside the HPA; leave the count to the HPA", n)
	}
	c := dig(dep, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	ports := make(map[string]int)
	for _, p := range c["ports"].([]any) {
		p := p.(map[string]any)
		ports[p["name"].(string)] = p["containerPort"].(int)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
		if got := dig(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %v; want %s", probe, got, path)
		}
		if port, _ := dig(c, probe, "httpGet", "port").(string); ports[port] == 0 {
			t.Errorf("%s port %q is not a container port", probe, port)
		}
	}
	for _, r := range []string{"requests", "limits"} {
		if dig(c, "resources", r, "memory") == nil {
			t.Errorf("container has no resources.%s.memory", r)
		}
	}
	if dig(c, "resources", "requests", "cpu") == nil {
		t.Error("container has no resources.requests.cpu (the HPA needs it)")
	}
	if dig(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true ||
		dig(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("pod must run as non-root with a read-only root filesystem")
	}
	mounts := make(map[string]string)
	for _, m := range c["volumeMounts"].([]any) {
		m := m.(map[string]any)
		mounts[m["name"].(string)] = m["mountPath"].(string)
	}
	volumes := make(map[string]map[string]any)
	for _, v := range dig(dep, "spec", "template", "spec", "volumes").([]any) {
		v := v.(map[string]any)
		volumes[v["name"].(string)] = v
	}
	for name := range mounts {
		if volumes[name] == nil {
			t.Errorf("volumeMount %s has no volume", name)
		}
	}

	cm := byKind["ConfigMap"]
	if got, want := dig(volumes["config"], "configMap", "name"), dig(cm, "metadata", "name"); got != want {
		t.Errorf("config volume uses ConfigMap %v; want %v", got, want)
	}
	cfgText, _ := dig(cm, "data", "pipgate.yaml").(string)
	cfg := checkPipgateConfig(t, "configmap.yaml pipgate.yaml", []byte(cfgText))
	if _, ok := dig(cm, "data", "policy.yaml").(string); !ok || cfg["policy"] != "policy.yaml" {
		t.Error("ConfigMap must hold policy.yaml and pipgate.yaml must name it")
	}
	if cfg["data_dir"] != mounts["data"] || mounts["config"] != "/etc/pipgate" {
		t.Errorf("data_dir %v and config mount %v do not match the volume mounts %v", cfg["data_dir"], mounts["config"], mounts)
	}
	_, port, _ := strings.Cut(cfg["listen"].(string), ":")
	if fmt.Sprint(ports["http"]) != port {
		t.Errorf("listen %v does not match containerPort %d", cfg["listen"], ports["http"])
	}

	svc := byKind["Service"]
	if !subset(dig(svc, "spec", "selector"), podLabels) {
		t.Error("Service selector does not match the pod labels")
	}
	for _, p := range dig(svc, "spec", "ports").([]any) {
		if tp, _ := p.(map[string]any)["targetPort"].(string); ports[tp] == 0 {
			t.Errorf("Service targetPort %q is not a container port", tp)
		}
	}
	if !subset(dig(byKind["PodDisruptionBudget"], "spec", "selector", "matchLabels"), podLabels) {
		t.Error("PodDisruptionBudget selector does not match the pod labels")
	}
	hpa := byKind["HorizontalPodAutoscaler"]
	if dig(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" || dig(hpa, "spec", "scaleTargetRef", "name") != dig(dep, "metadata", "name") {
		t.Error("HorizontalPodAutoscaler does not target the Deployment")
	}
	if lo, _ := dig(hpa, "spec", "minReplicas").(int); lo < 2 {
		t.Errorf("HPA minReplicas = %d; want at least 2 (the PDB allows one down)", lo)
	}
}

func TestDeployContainerAndServiceConfigs(t *testing.T) {
	for _, tc := range []struct {
		file, dataDir, audit string
	}{
		{"deploy/docker/pipgate.yaml", "/data", "-"},
		{"deploy/systemd/pipgate.yaml", "/var/lib/pipgate", "/var/log/pipgate/audit.jsonl"},
	} {
		data, err := os.ReadFile(repoFile(tc.file))
		if err != nil {
			t.Fatal(err)
		}
		cfg := checkPipgateConfig(t, tc.file, data)
		if cfg["data_dir"] != tc.dataDir || cfg["audit_log"] != tc.audit {
			t.Errorf("%s: data_dir %v, audit_log %v; want %s, %s", tc.file, cfg["data_dir"], cfg["audit_log"], tc.dataDir, tc.audit)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(repoFile(tc.file)), cfg["policy"].(string))); err != nil {
			t.Errorf("%s: policy: %v", tc.file, err)
		}
	}

	unit, err := os.ReadFile(repoFile("deploy", "systemd", "pipgate.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nDynamicUser=yes\n", "\nProtectSystem=strict\n", "\nStateDirectory=pipgate\n", "\nLogsDirectory=pipgate\n",
		"\nConfigurationDirectory=pipgate\n", "\nExecReload=/bin/kill -HUP $MAINPID\n", "\nNoNewPrivileges=yes\n",
		"\nExecStart=/usr/local/bin/pipgate serve --config /etc/pipgate/pipgate.yaml\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("pipgate.service lacks %q", strings.TrimSpace(want))
		}
	}

	compose := yamlDocs(t, repoFile("deploy", "docker-compose.yml"))[0]
	services, _ := compose["services"].(map[string]any)
	for _, s := range []string{"pipgate", "prometheus", "grafana"} {
		svc, _ := services[s].(map[string]any)
		if svc == nil {
			t.Errorf("docker-compose.yml has no %s service", s)
			continue
		}
		vols, _ := svc["volumes"].([]any)
		for _, v := range vols {
			src, _, _ := strings.Cut(v.(string), ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(repoFile("deploy", src)); err != nil {
					t.Errorf("docker-compose.yml %s mounts %s: %v", s, src, err)
				}
			}
		}
	}
	if ctx := dig(services["pipgate"], "build", "context"); ctx != ".." {
		t.Errorf("pipgate build context %v; want the repository root", ctx)
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(repoFile("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{
		"FROM golang:1.26 AS build",
		`CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pipgate ./cmd/pipgate`,
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"USER 65532:65532",
		`VOLUME ["/data", "/etc/pipgate"]`,
		"EXPOSE 8080 3128",
		"HEALTHCHECK ",
		"http://127.0.0.1:8080/healthz",
		`ENTRYPOINT ["/pipgate"]`,
		`CMD ["serve", "--config", "/etc/pipgate/pipgate.yaml"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The baked-in config listens where EXPOSE and HEALTHCHECK say.
	cfg, err := os.ReadFile(repoFile("deploy", "docker", "pipgate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^listen: 0\.0\.0\.0:8080\b`).Match(cfg) {
		t.Error("deploy/docker/pipgate.yaml must listen on 0.0.0.0:8080 (EXPOSE, HEALTHCHECK)")
	}
	// Every local COPY source exists and is not excluded by .dockerignore.
	ignore, err := os.ReadFile(repoFile(".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var excluded []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			excluded = append(excluded, strings.TrimPrefix(l, "/"))
		}
	}
	for _, l := range strings.Split(df, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--") {
			continue
		}
		for _, src := range f[1 : len(f)-1] {
			if src == "." {
				continue
			}
			if _, err := os.Stat(repoFile(src)); err != nil {
				t.Errorf("Dockerfile copies %s: %v", src, err)
			}
			for _, ex := range excluded {
				if src == ex || strings.HasPrefix(src, ex+"/") {
					t.Errorf("Dockerfile copies %s, which .dockerignore excludes (%s)", src, ex)
				}
			}
		}
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd", "pypi", "proxy"} {
		for _, ex := range excluded {
			if need == ex {
				t.Errorf(".dockerignore excludes %s, which the build needs", need)
			}
		}
	}
}

// dig walks nested maps by key; nil when a step is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// subset reports whether every key=value of sel (a label map) is in labels.
func subset(sel any, labels map[string]any) bool {
	m, ok := sel.(map[string]any)
	if !ok || len(m) == 0 {
		return false
	}
	for k, v := range m {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestDeployDashboard checks what Grafana would only show by rendering the
// dashboard: unique panel IDs, panels inside the 24-column grid and not
// overlapping, and every query on the dashboard's data source variable.
func TestDeployDashboard(t *testing.T) {
	data, err := os.ReadFile(repoFile("deploy", "grafana", "pipgate-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct {
				X, Y, W, H int
			} `json:"gridPos"`
			Targets []target `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" {
		t.Error("dashboard has no uid (provisioned links need a stable one)")
	}
	vars := make(map[string]bool)
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
	}
	for _, v := range []string{"datasource", "job", "instance"} {
		if !vars[v] {
			t.Errorf("dashboard lacks the $%s variable", v)
		}
	}
	ids := make(map[int]string)
	type cell struct{ x, y int }
	owner := make(map[cell]string)
	for _, p := range dash.Panels {
		if prev, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if prev, ok := owner[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps %q at (%d,%d)", p.Title, prev, x, y)
					x, y = g.X+g.W, g.Y+g.H // one report per pair
				} else {
					owner[cell{x, y}] = p.Title
				}
			}
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := make(map[string]bool)
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: a query without expr or with a missing or repeated refId", p.Title)
			}
			refs[tg.RefID] = true
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: data source %q; want ${datasource}", p.Title, tg.Datasource.UID)
			}
			if !strings.Contains(tg.Expr, `job=~"$job"`) {
				t.Errorf("panel %q: query ignores $job: %s", p.Title, tg.Expr)
			}
		}
	}
}
