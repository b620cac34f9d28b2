package proxy

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/internal/units"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

// statusStaleTrustRoot is the trust-root age the status page flags as stale;
// deploy/prometheus/alerts.yml alerts at the same age.
const statusStaleTrustRoot = 48 * time.Hour

// statusCSP is the Content-Security-Policy the /-/status handler should send
// with the HTML page: it loads nothing and runs no script; only the inline
// style sheet applies.
const statusCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// statusSnapshot is everything /-/status shows, gathered by the handler at
// request time. Zero values render as "unknown" or empty tables.
type statusSnapshot struct {
	Version     string    `json:"version"`
	StartedAt   time.Time `json:"started_at"`
	GeneratedAt time.Time `json:"generated_at"` // now, by the server's clock (Options.Now); zero: uptime unknown
	Upstream    string    `json:"upstream"`     // upstream.url, or name=url of each upstream
	// Upstreams describes each configured upstream (never its credentials)
	// and its last authentication failure.
	Upstreams []upstream.Info `json:"upstreams,omitempty"`
	// MemoryLimit is the Go soft memory limit in force (math.MaxInt64:
	// none) and MemoryOrigin where it came from: memory_limit,
	// GOMEMLIMIT, cgroup or default. 0: unknown.
	MemoryLimit  int64  `json:"memory_limit_bytes,omitempty"`
	MemoryOrigin string `json:"memory_limit_origin,omitempty"`

	PolicySource   string    `json:"policy_source"` // the policy file, or "built-in default"
	PolicyDigest   string    `json:"policy_digest"` // sha256 of the policy file: the policy version ("" for the built-in policy)
	PolicyRules    int       `json:"policy_rules"`  // the number of package rules
	PolicyLoadedAt time.Time `json:"policy_loaded_at"`
	// PolicyReloadError is the error of the last policy reload when it
	// failed (the policy loaded at PolicyLoadedAt stays in force); "" after
	// a good load.
	PolicyReloadError    string    `json:"policy_reload_error,omitempty"`
	PolicyReloadFailedAt time.Time `json:"policy_reload_failed_at,omitempty"`
	// PolicyInPlaceAt is when polling found the policy file changed in
	// place: not adopted (it may be half-written) until SIGHUP. Zero: none.
	PolicyInPlaceAt time.Time `json:"policy_changed_in_place_at,omitzero"`

	TrustRoot       string `json:"trust_root"` // the source: a trusted_root.json path, or "tuf"
	TrustRootDigest string `json:"trust_root_digest"`
	// TrustRootAge is the time since the trust root was last loaded or
	// refreshed; negative when unknown. In JSON it is trust_root_age_seconds.
	TrustRootAge time.Duration `json:"-"`

	// CacheBlobBytes is the bytes of the cached files (blobs): what
	// CacheMaxBytes (cache.max_size; 0: none) bounds. CacheDBBytes is the
	// database file, separately. CacheBytes is their sum (deprecated).
	CacheBlobBytes int64 `json:"cache_blob_bytes"`
	CacheMaxBytes  int64 `json:"cache_max_size_bytes"`
	CacheDBBytes   int64 `json:"cache_db_bytes"`
	CacheBytes     int64 `json:"cache_bytes"`
	// SharedStore describes the shared blob store (cache.shared) and its
	// state; "" without one. SharedStoreDown: its breaker is open.
	SharedStore     string `json:"shared_store,omitempty"`
	SharedStoreDown bool   `json:"shared_store_down,omitempty"`
	// CacheHitRatio is hits over all lookups, 0 to 1; NaN (JSON: null)
	// before the first lookup.
	CacheHitRatio float64                               `json:"-"`
	Lookups       map[gate.LookupKind]gate.LookupCounts `json:"lookups"` // by kind: index, file, provenance, verdict

	Decisions []statusDecision       `json:"decisions"` // recent, newest first
	Blocked   []statusDecision       `json:"blocked"`   // files currently blocked or yanked, newest first
	Counts    map[pypi.Verdict]int64 `json:"counts"`    // downloads since start, by verdict
}

// statusJSONView is the JSON form of a statusSnapshot: durations in seconds,
// and a ratio that may be null.
type statusJSONView struct {
	statusSnapshot
	TrustRootAgeSeconds *float64 `json:"trust_root_age_seconds"` // null when unknown
	CacheHitRatio       *float64 `json:"cache_hit_ratio"`        // null before the first lookup
	UptimeSeconds       float64  `json:"uptime_seconds"`
}

// indexOf returns the index of v in set, or -1.
func indexOf[T comparable](v T, set []T) int {
	for i, s := range set {
		if s == v {
			return i
		}
	}
	return -1
}

