// Package audit keeps pipgate's records of what it decided: the audit log
// (JSON lines to stdout or a file, reopened on SIGHUP) and the durable
// decision history behind reports (a batch written to the cache store).
package audit

import (
	"errors"
	"fmt"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The audit events. Every record names one. (An index page listing a file as
// yanked by the policy would be "index-yank"; nothing emits it yet.)
const (
	// EventDownload: a distribution file was served (allow, warn, yank)
	// or refused (block) to a client.
	EventDownload = "download"
	// EventEgressRefused: the egress proxy refused a destination.
	EventEgressRefused = "egress-refused"
)

// Record is one line of the audit log: one decision, with everything a
// security team needs to find it again. Empty fields are left out.
type Record struct {
	Time      time.Time      `json:"time"`
	Event     string         `json:"event"` // one of the auditEvent* constants
	RequestID string         `json:"request_id,omitempty"`
	Client    string         `json:"client,omitempty"` // the client's address (host:port)
	Project   string         `json:"project,omitempty"`
	Version   string         `json:"version,omitempty"`
	Filename  string         `json:"filename,omitempty"`
	SHA256    string         `json:"sha256,omitempty"`
	Verdict   pypi.Verdict   `json:"verdict,omitempty"`
	Reason    string         `json:"reason,omitempty"`
	Identity  string         `json:"identity,omitempty"` // the verified signer, pypi.Identity.String()
	Rule      string         `json:"rule,omitempty"`
	Action    policy.Action  `json:"action,omitempty"`
	Finding   policy.Finding `json:"finding,omitempty"`  // publisher-changed, attestation-lost, cooldown
	Host      string         `json:"host,omitempty"`     // egress: the refused destination
	Upstream  string         `json:"upstream,omitempty"` // the configured name of the upstream that served the file
}

// Tuning of the audit writer.
const (
	// auditQueueLen is how many records may wait for the writer.
	auditQueueLen = 4096
	// auditEnqueueWait is the longest Add waits for room in a full queue
	// before it drops the record (and counts it lost).
	auditEnqueueWait = 250 * time.Millisecond
	// auditControlWait is the longest Reopen waits for room in the queue.
	auditControlWait = 5 * time.Second
	// auditBatchBytes caps how many bytes of queued lines one write carries.
	auditBatchBytes = 64 << 10
	// WriteWait is the longest Ticket.Wait waits for a record to be written
	// (a download waits for its record before its response goes out; past
	// this, give or take tickEvery, the download goes on and the record is
	// counted late).
	WriteWait = time.Second
	tickEvery = WriteWait / 8
	// FlushEvery is the longest an untracked record (a served download's)
	// waits in memory before the writer writes it: a crash of pipgate
	// (SIGKILL, the OOM killer, a fatal runtime error) loses at most the
	// records queued in the last FlushEvery, plus those of a write under
	// way. Close (a shutdown) writes everything queued.
	FlushEvery = 50 * time.Millisecond
)

// Errors of Reopen.
var (
	// ErrClosed: the audit log was closed.
	ErrClosed = errors.New("audit log closed")
	// ErrStalled: the writer did not take the request in time (its
	// output is stuck); records keep queueing and being counted when lost.
	ErrStalled = errors.New("audit log writer stalled")
)

// Log writes audit records as JSON lines to stdout or to a file. One
// goroutine owns the output: Add only marshals and queues, so a slow disk or
// a stalled stdout reader does not hold up requests (beyond a short wait when
// the queue is full), and lines never interleave. Records that cannot be
// written are counted (Lost) and the failure is logged once per streak.
//
// A nil *Log, or one made with path "", is disabled: every method is a
// no-op.
type Log struct {
	path string // "" for stdout; set once in New

	// mu guards closed and the send side of queue, so Close cannot close the
	// channel while Add is sending on it.
	mu     sync.RWMutex
	closed bool
	queue  chan auditItem
	done   chan struct{}

	kick  chan struct{}    // wakes the writer (1 slot)
	tickC <-chan time.Time // tests: the writer's tick instead of a ticker

	controlWait time.Duration    // auditControlWait; shorter in tests
	writeWait   time.Duration    // WriteWait; shorter in tests
	flushEvery  time.Duration    // FlushEvery
	now         func() time.Time // Options.Now

	out  io.Writer // owned by the writer goroutine after New
	file *os.File  // nil when writing to stdout
	lost atomic.Uint64
	late atomic.Uint64
	// written is closed and replaced after each batch the writer handled:
	// Ticket.Wait sleeps on it.
	written atomic.Pointer[chan struct{}]
	waiters atomic.Int32 // Ticket.Wait calls blocked
	failing atomic.Bool  // a streak of failures is under way (logged once)
	logger  atomic.Pointer[slog.Logger]
}

// auditItem is either a line to write or a control request (reopen, flush)
// carried through the queue so that it is ordered with the lines.
type auditItem struct {
	line   *[]byte // from linePool; the writer puts it back
	ticket *Ticket // nil for an untracked record
	reopen bool
	ack    chan error
}

// linePool holds the buffers records are encoded into, from Add to the
// writer (one a download otherwise).
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Ticket follows one record to the output, so that a download's response can
// wait until its record is written (write(2) returned: the line survives a
// crash of pipgate, though not of the machine). The zero Ticket is ready for
// Log.AddTracked; one never passed to it is done at once.
type Ticket struct {
	log   *Log
	state atomic.Uint32 // ticketNone, ticketQueued, ticketWritten, ticketLost
}

const (
	ticketNone uint32 = iota
	ticketQueued
	ticketWritten
	ticketLost
)

// Wait waits until the record is written or lost, or at most about WriteWait
// (then the record is counted late; it may still be written after). It
// reports whether the record was written. It allocates nothing: a stalled
// writer's waiters are woken by the Log's ticker, not timers of their own.
func (t *Ticket) Wait() bool {
	var start time.Time
	for {
		switch t.state.Load() {
		case ticketNone, ticketWritten:
			return true
		case ticketLost:
			return false
		}
		ch := t.log.written.Load()
		if t.state.Load() != ticketQueued {
			continue // handled between the two loads
		}
		if start.IsZero() {
			start = time.Now()
			t.log.waiters.Add(1)
			defer t.log.waiters.Add(-1)
		} else if time.Since(start) >= t.log.writeWait {
			t.log.late.Add(1)
			return false
		}
		<-*ch
	}
}

// broadcast wakes every Ticket.Wait.
func (a *Log) broadcast() {
	next := make(chan struct{})
	close(*a.written.Swap(&next))
}

// tick wakes the waiters every tickEvery while some wait, so that they can
// give up after WriteWait even when the writer is stuck in a write.
func (a *Log) tick() {
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if a.waiters.Load() > 0 {
				a.broadcast()
			}
		case <-a.done:
			return
		}
	}
}

