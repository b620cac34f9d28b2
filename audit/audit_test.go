package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"unicode/utf8"
)

// failingWriter fails every write.
type failingWriter struct{}

func (*failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// lockedBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// readAuditLines parses every line of data as an Record.
func readAuditLines(t *testing.T, data string) []Record {
	t.Helper()
	var out []Record
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		var r Record
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %d is not an audit record: %v: %q", len(out)+1, err, sc.Text())
		}
		out = append(out, r)
	}
	return out
}

func TestAuditRecordJSON(t *testing.T) {
	var buf lockedBuffer
	a, err := New(Options{Path: "-", Stdout: &buf})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 1, 2, 3, 400, time.UTC)
	a.Add(Record{
		Time: at, Event: EventDownload, RequestID: "r1", Client: "10.0.0.7:51234",
		Project: "pypi-attestations", Version: "0.0.19", Filename: "pypi_attestations-0.0.19.tar.gz",
		SHA256: "ab12", Verdict: "verified", Identity: "github:trailofbits/pypi-attestations@release.yml",
		Rule: "pypi-attestations", Action: "allow",
	})
	a.Add(Record{Time: at, Event: EventEgressRefused, Client: "10.0.0.8:1", Host: "evil.example:443", Reason: "host not intercepted <&>"})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-11-22T01:02:03.0000004Z","event":"download","request_id":"r1","client":"10.0.0.7:51234","project":"pypi-attestations","version":"0.0.19","filename":"pypi_attestations-0.0.19.tar.gz","sha256":"ab12","verdict":"verified","identity":"github:trailofbits/pypi-attestations@release.yml","rule":"pypi-attestations","action":"allow"}
{"time":"2026-11-22T01:02:03.0000004Z","event":"egress-refused","client":"10.0.0.8:1","reason":"host not intercepted <&>","host":"evil.example:443"}
`
	if got := buf.String(); got != want {
		t.Errorf("audit log:\ngot  %q\nwant %q", got, want)
	}
}

// A record added without a time, such as an egress refusal, is dated by
// the Log's clock (Options.Now), not the machine's.
func TestAuditRecordDatedByItsClock(t *testing.T) {
	var buf lockedBuffer
	at := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	a, err := New(Options{Path: "-", Stdout: &buf, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	a.LogEgressRefusal("10.0.0.8:1", "CONNECT", "evil.example:443", "host not intercepted")
	a.Add(Record{Event: EventDownload, Project: "p", Filename: "p-1.0.tar.gz"})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2031-01-02T03:04:05Z","event":"egress-refused","client":"10.0.0.8:1","reason":"CONNECT evil.example:443: host not intercepted","action":"block","host":"evil.example:443"}
{"time":"2031-01-02T03:04:05Z","event":"download","project":"p","filename":"p-1.0.tar.gz"}
`
	if got := buf.String(); got != want {
		t.Errorf("audit log:\ngot  %q\nwant %q", got, want)
	}
}

func TestAuditConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := New(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 250
	// A long reason makes lines larger than one batch now and then, and
	// larger than PIPE_BUF, so interleaving would show.
	long := strings.Repeat("x", 5000)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				a.Add(Record{Event: EventDownload, Client: fmt.Sprint(w), Filename: fmt.Sprint(i), Reason: long[:i%7*800]})
			}
		}()
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := readAuditLines(t, string(data))
	if got, want := len(recs), writers*each; got != want {
		t.Fatalf("got %d lines; want %d", got, want)
	}
	// Every writer's records are all there, in the order it logged them.
	next := make(map[string]int)
	for _, r := range recs {
		if got, want := r.Filename, fmt.Sprint(next[r.Client]); got != want {
			t.Fatalf("writer %s: got record %q; want %q", r.Client, got, want)
		}
		next[r.Client]++
		if r.Time.IsZero() {
			t.Fatalf("record without a time: %+v", r)
		}
	}
	if got := a.Lost(); got != 0 {
		t.Errorf("lost %d records; want 0", got)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o640); got&^want != 0 {
		t.Errorf("mode %v; want at most %v", got, want)
	}
}

func TestAuditReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	a, err := New(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Add(Record{Event: EventDownload, Filename: "before"})
	// logrotate: rename, then SIGHUP → Reopen.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	a.Add(Record{Event: EventDownload, Filename: "between"}) // still the old file
	if err := a.Reopen(); err != nil {
		t.Fatal(err)
	}
	a.Add(Record{Event: EventDownload, Filename: "after"})
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		want []string
	}{
		{path + ".1", []string{"before", "between"}},
		{path, []string{"after"}},
	} {
		data, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range readAuditLines(t, string(data)) {
			got = append(got, r.Filename)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: got %q; want %q", filepath.Base(tc.file), got, tc.want)
		}
	}

	// A failed reopen (the directory went away) keeps the old file.
	if err := os.Rename(dir, dir+"-gone"); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(dir+"-gone", dir)
	if err := a.Reopen(); err == nil {
		t.Error("Reopen into a missing directory succeeded; want an error")
	}
	a.Add(Record{Event: EventDownload, Filename: "kept"})
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir+"-gone", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if recs := readAuditLines(t, string(data)); len(recs) != 2 || recs[1].Filename != "kept" {
		t.Errorf("after a failed reopen got %+v; want the record in the old file", recs)
	}
}

