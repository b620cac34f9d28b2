package reload_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/policy/reload"
	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

const (
	policyYank  = "version: 1\ndefaults:\n  require: attestation\n  action: yank\n"
	policyBlock = "version: 1\ndefaults:\n  require: attestation\n  action: block\n"
	policyBad   = "version: 1\ndefaults:\n  require: attestation\n  acton: block\n"
)

// reloadLog records OnReload calls.
type reloadLog struct {
	mu  sync.Mutex
	oks []bool
}

func (l *reloadLog) record(ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.oks = append(l.oks, ok)
}

func (l *reloadLog) get() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bool(nil), l.oks...)
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	// Write then rename, as editors and config management do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReloaderSwapUnderConcurrentReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyYank)
	var logBuf pypitest.LogBuffer
	var calls reloadLog
	r, err := reload.New(reload.Options{
		Path:     path,
		Logger:   slog.New(slog.NewTextHandler(&logBuf, nil)),
		OnReload: calls.record,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Current().Source(); got != path {
		t.Errorf("Current().Source() = %q; want %q", got, path)
	}

	// Readers see one whole policy or the other, never a mix or nil.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var seen [2]atomic.Int64
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				d := r.Current().Decide("requests", pypi.Facts{Verdict: pypi.VerdictUnattested})
				switch d.Action {
				case policy.ActionYank:
					seen[0].Add(1)
				case policy.ActionBlock:
					seen[1].Add(1)
				default:
					t.Errorf("Decide under reload: action %q; want yank or block", d.Action)
					return
				}
				runtime.Gosched()
			}
		}()
	}
	for i := range 20 {
		body := policyBlock
		if i%2 == 1 {
			body = policyYank
		}
		writeFile(t, path, body)
		before := seen[(i+1)%2].Load()
		if err := r.Reload(); err != nil {
			t.Fatalf("Reload %d: %v", i, err)
		}
		// On to the next swap once a reader has decided with this policy.
		for seen[(i+1)%2].Load() == before && !t.Failed() {
			runtime.Gosched()
		}
	}
	cancel()
	wg.Wait()
	if seen[0].Load() == 0 || seen[1].Load() == 0 {
		t.Errorf("readers saw yank %d times and block %d times; want both", seen[0].Load(), seen[1].Load())
	}
	if got := r.Current().Decide("x", pypi.Facts{Verdict: pypi.VerdictUnattested}).Action; got != policy.ActionYank {
		t.Errorf("after the last reload: action %q; want yank", got)
	}
	oks := calls.get()
	if len(oks) != 21 {
		t.Errorf("OnReload called %d times; want 21 (initial load + 20 reloads)", len(oks))
	}
	for i, ok := range oks {
		if !ok {
			t.Errorf("OnReload call %d: ok = false; want true", i)
		}
	}
	if !strings.Contains(logBuf.String(), "policy reloaded") {
		t.Errorf("log lacks %q:\n%s", "policy reloaded", logBuf.String())
	}
}

func TestReloaderBadFileKeepsOld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyBlock)
	var logBuf pypitest.LogBuffer
	var calls reloadLog
	r, err := reload.New(reload.Options{Path: path, Logger: slog.New(slog.NewTextHandler(&logBuf, nil)), OnReload: calls.record})
	if err != nil {
		t.Fatal(err)
	}
	before := r.Current()

	writeFile(t, path, policyBad)
	err = r.Reload()
	if !errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("Reload(bad) = %v; want ErrInvalid", err)
	}
	if want := "line 4: defaults.acton: unknown field (did you mean action?)"; err.Error() != want {
		t.Errorf("Reload(bad) error = %q; want %q", err.Error(), want)
	}
	if r.Current() != before {
		t.Errorf("Current() changed after a bad reload")
	}
	log := logBuf.String()
	for _, want := range []string{"policy reload failed; keeping the old policy", "defaults.acton: unknown field", before.Digest()} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reload(missing) = %v; want ErrNotExist", err)
	}
	if r.Current() != before {
		t.Errorf("Current() changed after a failed read")
	}
	if got, want := calls.get(), []bool{true, false, false}; !slices.Equal(got, want) {
		t.Errorf("OnReload calls = %v; want %v", got, want)
	}
}