// Options configure a Log; every field works at its zero value.
type Options struct {
	// Path names the output as the audit_log setting spells it: "-" writes
	// to Stdout, "" disables the log, and anything else is a file opened
	// for appending (created 0640).
	Path string
	// Stdout is where Path "-" writes; nil: os.Stdout.
	Stdout io.Writer
	// Now is the clock that dates a record added without a time (an egress
	// refusal); nil: time.Now.
	Now func() time.Time
}

// New opens the audit log opts.Path names.
func New(opts Options) (*Log, error) { return newLog(opts, nil) }

// newLog is New; a non-nil tick drives the writer instead of a ticker of
// FlushEvery (tests).
func newLog(opts Options, tick <-chan time.Time) (*Log, error) {
	path, stdout := opts.Path, opts.Stdout
	if path == "" {
		return &Log{}, nil
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Log{
		queue:       make(chan auditItem, auditQueueLen),
		done:        make(chan struct{}),
		kick:        make(chan struct{}, 1),
		controlWait: auditControlWait,
		writeWait:   WriteWait,
		now:         opts.Now,
		flushEvery:  FlushEvery,
		tickC:       tick,
	}
	ch := make(chan struct{})
	a.written.Store(&ch)
	go a.tick()
	if path == "-" {
		if stdout == nil {
			stdout = os.Stdout
		}
		a.out = stdout
	} else {
		f, err := openAuditFile(path)
		if err != nil {
			return nil, err
		}
		a.path, a.file, a.out = path, f, f
	}
	go a.run()
	return a, nil
}

// openAuditFile opens path for appending, creating it 0640.
func openAuditFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640) //nolint:gosec // group-readable for log shippers; holds no secrets
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	return f, nil
}

// SetLogger sets where write failures are reported; without one they are
// only counted.
func (a *Log) SetLogger(l *slog.Logger) {
	if a == nil {
		return
	}
	a.logger.Store(l)
}