func TestAuditDisabled(t *testing.T) {
	var nilLog *Log
	off, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]*Log{"nil": nilLog, "disabled": off} {
		a.SetLogger(slog.New(slog.DiscardHandler))
		a.Add(Record{Event: EventDownload})
		if err := a.Reopen(); err != nil {
			t.Errorf("%s: Reopen: %v", name, err)
		}
		if err := a.Flush(); err != nil {
			t.Errorf("%s: flush: %v", name, err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
		if got := a.Lost(); got != 0 {
			t.Errorf("%s: Lost = %d; want 0", name, got)
		}
	}
}

func TestAuditOpenError(t *testing.T) {
	_, err := New(Options{Path: filepath.Join(t.TempDir(), "missing", "audit.log")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v; want an error wrapping os.ErrNotExist", err)
	}
}

func TestAuditWriteErrorsCountedAndLoggedOnce(t *testing.T) {
	var logBuf lockedBuffer
	a, err := New(Options{Path: "-", Stdout: &failingWriter{}})
	if err != nil {
		t.Fatal(err)
	}
	a.SetLogger(slog.New(slog.NewTextHandler(&logBuf, nil)))
	for i := 0; i < 5; i++ {
		a.Add(Record{Event: EventDownload})
		if err := a.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := a.Lost(); got != 5 {
		t.Errorf("Lost = %d; want 5", got)
	}
	if got := strings.Count(logBuf.String(), "audit records lost"); got != 1 {
		t.Errorf("logged the failure %d times; want once per streak:\n%s", got, logBuf.String())
	}
	a.Add(Record{Event: EventDownload}) // after Close: counted lost
	if got := a.Lost(); got != 6 {
		t.Errorf("Lost after Close = %d; want 6", got)
	}
	if err := a.Reopen(); err != nil { // stdout: nothing to reopen
		t.Errorf("Reopen on stdout: %v", err)
	}
	if err := a.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("flush after Close: %v; want ErrClosed", err)
	}
}

// blockingWriter blocks every write until release is closed.
type blockingWriter struct{ release chan struct{} }

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return len(p), nil
}

func TestAuditFullQueueDoesNotBlockForLong(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	a, err := New(Options{Path: "-", Stdout: w})
	if err != nil {
		t.Fatal(err)
	}
	// The writer takes a batch and blocks in Write; the queue fills up
	// behind it, and then one Log waits auditEnqueueWait and drops.
	var last time.Duration
	for i := 0; i < 3*auditQueueLen && a.Lost() == 0; i++ {
		start := time.Now()
		a.Add(Record{Event: EventDownload})
		last = time.Since(start)
	}
	if last < auditEnqueueWait || last > auditEnqueueWait+2*time.Second {
		t.Errorf("Log on a full queue took %v; want about %v", last, auditEnqueueWait)
	}
	if got := a.Lost(); got != 1 {
		t.Errorf("Lost = %d; want 1", got)
	}
	// A control request (Reopen's path) gives up instead of hanging, so it
	// cannot make Close, and through it Log, wait.
	a.controlWait = 50 * time.Millisecond
	if err := a.Flush(); !errors.Is(err, ErrStalled) {
		t.Errorf("flush with a stuck writer: %v; want ErrStalled", err)
	}
	close(w.release)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAuditLog(b *testing.B) {
	a, err := New(Options{Path: filepath.Join(b.TempDir(), "audit.log")})
	if err != nil {
		b.Fatal(err)
	}
	r := Record{
		Event: EventDownload, RequestID: "0123456789abcdef", Client: "10.1.2.3:45678",
		Project: "requests", Version: "2.32.3", Filename: "requests-2.32.3-py3-none-any.whl",
		SHA256: strings.Repeat("ab", 32), Verdict: "verified", Identity: "github:psf/requests@publish.yml",
		Rule: "defaults", Action: "allow",
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Add(r)
		}
	})
	if err := a.Close(); err != nil {
		b.Fatal(err)
	}
	if a.Lost() != 0 {
		b.Fatalf("lost %d records", a.Lost())
	}
}

// FuzzAuditRecord checks that any field values (they come from upstream
// pages, attestations and clients) make exactly one line of JSON that reads
// back to the same record: no value can forge a second audit line.
func FuzzAuditRecord(f *testing.F) {
	f.Add("requests", "requests-2.32.3.tar.gz", "pipgate: no provenance", "10.0.0.1:1234")
	f.Add("evil\n{\"event\":\"download\"}", "a\r\nb", "\u2028\u2029", "\x00\xff")
	f.Fuzz(func(t *testing.T, project, filename, reason, client string) {
		var buf lockedBuffer
		a, err := New(Options{Path: "-", Stdout: &buf})
		if err != nil {
			t.Fatal(err)
		}
		in := Record{Time: time.Unix(1, 0).UTC(), Event: EventDownload, Project: project,
			Filename: filename, Reason: reason, Client: client, Identity: reason, Host: client}
		a.Add(in)
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
			t.Fatalf("not one line: %q", out)
		}
		var back Record
		if err := json.Unmarshal([]byte(out), &back); err != nil {
			t.Fatal(err)
		}
		// JSON carries text: each invalid UTF-8 byte reads back as U+FFFD.
		want := in
		for _, p := range []*string{&want.Project, &want.Filename, &want.Reason, &want.Client, &want.Identity, &want.Host} {
			*p = validUTF8PerByte(*p)
		}
		if back != want {
			t.Fatalf("read back %+v; want %+v", back, want)
		}
	})
}

// validUTF8PerByte replaces every byte of s that is not valid UTF-8 with
// U+FFFD, as encoding/json does.
func validUTF8PerByte(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func TestMetricsAudit(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(Options{Path: "-", Stdout: &failingWriter{}})
	if err != nil {
		t.Fatal(err)
	}
	a.Register(reg)
	a.Add(Record{Event: EventDownload})
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
