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

// A client that has the status line of a download, a hit or a refusal, can
// count on its audit record being in the audit output: pipgate waits for the
// write before it answers (at most audit.WriteWait; then it answers anyway
// and counts the record late).
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

	for _, c := range []struct {
		file string
		code int
	}{{d.Filename, 200}, {blocked.Filename, 403}} {
		aw.stall.Lock()
		type answer struct {
			resp *http.Response
			body []byte
			err  error
		}
		got := make(chan answer, 1)
		go func() {
			resp, err := http.Get(tp.http.URL + "/files/demo/" + c.file)
			if err != nil {
				got <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			got <- answer{resp, body, err}
		}()
		select {
		case a := <-got:
			aw.stall.Unlock()
			t.Fatalf("%s answered (%v) while its audit record could not be written", c.file, a.err)
		case <-time.After(200 * time.Millisecond):
		}
		aw.stall.Unlock()
		a := <-got
		if a.err != nil || a.resp.StatusCode != c.code {
			t.Fatalf("%s: %v, %v; want %d", c.file, a.err, a.resp, c.code)
		}
		id := a.resp.Header.Get(headerRequestID)
		if !strings.Contains(aw.String(), `"request_id":"`+id+`","client"`) {
			t.Fatalf("%s answered %d before its audit record (request %s) was written:\n%s", c.file, c.code, id, aw.String())
		}
	}

	// An audit output stalled for longer than audit.WriteWait delays a
	// download by that much, no more, and the record is counted late
	// (then written once the output recovers).
	aw.stall.Lock()
	start := time.Now()
	resp, body := tp.get("/files/demo/" + d.Filename)
	took := time.Since(start)
	id := resp.Header.Get(headerRequestID)
	aw.stall.Unlock()
	if resp.StatusCode != 200 || string(body) != string(d.Content) {
		t.Fatalf("with the audit output stalled: %d, %d bytes", resp.StatusCode, len(body))
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
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP pipgate_audit_records_late_total Downloads served without waiting longer for their audit record (not written within audit.WriteWait); the record stays queued.
# TYPE pipgate_audit_records_late_total counter
pipgate_audit_records_late_total 1
`), "pipgate_audit_records_late_total"); err != nil {
		t.Error(err)
	}
}
