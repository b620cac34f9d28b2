package proxy

import (
	"testing"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestDecisionHistory: what a client was served or refused lands in the
// durable history, one row per distinct decision with its count and the
// verified publisher; it is readable while serving, and Close writes the
// pending batch so the rows are in the data directory after a restart.
func TestDecisionHistory(t *testing.T) {
	up := pypitest.NewServer(t)
	prov := []byte(`{"version":1,"attestation_bundles":[]}`)
	good := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = prov })
	evil := addWheel(up, "demo", "2.0", func(d *pypitest.Dist) { d.Provenance = prov })
	tp := newTestProxy(t, up, demoTrustsGoodRepo)
	evilID := &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork", Workflow: "release.yml"}
	tp.verifier.set(good.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}})
	tp.verifier.set(evil.Filename, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: evilID})

	if resp, _ := tp.get("/files/demo/" + good.Filename); resp.StatusCode != 200 {
		t.Fatalf("good download = %d; want 200", resp.StatusCode)
	}
	for range 2 {
		if resp, _ := tp.get("/files/demo/" + evil.Filename); resp.StatusCode != 403 {
			t.Fatalf("evil download = %d; want 403", resp.StatusCode)
		}
	}
	check := func(rows []cache.Decision) {
		t.Helper()
		by := map[string]cache.Decision{}
		for _, d := range rows {
			by[d.Filename] = d
		}
		g, e := by[good.Filename], by[evil.Filename]
		if len(rows) != 2 || g.Action != "allow" || g.Count != 1 || g.Identity == "" || g.Version != "1.0" {
			t.Errorf("rows = %+v; want the good file allowed once, with its publisher and version", rows)
		}
		if e.Action != "block" || e.Count != 2 || e.Rule != "demo" || e.Identity != evilID.String() || e.Reason == "" {
			t.Errorf("evil row = %+v; want blocked twice by rule demo, signer evil/fork, with a reason", e)
		}
	}
	rows, err := tp.srv.DecisionHistory("demo")
	if err != nil {
		t.Fatal(err)
	}
	check(rows)

	// Restart: Close writes what is pending, a new Store reads it.
	tp.get("/files/demo/" + evil.Filename)
	tp.srv.Close()
	if err := tp.store.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := cache.Open(cache.Options{Dir: tp.dir, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err = s.Decisions("demo")
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if rows[i].Filename == evil.Filename {
			if rows[i].Count != 3 {
				t.Errorf("after restart the evil row counts %d; want 3 (the download before Close included)", rows[i].Count)
			}
			rows[i].Count = 2
		}
	}
	check(rows)
}
