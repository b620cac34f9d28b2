package provenance_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
)

// deadMirror is a TUF mirror that answers 404 to everything, so TUF fails
// fast and hermetically.
func deadMirror(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func tufOptions(t *testing.T, dir string, log *bytes.Buffer) provenance.TrustSourceOptions {
	return provenance.TrustSourceOptions{
		CacheDir:      dir,
		MirrorURL:     deadMirror(t),
		HTTPTimeout:   2 * time.Second,
		MaxTries:      1,
		RetryInterval: time.Millisecond,
		StaleAfter:    time.Hour,
		Logger:        slog.New(slog.NewTextHandler(log, nil)),
	}
}

func TestTrustSourcePinned(t *testing.T) {
	ps := provenancetest.New(t)
	path := ps.WriteTrustedRoot(t.TempDir())
	reg := prometheus.NewRegistry()
	src, err := provenance.NewTrustSource(t.Context(), provenance.TrustSourceOptions{TrustedRootPath: path, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ps.TrustedRootJSON())
	if got, want := src.Digest(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("got digest %q; want %q", got, want)
	}
	if n := testutil.CollectAndCount(reg, "pipgate_trust_root_last_refresh_timestamp_seconds"); n != 1 {
		t.Errorf("got %d last-refresh gauges; want 1", n)
	}
	if err := src.Refresh(t.Context()); err != nil {
		t.Errorf("pinned Refresh: got %v; want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := src.Run(ctx); err != nil {
		t.Errorf("Run after cancel: got %v; want nil", err)
	}
}

func TestTrustSourcePinnedBad(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"mediaType":"nope"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "missing.json"), bad} {
		_, err := provenance.NewTrustSource(t.Context(), provenance.TrustSourceOptions{TrustedRootPath: p})
		if !errors.Is(err, provenance.ErrNoTrustRoot) {
			t.Errorf("%s: got %v; want ErrNoTrustRoot", p, err)
		}
	}
}

func TestTrustSourceOfflineNoRoot(t *testing.T) {
	var log bytes.Buffer
	_, err := provenance.NewTrustSource(t.Context(), tufOptions(t, t.TempDir(), &log))
	if !errors.Is(err, provenance.ErrNoTrustRoot) {
		t.Fatalf("got %v; want ErrNoTrustRoot", err)
	}
	if !strings.Contains(err.Error(), "no last good copy") {
		t.Errorf("got %q; want it to say there is no last good copy", err)
	}
}

func TestTrustSourceLastGood(t *testing.T) {
	ps := provenancetest.New(t)
	dir := t.TempDir()
	p := filepath.Join(dir, provenance.LastGoodFile)
	if err := os.WriteFile(p, ps.TrustedRootJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	src, err := provenance.NewTrustSource(t.Context(), tufOptions(t, dir, &log))
	if err != nil {
		t.Fatal(err)
	}
	if got := src.LastRefresh(); !got.Equal(old) {
		t.Errorf("got last refresh %v; want %v", got, old)
	}
	if !strings.Contains(log.String(), "trusted root is stale") {
		t.Errorf("log %q lacks the staleness warning", log.String())
	}
	digest := src.Digest()
	if err := src.Refresh(t.Context()); err == nil {
		t.Error("Refresh against a dead mirror: got nil; want an error")
	}
	if src.Digest() != digest {
		t.Error("a failed refresh changed the trusted root")
	}
	content := []byte("x")
	f := src.Verifier().Facts(ps.ProvenanceFor("x-1.tar.gz", content, provenancetest.GitHub("o/r", "release.yml")), provenancetest.DistFor("x-1.tar.gz", content))
	if f.Verdict != pypi.VerdictVerified {
		t.Errorf("got %q (%s); want verified with the last good root", f.Verdict, f.Detail)
	}
}

// A pinned trusted root's last refresh is the file's modification time, so
// its age means "not updated for that long", across restarts.
func TestTrustSourcePinnedAgeIsFileTime(t *testing.T) {
	ps := provenancetest.New(t)
	p := ps.WriteTrustedRoot(t.TempDir())
	touched := time.Now().Add(-10 * 24 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(p, touched, touched); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	reg := prometheus.NewRegistry()
	src, err := provenance.NewTrustSource(t.Context(), provenance.TrustSourceOptions{
		TrustedRootPath: p,
		Registerer:      reg,
		Logger:          slog.New(slog.NewTextHandler(&log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := src.LastRefresh(); !got.Equal(touched) {
		t.Errorf("LastRefresh = %v; want the file's mtime %v", got, touched)
	}
	want := fmt.Sprintf("# HELP pipgate_trust_root_last_refresh_timestamp_seconds Unix time of the last successful load or refresh of the Sigstore trusted root.\n"+
		"# TYPE pipgate_trust_root_last_refresh_timestamp_seconds gauge\npipgate_trust_root_last_refresh_timestamp_seconds %d\n", touched.Unix())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pipgate_trust_root_last_refresh_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(log.String(), "stale") {
		t.Errorf("no staleness warning for a 10-day-old pinned root: %q", log.String())
	}
}
