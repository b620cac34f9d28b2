package proxy

import (
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

const continuityDemoPolicy = `version: 1
packages:
  - name: demo
    continuity: block
`

var (
	goodID = &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}
	evilID = &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/repo", Workflow: "release.yml"}
)

// continuityDemo is a project whose releases are signed by two publishers:
// 0.9 from before attestations, 1.0 and 1.1 by good/repo, 2.0 by evil/repo,
// a backport 1.1.1 by good/repo published later, and 2.1 without provenance.
func continuityDemo(t *testing.T) (*pypitest.Server, map[string]pypitest.Dist, map[string]*pypi.Identity) {
	up := pypitest.NewServer(t)
	dists := map[string]pypitest.Dist{}
	ids := map[string]*pypi.Identity{"1.0": goodID, "1.1": goodID, "2.0": evilID, "1.1.1": goodID}
	for _, v := range []string{"0.9", "1.0", "1.1", "2.0", "1.1.1", "2.1"} {
		dists[v] = addWheel(up, "demo", v, func(d *pypitest.Dist) {
			if ids[v] != nil {
				d.Provenance = []byte(`{"version":1,"attestation_bundles":[],"for":"` + v + `"}`)
			}
		})
	}
	return up, dists, ids
}

func (tp *testProxy) setFacts(dists map[string]pypitest.Dist, ids map[string]*pypi.Identity) {
	for v, id := range ids {
		tp.verifier.set(dists[v].Filename, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: id})
	}
}

