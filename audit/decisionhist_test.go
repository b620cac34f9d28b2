package audit

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/cache"
)

// The batch is bounded: past decisionMaxPending distinct rows a new one is
// dropped and counted; a known row still counts.
func TestDecisionRecorderBound(t *testing.T) {
	r := NewRecorder(nil, 0, nil, prometheus.NewRegistry())
	for i := range decisionMaxPending + 5 {
		r.Add(cache.Decision{Project: "p", Filename: fmt.Sprintf("p-%d.tar.gz", i), Action: "allow"})
	}
	r.Add(cache.Decision{Project: "p", Filename: "p-0.tar.gz", Action: "allow"})
	if len(r.pending) != decisionMaxPending {
		t.Errorf("%d pending rows; want the bound %d", len(r.pending), decisionMaxPending)
	}
	if got := testutil.ToFloat64(r.lost); got != 5 {
		t.Errorf("lost = %v; want 5", got)
	}
	if got := r.pending[pendingKey{project: "p", filename: "p-0.tar.gz", action: "allow"}].Count; got != 2 {
		t.Errorf("known row counts %d; want 2", got)
	}
}