// enabled reports whether a writes anywhere.
func (a *Log) enabled() bool { return a != nil && a.queue != nil }

// Add queues r for writing. It sets a zero r.Time to the Log's clock
// (Options.Now). It waits at most auditEnqueueWait for room in the queue,
// then drops the record and counts it lost. It never returns an error: an audit failure must not fail a
// download, and Lost and the log report it.
func (a *Log) Add(r Record) { a.AddTracked(r, nil) }

// AddTracked is Add, with t (when not nil, a zero Ticket) following the
// record: t.Wait returns once it is written or lost.
func (a *Log) AddTracked(r Record, t *Ticket) {
	if !a.enabled() {
		return
	}
	if t != nil {
		t.log = a
		t.state.Store(ticketQueued)
	}
	if r.Time.IsZero() {
		r.Time = a.now()
	}
	// One JSON line, no HTML escaping: this is a log, and "<" should read
	// as "<" in a SIEM.
	line := linePool.Get().(*[]byte)
	var ok bool
	*line, ok = appendRecord((*line)[:0], &r)
	if !ok {
		linePool.Put(line)
		a.drop(t, fmt.Errorf("encoding audit record: the time %v has no RFC 3339 form", r.Time))
		return
	}

	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		a.lost.Add(1)
		if t != nil {
			t.state.Store(ticketLost)
		}
		return
	}
	it := auditItem{line: line, ticket: t}
	select {
	case a.queue <- it:
		// A tracked record is waited for: written now. So is a queue
		// filling up faster than the ticks drain it.
		if t != nil || len(a.queue) >= auditQueueLen/4 {
			a.wake()
		}
		return
	default:
	}
	a.wake()
	timer := time.NewTimer(auditEnqueueWait)
	defer timer.Stop()
	select {
	case a.queue <- it:
	case <-timer.C:
		a.drop(t, errors.New("audit queue full"))
	}
}

// drop counts one record lost before it was queued.
func (a *Log) drop(t *Ticket, err error) {
	if t != nil {
		t.state.Store(ticketLost)
	}
	a.fail(1, err)
}

// Reopen closes and reopens the file, so that after logrotate renamed it the
// log continues in a new file at the configured path (call it on SIGHUP).
// Records logged before Reopen go to the old file. It is a no-op for stdout.
// If the file cannot be opened, writing goes on to the old one and Reopen
// returns the error; if the writer is stuck, Reopen gives up after 5s with
// ErrStalled.
func (a *Log) Reopen() error {
	if !a.enabled() || a.path == "" {
		return nil
	}
	return a.control(true)
}

// Flush waits until every record logged before it has been written.
func (a *Log) Flush() error {
	if !a.enabled() {
		return nil
	}
	return a.control(false)
}

// control sends a reopen or flush request through the queue and waits for
// the writer goroutine to serve it.
func (a *Log) control(reopen bool) error {
	ack := make(chan error, 1)
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		return ErrClosed
	}
	t := time.NewTimer(a.controlWait)
	defer t.Stop()
	select {
	case a.queue <- auditItem{reopen: reopen, ack: ack}:
		a.wake()
	case <-t.C:
		// The writer is stuck (a hung disk or stdout reader). Give up rather
		// than hold mu, which would make Close, and then Add, wait too.
		a.mu.RUnlock()
		return ErrStalled
	}
	a.mu.RUnlock()
	select {
	case err := <-ack:
		return err
	case <-t.C: // ack has room: the writer will not block on it later
		return ErrStalled
	}
}

