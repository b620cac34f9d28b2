package gate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

// The gate's own logic, called directly: no HTTP server on either side.
// fakeUpstream is the upstream index in memory.

type fakeUpstream struct {
	mu       sync.Mutex
	files    []pypi.File       // the project's page
	bodies   map[string][]byte // by file URL
	pages    int               // Project calls
	opened   []string          // Open calls, by URL
	provided int               // Provenance calls
}

func (u *fakeUpstream) Owner(string) (string, time.Duration) { return "default", 0 }

func (u *fakeUpstream) Project(_ context.Context, name string) (*pypi.ProjectPage, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pages++
	return &pypi.ProjectPage{Name: name, Files: append([]pypi.File(nil), u.files...)}, nil
}

func (u *fakeUpstream) ProjectList(context.Context) (*pypi.ProjectList, error) {
	return &pypi.ProjectList{}, nil
}

func (u *fakeUpstream) Open(_ context.Context, _, rawURL string, _ upstream.Kind) (*upstream.Body, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.opened = append(u.opened, rawURL)
	b, ok := u.bodies[rawURL]
	if !ok {
		return nil, upstream.ErrNotFound
	}
	return &upstream.Body{ReadCloser: io.NopCloser(bytes.NewReader(b)), Size: int64(len(b))}, nil
}

func (u *fakeUpstream) Provenance(context.Context, string, string) ([]byte, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.provided++
	return []byte(`{"version":1,"attestation_bundles":[]}`), nil
}

func (u *fakeUpstream) add(filename string, body []byte, indexSHA string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	url := "https://files.example/" + filename
	u.files = append(u.files, pypi.File{Filename: filename, URL: url, Size: int64(len(body)),
		Hashes: pypi.MakeHashes(map[string]string{"sha256": indexSHA}), Provenance: "https://pypi.example/integrity/" + filename})
	u.bodies[url] = body
}

// fakeVerifier returns the facts set for a filename and counts its calls.
type fakeVerifier struct {
	mu    sync.Mutex
	facts map[string]pypi.Facts
	calls int
}

func (v *fakeVerifier) Facts(_ []byte, filename, _ string) pypi.Facts {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls++
	return v.facts[filename]
}

func (v *fakeVerifier) TrustRootDigest() string { return strings.Repeat("ab", 32) }

type fixedPolicy struct{ p *policy.Policy }

func (p fixedPolicy) Current() *policy.Policy { return p.p }

const trustsGoodRepo = `version: 1
packages:
  - name: demo
    require: trusted-publisher
    action: block
    publishers:
      - kind: github
        repository: good/repo
`

