package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// A tracked record's Wait returns only once its line is in the output: the
// writer is held in Write, and Wait stays blocked until the line is written.
func TestTicketWaitReturnsAfterTheWrite(t *testing.T) {
	w := &gatedWriter{release: make(chan struct{}), entered: make(chan struct{}, 16)}
	a, err := New(Options{Path: "-", Stdout: w})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var tk Ticket
	a.AddTracked(Record{Event: EventDownload, Filename: "tracked.whl"}, &tk)
	<-w.entered // the writer holds the line, inside Write
	waited := make(chan bool, 1)
	go func() { waited <- tk.Wait() }()
	select {
	case <-waited:
		t.Fatal("Wait returned while the line was still being written")
	case <-time.After(50 * time.Millisecond):
	}
	close(w.release)
	if ok := <-waited; !ok {
		t.Fatal("Wait reported the record not written")
	}
	if !strings.Contains(w.String(), `"filename":"tracked.whl"`) {
		t.Fatalf("Wait returned and the line is not in the output: %q", w.String())
	}
	// A zero Ticket never passed to AddTracked (a request without a
	// download record) does not wait.
	var none Ticket
	if !none.Wait() {
		t.Error("an unused ticket reported a lost record")
	}
}

// A stalled output does not hold a download forever: Wait gives up after
// WriteWait and counts the record late; a failed write reports it lost.
func TestTicketLateAndLost(t *testing.T) {
	w := &gatedWriter{release: make(chan struct{}), entered: make(chan struct{}, 16)}
	a, err := New(Options{Path: "-", Stdout: w})
	if err != nil {
		t.Fatal(err)
	}
	a.writeWait = 20 * time.Millisecond
	var tk Ticket
	a.AddTracked(Record{Event: EventDownload}, &tk)
	if tk.Wait() {
		t.Error("Wait on a stalled output reported the record written")
	}
	if a.Late() != 1 || a.Lost() != 0 {
		t.Errorf("late %d, lost %d; want 1, 0", a.Late(), a.Lost())
	}
	if a.waiters.Load() != 0 {
		t.Errorf("%d waiters left after Wait returned", a.waiters.Load())
	}
	var tk2 Ticket
	a.AddTracked(Record{Event: EventDownload}, &tk2)
	if tk2.Wait() {
		t.Error("a second Wait on a stalled output reported the record written")
	}
	close(w.release)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(w.String(), "\n"); got != 2 {
		t.Errorf("%d lines written after the output recovered; want 2 (late is not lost)", got)
	}

	f, err := New(Options{Path: "-", Stdout: &failingWriter{}})
	if err != nil {
		t.Fatal(err)
	}
	var tk3 Ticket
	f.AddTracked(Record{Event: EventDownload}, &tk3)
	if tk3.Wait() {
		t.Error("Wait reported a record written whose write failed")
	}
	_ = f.Close()
	var tk4 Ticket
	f.AddTracked(Record{Event: EventDownload}, &tk4)
	if tk4.Wait() {
		t.Error("Wait reported a record written after Close")
	}
	if f.Lost() != 2 {
		t.Errorf("lost %d; want 2", f.Lost())
	}
}

// gatedWriter signals each Write on entered and holds it until release is
// closed; then it keeps what it was given.
type gatedWriter struct {
	release chan struct{}
	entered chan struct{}
	out     lockedBuffer
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return g.out.Write(p)
}

func (g *gatedWriter) String() string { return g.out.String() }

// FuzzAppendRecord holds the hand-written encoder to encoding/json's output
// (no HTML escaping), byte for byte, for any field values and times.
func FuzzAppendRecord(f *testing.F) {
	f.Add("requests", "a\"b\\c\x00\x1f\x7f<>&", "\u2028\u2029\xff\xfe\xed\xa0\x80", "héllo wörld \t\n\r\b\f", int64(1700000000), int64(123456789), 0)
	f.Add("", "", "", "", int64(-62167219200), int64(0), 3600*25)
	f.Add("x", "y", "z", "w", int64(253402300800), int64(1), -1800)
	f.Fuzz(func(t *testing.T, s1, s2, s3, s4 string, sec, nsec int64, offset int) {
		r := Record{Time: time.Unix(sec, nsec).In(time.FixedZone("z", offset)), Event: s1, RequestID: s2, Client: s3,
			Project: s4, Version: s1, Filename: s2, SHA256: s3, Verdict: pypi.Verdict(s4), Reason: s1 + s2, Identity: s3 + s4,
			Rule: s2, Action: policy.Action(s3), Finding: policy.Finding(s4), Host: s1, Upstream: s4}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		werr := enc.Encode(&r)
		got, ok := appendRecord([]byte("prefix"), &r)
		if werr != nil {
			if ok || string(got) != "prefix" {
				t.Fatalf("encoding/json refused %v (%v); appendRecord gave %q", r.Time, werr, got)
			}
			return
		}
		if !ok || string(got) != "prefix"+want.String() {
			t.Fatalf("appendRecord:\n got %q\nwant %q", got, "prefix"+want.String())
		}
	})
}

// An untracked record (a served download's) is written by the writer's
// next tick, with no Flush or Close asked for, and not before one: the
// records a crash can lose are those queued since the last tick.
func TestUntrackedWrittenOnTheTick(t *testing.T) {
	w := &lockedBuffer{}
	tick := make(chan time.Time)
	a, err := newLog(Options{Path: "-", Stdout: w}, tick)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i := range 3 {
		a.Add(Record{Event: EventDownload, Filename: "served-" + strings.Repeat("x", i) + ".whl"})
	}
	time.Sleep(20 * time.Millisecond)
	if got := w.String(); got != "" {
		t.Fatalf("written before a tick: %q", got)
	}
	tick <- time.Now()
	for start := time.Now(); strings.Count(w.String(), "\n") != 3; time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("3 records queued, a tick, and 10s later the output holds %q", w.String())
		}
	}
	// A tracked record does not wait for a tick.
	var tk Ticket
	a.AddTracked(Record{Event: EventDownload, Filename: "refused.whl"}, &tk)
	if !tk.Wait() || !strings.Contains(w.String(), `"filename":"refused.whl"`) {
		t.Fatalf("a tracked record waited for a tick: %q", w.String())
	}
	// Close writes what is queued.
	a.Add(Record{Event: EventDownload, Filename: "last.whl"})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.String(), `"filename":"last.whl"`) {
		t.Fatalf("Close left a queued record unwritten: %q", w.String())
	}
}