// Close writes the queued records and closes the file. Later Add calls are
// counted lost.
func (a *Log) Close() error {
	if !a.enabled() {
		return nil
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	close(a.queue)
	a.mu.Unlock()
	a.wake()
	<-a.done
	if a.file != nil {
		if err := a.file.Close(); err != nil {
			return fmt.Errorf("closing audit log: %w", err)
		}
	}
	return nil
}

// Late returns how many records a download stopped waiting for (Ticket.Wait
// past WriteWait) since the start.
func (a *Log) Late() uint64 {
	if a == nil {
		return 0
	}
	return a.late.Load()
}

// Lost returns how many records could not be written since the start.
func (a *Log) Lost() uint64 {
	if a == nil {
		return 0
	}
	return a.lost.Load()
}

// fail counts n lost records and logs err when it starts a streak of
// failures, so a full disk does not flood the log.
func (a *Log) fail(n int, err error) {
	total := a.lost.Add(uint64(n))
	if !a.failing.CompareAndSwap(false, true) {
		return
	}
	if l := a.logger.Load(); l != nil {
		l.Error("audit records lost", "records", n, "lost_total", total, "err", err)
	}
}

// recovered ends a streak of failures after a successful write.
func (a *Log) recovered() {
	if !a.failing.CompareAndSwap(true, false) {
		return
	}
	if l := a.logger.Load(); l != nil {
		l.Info("audit log writing again", "lost_total", a.lost.Load())
	}
}

// run is the writer goroutine. It sleeps until a tick (every flushEvery) or
// a kick (a tracked record, a control request, a filling queue, Close),
// then writes everything queued, in batches of up to auditBatchBytes, and
// serves control requests in queue order. An untracked record thus waits
// at most flushEvery (plus a write under way) in memory: that, and no
// more, is what a crash of pipgate can lose of what it answered.
func (a *Log) run() {
	defer close(a.done)
	buf := make([]byte, 0, auditBatchBytes)
	lines := 0
	var tickets []*Ticket
	write := func() {
		if lines == 0 {
			return
		}
		state := ticketWritten
		if _, err := a.out.Write(buf); err != nil {
			a.fail(lines, fmt.Errorf("writing audit log: %w", err))
			state = ticketLost
		} else {
			a.recovered()
		}
		buf, lines = buf[:0], 0
		if len(tickets) > 0 {
			for i, t := range tickets {
				t.state.Store(state)
				tickets[i] = nil
			}
			tickets = tickets[:0]
			a.broadcast()
		}
	}
	add := func(it auditItem) {
		if it.line != nil {
			buf, lines = append(buf, *it.line...), lines+1
			if cap(*it.line) <= 4<<10 { // a rare long record's buffer goes to the GC
				linePool.Put(it.line)
			}
			if it.ticket != nil {
				tickets = append(tickets, it.ticket)
			}
		}
	}
	tick := a.tickC
	if tick == nil {
		t := time.NewTicker(a.flushEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-tick:
		case <-a.kick:
		}
		// Everything queued now, in order: lines batched, a control
		// request served after the lines before it are written.
		for {
			var it auditItem
			var ok bool
			select {
			case it, ok = <-a.queue:
			default:
				ok = true
				it = auditItem{}
			}
			if !ok { // closed: the last lines, then stop
				write()
				return
			}
			if it.line == nil && it.ack == nil { // the queue is empty
				write()
				break
			}
			add(it)
			if it.ack != nil {
				write()
				it.ack <- a.serve(it)
			} else if len(buf) >= auditBatchBytes {
				write()
			}
		}
	}
}

// wake kicks the writer (it writes what is queued now); a kick already
// pending does as well.
func (a *Log) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// serve handles a control request in the writer goroutine.
func (a *Log) serve(it auditItem) error {
	if !it.reopen {
		return nil
	}
	f, err := openAuditFile(a.path)
	if err != nil {
		return err // keep writing to the old file
	}
	old := a.file
	a.file, a.out = f, f
	if err := old.Close(); err != nil {
		return fmt.Errorf("closing rotated audit log: %w", err)
	}
	return nil
}

// LogEgressRefusal writes the audit record of a request the egress proxy
// refused: the client's IP, the method, the destination asked for and the
// refusal reason.
func (a *Log) LogEgressRefusal(client, method, host, reason string) {
	a.Add(Record{Event: EventEgressRefused, Client: client, Host: host,
		Reason: method + " " + host + ": " + reason, Action: policy.ActionBlock})
}

// Register exports on reg, read from a at each scrape,
// pipgate_audit_records_lost_total: records that could not be written
// (queue full past its wait, or a write error), and
// pipgate_audit_records_late_total: downloads that went on without their
// record written, after WriteWait. It panics if reg holds the series
// already.
func (a *Log) Register(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pipgate_audit_records_lost_total",
		Help: "Audit records that could not be written (queue full or write error).",
	}, func() float64 { return float64(a.Lost()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pipgate_audit_records_late_total",
		Help: "Refused downloads answered without waiting longer for their audit record (not written within audit.WriteWait); the record stays queued.",
	}, func() float64 { return float64(a.Late()) }))
}
