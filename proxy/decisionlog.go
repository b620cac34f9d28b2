package proxy

import (
	"container/list"
	"sort"
	"sync"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// The status page's memory of decisions: the recent downloads' decisions
// and the files blocked or yanked, kept in memory (bounded) and shown by
// /-/status. The durable decision history behind 'pipgate status' and
// reports is audit.Recorder's.

// statusDecision is one policy decision about one file, as the status page
// lists it. Identical decisions in a row of the recent list are one entry
// with a count.
type statusDecision struct {
	Time     time.Time      `json:"time"` // the latest time this decision was made
	Project  string         `json:"project"`
	Version  string         `json:"version,omitempty"`
	Filename string         `json:"filename"`
	SHA256   string         `json:"sha256,omitempty"`
	Verdict  pypi.Verdict   `json:"verdict"`
	Action   policy.Action  `json:"action"` // allow, block, yank, warn
	Rule     string         `json:"rule,omitempty"`
	RuleLine int            `json:"rule_line,omitempty"` // the rule's line in the policy file; 0 for the defaults
	Reason   string         `json:"reason,omitempty"`
	Identity string         `json:"identity,omitempty"`
	Upstream string         `json:"upstream,omitempty"` // the configured name of the upstream that served it
	Finding  policy.Finding `json:"finding,omitempty"`  // publisher-changed, attestation-lost, cooldown
	// Count is how many times this decision was made (downloads, for the
	// recent list); at least 1.
	Count int64 `json:"count"`
}

// Bounds of a decisionLog.
const (
	// statusDefaultDecisions is the ring size when newDecisionLog gets size <= 0.
	statusDefaultDecisions = 200
	// statusMaxBlocked bounds the blocked-files map; past it the oldest
	// entry goes.
	statusMaxBlocked = 1000
)

// decisionLog keeps the recent decisions for the status page: the last few
// distinct ones (a decision identical to one already kept moves it to the
// top and counts it), and the files whose latest decision blocked or yanked
// them (keyed by project, filename and sha256). A later allow or warn for
// the same file takes it off the blocked list, and [decisionLog.redecide]
// applies the policy in force to the list. It is safe for concurrent use;
// its memory is bounded.
type decisionLog struct {
	mu     sync.Mutex
	size   int
	recent *list.List                    // of *statusDecision, newest first
	byKey  map[decisionKey]*list.Element // recent entries by recentKey
	held   map[fileKey]statusDecision    // blocked or yanked files by statusKey
	now    func() time.Time              // the server's clock, for entries without a time
}

// newDecisionLog returns a log keeping the last size distinct decisions
// (200 when size <= 0); now is the clock.
func newDecisionLog(size int, now func() time.Time) *decisionLog {
	if size <= 0 {
		size = statusDefaultDecisions
	}
	return &decisionLog{size: size, recent: list.New(), byKey: make(map[decisionKey]*list.Element),
		held: make(map[fileKey]statusDecision), now: now}
}

// statusKey identifies a file in the blocked map: project, filename and
// sha256. A verdict depends on the filename (the PEP 740 name check), so the
// same bytes listed under another name are another entry.
func statusKey(x statusDecision) fileKey {
	return fileKey{x.Project, x.Filename, x.SHA256}
}

// fileKey is a statusKey: comparable, so building one allocates nothing.
type fileKey struct{ project, filename, sha256 string }

// decisionKey is a recentKey.
type decisionKey struct {
	upstream, project, filename, sha256 string
	verdict                             pypi.Verdict
	action                              policy.Action
	rule                                string
	finding                             policy.Finding
	reason, identity                    string
}

// recentKey identifies a decision in the recent list: the file and
// everything decided about it.
func recentKey(x *statusDecision) decisionKey {
	return decisionKey{x.Upstream, x.Project, x.Filename, x.SHA256, x.Verdict, x.Action, x.Rule, x.Finding, x.Reason, x.Identity}
}

// add records x as the newest decision. A zero x.Time is set to now.
func (d *decisionLog) add(x statusDecision) {
	if x.Time.IsZero() {
		x.Time = d.now()
	}
	x.Count = 1
	k := recentKey(&x)
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.byKey[k]; ok {
		old := e.Value.(*statusDecision)
		x.Count = old.Count + 1
		*old = x
		d.recent.MoveToFront(e)
	} else {
		v := x
		d.byKey[k] = d.recent.PushFront(&v)
		if d.recent.Len() > d.size {
			last := d.recent.Back()
			delete(d.byKey, recentKey(last.Value.(*statusDecision)))
			d.recent.Remove(last)
		}
	}
	d.holdLocked(x)
}

// mark updates only the blocked list, not the recent decisions: for the
// decisions the index applies (yanks listed on a page), which are made on
// every render and are not downloads.
func (d *decisionLog) mark(x statusDecision) {
	if x.Time.IsZero() {
		x.Time = d.now()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.held[statusKey(x)]; ok && old.Action == x.Action && old.Reason == x.Reason {
		return // keep the time it was first blocked
	}
	if x.Action != policy.ActionBlock && x.Action != policy.ActionYank {
		if _, ok := d.held[statusKey(x)]; !ok {
			return
		}
	}
	d.holdLocked(x)
}

func (d *decisionLog) holdLocked(x statusDecision) {
	k := statusKey(x)
	switch x.Action {
	case policy.ActionBlock, policy.ActionYank:
		old, ok := d.held[k]
		if !ok && len(d.held) >= statusMaxBlocked {
			d.evictOldestBlocked()
		}
		if ok && old.Action == x.Action && old.Reason == x.Reason {
			x.Time = old.Time // blocked since then
		}
		d.held[k] = x
	default:
		delete(d.held, k)
	}
}

// evictOldestBlocked drops the blocked entry decided longest ago. It runs only
// when the map is full, at a cost linear in statusMaxBlocked.
func (d *decisionLog) evictOldestBlocked() {
	var oldest fileKey
	var t time.Time
	first := true
	for k, v := range d.held {
		if first || v.Time.Before(t) {
			oldest, t, first = k, v.Time, false
		}
	}
	delete(d.held, oldest)
}

// recentDecisions returns a copy of the kept decisions, newest first.
func (d *decisionLog) recentDecisions() []statusDecision {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]statusDecision, 0, d.recent.Len())
	for e := d.recent.Front(); e != nil; e = e.Next() {
		out = append(out, *e.Value.(*statusDecision))
	}
	return out
}

