package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipgate/pipgate/cache"
)

func runStatusCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"pipgate", "status"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// seedDecisions writes a served and a refused file of demo, and one of
// another project, into a fresh data directory's history.
func seedDecisions(t *testing.T, s *cache.Store) {
	t.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rows := []cache.Decision{
		{Project: "demo", Version: "1.0", Filename: "demo-1.0-py3-none-any.whl", Verdict: "verified", Action: "allow",
			Rule: "demo", Identity: "github:good/repo@release.yml", Count: 4, FirstSeen: at, LastSeen: at.Add(time.Hour)},
		{Project: "demo", Version: "2.0", Filename: "demo-2.0-py3-none-any.whl", Verdict: "untrusted-publisher", Action: "block",
			Rule: "demo", Identity: "github:evil/fork@release.yml", Reason: "signed by github:evil/fork", Count: 1, FirstSeen: at, LastSeen: at},
		{Project: "other", Version: "1.0", Filename: "other-1.0.tar.gz", Verdict: "unattested", Action: "allow", Count: 1, FirstSeen: at, LastSeen: at},
	}
	if err := s.AddDecisions(rows, 0); err != nil {
		t.Fatal(err)
	}
}

// Stopped: the database is read directly; the name is normalised; text and
// JSON list the project's rows only.
func TestStatusFromDatabase(t *testing.T) {
	dir := t.TempDir()
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	seedDecisions(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runStatusCmd(t, "Demo", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || lines[0] != "demo: 5 decisions about 2 files (read from the database)" {
		t.Fatalf("output:\n%s", out)
	}
	// Most recently seen first: the allowed file (last seen an hour later).
	for i, want := range [][]string{
		{"2026-03-01T13:00:00Z", "4", "1.0", "demo-1.0-py3-none-any.whl", "verified", "allow", "demo", "github:good/repo@release.yml", "-", "-"},
		{"2026-03-01T12:00:00Z", "1", "2.0", "demo-2.0-py3-none-any.whl", "untrusted-publisher", "block", "demo", "github:evil/fork@release.yml", "-", "signed"},
	} {
		if got := strings.Fields(lines[i+2]); len(got) < len(want) || strings.Join(got[:len(want)], " ") != strings.Join(want, " ") {
			t.Errorf("row %d = %q; want %q", i, lines[i+2], want)
		}
	}

	code, out, _ = runStatusCmd(t, "--json", "demo", "--data-dir", dir)
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	if rep.Project != "demo" || rep.Source != "database" || len(rep.Decisions) != 2 || rep.Decisions[1].Action != "block" {
		t.Errorf("--json = %+v", rep)
	}

	// A project never decided: no rows, exit 0; JSON has an empty list.
	code, out, _ = runStatusCmd(t, "nothing", "--json", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, `"decisions": []`) {
		t.Errorf("unknown project: exit %d\n%s", code, out)
	}
	// Usage and a missing database.
	if code, _, _ := runStatusCmd(t); code != 2 {
		t.Errorf("no project: exit %d; want 2", code)
	}
	if code, _, e := runStatusCmd(t, "demo", "--data-dir", t.TempDir()); code != 1 || !strings.Contains(e, "no pipgate database") {
		t.Errorf("empty dir: exit %d, %q", code, e)
	}
}

// serveAdminSeeded opens dir's store as a running server would (locked),
// seeds its decision history and serves the admin socket on it; stop closes
// the server (its listener with it) and the store, once however often called.
func serveAdminSeeded(t *testing.T, dir string) (ln net.Listener, stop func()) {
	t.Helper()
	s, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	seedDecisions(t, s)
	ln, err = listenAdmin(dir, slog.New(slog.DiscardHandler))
	if err != nil || ln == nil {
		_ = s.Close()
		t.Fatalf("listenAdmin: %v, %v", ln, err)
	}
	srv := &http.Server{Handler: adminHandler(s, 0, s.Decisions), ReadHeaderTimeout: time.Minute}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	var once sync.Once
	return ln, func() { once.Do(func() { _ = srv.Close(); <-done; _ = s.Close() }) }
}

// Serving: the database is locked, so the rows come from the server through
// the admin socket.
func TestStatusFromServer(t *testing.T) {
	dir := t.TempDir()
	_, stop := serveAdminSeeded(t, dir)
	defer stop()

	code, out, errOut := runStatusCmd(t, "demo", "--json", "--data-dir", dir)
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil {
		t.Fatalf("exit %d, %v: %s%s", code, err, out, errOut)
	}
	if rep.Source != "server" || len(rep.Decisions) != 2 || rep.Decisions[0].Count != 4 {
		t.Errorf("from the server: %+v", rep)
	}
}