// TestReloaderMetrics: the reloader's own gauges say whether the last load
// succeeded and when the last success was; a failure keeps the timestamp.
func TestReloaderMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyBlock)
	reg := prometheus.NewRegistry()
	now := time.Unix(1700000000, 500e6)
	r, err := reload.New(reload.Options{Path: path, Registerer: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, ok int, ts string) {
		t.Helper()
		want := fmt.Sprintf(`
# HELP pipgate_config_last_reload_success_timestamp_seconds Unix time of the last successful configuration (policy) load.
# TYPE pipgate_config_last_reload_success_timestamp_seconds gauge
pipgate_config_last_reload_success_timestamp_seconds %s
# HELP pipgate_config_last_reload_successful Whether the last configuration (policy) reload succeeded: 1 yes, 0 no.
# TYPE pipgate_config_last_reload_successful gauge
pipgate_config_last_reload_successful %d
`, ts, ok)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}
	check("initial load", 1, "1.7000000005e+09")
	now = now.Add(100 * time.Second)
	writeFile(t, path, policyBad)
	if err := r.Reload(); err == nil {
		t.Fatal("Reload(bad) = nil")
	}
	check("failed reload", 0, "1.7000000005e+09")
	now = now.Add(100 * time.Second)
	writeFile(t, path, policyBlock)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	check("good reload", 1, "1.7000002005e+09")
	if _, err := reload.New(reload.Options{Path: path, Registerer: reg}); err == nil {
		t.Error("a second reloader on one registry: err = nil; want the registration error")
	}
}

func TestNewReloaderErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, policyBad)
	if _, err := reload.New(reload.Options{Path: bad}); !errors.Is(err, policy.ErrInvalid) {
		t.Errorf("NewReloader(bad) = %v; want ErrInvalid", err)
	}
	if _, err := reload.New(reload.Options{Path: filepath.Join(dir, "missing.yaml")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewReloader(missing) = %v; want ErrNotExist", err)
	}
}

func TestReloaderBuiltIn(t *testing.T) {
	var calls reloadLog
	r, err := reload.New(reload.Options{OnReload: calls.record})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Current().Source(); got != "built-in" {
		t.Errorf("Current().Source() = %q; want built-in", got)
	}
	if err := r.Reload(); err != nil {
		t.Errorf("Reload() = %v; want nil", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Watch(ctx, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Watch() = %v; want the context's error", err)
	}
	if got, want := calls.get(), []bool{true}; !slices.Equal(got, want) {
		t.Errorf("OnReload calls = %v; want %v", got, want)
	}
}

func TestReloaderWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyYank)
	var calls reloadLog
	var logBuf pypitest.LogBuffer
	r, err := reload.New(reload.Options{Path: path, Logger: slog.New(slog.NewTextHandler(&logBuf, nil)), OnReload: calls.record})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ticks, polled := make(chan time.Time), make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.WatchTicks(ctx, ticks, polled) }()
	// poll lets the watcher poll n times and returns when it has.
	poll := func(n int) {
		for range n {
			ticks <- time.Now()
			<-polled
		}
	}
	first := r.Current()
	// Idle polls of an unchanged file do not reload.
	poll(3)
	if got := len(calls.get()); got != 1 {
		t.Errorf("OnReload called %d times with the file unchanged; want 1", got)
	}

	writeFile(t, path, policyBlock)
	// Seen changed, then adopted once two polls in a row see the same file.
	poll(1)
	if r.Current() != first {
		t.Error("adopted on the first poll that saw the change; want it seen unchanged twice")
	}
	poll(1)
	if got := r.Current().Decide("x", pypi.Facts{Verdict: pypi.VerdictUnattested}).Action; got != policy.ActionBlock {
		t.Errorf("after the change: action %q; want block; log:\n%s", got, logBuf.String())
	}

	second := r.Current()
	writeFile(t, path, policyBad)
	poll(2)
	if oks := calls.get(); len(oks) != 3 || oks[2] {
		t.Errorf("OnReload calls %v after a bad file; want a third, failed one; log:\n%s", oks, logBuf.String())
	}
	if r.Current() != second {
		t.Errorf("a bad file replaced the policy")
	}
	// A failed reload is not retried until the file changes again.
	poll(3)
	if got := len(calls.get()); got != 3 {
		t.Errorf("OnReload called %d times after one bad change; want 3", got)
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch() = %v; want context.Canceled", err)
	}
}

