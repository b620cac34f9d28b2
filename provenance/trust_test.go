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
	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
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
		HTTPTimeout:   time.Minute, // a bound: the dead mirror answers 404 at once
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

// The embedded root is Sigstore public-good's trusted_root.json, dated,
// with its origin named.
func TestEmbeddedRoot(t *testing.T) {
	e := provenance.EmbeddedRoot()
	if _, err := root.NewTrustedRootFromJSON(e.JSON); err != nil {
		t.Fatalf("embedded trusted root does not parse: %v", err)
	}
	if e.Date.IsZero() || e.Date.After(time.Now()) {
		t.Errorf("embedded root date %v: want a past snapshot date", e.Date)
	}
	if e.Source == "" {
		t.Error("embedded root has no source")
	}
	tr, _ := root.NewTrustedRootFromJSON(e.JSON)
	var urls []string
	for u := range tr.RekorLogs() {
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		t.Error("embedded root has no transparency log")
	}
	for _, ca := range tr.FulcioCertificateAuthorities() {
		if fca, ok := ca.(*root.FulcioCertificateAuthority); ok && !strings.Contains(fca.URI, "fulcio.sigstore.dev") {
			t.Errorf("embedded root has Fulcio %q; want public-good's", fca.URI)
		}
	}
}

func fallbackOptions(t *testing.T, repo *provenancetest.TUFRepo, log *pypitest.LogBuffer, reg prometheus.Registerer) provenance.TrustSourceOptions {
	e := provenance.EmbeddedRoot()
	return provenance.TrustSourceOptions{
		CacheDir:              t.TempDir(),
		MirrorURL:             repo.URL,
		TUFRoot:               repo.Root,
		HTTPTimeout:           time.Minute, // a bound: the fake repository answers (or refuses) at once
		MaxTries:              1,
		RetryInterval:         time.Millisecond,
		Fallback:              &e,
		FallbackRetryInterval: time.Millisecond,
		Logger:                slog.New(slog.NewTextHandler(log, nil)),
		Registerer:            reg,
	}
}

// With TUF unreachable and nothing cached, the source starts on the
// embedded snapshot (dated by the snapshot, said in the log and by
// Describe), keeps trying TUF, and swaps to TUF's root once it answers.
func TestTrustSourceFallbackThenTUF(t *testing.T) {
	ps := provenancetest.New(t)
	repo := provenancetest.NewTUFRepo(t, ps.TrustedRootJSON())
	repo.SetDown(true)
	var log pypitest.LogBuffer
	reg := prometheus.NewRegistry()
	opts := fallbackOptions(t, repo, &log, reg)
	src, err := provenance.NewTrustSource(t.Context(), opts)
	if err != nil {
		t.Fatalf("offline start with a fallback: %v", err)
	}
	e := provenance.EmbeddedRoot()
	if got := src.Origin(); got != provenance.OriginFallback {
		t.Errorf("origin %q; want %q", got, provenance.OriginFallback)
	}
	if got := src.LastRefresh(); !got.Equal(e.Date) {
		t.Errorf("last refresh %v; want the snapshot date %v", got, e.Date)
	}
	if got, want := gaugeValue(t, reg, "pipgate_trust_root_last_refresh_timestamp_seconds"), float64(e.Date.Unix()); got != want {
		t.Errorf("pipgate_trust_root_last_refresh_timestamp_seconds = %v; want the snapshot date %v", got, want)
	}
	if d := src.Describe(); !strings.Contains(d, "embedded snapshot") || !strings.Contains(d, e.Date.Format(time.DateOnly)) {
		t.Errorf("Describe() = %q; want it to name the embedded snapshot and its date", d)
	}
	if !strings.Contains(log.String(), "embedded in pipgate") {
		t.Errorf("log does not say the embedded root is used: %s", log.String())
	}
	sum := sha256.Sum256(e.JSON)
	if got := src.Digest(); got != hex.EncodeToString(sum[:]) {
		t.Errorf("digest %s; want the embedded root's", got)
	}
	content := []byte("x")
	prov := ps.ProvenanceFor("x-1.tar.gz", content, provenancetest.GitHub("o/r", "release.yml"))
	if f := src.Verifier().Facts(prov, provenancetest.DistFor("x-1.tar.gz", content)); f.Verdict == pypi.VerdictVerified {
		t.Fatal("the fake Sigstore's attestation verified against the embedded public-good root")
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	// Still down: Run keeps trying (at least two failed attempts), and the
	// embedded root stays.
	if !log.WaitFor(time.Minute, func(s string) bool {
		return strings.Count(s, "tuf refresh failed, keeping the current trusted root") >= 2
	}) {
		t.Fatalf("Run did not retry TUF while on the embedded root: %s", log.String())
	}
	if src.Origin() != provenance.OriginFallback {
		t.Errorf("origin %q after failed retries; want %q", src.Origin(), provenance.OriginFallback)
	}
	repo.SetDown(false)
	if !log.WaitFor(time.Minute, func(s string) bool { return strings.Contains(s, "TUF answered") }) {
		t.Fatalf("Run did not swap to TUF once it answered: %s", log.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if got := src.Origin(); got != provenance.OriginTUF {
		t.Errorf("origin %q; want %q", got, provenance.OriginTUF)
	}
	if time.Since(src.LastRefresh()) > time.Minute {
		t.Errorf("last refresh %v after the TUF fetch; want now", src.LastRefresh())
	}
	if f := src.Verifier().Facts(prov, provenancetest.DistFor("x-1.tar.gz", content)); f.Verdict != pypi.VerdictVerified {
		t.Errorf("after the swap: %q (%s); want verified with TUF's root", f.Verdict, f.Detail)
	}
	if b, err := os.ReadFile(filepath.Join(opts.CacheDir, provenance.LastGoodFile)); err != nil || !bytes.Equal(b, ps.TrustedRootJSON()) {
		t.Errorf("last good copy not saved after the swap (err %v)", err)
	}
	// The next start, offline again, uses TUF's root (the last good copy,
	// newer than the snapshot), not the embedded one.
	repo.SetDown(true)
	opts.Registerer = nil
	again, err := provenance.NewTrustSource(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Origin() == provenance.OriginFallback {
		t.Errorf("second offline start: origin %q; want the TUF cache or the last good copy", again.Origin())
	}
}

// A last good copy older than the embedded snapshot loses to it.
func TestTrustSourceOldLastGoodLosesToSnapshot(t *testing.T) {
	ps := provenancetest.New(t)
	repo := provenancetest.NewTUFRepo(t, ps.TrustedRootJSON())
	repo.SetDown(true)
	var log pypitest.LogBuffer
	opts := fallbackOptions(t, repo, &log, nil)
	p := filepath.Join(opts.CacheDir, provenance.LastGoodFile)
	if err := os.WriteFile(p, ps.TrustedRootJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	old := opts.Fallback.Date.Add(-24 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	src, err := provenance.NewTrustSource(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if src.Origin() != provenance.OriginFallback {
		t.Errorf("origin %q; want the newer embedded snapshot", src.Origin())
	}
	newer := opts.Fallback.Date.Add(24 * time.Hour)
	if err := os.Chtimes(p, newer, newer); err != nil {
		t.Fatal(err)
	}
	if src, err = provenance.NewTrustSource(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	if src.Origin() != provenance.OriginLastGood || !src.LastRefresh().Equal(newer) {
		t.Errorf("origin %q refreshed %v; want the newer last good copy of %v", src.Origin(), src.LastRefresh(), newer)
	}
}

// gaugeValue gathers the one sample of gauge name from reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no single-sample metric %s", name)
	return 0
}
