package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/internal/s3test"
	"github.com/pipgate/pipgate/internal/testbin"
)

// scrape is a parsed /metrics exposition: for each series name, the label
// values seen per label name.
type scrape struct {
	labels map[string]map[string]map[string]bool
	// closed marks the labels of a series that pipgate creates at zero for
	// every value of a closed set (verdict, action, …): series name ->
	// label name. Only their values can be held to the scrape.
	closed map[string]map[string]bool
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

func parseScrape(t *testing.T, text []byte) scrape {
	t.Helper()
	s := scrape{labels: map[string]map[string]map[string]bool{}, closed: map[string]map[string]bool{}}
	for _, l := range strings.Split(string(text), "\n") {
		m := sampleLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		labels := s.labels[m[1]]
		if labels == nil {
			labels = map[string]map[string]bool{}
			s.labels[m[1]] = labels
			s.closed[m[1]] = map[string]bool{}
		}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			if labels[p[1]] == nil {
				labels[p[1]] = map[string]bool{}
			}
			labels[p[1]][p[2]] = true
			if m[3] == "0" && !strings.HasSuffix(m[1], "_bucket") {
				s.closed[m[1]][p[1]] = true
			}
		}
	}
	if len(s.labels) == 0 {
		t.Fatalf("an empty scrape:\n%s", text)
	}
	return s
}

// fullServerScrape starts pipgate on the ConfigMap's config with egress mode
// on as deployment.yaml describes (a CA from `pipgate ca init`) and the
// shared blob store of kubernetes/shared-bucket on a real S3 server
// (versitygw), installs one file through it and returns its /metrics.
func fullServerScrape(t *testing.T) []byte {
	t.Helper()
	config, _ := kubeConfig(t, kubeObjects(t)["ConfigMap"])
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(config)
	cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if out, err := run(t, "ca", "init", "--cert", cert, "--key", key); err != nil {
		t.Fatalf("pipgate ca init: %v\n%s", err, out)
	}
	eg, _ := m["egress"].(map[string]any)
	if eg == nil {
		t.Fatal("the ConfigMap's config has no egress section")
	}
	eg["listen"], eg["ca_cert"], eg["ca_key"] = "127.0.0.1:0", cert, key
	bucket := s3test.Start(t)
	cache, _ := m["cache"].(map[string]any)
	cache["shared"] = map[string]any{"s3": map[string]any{
		"endpoint": bucket.Endpoint, "bucket": bucket.Bucket, "prefix": "scrape/", "path_style": true}}
	out, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, out, 0o600); err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	s := startServer(t, config, up, bucket.Env()...)
	if s.addrs["egress.listen"] == "" {
		t.Fatal("egress mode did not start")
	}
	install(t, s, up)
	code, body := get(t, s.url("listen", "/metrics"), "Accept", "text/plain")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	return body
}

// query is one PromQL expression and where it comes from.
type query struct{ where, expr string }

// deployQueries returns every PromQL expression of the alert rules, their
// unit tests' input series and the dashboard's panels and variables.
func deployQueries(t *testing.T) []query {
	t.Helper()
	var qs []query
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(readFile(t, "deploy", "prometheus", "alerts.yml"), &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{"alerts.yml " + r.Alert + r.Record, r.Expr})
		}
	}
	var tests struct {
		Tests []struct {
			Name        string
			InputSeries []struct{ Series string } `yaml:"input_series"`
		}
	}
	if err := yaml.Unmarshal(readFile(t, "deploy", "prometheus", "alerts_test.yml"), &tests); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			qs = append(qs, query{"alerts_test.yml " + tc.Name, s.Series})
		}
	}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = "dashboard panel " + title
			}
			for k, x := range v {
				if e, ok := x.(string); ok && (k == "expr" || (k == "query" && strings.Contains(e, "pipgate_"))) {
					qs = append(qs, query{where, e})
				}
				walk(where, x)
			}
		case []any:
			for _, x := range v {
				walk(where, x)
			}
		}
	}
	var dash any
	if err := json.Unmarshal(readFile(t, "deploy", "grafana", "pipgate-dashboard.json"), &dash); err != nil {
		t.Fatal(err)
	}
	walk("dashboard", dash)
	return qs
}

