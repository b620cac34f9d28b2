package testbin

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestPipgate: the binary is stamped with Version, built with the test
// binary's own settings (-race under `go test -race`: a link on top of the
// packages compiled for the tests), and every call in a process returns the
// same build.
func TestPipgate(t *testing.T) {
	bin := Pipgate(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), Version) {
		t.Fatalf("%s version: %q, %v; want %q", bin, out, err, Version)
	}
	if again := Pipgate(t); again != bin {
		t.Errorf("second Pipgate = %s; want the first build %s", again, bin)
	}
	built, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	self, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info in the test binary")
	}
	settings := func(bi *debug.BuildInfo) map[string]string {
		m := map[string]string{}
		for _, s := range bi.Settings {
			m[s.Key] = s.Value
		}
		return m
	}
	want, got := settings(self), settings(built)
	for _, k := range []string{"-race", "-tags", "-trimpath", "-gcflags", "CGO_ENABLED", "GOARCH", "GOOS", "GOAMD64", "GOEXPERIMENT"} {
		if got[k] != want[k] {
			t.Errorf("the binary's %s = %q; the test binary's %q", k, got[k], want[k])
		}
	}
	if built.GoVersion != self.GoVersion {
		t.Errorf("the binary's Go %s; the test binary's %s", built.GoVersion, self.GoVersion)
	}
}

// sleeper starts cmd (which prints "started" once what it runs in the
// background has started) with the write end of a pipe as fd 3, and returns
// the read end (the caller closes it), which reports EOF once every process
// holding it is dead.
func sleeper(t *testing.T, cmd *exec.Cmd) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{w}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "started\n" {
		t.Fatalf("sh: %q, %v", line, err)
	}
	return r
}

// waitEOF fails the test unless every holder of the pipe's write end exits
// within a minute (a bound for a failing test, not a synchronisation).
func waitEOF(t *testing.T, r *os.File) {
	t.Helper()
	if err := r.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if n, err := r.Read(b[:]); n != 0 || err == nil || !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("pipe read: %d, %v; want EOF (the background sleep still runs)", n, err)
	}
}

// TestCommandKillsGroup: cancelling the context kills the process and what
// it started.
func TestCommandKillsGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cmd := Command(ctx, t, "sh", "-c", "sleep 1000 & echo started; wait")
	r := sleeper(t, cmd)
	defer r.Close()
	cancel()
	_ = cmd.Wait()
	waitEOF(t, r)
}

// TestCommandCleanupKillsGroup: the test's end kills what is still running.
func TestCommandCleanupKillsGroup(t *testing.T) {
	var r *os.File
	t.Run("starts", func(t *testing.T) {
		var cmd *exec.Cmd
		t.Cleanup(func() { _ = cmd.Wait() }) // runs after Command's cleanup killed the group
		cmd = Command(context.Background(), t, "sh", "-c", "sleep 1000 & echo started; wait")
		r = sleeper(t, cmd)
	})
	defer r.Close()
	waitEOF(t, r)
}
