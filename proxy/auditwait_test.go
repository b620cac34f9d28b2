package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/audit"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// stallableWriter is an audit output the test can stall: while stall is
// held, every write waits for it.
type stallableWriter struct {
	stall sync.Mutex
	mu    sync.Mutex
	out   strings.Builder
}

func (w *stallableWriter) Write(p []byte) (int, error) {
	w.stall.Lock()
	defer w.stall.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(p)
}

func (w *stallableWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

// A client that has the status line of a refused download can count on its
// audit record being in the audit output: pipgate waits for the write before
// it answers (at most audit.WriteWait; then it answers anyway and counts the
// record late). A served download does not wait: its record is written
// within audit.FlushEvery, with no flush asked for (the bound on what a
// crash can lose, README "Audit log").
func TestDownloadAnsweredAfterItsAuditRecord(t *testing.T) {
	up := pypitest.NewServer(t)
	prov := []byte(`{"version":1,"attestation_bundles":[]}`)
	d := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = prov })
	blocked := addWheel(up, "demo", "2.0", nil) // unattested: refused
	aw := &stallableWriter{}
	al, err := audit.New(audit.Options{Path: "-", Stdout: aw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	reg := prometheus.NewRegistry()
	tp := newTestProxy(t, up, demoTrustsGoodRepo, func(o *Options) { o.Audit, o.Registerer = al, reg })
	tp.verifier.set(d.Filename, pypi.Facts{Verdict: pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}})
	if resp, body := tp.get("/files/demo/" + d.Filename); resp.StatusCode != 200 || len(body) != len(d.Content) {
		t.Fatalf("warming GET = %d, %s", resp.StatusCode, body)
	}
	type answer struct {
		resp *http.Response
		body []byte
		err  error
	}
	fetch := func(file string) chan answer {
		got := make(chan answer, 1)
		go func() {
			resp, err := http.Get(tp.http.URL + "/files/demo/" + file)
			if err != nil {
				got <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			got <- answer{resp, body, err}
		}()
		return got
	}

	// The refusal waits for its record.
	aw.stall.Lock()
	got := fetch(blocked.Filename)
	select {
	case a := <-got:
		aw.stall.Unlock()
		t.Fatalf("%s answered (%v) while its audit record could not be written", blocked.Filename, a.err)
	case <-time.After(200 * time.Millisecond):
	}
	aw.stall.Unlock()
	a := <-got
	if a.err != nil || a.resp.StatusCode != http.StatusForbidden {
		t.Fatalf("%s: %v, %v; want 403", blocked.Filename, a.err, a.resp)
	}
	id := a.resp.Header.Get(headerRequestID)
	if !strings.Contains(aw.String(), `"request_id":"`+id+`","client"`) {
		t.Fatalf("%s answered 403 before its audit record (request %s) was written:\n%s", blocked.Filename, id, aw.String())
	}

	// A served download does not wait for a stalled output; its record
	// is written once the output takes it, without a Flush.
	aw.stall.Lock()
	a = <-fetch(d.Filename)
	aw.stall.Unlock()
	if a.err != nil || a.resp.StatusCode != http.StatusOK || string(a.body) != string(d.Content) {
		t.Fatalf("with the audit output stalled, %s: %v, %v", d.Filename, a.err, a.resp)
	}
	id = a.resp.Header.Get(headerRequestID)
	for start := time.Now(); !strings.Contains(aw.String(), `"request_id":"`+id+`","client"`); time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the served download's record (request %s) is not written 10s later:\n%s", id, aw.String())
		}
	}

	// An audit output stalled for longer than audit.WriteWait delays a
	// refusal by that much, no more, and the record is counted late
	// (then written once the output recovers).
	aw.stall.Lock()
	start := time.Now()
	resp, _ := tp.get("/files/demo/" + blocked.Filename)
	took := time.Since(start)
	id = resp.Header.Get(headerRequestID)
	aw.stall.Unlock()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("with the audit output stalled: %d; want 403", resp.StatusCode)
	}
	if took < audit.WriteWait {
		t.Errorf("answered after %v with the audit output stalled; want at least %v", took, audit.WriteWait)
	}
	if err := al.Flush(); err != nil {
		t.Fatal(err)
	}
	if al.Late() != 1 || al.Lost() != 0 || !strings.Contains(aw.String(), `"request_id":"`+id+`"`) {
		t.Errorf("late %d, lost %d, record written %v; want 1, 0, true", al.Late(), al.Lost(), strings.Contains(aw.String(), id))
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP pipgate_audit_records_late_total Refused downloads answered without waiting longer for their audit record (not written within audit.WriteWait); the record stays queued.
# TYPE pipgate_audit_records_late_total counter
pipgate_audit_records_late_total 1
`), "pipgate_audit_records_late_total"); err != nil {
		t.Error(err)
	}
}