// TestContinuityOrderIndependent: on a fresh cache, in two orders of
// requests, every download gets the same decision, and the project's first
// attested file is verified on demand (one extra verification).
func TestContinuityOrderIndependent(t *testing.T) {
	want := map[string]string{"0.9": "200 ", "1.0": "200 ", "1.1": "200 ", "1.1.1": "200 ",
		"2.0": "403 publisher-changed", "2.1": "403 attestation-lost"}
	for _, order := range [][]string{
		{"2.0", "2.1", "1.1.1", "1.1", "1.0", "0.9"},
		{"0.9", "1.0", "1.1", "1.1.1", "2.1", "2.0"},
	} {
		up, dists, ids := continuityDemo(t)
		tp := newTestProxy(t, up, continuityDemoPolicy)
		tp.setFacts(dists, ids)
		got := map[string]string{}
		for i, v := range order {
			resp, body := tp.get("/files/demo/" + dists[v].Filename)
			reason := resp.Header.Get(headerReason)
			finding := ""
			for _, f := range policy.Findings {
				if strings.HasPrefix(reason, "pipgate: demo: "+string(f)+":") {
					finding = string(f)
				}
			}
			got[v] = resp.Status[:4] + finding
			if resp.StatusCode == 403 && !strings.Contains(string(body), reason) {
				t.Errorf("%s: 403 body %q lacks the reason %q", v, body, reason)
			}
			if i == 0 && v == "2.0" {
				// 2.0 first: its own verification plus the project's first
				// attested file's (1.0), nothing more.
				if n := tp.verifier.calls.Load(); n != 2 {
					t.Errorf("verifications after the first download = %d; want 2 (2.0 and 1.0)", n)
				}
				for _, s := range []string{"2.0 is signed by github:evil/repo@release.yml", "publisher of record of this project is github:good/repo (the signer of its first attested file, " + dists["1.0"].Filename,
					`add {kind: github, repository: evil/repo} to the publishers of policy rule "demo"`} {
					if !strings.Contains(reason, s) {
						t.Errorf("reason %q lacks %q", reason, s)
					}
				}
				if v := resp.Header.Get(headerVerdict); v != "verified" {
					t.Errorf("verdict header %q; want verified (the finding is not a verdict)", v)
				}
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("order %v: decisions %v; want %v", order, got, want)
		}
	}
}

func TestContinuityIndexAuditMetricsReload(t *testing.T) {
	up, dists, ids := continuityDemo(t)
	tp := newTestProxy(t, up, continuityDemoPolicy, func(o *Options) { o.EagerReleases = 2 })
	tp.setFacts(dists, ids)

	// The index, on a fresh cache: eager verification covers the two
	// newest releases and the releases they are compared with.
	yanks := func() map[string]string { return tp.yankedJSON(t, "demo") }
	y := yanks()
	if r := y[dists["2.0"].Filename]; !strings.HasPrefix(r, "pipgate: demo: publisher-changed: 2.0 is signed by github:evil/repo") {
		t.Errorf("2.0 yank reason %q; want publisher-changed", r)
	}
	if r := y[dists["2.1"].Filename]; !strings.HasPrefix(r, "pipgate: demo: attestation-lost: 2.1 has no provenance") {
		t.Errorf("2.1 yank reason %q; want attestation-lost", r)
	}
	if len(y) != 2 {
		t.Errorf("yanked %v; want only 2.0 and 2.1", y)
	}
	calls := tp.verifier.calls.Load()

	resp, _ := tp.get("/files/demo/" + dists["2.0"].Filename)
	if resp.StatusCode != 403 {
		t.Fatalf("2.0 = %d; want 403", resp.StatusCode)
	}
	if err := tp.auditLog.Flush(); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	lines := strings.Split(strings.TrimSpace(tp.audit.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["finding"] != "publisher-changed" || rec["action"] != "block" || rec["verdict"] != "verified" {
		t.Errorf("audit record %v; want finding publisher-changed, action block, verdict verified", rec)
	}
	if n := testutil.ToFloat64(tp.srv.metrics.findings.WithLabelValues("publisher-changed", "block")); n != 1 {
		t.Errorf("pipgate_policy_findings_total{finding=publisher-changed,action=block} = %v; want 1", n)
	}
	found := false
	for _, d := range tp.srv.decisions.recentDecisions() {
		found = found || d.Filename == dists["2.0"].Filename && d.Finding == "publisher-changed"
	}
	if !found {
		t.Errorf("status decisions lack the publisher-changed finding: %+v", tp.srv.decisions.recentDecisions())
	}

	// The operator accepts the new publisher: a policy reload changes the
	// outcome without any verification.
	tp.policy.p.Store(mustPolicy(t, continuityDemoPolicy+"    publishers:\n      - {kind: github, repository: evil/repo}\n"))
	if resp, _ := tp.get("/files/demo/" + dists["2.0"].Filename); resp.StatusCode != 200 {
		t.Errorf("2.0 after accepting evil/repo = %d; want 200", resp.StatusCode)
	}
	y = yanks()
	if _, ok := y[dists["2.0"].Filename]; ok || len(y) != 1 {
		t.Errorf("after the reload, yanked %v; want only 2.1", y)
	}
	if n := tp.verifier.calls.Load(); n != calls {
		t.Errorf("the reload caused %d verifications; want none", n-calls)
	}
}

func TestCooldownIndexAndDownload(t *testing.T) {
	up := pypitest.NewServer(t)
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	old := addWheel(up, "fresh", "1.0", func(d *pypitest.Dist) { d.UploadTime = start.Add(-30 * 24 * time.Hour) })
	young := addWheel(up, "fresh", "1.1", func(d *pypitest.Dist) { d.UploadTime = start.Add(-2 * time.Hour) })
	tp := newTestProxy(t, up, "version: 1\npackages:\n  - name: fresh\n    min_release_age: 7d\n", func(o *Options) { o.Now = now })

	yanks := func() map[string]string { return tp.yankedJSON(t, "fresh") }
	const ends = "2026-12-08T10:00:00Z"
	y := yanks()
	if r := y[young.Filename]; !strings.Contains(r, "cooldown: uploaded 2026-12-01T10:00:00Z, less than min_release_age 7d ago; available from "+ends) || len(y) != 1 {
		t.Errorf("yanked %v; want only %s, in its cooldown until %s", y, young.Filename, ends)
	}
	resp, body := tp.get("/files/fresh/" + young.Filename)
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get(headerReason), "available from "+ends) || !strings.Contains(string(body), "cooldown") {
		t.Errorf("pinned download in the cooldown = %d %q %q; want 403 with the end", resp.StatusCode, resp.Header.Get(headerReason), body)
	}
	if resp, _ := tp.get("/files/fresh/" + old.Filename); resp.StatusCode != 200 {
		t.Errorf("old release = %d; want 200", resp.StatusCode)
	}
	// The cooldown ends: the index (a cached render until then) and the
	// download change with nothing else happening.
	clock.Store(start.Add(7*24*time.Hour - 2*time.Hour).UnixNano())
	if y := yanks(); len(y) != 0 {
		t.Errorf("after the cooldown, yanked %v; want none", y)
	}
	if resp, _ := tp.get("/files/fresh/" + young.Filename); resp.StatusCode != 200 {
		t.Errorf("after the cooldown = %d; want 200", resp.StatusCode)
	}
}

func TestCooldownUnknownUploadTime(t *testing.T) {
	up := pypitest.NewServer(t)
	d := addWheel(up, "fresh", "1.0", nil)
	up.HTMLOnly(true) // HTML pages carry no upload-time
	tp := newTestProxy(t, up, "version: 1\npackages:\n  - name: fresh\n    min_release_age: 1d\n    cooldown_action: yank\n")
	resp, _ := tp.get("/files/fresh/" + d.Filename)
	if r := resp.Header.Get(headerReason); resp.StatusCode != 200 || !strings.Contains(r, "cooldown: the upload time is unknown") {
		t.Errorf("download = %d %q; want 200 (yank) with the unknown-time cooldown reason", resp.StatusCode, r)
	}
}

// BenchmarkPageDecider measures deciding every file of a large page with
// continuity on (the index render's cost): 1500 releases of 2 files.
func BenchmarkPageDecider(b *testing.B) {
	up := pypitest.NewServer(b)
	tp := newTestProxy(b, up, continuityDemoPolicy)
	p := &pypi.ProjectPage{Name: "demo"}
	for i := range 1500 {
		v := "1." + strconv.Itoa(i)
		for _, fn := range []string{pypitest.WheelFilename("demo", v), pypitest.SdistFilename("demo", v)} {
			p.Files = append(p.Files, pypi.File{Filename: fn, Hashes: pypi.MakeHashes(map[string]string{"sha256": sha([]byte(fn))}), UploadTime: "2024-01-01T00:00:00Z"})
		}
	}
	b.ResetTimer()
	for range b.N {
		pd := tp.srv.gate.NewPageDecider(tp.policy.Current(), p)
		for i := range p.Files {
			pd.Decide(&p.Files[i])
		}
	}
}

var thirdID = &pypi.Identity{Kind: pypi.KindGitLab, Repository: "third/repo"}

// evasionFile is one file of an evasion scenario: its name, its verified
// signer (nil: no provenance) and whether the upstream yanked it.
type evasionFile struct {
	name   string
	id     *pypi.Identity
	yanked bool
}

// TestContinuityEvasions: what someone who controls a project's uploads
// tries, each on a fresh cache and in two request orders (the index first,
// then downloads newest first; downloads oldest first, then the index).
// Every download gets the same answer either way, and the newest release
// the index leaves installable is the last accepted one: what unpinned pip
// installs.
func TestContinuityEvasions(t *testing.T) {
	w := func(v string, id *pypi.Identity) evasionFile {
		return evasionFile{name: pypitest.WheelFilename("evade", v), id: id}
	}
	sd := func(v, ext string, id *pypi.Identity) evasionFile {
		return evasionFile{name: "evade-" + v + ext, id: id}
	}
	yanked := func(f evasionFile) evasionFile { f.yanked = true; return f }
	const pc, al = "403 publisher-changed", "403 attestation-lost"
	tests := []struct {
		name  string
		files []evasionFile
		want  map[string]string // filename → "403 finding"; every other file 200
		best  string            // the newest release the index leaves installable
	}{
		{"two releases by the new publisher", []evasionFile{w("1.0", goodID), w("1.1", evilID), w("1.2", evilID)},
			map[string]string{w("1.1", nil).name: pc, w("1.2", nil).name: pc}, "1.0"},
		{"pre-release decoy", []evasionFile{w("1.0", goodID), w("2.0rc1", evilID), w("2.0", evilID)},
			map[string]string{w("2.0rc1", nil).name: pc, w("2.0", nil).name: pc}, "1.0"},
		{"two unattested releases", []evasionFile{w("1.0", goodID), w("1.1", nil), w("1.2", nil)},
			map[string]string{w("1.1", nil).name: al, w("1.2", nil).name: al}, "1.0"},
		{"unattested pre-release decoy", []evasionFile{w("1.0", goodID), w("2.0rc1", nil), w("2.0", nil)},
			map[string]string{w("2.0rc1", nil).name: al, w("2.0", nil).name: al}, "1.0"},
		{"yanked attested history", []evasionFile{w("0.9", nil), yanked(w("1.0", goodID)), yanked(w("1.1", goodID)), w("2.0", evilID), w("2.1", nil)},
			map[string]string{w("2.0", nil).name: pc, w("2.1", nil).name: al}, "0.9"},
		{"sdists in older formats", []evasionFile{w("1.0", goodID), sd("2.0", ".tar.bz2", nil), sd("2.1", ".tgz", nil), sd("2.2", ".tar.xz", nil)},
			map[string]string{sd("2.0", ".tar.bz2", nil).name: al, sd("2.1", ".tgz", nil).name: al, sd("2.2", ".tar.xz", nil).name: al}, "1.0"},
		{"the original publisher returns", []evasionFile{w("1.0", goodID), w("1.1", evilID), w("1.2", goodID)},
			map[string]string{w("1.1", nil).name: pc}, "1.2"},
		{"a third publisher", []evasionFile{w("1.0", goodID), w("1.1", evilID), w("1.2", thirdID)},
			map[string]string{w("1.1", nil).name: pc, w("1.2", nil).name: pc}, "1.0"},
		{"post-release", []evasionFile{w("1.0", goodID), w("1.0.post1", evilID), w("1.0.post2", nil)},
			map[string]string{w("1.0.post1", nil).name: pc, w("1.0.post2", nil).name: al}, "1.0"},
		{"one attested and one unattested file", []evasionFile{w("1.0", goodID), w("2.0", goodID), sd("2.0", ".tar.gz", nil)},
			map[string]string{sd("2.0", ".tar.gz", nil).name: al}, "2.0"},
		{"local version", []evasionFile{w("1.0", goodID), w("1.0+evil", evilID)},
			map[string]string{w("1.0+evil", nil).name: pc}, "1.0"},
		{"epoch version", []evasionFile{w("1.0", goodID), w("1!0.1", evilID)},
			map[string]string{w("1!0.1", nil).name: pc}, "1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			byVersion := func(a, b evasionFile) int {
				fa, _ := pypi.ParsePipFilename(a.name)
				fb, _ := pypi.ParsePipFilename(b.name)
				return fa.Version.Compare(fb.Version)
			}
			oldestFirst := slices.Clone(tt.files)
			slices.SortStableFunc(oldestFirst, byVersion)
			newestFirst := slices.Clone(oldestFirst)
			slices.Reverse(newestFirst)
			var results []map[string]string
			for _, indexFirst := range []bool{true, false} {
				up := pypitest.NewServer(t)
				for _, f := range tt.files {
					d := pypitest.Dist{Filename: f.name, Content: []byte("content of " + f.name), Yanked: f.yanked}
					if f.id != nil {
						d.Provenance = []byte(`{"version":1,"attestation_bundles":[],"for":"` + f.name + `"}`)
					}
					up.AddDist("evade", d)
				}
				up.AddDist("evade", pypitest.Dist{Filename: "evade-3.0.exe", Content: []byte("an installer")})
				tp := newTestProxy(t, up, "version: 1\npackages:\n  - name: evade\n    continuity: block\n",
					func(o *Options) { o.EagerReleases, o.EagerBudget = 2, time.Minute })
				for _, f := range tt.files {
					if f.id != nil {
						tp.verifier.set(f.name, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: f.id})
					}
				}
				got := map[string]string{}
				index := func() {
					_, body := tp.get("/simple/evade/", "Accept", pipAccept)
					best := ""
					var bestV pypi.Version
					for _, f := range parseJSONPage(t, body, tp.http.URL+"/simple/evade/").Files {
						fn, err := pypi.ParsePipFilename(f.Filename)
						if err != nil {
							t.Errorf("the index lists %s, which is no distribution of evade", f.Filename)
							continue
						}
						if !f.Yanked && (best == "" || fn.Version.Compare(bestV) > 0) {
							best, bestV = fn.Version.String(), fn.Version
						}
					}
					got["best"] = best
				}
				downloads := func(order []evasionFile) {
					for _, f := range order {
						resp, _ := tp.get("/files/evade/" + url.PathEscape(f.name))
						reason := resp.Header.Get(headerReason)
						finding := ""
						for _, fd := range policy.Findings {
							if strings.HasPrefix(reason, "pipgate: evade: "+string(fd)+":") {
								finding = string(fd)
							}
						}
						got[f.name] = strings.TrimSpace(resp.Status[:4] + finding)
					}
				}
				if indexFirst {
					index()
					downloads(newestFirst)
				} else {
					downloads(oldestFirst)
					index()
				}
				if resp, _ := tp.get("/files/evade/evade-3.0.exe"); resp.StatusCode != 404 {
					t.Errorf("evade-3.0.exe (no distribution) = %d; want 404", resp.StatusCode)
				}
				results = append(results, got)
			}
			want := map[string]string{"best": tt.best}
			for _, f := range tt.files {
				want[f.name] = "200"
				if w, ok := tt.want[f.name]; ok {
					want[f.name] = w
				}
			}
			for i, got := range results {
				if !maps.Equal(got, want) {
					t.Errorf("order %d: %v\nwant %v", i, got, want)
				}
			}
		})
	}
}