var (
	goodID = &pypi.Identity{Kind: pypi.KindGitHub, Repository: "good/repo", Workflow: "release.yml"}
	evilID = &pypi.Identity{Kind: pypi.KindGitHub, Repository: "evil/fork", Workflow: "release.yml"}
)

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newGate(t *testing.T) (*gate.Gate, *fakeUpstream, *fakeVerifier, *cache.Store) {
	t.Helper()
	store, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pol, err := policy.Parse([]byte(trustsGoodRepo))
	if err != nil {
		t.Fatal(err)
	}
	up := &fakeUpstream{bodies: map[string][]byte{}}
	v := &fakeVerifier{facts: map[string]pypi.Facts{}}
	g, err := gate.New(gate.Options{Upstream: up, Store: store, Verifier: v, Policy: fixedPolicy{pol},
		Registerer: prometheus.NewRegistry(), IndexTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g, up, v, store
}

// A file the page does not list is a *NotOnPageError (proxy: 404), after
// one refresh of the page; nothing is fetched or verified for it.
func TestDecideNotOnPage(t *testing.T) {
	g, up, v, _ := newGate(t)
	up.add("demo-1.0-py3-none-any.whl", []byte("wheel"), shaOf([]byte("wheel")))
	_, err := g.Decide(t.Context(), "demo", "demo-9.9-py3-none-any.whl")
	var nop *gate.NotOnPageError
	if !errors.As(err, &nop) || nop.Project != "demo" || nop.Filename != "demo-9.9-py3-none-any.whl" {
		t.Fatalf("Decide = %v; want a NotOnPageError naming the project and file", err)
	}
	if up.pages != 2 || len(up.opened) != 0 || v.calls != 0 {
		t.Errorf("page fetched %d times (want 2: the cached one, then a refresh), %d files opened, %d verifications; want none", up.pages, len(up.opened), v.calls)
	}
	// A file added upstream since is found by that refresh.
	up.add("demo-9.9-py3-none-any.whl", []byte("new"), shaOf([]byte("new")))
	if _, err := g.Decide(t.Context(), "demo", "demo-9.9-py3-none-any.whl"); err != nil {
		t.Errorf("a file added upstream: %v; want it found", err)
	}
}

// A file by the trusted publisher is verified once (then a cache hit), is
// allowed, and its fill commits the index's bytes.
func TestDecideVerifiedAndFill(t *testing.T) {
	g, up, v, store := newGate(t)
	body := []byte("the wheel's bytes")
	name := "demo-1.0-py3-none-any.whl"
	up.add(name, body, shaOf(body))
	v.facts[name] = pypi.Facts{Verdict: pypi.VerdictVerified, Identity: goodID}

	for i, want := range []gate.CacheState{gate.CacheMiss, gate.CacheHit} {
		dl, err := g.Decide(t.Context(), "demo", name)
		if err != nil {
			t.Fatal(err)
		}
		if dl.Decision.Verdict != pypi.VerdictVerified || dl.Decision.Action != policy.ActionAllow || dl.Decision.Err() != nil || dl.Cache != want {
			t.Errorf("Decide %d: %s %s (err %v), cache %q; want verified, allow, cache %q", i, dl.Decision.Verdict, dl.Decision.Action, dl.Decision.Err(), dl.Cache, want)
		}
	}
	if v.calls != 1 {
		t.Errorf("verified %d times; want once", v.calls)
	}
	dl, _ := g.Decide(t.Context(), "demo", name)
	fl := g.JoinFill(g.FileFill("demo", dl.File))
	got, err := fl.Wait(t.Context())
	fl.Leave()
	if err != nil || got != shaOf(body) {
		t.Fatalf("fill = %s, %v; want the index sha256", got, err)
	}
	b, err := store.OpenBlob(got)
	if err != nil {
		t.Fatalf("committed blob: %v", err)
	}
	defer b.Close()
	if data, _ := io.ReadAll(b.File); !bytes.Equal(data, body) {
		t.Errorf("blob holds %q; want the upstream bytes", data)
	}
}

// A file by another publisher is refused by the policy before any byte of
// it is fetched; the refusal is a policy.DeniedError naming the rule.
func TestDecideRefused(t *testing.T) {
	g, up, v, _ := newGate(t)
	name := "demo-2.0-py3-none-any.whl"
	up.add(name, []byte("evil"), shaOf([]byte("evil")))
	v.facts[name] = pypi.Facts{Verdict: pypi.VerdictVerified, Identity: evilID}
	dl, err := g.Decide(t.Context(), "demo", name)
	if err != nil {
		t.Fatal(err)
	}
	d := dl.Decision
	var de *policy.DeniedError
	if !d.Blocks() || d.Verdict != pypi.VerdictUntrustedPublisher || !errors.As(d.Err(), &de) || de.Rule == "" {
		t.Errorf("decision %s %s, err %v; want a block, untrusted-publisher, with its rule", d.Verdict, d.Action, d.Err())
	}
	if len(up.opened) != 0 {
		t.Errorf("the refused file was fetched: %v", up.opened)
	}
}

// A file the index gives no sha256 for cannot be checked: ErrUpstreamNoHash.
func TestDecideNoHash(t *testing.T) {
	g, up, _, _ := newGate(t)
	up.add("demo-1.0.tar.gz", []byte("sdist"), "")
	if _, err := g.Decide(t.Context(), "demo", "demo-1.0.tar.gz"); !errors.Is(err, gate.ErrUpstreamNoHash) {
		t.Errorf("Decide = %v; want ErrUpstreamNoHash", err)
	}
}

// Upstream bytes that do not match the index's sha256 fail the fill with
// ErrDigestMismatch and leave no blob behind.
func TestFillDigestMismatch(t *testing.T) {
	g, up, _, store := newGate(t)
	name := "demo-1.0-py3-none-any.whl"
	want := shaOf([]byte("the real bytes!!!"))
	up.add(name, []byte("tampered bytes!!!"), want) // same size, other bytes
	dl, err := g.Decide(t.Context(), "demo", name)
	if err != nil {
		t.Fatal(err)
	}
	fl := g.JoinFill(g.FileFill("demo", dl.File))
	_, err = fl.Wait(t.Context())
	fl.Leave()
	if !errors.Is(err, gate.ErrDigestMismatch) {
		t.Errorf("fill = %v; want ErrDigestMismatch", err)
	}
	if store.HasBlob(want) {
		t.Error("a blob was committed for bytes that did not match")
	}
}