// blocked returns a copy of the currently blocked or yanked files, newest
// decision first (ties by filename).
func (d *decisionLog) blocked() []statusDecision {
	d.mu.Lock()
	out := make([]statusDecision, 0, len(d.held))
	for _, v := range d.held {
		out = append(out, v)
	}
	d.mu.Unlock()
	sortBlocked(out)
	return out
}

func sortBlocked(out []statusDecision) {
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].Filename < out[j].Filename
	})
}

// redecide applies decide to every blocked file and keeps only those the
// result still blocks or yanks, with the new rule and reason: after a policy
// change the list shows what the policy in force does. decide runs without
// the log's lock; an entry that changed meanwhile is left as it is.
func (d *decisionLog) redecide(decide func(statusDecision) statusDecision) []statusDecision {
	d.mu.Lock()
	old := make([]statusDecision, 0, len(d.held))
	for _, v := range d.held {
		old = append(old, v)
	}
	d.mu.Unlock()
	out := old[:0:0]
	now := make([]statusDecision, len(old))
	for i, v := range old {
		now[i] = decide(v)
	}
	d.mu.Lock()
	for i, v := range old {
		k := statusKey(v)
		cur, ok := d.held[k]
		if !ok || !cur.Time.Equal(v.Time) || cur.Action != v.Action || cur.Reason != v.Reason {
			if ok {
				out = append(out, cur) // decided again meanwhile: that decision is current
			}
			continue
		}
		n := now[i]
		if n.Action != policy.ActionBlock && n.Action != policy.ActionYank {
			delete(d.held, k)
			continue
		}
		if n.Action != v.Action || n.Reason != v.Reason {
			d.held[k] = n
		}
		out = append(out, d.held[k])
	}
	d.mu.Unlock()
	sortBlocked(out)
	return out
}