// TestContinuityRecordKept: the publisher of record, once established, is
// kept in bbolt, so deleting the attested history upstream (which the
// account holder can do, unlike backdating an upload) does not make the
// new publisher the first one. On a fresh cache nothing remembers it.
func TestContinuityRecordKept(t *testing.T) {
	up := pypitest.NewServer(t)
	sig := []byte(`{"version":1,"attestation_bundles":[]}`)
	old := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = sig })
	evil := addWheel(up, "demo", "2.0", func(d *pypitest.Dist) { d.Provenance = sig })
	bare := addWheel(up, "demo", "2.1", nil)
	ids := map[string]*pypi.Identity{old.Filename: goodID, evil.Filename: evilID}
	newProxy := func() *testProxy {
		tp := newTestProxy(t, up, continuityDemoPolicy, func(o *Options) { o.IndexTTL = time.Nanosecond })
		for fn, id := range ids {
			tp.verifier.set(fn, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: id})
		}
		return tp
	}
	status := func(tp *testProxy, f pypitest.Dist) string {
		tp.get("/simple/demo/", "Accept", pipAccept) // the page as the upstream has it now
		resp, _ := tp.get("/files/demo/" + f.Filename)
		return resp.Status[:3]
	}
	tp := newProxy()
	if s := status(tp, evil); s != "403" {
		t.Fatalf("2.0 by evil/repo = %s; want 403", s)
	}
	// The account holder deletes 1.0 (here: it stops being a distribution
	// of demo, so pipgate leaves it off the page).
	if !up.RenameDist("demo", old.Filename, "demo-1.0.exe") {
		t.Fatal("1.0 not renamed")
	}
	calls := tp.verifier.calls.Load()
	for _, f := range []pypitest.Dist{evil, bare} {
		if s := status(tp, f); s != "403" {
			t.Errorf("%s after 1.0 was deleted = %s; want 403 (the kept record)", f.Filename, s)
		}
	}
	if n := tp.verifier.calls.Load() - calls; n != 0 {
		t.Errorf("%d verifications after the deletion; want none (the record is kept)", n)
	}
	h, err := tp.store.History("demo")
	if err != nil || h.Record == nil || h.Record.Filename != old.Filename || h.Record.Publisher.Repository != "good/repo" {
		t.Errorf("kept record = %+v, %v; want %s by good/repo", h.Record, err, old.Filename)
	}
	// A fresh cache sees only what the index shows: 2.0 is the first
	// attested file now.
	if s := status(newProxy(), evil); s != "200" {
		t.Errorf("2.0 on a fresh cache after the deletion = %s; want 200 (nothing remembers 1.0)", s)
	}
}