// statusCounts returns the hit ratio over every cache lookup in lookups
// (NaN before the first), and the downloads by verdict since start: the
// CacheHitRatio and Counts of a statusSnapshot. They are read from the
// Prometheus counters themselves, so the page and /metrics agree.
func (m *metrics) statusCounts(lookups map[gate.LookupKind]gate.LookupCounts) (hitRatio float64, downloads map[pypi.Verdict]int64) {
	var hits, total int64
	for _, l := range lookups {
		hits += l.Hit
		total += l.Hit + l.Miss + l.Stale
	}
	hitRatio = math.NaN()
	if total > 0 {
		hitRatio = float64(hits) / float64(total)
	}
	downloads = make(map[pypi.Verdict]int64, len(metricsVerdicts))
	for _, v := range metricsVerdicts {
		var n int64
		for _, a := range metricsActions {
			for _, by := range metricsDecidedBy {
				n += counterValue(m.downloads.WithLabelValues(string(v), string(a), by))
			}
		}
		downloads[v] = n
	}
	return hitRatio, downloads
}

// counterValue reads the current value of a counter that counts events.
func counterValue(c prometheus.Counter) int64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return int64(d.GetCounter().GetValue())
}

// writeStatusJSON writes s as indented JSON (the /-/status answer to
// Accept: application/json).
func writeStatusJSON(w io.Writer, s statusSnapshot) error {
	v := statusJSONView{statusSnapshot: s}
	if s.TrustRootAge >= 0 {
		age := s.TrustRootAge.Seconds()
		v.TrustRootAgeSeconds = &age
	}
	if r := s.CacheHitRatio; !math.IsNaN(r) && !math.IsInf(r, 0) {
		v.CacheHitRatio = &r
	}
	if !s.StartedAt.IsZero() && !s.GeneratedAt.IsZero() {
		v.UptimeSeconds = s.GeneratedAt.Sub(s.StartedAt).Seconds()
	}
	if v.Decisions == nil {
		v.Decisions = []statusDecision{}
	}
	if v.Blocked == nil {
		v.Blocked = []statusDecision{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing status JSON: %w", err)
	}
	return nil
}

// statusPage is what the HTML template sees: the snapshot plus the figures
// derived from it.
type statusPage struct {
	S              statusSnapshot
	Uptime         string
	TrustRootAge   string
	TrustRootStale bool
	HitRatio       string
	CacheSize      string // the blobs
	CacheLimit     string // "of 16.0 GiB (cache.max_size)", or that there is none
	CacheDB        string
	MemoryLimit    string // "224.0 MiB (default)"; "" when unknown
	Counts         []statusCount
	Lookups        []statusLookupRow
	// Upstreams is set when there is more than one upstream, or one with
	// credentials: the decisions table then names who served each one (the
	// upstreams and their health are always listed).
	Upstreams bool
}

// statusCount is one row of the downloads-by-verdict card.
type statusCount struct {
	Verdict pypi.Verdict
	N       int64
}

// statusLookupRow is one row of the cache lookups table.
type statusLookupRow struct {
	Kind gate.LookupKind
	gate.LookupCounts
}

// writeStatusHTML renders s as the /-/status page: one self-contained HTML
// document (inline CSS, no script, no external assets) in which every value
// is escaped by html/template.
func writeStatusHTML(w io.Writer, s statusSnapshot) error {
	p := statusPage{S: s, Uptime: "unknown", TrustRootAge: "unknown", HitRatio: "no lookups yet", CacheSize: units.Bytes(s.CacheBlobBytes),
		CacheLimit: "(no cache.max_size limit)", CacheDB: units.Bytes(s.CacheDBBytes)}
	if s.CacheMaxBytes > 0 {
		p.CacheLimit = "of " + units.Bytes(s.CacheMaxBytes) + " (cache.max_size)"
	}
	switch {
	case s.MemoryLimit == math.MaxInt64:
		p.MemoryLimit = "none (" + s.MemoryOrigin + ")"
	case s.MemoryLimit > 0:
		p.MemoryLimit = units.Bytes(s.MemoryLimit) + " (" + s.MemoryOrigin + ")"
	}
	p.Upstreams = len(s.Upstreams) > 1 || len(s.Upstreams) == 1 && s.Upstreams[0].Auth
	if !s.StartedAt.IsZero() && !s.GeneratedAt.IsZero() {
		p.Uptime = statusDuration(s.GeneratedAt.Sub(s.StartedAt))
	}
	if s.TrustRootAge >= 0 {
		p.TrustRootAge = statusDuration(s.TrustRootAge)
		p.TrustRootStale = s.TrustRootAge > statusStaleTrustRoot
	}
	if r := s.CacheHitRatio; !math.IsNaN(r) && !math.IsInf(r, 0) {
		p.HitRatio = fmt.Sprintf("%.1f%%", 100*r)
	}
	seen := make(map[pypi.Verdict]bool)
	for _, v := range metricsVerdicts { // verified first, then the ways a file falls short
		p.Counts = append(p.Counts, statusCount{v, s.Counts[v]})
		seen[v] = true
	}
	var extra []pypi.Verdict
	for v := range s.Counts {
		if !seen[v] {
			extra = append(extra, v)
		}
	}
	slices.Sort(extra)
	for _, v := range extra {
		p.Counts = append(p.Counts, statusCount{v, s.Counts[v]})
	}
	kinds := make([]gate.LookupKind, 0, len(s.Lookups))
	for k := range s.Lookups {
		kinds = append(kinds, k)
	}
	known := gate.LookupKinds()
	sort.Slice(kinds, func(i, j int) bool {
		a, b := indexOf(kinds[i], known), indexOf(kinds[j], known)
		if a != b {
			return uint(a) < uint(b) // known kinds in their order, unknown (-1) last
		}
		return kinds[i] < kinds[j]
	})
	for _, k := range kinds {
		p.Lookups = append(p.Lookups, statusLookupRow{k, s.Lookups[k]})
	}
	if err := statusTemplate.Execute(w, p); err != nil {
		return fmt.Errorf("writing status page: %w", err)
	}
	return nil
}

// statusDuration renders d for people: "3d 4h", "2h 5m", "42s".
func statusDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// statusBase is the last element of a policy file path (the status
// headline); the full path follows under it.
func statusBase(p string) string {
	if i := strings.LastIndexAny(p, "/\\"); i >= 0 && i < len(p)-1 {
		return p[i+1:]
	}
	return p
}

// statusShort abbreviates a hex digest for a table cell; the full value goes
// in the title attribute.
func statusShort(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// statusFuncs are the template helpers of the status pages.
var statusFuncs = template.FuncMap{
	"short": statusShort,
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"known": func(t time.Time) bool { return !t.IsZero() },
	"base":  statusBase,
	"orElse": func(v, fallback string) string {
		if v == "" {
			return fallback
		}
		return v
	},
	"ruleLine": func(line int) string {
		if line == 0 {
			return "built-in defaults"
		}
		return fmt.Sprintf("line %d", line)
	},
}

// statusTemplate and projectStatusTemplate are parsed once; they are
// immutable and safe for concurrent use.
var (
	statusTemplate        = template.Must(template.New("status").Funcs(statusFuncs).Parse(statusStyle + statusHTML))
	projectStatusTemplate = template.Must(template.New("project").Funcs(statusFuncs).Parse(statusStyle + projectStatusHTML))
)

// statusStyle is the style sheet both status pages share.
const statusStyle = `{{define "style"}}<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:12px 24px}
header h1{font-size:18px;margin:0;display:inline}
header span{color:#bbc;margin-left:12px}
main{padding:16px 24px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:16px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;min-width:220px;flex:1;overflow-wrap:anywhere}
.card h2{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#57606a;margin:0 0 6px}
.big{font-size:22px;font-weight:600}
.big code{font-size:18px}
.muted{color:#57606a}
.warn{color:#9a6700;font-weight:600}
.bad{color:#cf222e;font-weight:600}
.ok{color:#1a7f37;font-weight:600}
section{margin-bottom:20px}
section h2{font-size:16px;margin:0 0 6px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.v-verified{color:#1a7f37}.v-invalid,.v-error,.v-untrusted-publisher{color:#cf222e}.v-unattested,.v-unsupported{color:#9a6700}
.v-not-verified{color:#57606a;font-style:italic}
.a-block{color:#cf222e;font-weight:600}.a-yank{color:#9a6700;font-weight:600}
td.wrap{max-width:420px;overflow-wrap:anywhere}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
.errbox{background:#ffebe9;border:1px solid #ff8182;border-radius:6px;padding:8px 12px;margin-top:6px;color:#82071e;overflow-wrap:anywhere;white-space:pre-wrap;font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
</style>{{end}}`

const statusHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pipgate status</title>
{{template "style"}}
</head>
<body>
<header><h1>pipgate</h1><span>{{orElse .S.Version "unknown version"}} · up {{.Uptime}} · upstream {{orElse .S.Upstream "unknown"}}{{with .MemoryLimit}} · <span id="memory-limit" title="the Go soft memory limit and its origin">memory limit {{.}}</span>{{end}} · {{when .S.GeneratedAt}}</span></header>
<main>
<div class="cards">
<div class="card" id="policy"><h2>Policy</h2>
<div class="big">{{if .S.PolicyDigest}}{{base .S.PolicySource}}{{else}}built-in{{end}} <span class="muted">{{.S.PolicyRules}} package rule{{if ne .S.PolicyRules 1}}s{{end}}</span></div>
<div class="muted">{{orElse .S.PolicySource "built-in default"}}{{if .S.PolicyDigest}} · sha256 <code title="{{.S.PolicyDigest}}">{{short .S.PolicyDigest}}</code>{{end}}{{if known .S.PolicyLoadedAt}} · loaded {{when .S.PolicyLoadedAt}}{{end}}</div>
{{if .S.PolicyReloadError}}<div class="bad" id="policy-reload-failed">Reload failed {{when .S.PolicyReloadFailedAt}}; the policy above stays in force:</div><div class="errbox">{{.S.PolicyReloadError}}</div>{{end}}{{if known .S.PolicyInPlaceAt}}<div class="warn" id="policy-changed-in-place">The policy file changed in place {{when .S.PolicyInPlaceAt}} and is not in force: it may be half-written. Send SIGHUP once it is complete (or write a temporary file and rename it into place).</div>{{end}}</div>
<div class="card" id="trust-root"><h2>Trust root</h2>
<div class="big {{if .TrustRootStale}}bad{{end}}">{{if eq .TrustRootAge "unknown"}}age unknown{{else}}updated {{.TrustRootAge}} ago{{end}}{{if .TrustRootStale}} (stale){{end}}</div>
<div class="muted">{{orElse .S.TrustRoot "unknown"}}{{if .S.TrustRootDigest}} · sha256 <code title="{{.S.TrustRootDigest}}">{{short .S.TrustRootDigest}}</code>{{end}}</div></div>
<div class="card" id="cache"><h2>Cache</h2>
<div class="big" title="cached files (blobs): what cache.max_size bounds">{{.CacheSize}}</div>
<div class="muted">files {{.CacheLimit}} · database {{.CacheDB}} · hit ratio {{.HitRatio}}</div>{{if .S.SharedStore}}
<div id="shared-store" class="{{if .S.SharedStoreDown}}bad{{else}}muted{{end}}">{{.S.SharedStore}}</div>{{end}}</div>
<div class="card" id="downloads"><h2>Downloads by verdict</h2>
<table><tbody>{{range .Counts}}<tr><td class="v-{{.Verdict}}">{{.Verdict}}</td><td class="num">{{.N}}</td></tr>{{end}}</tbody></table></div>
</div>

{{if .S.Upstreams}}<section id="upstreams"><h2>Upstreams</h2>
<table><thead><tr><th>Name</th><th>URL</th><th>Serves</th><th>Credentials</th><th>Authentication</th><th>Health</th><th>Last success</th><th>Last failure</th></tr></thead><tbody>
{{range .S.Upstreams}}<tr><td>{{.Name}}</td><td class="wrap"><code>{{.URL}}</code></td><td class="wrap">{{if .Projects}}{{range $i, $p := .Projects}}{{if $i}}, {{end}}<code>{{$p}}</code>{{end}}{{end}}{{if .Default}}{{if .Projects}}, {{end}}every other project{{end}}{{if and (not .Projects) (not .Default)}}<span class="muted">nothing</span>{{end}}</td><td>{{if .Auth}}configured{{else}}<span class="muted">none</span>{{end}}</td><td>{{with .AuthFailure}}<span class="bad">failed: {{.Code}} at {{when .At}}</span>{{else}}<span class="muted">no failure</span>{{end}}</td><td>{{if .Health.Failing}}<span class="bad">failing ({{.Health.ConsecutiveFailures}} in a row)</span>{{else if .Health.LastSuccess.IsZero}}<span class="muted">no request yet</span>{{else}}ok{{end}}</td><td>{{if .Health.LastSuccess.IsZero}}<span class="muted">never</span>{{else}}{{when .Health.LastSuccess}}{{end}}</td><td class="wrap">{{if .Health.LastFailure.IsZero}}<span class="muted">none</span>{{else}}{{when .Health.LastFailure}}: {{.Health.LastError}}{{end}}</td></tr>
{{end}}</tbody></table>
</section>

{{end}}<section id="blocked"><h2>Blocked and yanked files ({{len .S.Blocked}})</h2>
{{if .S.Blocked}}<table><thead><tr><th>Since</th><th>Project</th><th>Version</th><th>File</th><th>Action</th><th>Verdict</th><th>Rule</th><th>Reason</th></tr></thead><tbody>
{{range .S.Blocked}}<tr><td>{{when .Time}}</td><td><a href="status/{{.Project}}">{{.Project}}</a></td><td>{{.Version}}</td><td class="wrap"><span title="{{.SHA256}}">{{.Filename}}</span></td><td class="a-{{.Action}}">{{.Action}}</td><td class="v-{{.Verdict}}">{{.Verdict}}</td><td>{{.Rule}}</td><td class="wrap">{{.Reason}}</td></tr>
{{end}}</tbody></table>{{else}}<p class="muted">No file is blocked or yanked.</p>{{end}}
</section>

<section id="decisions"><h2>Recent decisions ({{len .S.Decisions}})</h2>
{{if .S.Decisions}}<table><thead><tr><th>Last</th><th class="num">Times</th><th>Project</th>{{if .Upstreams}}<th>Upstream</th>{{end}}<th>Version</th><th>File</th><th>sha256</th><th>Verdict</th><th>Action</th><th>Rule</th><th>Identity</th><th>Reason</th></tr></thead><tbody>
{{range .S.Decisions}}<tr><td>{{when .Time}}</td><td class="num">{{.Count}}</td><td><a href="status/{{.Project}}">{{.Project}}</a></td>{{if $.Upstreams}}<td>{{.Upstream}}</td>{{end}}<td>{{.Version}}</td><td class="wrap">{{.Filename}}</td><td><code title="{{.SHA256}}">{{short .SHA256}}</code></td><td class="v-{{.Verdict}}">{{.Verdict}}</td><td class="a-{{.Action}}">{{.Action}}</td><td>{{.Rule}}</td><td class="wrap">{{.Identity}}</td><td class="wrap">{{.Reason}}</td></tr>
{{end}}</tbody></table>{{else}}<p class="muted">No decision yet.</p>{{end}}
</section>

<section id="lookups"><h2>Cache lookups</h2>
<table><thead><tr><th>Kind</th><th class="num">Hit</th><th class="num">Miss</th><th class="num">Stale</th></tr></thead><tbody>
{{range .Lookups}}<tr><td>{{.Kind}}</td><td class="num">{{.Hit}}</td><td class="num">{{.Miss}}</td><td class="num">{{.Stale}}</td></tr>
{{end}}</tbody></table>
</section>
<p class="muted">The same as JSON: <code>Accept: application/json</code>. Each project's files: <code>/-/status/&lt;project&gt;</code>. Attestation coverage per project, from the decision history: <a href="report">/-/report</a>.</p>
</main>
</body>
</html>
`

const projectStatusHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pipgate status: {{.Project}}</title>
{{template "style"}}
</head>
<body>
<header><h1><a href="../status" style="color:#fff">pipgate</a> · {{.Project}}</h1><span>{{when .GeneratedAt}}</span></header>
<main>
<div class="cards">
<div class="card" id="rule"><h2>Rule</h2>
<div class="big"><code>{{.Rule}}</code></div>
<div class="muted">{{ruleLine .RuleLine}} of {{orElse .PolicySource "built-in default"}} · require {{.Require}}</div></div>
<div class="card" id="policy"><h2>Policy</h2>
<div class="big">{{if .PolicyDigest}}<code title="{{.PolicyDigest}}">{{short .PolicyDigest}}</code>{{else}}built-in{{end}}</div></div>
</div>
<section id="files"><h2>Files ({{len .Files}})</h2>
{{if .Files}}<table><thead><tr><th>Version</th><th>File</th><th>Verdict</th><th>Signer</th><th>Finding</th><th>Rule</th><th>Action</th><th>Reason</th></tr></thead><tbody>
{{range .Files}}<tr><td>{{.Version}}</td><td class="wrap"><span title="{{.SHA256}}">{{.Filename}}</span>{{if .UpstreamYanked}} <span class="muted">(yanked upstream)</span>{{end}}</td><td class="v-{{.Verdict}}">{{.Verdict}}</td><td class="wrap">{{.Signer}}</td><td>{{.Finding}}</td><td>{{.Rule}} <span class="muted">({{ruleLine .RuleLine}})</span></td><td class="a-{{.Action}}">{{.Action}}</td><td class="wrap">{{.Reason}}</td></tr>
{{end}}</tbody></table>{{else}}<p class="muted">The project's page lists no file.</p>{{end}}
</section>
<p class="muted">The same as JSON: <code>Accept: application/json</code>. Verdicts come from pipgate's cache: a file it has not verified yet shows <code>not-verified</code>.</p>
</main>
</body>
</html>
`
