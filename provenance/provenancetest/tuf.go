package provenancetest

import (
	"crypto"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TUFRepo is a fake TUF repository serving one target, trusted_root.json,
// signed with fresh ed25519 keys (one per role), the way Sigstore's TUF
// CDN lays it out (consistent snapshots, hash-prefixed targets). It can be
// taken down and brought back up to simulate an unreachable repository.
type TUFRepo struct {
	// URL is the repository base URL (TrustSourceOptions.MirrorURL).
	URL string
	// Root is the TUF trust anchor, 1.root.json (TrustSourceOptions.TUFRoot).
	Root []byte

	files map[string][]byte
	down  atomic.Bool
	hits  atomic.Int64
}

// NewTUFRepo starts a TUF repository serving trustedRoot as
// trusted_root.json; it is closed when t ends. Any failure fails t.
func NewTUFRepo(t testing.TB, trustedRoot []byte) *TUFRepo {
	t.Helper()
	r, err := newTUFRepo(trustedRoot)
	if err != nil {
		t.Fatalf("provenancetest: TUF repository: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// SetDown makes the repository answer 503 to everything (down) or serve
// again (up).
func (r *TUFRepo) SetDown(down bool) { r.down.Store(down) }

// Hits is the number of requests the repository has answered, up or down.
func (r *TUFRepo) Hits() int64 { return r.hits.Load() }

func (r *TUFRepo) serve(w http.ResponseWriter, req *http.Request) {
	r.hits.Add(1)
	if r.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	b, ok := r.files[strings.TrimPrefix(req.URL.Path, "/")]
	if !ok {
		http.NotFound(w, req)
		return
	}
	_, _ = w.Write(b)
}

func newTUFRepo(trustedRoot []byte) (*TUFRepo, error) {
	expires := time.Now().Add(24 * time.Hour)
	targets := metadata.Targets(expires)
	tf, err := metadata.TargetFile().FromBytes("trusted_root.json", trustedRoot, "sha256")
	if err != nil {
		return nil, err
	}
	targets.Signed.Targets["trusted_root.json"] = tf
	snapshot := metadata.Snapshot(expires)
	timestamp := metadata.Timestamp(expires)
	root := metadata.Root(expires)

	signers := map[string]signature.Signer{}
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return nil, err
		}
		key, err := metadata.KeyFromPublicKey(priv.Public())
		if err != nil {
			return nil, err
		}
		if err := root.Signed.AddKey(key, role); err != nil {
			return nil, err
		}
		if signers[role], err = signature.LoadSigner(priv, crypto.Hash(0)); err != nil {
			return nil, err
		}
	}
	r := &TUFRepo{files: map[string][]byte{}}
	for _, s := range []struct {
		role string
		sign func(signature.Signer) (*metadata.Signature, error)
	}{
		{metadata.ROOT, root.Sign},
		{metadata.TARGETS, targets.Sign},
		{metadata.SNAPSHOT, snapshot.Sign},
		{metadata.TIMESTAMP, timestamp.Sign},
	} {
		if _, err := s.sign(signers[s.role]); err != nil {
			return nil, fmt.Errorf("signing %s: %w", s.role, err)
		}
	}
	for name, m := range map[string]interface{ ToBytes(bool) ([]byte, error) }{
		"1.root.json": root, "1.targets.json": targets, "1.snapshot.json": snapshot, "timestamp.json": timestamp,
	} {
		b, err := m.ToBytes(false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		r.files[name] = b
	}
	sum := tf.Hashes["sha256"]
	r.files[fmt.Sprintf("targets/%s.trusted_root.json", sum.String())] = trustedRoot
	r.Root = r.files["1.root.json"]
	return r, nil
}