// TestContinuityVersionPerFile: a render decides each file of a page with
// one Version reused file after file (gate.PageDecider); each file is
// still judged by its own version. On a page whose files alternate between
// an accepted version of a new publisher (2.0, 2.0.0: accepted_versions
// ["2"]) and versions that are not (3.0, 3.1), the index yanks exactly the
// unaccepted ones, each reason names its own file's version, and the
// status page says the same: a version kept from an earlier file (a
// reference into the reused Version) would yank 2.0 after 3.0, or let 3.1
// through after 2.0.
func TestContinuityVersionPerFile(t *testing.T) {
	up := pypitest.NewServer(t)
	dists := map[string]pypitest.Dist{}
	ids := map[string]*pypi.Identity{"1.0": goodID, "3.0": evilID, "2.0": evilID, "3.1": evilID, "2.0.0": evilID}
	order := []string{"1.0", "3.0", "2.0", "3.1", "2.0.0"}
	for _, v := range order {
		dists[v] = addWheel(up, "demo", v, func(d *pypitest.Dist) {
			d.Provenance = []byte(`{"version":1,"attestation_bundles":[],"for":"` + v + `"}`)
		})
	}
	tp := newTestProxy(t, up, continuityDemoPolicy+"    accepted_versions: [\"2\"]\n", func(o *Options) { o.EagerReleases = len(order) })
	tp.setFacts(dists, ids)
	want := map[string]string{"3.0": "3.0", "3.1": "3.1"} // yanked, and the version its reason names
	for _, accept := range []string{pipAccept, "text/html"} {
		_, body := tp.get("/simple/demo/", "Accept", accept)
		var p *pypi.ProjectPage
		if accept == pipAccept {
			p = parseJSONPage(t, body, tp.http.URL+"/simple/demo/")
		} else {
			u, _ := url.Parse(tp.http.URL + "/simple/demo/")
			var err error
			if p, err = pypi.ParseProjectHTML(body, u); err != nil {
				t.Fatal(err)
			}
		}
		if len(p.Files) != len(order) {
			t.Fatalf("%s: %d files; want %d", accept, len(p.Files), len(order))
		}
		for _, v := range order {
			f := gateFileNamed(p, dists[v].Filename)
			wv, yank := want[v]
			switch {
			case f == nil:
				t.Errorf("%s: %s missing", accept, v)
			case f.Yanked != yank:
				t.Errorf("%s: %s yanked %v (%q); want %v", accept, v, f.Yanked, f.YankedReason, yank)
			case yank && !strings.HasPrefix(f.YankedReason, "pipgate: demo: publisher-changed: "+wv+" is signed by github:evil/repo"):
				t.Errorf("%s: %s yank reason %q; want publisher-changed naming %s", accept, v, f.YankedReason, wv)
			}
		}
	}
	_, body := tp.get("/-/status/demo", "Accept", "application/json")
	var ps projectStatus
	if err := json.Unmarshal(body, &ps); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range ps.Files {
		got[f.Filename] = f.Version + "|" + string(f.Action) + "|" + f.Finding
		if f.Action == policy.ActionBlock && !strings.Contains(f.Reason, ": "+f.Version+" is signed by") {
			t.Errorf("status: %s: reason %q does not name its version %s", f.Filename, f.Reason, f.Version)
		}
	}
	wantStatus := map[string]string{}
	for _, v := range order {
		a, finding := "allow", ""
		if _, yank := want[v]; yank {
			a, finding = "block", "publisher-changed"
		}
		wantStatus[dists[v].Filename] = v + "|" + a + "|" + finding
	}
	if !maps.Equal(got, wantStatus) {
		t.Errorf("status rows %v; want %v", got, wantStatus)
	}
}

func gateFileNamed(p *pypi.ProjectPage, name string) *pypi.File {
	for i := range p.Files {
		if p.Files[i].Filename == name {
			return &p.Files[i]
		}
	}
	return nil
}
