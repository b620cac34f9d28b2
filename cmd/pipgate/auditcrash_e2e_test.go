package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestE2EAuditCrashBound holds, from outside a real pipgate, what a crash
// can lose of the audit log (README, "Audit log"):
//   - a refused download's record is in the file before the client has its
//     403;
//   - a served download's record reaches the file on its own (no shutdown,
//     no flush asked for), within audit.FlushEvery; so a SIGKILL once it is
//     there loses nothing, and leaves no half-written line;
//   - a SIGTERM right after downloads loses none of their records.
func TestE2EAuditCrashBound(t *testing.T) {
	t.Parallel() // its own servers and data dir
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	up := pypitest.NewServer(t)
	okFn := pypitest.WheelFilename("served", "1.0")
	up.AddDist("served", pypitest.Dist{Filename: okFn, Content: pypitest.MakeWheel("served", "1.0", pypitest.WheelOptions{})})
	noFn := pypitest.WheelFilename("refused", "1.0")
	up.AddDist("refused", pypitest.Dist{Filename: noFn, Content: pypitest.MakeWheel("refused", "1.0", pypitest.WheelOptions{})})
	dir := t.TempDir()
	root := provenancetest.New(t).WriteTrustedRoot(dir)
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("version: 1\ndefaults:\n  require: none\n  action: warn\npackages:\n"+
		"  - name: refused\n    require: attestation\n    action: block\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.jsonl")
	cfg := filepath.Join(dir, "pipgate.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\naudit_log: %s\npolicy: %s\n"+
		"upstream:\n  url: %s\n  index_ttl: 1h\ntrust:\n  trusted_root: %s\n",
		filepath.Join(dir, "data"), auditPath, pol, up.URL(), root)), 0o600); err != nil {
		t.Fatal(err)
	}
	get := func(p *proc, project, fn string) (int, string) {
		t.Helper()
		resp, err := http.Get(p.base + "/files/" + project + "/" + fn)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Request-Id")
	}
	// ids reads the file (every line must parse) and returns its download
	// records' request ids.
	ids := func(p *proc) map[string]bool {
		t.Helper()
		got := map[string]bool{}
		for _, r := range p.readAudit(t) {
			if r["event"] == "download" {
				got[fmt.Sprint(r["request_id"])] = true
			}
		}
		return got
	}
	const n = 20

	// Round 1: SIGKILL once the records are in the file.
	p := startPipgate(t, cfg, auditPath, false)
	var served []string
	for range n {
		code, id := get(p, "served", okFn)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", okFn, code)
		}
		served = append(served, id)
	}
	code, refusedID := get(p, "refused", noFn)
	if code != http.StatusForbidden {
		t.Fatalf("GET %s = %d; want 403", noFn, code)
	}
	if !ids(p)[refusedID] {
		t.Fatalf("the client has its 403 (request %s) and its audit record is not in %s", refusedID, auditPath)
	}
	start := time.Now()
	for missing := n; missing > 0; {
		got := ids(p)
		missing = 0
		for _, id := range served {
			if !got[id] {
				missing++
			}
		}
		if missing > 0 && time.Since(start) > 10*time.Second {
			t.Fatalf("%d of %d served downloads have no audit record 10s later, with pipgate running", missing, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("the %d served downloads' records were in the file %v after the last answer (audit.FlushEvery bounds it, give or take scheduling)", n, time.Since(start))
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	got := ids(p) // after the kill: still every record, every line whole
	for _, id := range append(served, refusedID) {
		if !got[id] {
			t.Fatalf("request %s's audit record is gone after SIGKILL", id)
		}
	}

	// Round 2: SIGTERM at once after the downloads; the shutdown writes
	// every queued record.
	p = startPipgate(t, cfg, auditPath, false)
	served = served[:0]
	for range n {
		code, id := get(p, "served", okFn)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", okFn, code)
		}
		served = append(served, id)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	got = ids(p)
	for _, id := range served {
		if !got[id] {
			t.Fatalf("request %s's audit record is missing after SIGTERM", id)
		}
	}
}
