package testbin

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// janitorEnv names the folder a janitor process removes.
const janitorEnv = "PIPGATE_TESTBIN_JANITOR"

// Main runs the tests (call it from TestMain) with every temporary file in
// one folder that is removed however the test binary ends: passed, failed,
// timed out or killed. TMPDIR points into the folder, so t.TempDir,
// os.MkdirTemp and the subprocesses the tests start (pip, pipgate) write
// there. A janitor process (this binary again, in its own process group, so
// that a terminal's Ctrl-C does not reach it) holds the read end of a pipe
// from this one and removes the folder when it reads EOF: when this process
// exits, however it exits. On Linux the test binary itself dies with the
// process that started it (a SIGKILLed `go test`), so a killed run leaves
// no test running on, orphaned.
//
// Under -race it first runs itself again (exec: the same process, its
// arguments, files and parent) with atexit_sleep_ms=0 added to GORACE,
// unless GORACE sets atexit_sleep_ms: see noExitSleep.
func Main(m *testing.M) {
	if dir := os.Getenv(janitorEnv); dir != "" {
		janitor(dir)
		return
	}
	if raceEnabled && noExitSleep(os.Getenv("GORACE")) != os.Getenv("GORACE") {
		err := execSelf(append(withoutEnv(os.Environ(), "GORACE"), "GORACE="+noExitSleep(os.Getenv("GORACE"))))
		fmt.Fprintln(os.Stderr, "testbin: running on with the race runtime's exit sleep:", err) // exec failed
	}
	os.Exit(run(m))
}

// withoutEnv is env without key's entries (the first of two is the one read).
func withoutEnv(env []string, key string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}

func run(m *testing.M) int {
	if err := dieWithParent(); err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		return 2
	}
	// The -race binaries this one starts (itself as a database check or a
	// test's subject, a -race pipgate) exit without the race runtime's
	// second too (see noExitSleep): internal/testbin's tests, which wait for
	// such children, took 5.4 s, now 1.5 s.
	if err := os.Setenv("GORACE", noExitSleep(os.Getenv("GORACE"))); err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "pipgate-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	stop, err := startJanitor(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbin: starting the temporary folder's janitor:", err)
		return 2
	}
	defer stop()
	if err := os.Setenv("TMPDIR", dir); err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		return 2
	}
	return m.Run()
}

func startJanitor(dir string) (stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), janitorEnv+"="+dir)
	cmd.Stdin = r
	detach(cmd) // outlives this process, by design
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	go func() { _ = cmd.Wait() }() // reaped while this process lives
	return func() { w.Close() }, nil
}

// noExitSleep adds atexit_sleep_ms=0 to the GORACE options gorace unless
// they set atexit_sleep_ms already. A -race binary sleeps atexit_sleep_ms
// (1000 by default) before it exits whenever another goroutine is alive,
// which in Go is always (a -race func main(){} takes 1.02 s), so that
// goroutines still running may race into its report. Without it, a test
// binary still reports every race it saw, with its summary and exit status
// 66; only the second in which goroutines outliving the tests could still
// race is gone. It was a second of wall time per test package, in which
// `go test -p` kept a slot idle.
func noExitSleep(gorace string) string {
	for _, o := range strings.Fields(gorace) {
		if strings.HasPrefix(o, "atexit_sleep_ms=") {
			return gorace
		}
	}
	return strings.TrimSpace(gorace + " atexit_sleep_ms=0")
}

// janitor waits for EOF on stdin (the test binary exited) and removes dir.
func janitor(dir string) {
	ignoreSignals()
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = os.RemoveAll(dir) //nolint:gosec // the folder Main made, named by the test binary that started this one
	os.Exit(0)
}