var (
	metricSelector = regexp.MustCompile(`\b(pipgate_[a-z0-9_]+)\b(\{[^}]*\})?`)
	labelMatcher   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	labelValues    = regexp.MustCompile(`^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
	plainValues    = regexp.MustCompile(`^[a-zA-Z0-9_.-]+(\|[a-zA-Z0-9_.-]+)*$`)
)

// TestAlertsAndDashboardQueryExportedMetrics scrapes a running pipgate
// (every component on) and holds every query of the alert rules, their
// tests and the dashboard to it: each pipgate_ series exists, each label it
// matches on is one the series carries, and each fixed value it selects
// from a closed set (verdict="invalid", action=~"block|yank": pipgate
// creates those series at zero) is one pipgate exports. The scrape itself
// passes `promtool check metrics`.
func TestAlertsAndDashboardQueryExportedMetrics(t *testing.T) {
	t.Parallel()
	text := fullServerScrape(t)
	s := parseScrape(t, text)
	// Prometheus adds these to every series it scrapes.
	added := map[string]bool{"job": true, "instance": true}
	used := map[string]bool{}
	for _, q := range deployQueries(t) {
		for _, m := range metricSelector.FindAllStringSubmatch(q.expr, -1) {
			name := m[1]
			labels, ok := s.labels[name]
			if !ok {
				t.Errorf("%s: %s is not in pipgate's /metrics", q.where, name)
				continue
			}
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] = true
			for _, lm := range labelMatcher.FindAllStringSubmatch(m[2], -1) {
				label, op, value := lm[1], lm[2], lm[3]
				if added[label] {
					continue
				}
				values, ok := labels[label]
				if !ok {
					t.Errorf("%s: %s has no label %s", q.where, name, label)
					continue
				}
				if op == "!~" || op == "!=" || !s.closed[name][label] || !plainValues.MatchString(value) {
					continue
				}
				for _, v := range strings.Split(value, "|") {
					if !values[v] {
						t.Errorf("%s: %s{%s=%q}: pipgate exports %s only as %v", q.where, name, label, v, label, keys(values))
					}
				}
			}
		}
	}
	// The series the dashboard and the alerts must show (issue 5).
	for _, want := range []string{
		"pipgate_downloads_total", "pipgate_policy_decisions_total", "pipgate_verifications_total",
		"pipgate_cache_lookups_total", "pipgate_upstream_request_duration_seconds",
		"pipgate_upstream_requests_total", "pipgate_verification_duration_seconds",
		"pipgate_trust_root_last_refresh_timestamp_seconds", "pipgate_config_last_reload_successful",
		"pipgate_policy_findings_total",
	} {
		if !used[want] {
			t.Errorf("deploy/ never queries %s", want)
		}
	}

	t.Run("promtool check metrics", func(t *testing.T) {
		cmd := testbin.Command(t.Context(), t, promtool(t), "check", "metrics")
		cmd.Stdin = bytes.NewReader(text)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestPromtool: the alert rules load and pass their unit tests, the
// Prometheus config loads, and every dashboard query parses as PromQL
// (Grafana's variables replaced).
func TestPromtool(t *testing.T) {
	t.Parallel()
	pt := promtool(t)
	check := func(dir string, args ...string) {
		t.Helper()
		cmd := testbin.Command(t.Context(), t, pt, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	check("prometheus", "check", "rules", "alerts.yml")
	check("prometheus", "test", "rules", "alerts_test.yml", "alerts_days_test.yml")
	check("prometheus", "check", "config", "prometheus.yml")

	subst := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$__interval", "1m", "$job", ".*", "$instance", ".*",
		"${job}", ".*", "${instance}", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, q := range deployQueries(t) {
		if !strings.HasPrefix(q.where, "dashboard") {
			continue
		}
		n++
		expr := q.expr
		if m := labelValues.FindStringSubmatch(expr); m != nil {
			expr = m[1] // a variable's label_values(SELECTOR, LABEL): Grafana's, not PromQL
		}
		e, _ := json.Marshal(subst.Replace(expr))
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", n, e)
	}
	if n == 0 {
		t.Fatal("no queries in the dashboard")
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	check(".", "check", "rules", f)
}

// TestDashboardLayout checks what Grafana would only show by rendering the
// dashboard: unique panel IDs, panels inside the 24-column grid and not
// overlapping, and every query on the dashboard's data source variable and
// its $job filter.
func TestDashboardLayout(t *testing.T) {
	t.Parallel()
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
	if err := json.Unmarshal(readFile(t, "deploy", "grafana", "pipgate-dashboard.json"), &dash); err != nil {
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