// TestReloaderPollHalfWritten writes a policy in place, slowly, the first
// part of which is a valid (and permissive) policy on its own: polling never
// adopts a file changed in place, however long the writer pauses, and says
// so once per change (log line and State); SIGHUP (Reload) adopts it.
func TestReloaderPollHalfWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyYank)
	var logBuf pypitest.LogBuffer
	r, err := reload.New(reload.Options{Path: path, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	const half = "version: 1\n" // valid: nothing required, everything allowed
	const rest = "defaults:\n  require: attestation\n  action: block\n"
	if _, err := policy.Parse([]byte(half)); err != nil {
		t.Fatalf("the first half must be a valid policy for this test: %v", err)
	}
	action := func() policy.Action {
		return r.Current().Decide("x", pypi.Facts{Verdict: pypi.VerdictUnattested}).Action
	}
	poll := func(step string, wantAttempt bool, want policy.Action) {
		t.Helper()
		attempted, err := r.Poll()
		if attempted != wantAttempt || err != nil {
			t.Errorf("%s: Poll() = %v, %v; want %v, nil", step, attempted, err, wantAttempt)
		}
		if got := action(); got != want {
			t.Errorf("%s: action %q; want %q", step, got, want)
		}
	}
	const note = "policy file changed in place; not adopted until SIGHUP"
	poll("unchanged", false, policy.ActionYank)
	if st := r.State(); !st.InPlaceAt.IsZero() {
		t.Errorf("State().InPlaceAt = %v before any change; want zero", st.InPlaceAt)
	}

	// The writer truncates the file in place and writes the first half,
	// then pauses for many poll intervals.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(half); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		poll("first half, unchanged for a while", false, policy.ActionYank)
	}
	if n := strings.Count(logBuf.String(), note); n != 1 {
		t.Errorf("%d log lines about the in-place change; want 1:\n%s", n, logBuf.String())
	}
	if st := r.State(); st.InPlaceAt.IsZero() || st.Err != nil {
		t.Errorf("State() = %+v; want InPlaceAt set, no error", st)
	}
	if _, err := f.WriteString(rest); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		poll("whole file, written in place", false, policy.ActionYank)
	}

	// SIGHUP: the operator says the file is complete.
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := action(); got != policy.ActionBlock {
		t.Errorf("after Reload: action %q; want block", got)
	}
	if st := r.State(); !st.InPlaceAt.IsZero() {
		t.Errorf("State().InPlaceAt = %v after Reload; want zero", st.InPlaceAt)
	}
	poll("idle", false, policy.ActionBlock)

	// A bad file is tried once, kept out, and not retried until it changes.
	writeFile(t, path, policyBad)
	poll("bad file seen", false, policy.ActionBlock)
	if attempted, err := r.Poll(); !attempted || !errors.Is(err, policy.ErrInvalid) {
		t.Errorf("bad file seen twice: Poll() = %v, %v; want true, ErrInvalid", attempted, err)
	}
	poll("bad file again", false, policy.ActionBlock)

	// Replaced twice between two polls: the newest file is adopted.
	writeFile(t, path, policyBlock)
	writeFile(t, path, policyYank)
	poll("replaced twice", false, policy.ActionBlock)
	poll("replaced twice, seen again", true, policy.ActionYank)
}

// TestReloaderConfigMapSwap: a Kubernetes ConfigMap volume updates its
// files by swapping a symbolic link (..data) to a new directory; polling
// adopts the new file, and a change made in place under the link is not.
func TestReloaderConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, body string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "policy.yaml"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_12_01_v1", policyYank)
	path := filepath.Join(dir, "policy.yaml")
	if err := os.Symlink(filepath.Join("..data", "policy.yaml"), path); err != nil {
		t.Fatal(err)
	}
	r, err := reload.New(reload.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	action := func() policy.Action {
		return r.Current().Decide("x", pypi.Facts{Verdict: pypi.VerdictUnattested}).Action
	}
	version("..2026_12_02_v2", policyBlock)
	for i, want := range []bool{false, true, false} {
		if attempted, err := r.Poll(); attempted != want || err != nil {
			t.Errorf("poll %d after the swap: %v, %v; want %v, nil", i, attempted, err, want)
		}
	}
	if got := action(); got != policy.ActionBlock {
		t.Errorf("after the swap: action %q; want block", got)
	}
	// Written in place through the link: not adopted.
	if err := os.WriteFile(path, []byte(policyYank), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if attempted, _ := r.Poll(); attempted {
			t.Error("a change in place was adopted by polling")
		}
	}
	if got := action(); got != policy.ActionBlock || r.State().InPlaceAt.IsZero() {
		t.Errorf("after an in-place change: action %q, state %+v; want block, InPlaceAt set", got, r.State())
	}
}

// TestReloaderState: the load time moves only on a successful load, and a
// failed reload's error is kept until the next good one.
func TestReloaderState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyYank)
	before := time.Now()
	r, err := reload.New(reload.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	st := r.State()
	if st.LoadedAt.Before(before) || st.Err != nil || !st.FailedAt.IsZero() {
		t.Fatalf("after the first load: %+v; want a load time, no error", st)
	}
	loaded := st.LoadedAt

	writeFile(t, path, policyBad)
	if err := r.Reload(); err == nil {
		t.Fatal("Reload of a bad file succeeded")
	}
	st = r.State()
	if !st.LoadedAt.Equal(loaded) || st.Err == nil || !strings.Contains(st.Err.Error(), "acton") || st.FailedAt.Before(loaded) {
		t.Errorf("after a failed reload: %+v; want the old load time and the error naming the bad key", st)
	}

	writeFile(t, path, policyBlock)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	st = r.State()
	if st.Err != nil || !st.FailedAt.IsZero() || st.LoadedAt.Before(loaded) {
		t.Errorf("after a good reload: %+v; want a new load time and the error cleared", st)
	}

	b, err := reload.New(reload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st := b.State(); st.LoadedAt.IsZero() || st.Err != nil {
		t.Errorf("built-in policy state = %+v; want a load time", st)
	}
}
