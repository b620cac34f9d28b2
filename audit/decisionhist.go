package audit

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// The durable decision history (cache.Decision rows in the data directory):
// every download decision is merged into an in-memory batch on the request's
// path (a map update under a mutex, no I/O), and a background goroutine
// writes the batch to the store every decisionFlushEvery in one bbolt
// transaction. A crash loses at most the decisions of the last interval
// (the status page's in-memory list loses them too); a clean shutdown
// (proxy.Server.Close) writes them.
const (
	// decisionFlushEvery is how often the batch is written.
	decisionFlushEvery = time.Second
	// decisionMaxPending bounds the distinct rows waiting in memory; a new
	// row past it is dropped and counted in
	// pipgate_decision_history_lost_total (a known row still counts).
	decisionMaxPending = 10_000
)

// Recorder batches decisions for the store.
type Recorder struct {
	store   *cache.Store
	maxRows int // row limit of the stored history
	log     *slog.Logger
	lost    prometheus.Counter

	mu      sync.Mutex
	pending map[pendingKey]*cache.Decision

	flushMu sync.Mutex // one write at a time, in order
}

// NewRecorder returns a recorder writing to store, whose history keeps at
// most maxRows rows; it registers pipgate_decision_history_lost_total on reg.
func NewRecorder(store *cache.Store, maxRows int, log *slog.Logger, reg prometheus.Registerer) *Recorder {
	r := &Recorder{store: store, maxRows: maxRows, log: log, pending: make(map[pendingKey]*cache.Decision),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipgate_decision_history_lost_total",
			Help: "Download decisions not written to the durable decision history (batch full, or the write failed).",
		})}
	reg.MustRegister(r.lost)
	return r
}

// pendingKey is cache.DecisionKey's fields as a comparable struct: a
// download adds to its row without building the key string.
type pendingKey struct {
	project, filename, sha256, upstream string
	verdict                             pypi.Verdict
	action                              policy.Action
	rule                                string
	finding                             policy.Finding
	identity                            string
}

// Add merges d (Count 1, seen at d.LastSeen) into the batch.
func (r *Recorder) Add(d cache.Decision) {
	if r == nil {
		return
	}
	d.Count, d.FirstSeen = 1, d.LastSeen
	k := pendingKey{d.Project, d.Filename, d.SHA256, d.Upstream, d.Verdict, d.Action, d.Rule, d.Finding, d.Identity}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pending[k]; ok {
		p.Count++
		if d.LastSeen.After(p.LastSeen) {
			p.LastSeen, p.Version, p.Reason = d.LastSeen, d.Version, d.Reason
		}
		return
	}
	if len(r.pending) >= decisionMaxPending {
		r.lost.Inc()
		return
	}
	r.pending[k] = &d
}

// Flush writes the batch. On a write error its rows are counted lost and
// the error returned: the batch is not kept, so a failing disk cannot grow
// memory.
func (r *Recorder) Flush() error {
	if r == nil {
		return nil
	}
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	batch := make([]cache.Decision, 0, len(r.pending))
	var n int64
	for _, d := range r.pending {
		batch = append(batch, *d)
		n += d.Count
	}
	clear(r.pending)
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := r.store.AddDecisions(batch, r.maxRows)
	if err == nil {
		return nil
	}
	if !errors.Is(err, cache.ErrInvalidKey) { // those are skipped one by one
		r.lost.Add(float64(n))
	}
	r.log.Warn("decision history not written", "rows", len(batch), "err", err)
	return fmt.Errorf("writing the decision history: %w", err)
}

// Run flushes every decisionFlushEvery until done is closed, then once
// more.
func (r *Recorder) Run(done <-chan struct{}) {
	t := time.NewTicker(decisionFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = r.Flush()
		case <-done:
			_ = r.Flush()
			return
		}
	}
}
