package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/policy"
)

// reportPage is /-/report: the attestation coverage of the decision
// history ('pipgate report' prints the same, from the CLI).
type reportPage struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Policy is the policy in force (its file, or "built-in") and its sha256.
	Policy       string `json:"policy"`
	PolicyDigest string `json:"policy_digest,omitempty"`
	policy.Coverage
}

// serveReport serves /-/report (HTML; JSON by Accept): the coverage of the
// durable decision history (pending rows written first), judged against
// the policy in force. It reads under a bbolt read transaction, which
// never blocks the writers.
func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) error {
	rows, err := s.DecisionHistory("")
	if err != nil {
		return fmt.Errorf("reading the decision history: %w", err)
	}
	pol := s.policy.Current()
	rp := reportPage{GeneratedAt: s.now().UTC(), Policy: pol.Source(), PolicyDigest: pol.Digest(),
		Coverage: policy.CoverageOf(pol, cache.Observations(rows))}
	var buf bytes.Buffer
	if wantsJSON(r) {
		err = writeReportJSON(&buf, rp)
	} else {
		err = writeReportHTML(&buf, rp)
	}
	if err != nil {
		return err
	}
	return writeStatusPage(w, r, buf.Bytes())
}

func writeReportJSON(w io.Writer, rp reportPage) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rp); err != nil {
		return fmt.Errorf("writing report JSON: %w", err)
	}
	return nil
}

func writeReportHTML(w io.Writer, rp reportPage) error {
	if err := reportTemplate.Execute(w, rp); err != nil {
		return fmt.Errorf("writing report page: %w", err)
	}
	return nil
}

var reportTemplate = template.Must(template.New("report").Funcs(statusFuncs).Parse(statusStyle + reportHTML))

const reportHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pipgate: attestation coverage</title>
{{template "style"}}
</head>
<body>
<header><h1><a href="status" style="color:#fff">pipgate</a> · attestation coverage</h1><span>{{when .GeneratedAt}}</span></header>
<main>
<div class="cards">
<div class="card" id="totals"><h2>Files served</h2>
<div class="big">{{.Totals.Served}} <span class="muted">of {{.Totals.Files}} decided · {{.Totals.Downloads}} downloads</span></div>
<div class="muted"><span class="v-verified">{{.Totals.Verified}} verified</span> · <span class="v-unattested">{{.Totals.Unattested}} unattested</span> · <span class="v-invalid">{{.Totals.Invalid}} invalid</span> · {{.Totals.Unsupported}} unsupported · {{.Totals.Unknown}} unknown · <span class="a-block">{{.Totals.Blocked}} blocked</span></div></div>
<div class="card" id="enforceable"><h2>Enforceable today ({{len .Enforceable}})</h2>
<div>{{if .Enforceable}}{{range $i, $p := .Enforceable}}{{if $i}}, {{end}}<a href="status/{{$p}}">{{$p}}</a>{{end}}{{else}}<span class="muted">none</span>{{end}}</div>
<div class="muted">every file they served has a verified attestation: <code>pipgate policy suggest</code> writes their rules, <code>pipgate policy test</code> shows what a policy would refuse</div></div>
<div class="card" id="policy"><h2>Policy</h2>
<div class="big">{{if .PolicyDigest}}{{base .Policy}}{{else}}built-in{{end}}</div>
<div class="muted">{{orElse .Policy "built-in default"}}{{if .PolicyDigest}} · sha256 <code title="{{.PolicyDigest}}">{{short .PolicyDigest}}</code>{{end}}</div></div>
</div>
<section id="projects"><h2>Projects ({{len .Projects}})</h2>
{{if .Projects}}<table><thead><tr><th>Project</th><th>State</th><th>Rule</th><th class="num">Files</th><th class="num">Served</th><th class="num">Downloads</th><th class="num">Verified</th><th class="num">Unattested</th><th class="num">Invalid</th><th class="num">Unsupported</th><th class="num">Unknown</th><th class="num">Blocked</th><th>Publishers</th><th>Last seen</th></tr></thead><tbody>
{{range .Projects}}<tr><td><a href="status/{{.Project}}">{{.Project}}</a></td><td class="s-{{.State}}">{{.State}}</td><td>{{.Rule}} <span class="muted">({{.Require}})</span></td><td class="num">{{.Files}}</td><td class="num">{{.Served}}</td><td class="num">{{.Downloads}}</td><td class="num v-verified">{{.Verified}}</td><td class="num">{{.Unattested}}</td><td class="num">{{.Invalid}}</td><td class="num">{{.Unsupported}}</td><td class="num">{{.Unknown}}</td><td class="num">{{.Blocked}}</td><td class="wrap">{{range $i, $p := .Publishers}}{{if $i}}<br>{{end}}<code>{{$p.Publisher}}</code> <span class="muted">{{$p.Files}} file{{if ne $p.Files 1}}s{{end}}</span>{{end}}</td><td>{{when .LastSeen}}</td></tr>
{{end}}</tbody></table>{{else}}<p class="muted">No decision yet.</p>{{end}}
</section>
<p class="muted">From the decision history in the data directory. States: <b>enforced</b> (the rule requires a trusted publisher), <b>enforceable</b> (every file served has a verified attestation), <b>partial</b> (some do not), <b>unattested</b> (none). The same as JSON: <code>Accept: application/json</code>; from the command line: <code>pipgate report</code>.</p>
</main>
</body>
</html>
`
