package proxy

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// bodyVerifier verifies by provenance body: goodProv is verified, anything
// else invalid. Its trust-root digest can be switched.
type bodyVerifier struct {
	calls atomic.Int64
	root  atomic.Pointer[string]
}

var goodProv = []byte(`{"version":1,"attestation_bundles":[{"good":true}]}`)

func (v *bodyVerifier) Facts(prov []byte, _, _ string) pypi.Facts {
	v.calls.Add(1)
	if bytes.Equal(prov, goodProv) {
		return pypi.Facts{Verdict: pypi.VerdictVerified, Identity: &pypi.Identity{Kind: pypi.KindGitHub, Repository: "a/b", Workflow: "release.yml"}}
	}
	return pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: "signature", Detail: "tampered"}
}

func (v *bodyVerifier) TrustRootDigest() string { return *v.root.Load() }

// TestHotCacheAnswersAsTheStore: the in-memory hit path gives what the bbolt
// path would: a changed provenance body (after index_ttl) and a new trust
// root are seen, and each hit counts the same cache lookups.
func TestHotCacheAnswersAsTheStore(t *testing.T) {
	up := pypitest.NewServer(t)
	d := addWheel(up, "demo", "1.0", func(d *pypitest.Dist) { d.Provenance = goodProv })
	v := &bodyVerifier{}
	root1, root2 := strings.Repeat("01", 32), strings.Repeat("02", 32)
	v.root.Store(&root1)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	tp := newTestProxy(t, up, "", func(o *Options) {
		o.Verifier = v
		o.EagerReleases = 0
		o.Registerer = reg
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	lookups := func(kind gate.LookupKind) float64 {
		return float64(tp.srv.gate.Lookups()[kind].Hit)
	}
	get := func(wantCode int, wantVerdict pypi.Verdict) {
		t.Helper()
		resp, body := tp.get("/files/demo/" + d.Filename)
		if resp.StatusCode != wantCode || resp.Header.Get(headerVerdict) != string(wantVerdict) {
			t.Fatalf("download = %d %s; want %d %s", resp.StatusCode, resp.Header.Get(headerVerdict), wantCode, wantVerdict)
		}
		if wantCode == 200 && !bytes.Equal(body, d.Content) {
			t.Fatalf("download served other bytes")
		}
	}

	get(200, pypi.VerdictVerified) // verified and stored
	get(200, pypi.VerdictVerified) // from the store, now in memory
	provHits, verdictHits := lookups("provenance"), lookups("verdict")
	get(200, pypi.VerdictVerified) // from memory
	if got := lookups("provenance") - provHits; got != 1 {
		t.Errorf("a memory hit counted %v provenance hits; want 1", got)
	}
	if got := lookups("verdict") - verdictHits; got != 1 {
		t.Errorf("a memory hit counted %v verdict hits; want 1", got)
	}
	if n := v.calls.Load(); n != 1 {
		t.Errorf("verifier called %d times; want 1", n)
	}

	// A new trust root: verified again, not answered from memory.
	v.root.Store(&root2)
	get(200, pypi.VerdictVerified)
	if n := v.calls.Load(); n != 2 {
		t.Errorf("after a trust-root change the verifier was called %d times; want 2", n)
	}

	// The upstream's provenance changes: within index_ttl the cached body
	// stands (as on the bbolt path); after it, the new body is fetched and
	// judged, and the file is refused.
	up.AddDist("demo", pypitest.Dist{Filename: d.Filename, Content: d.Content, Provenance: []byte(`{"version":1,"tampered":true}`)})
	get(200, pypi.VerdictVerified)
	advance(2 * time.Minute) // past IndexTTL (1m)
	get(403, pypi.VerdictInvalid)
	get(403, pypi.VerdictInvalid) // and stays refused, from memory
	if n := v.calls.Load(); n != 3 {
		t.Errorf("verifier called %d times; want 3", n)
	}
}
