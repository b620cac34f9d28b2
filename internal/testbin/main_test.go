package testbin

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestMainRemovesTempWhenKilled: a test binary killed mid-test (a timeout,
// a kill) leaves no temporary file: its janitor removes them.
func TestMainRemovesTempWhenKilled(t *testing.T) {
	if os.Getenv("TESTBIN_KILLED_CHILD") == "1" {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Println(os.TempDir())
		select {} // until killed
	}
	// The pipe's write end (fd 3) is inherited by the child and by its
	// janitor, so EOF means both are gone.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainRemovesTempWhenKilled$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTBIN_KILLED_CHILD=1")
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
	tmp := strings.TrimSpace(line)
	if err != nil || !strings.Contains(filepath.Base(tmp), "pipgate-test-") {
		t.Fatalf("child: TMPDIR %q, %v; want a pipgate-test- folder", line, err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("the child's TMPDIR: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitEOF(t, r)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the kill, %s: %v; want it removed", tmp, err)
	}
}

// TestChildrenExitWithoutRaceSleep: under -race, Main runs the test binary
// again with atexit_sleep_ms=0 in GORACE (the environment this process
// image started with says so), and gives the processes the tests start the
// same, keeping any other option and any atexit_sleep_ms already set.
func TestChildrenExitWithoutRaceSleep(t *testing.T) {
	if initial, err := os.ReadFile("/proc/self/environ"); raceEnabled && err == nil {
		var gorace string
		for kv := range strings.SplitSeq(string(initial), "\x00") {
			if v, ok := strings.CutPrefix(kv, "GORACE="); ok {
				gorace = v
			}
		}
		if !strings.Contains(" "+gorace+" ", " atexit_sleep_ms=") {
			t.Errorf("the test binary started with GORACE=%q; want it run again with atexit_sleep_ms set", gorace)
		}
	}
	out, err := exec.Command("sh", "-c", `printf %s "$GORACE"`).Output()
	if err != nil || !strings.Contains(" "+string(out)+" ", " atexit_sleep_ms=") {
		t.Errorf("a child's GORACE = %q, %v; want atexit_sleep_ms set", out, err)
	}
	for in, want := range map[string]string{
		"":                                "atexit_sleep_ms=0",
		"halt_on_error=1":                 "halt_on_error=1 atexit_sleep_ms=0",
		"atexit_sleep_ms=500":             "atexit_sleep_ms=500",
		"log_path=x atexit_sleep_ms=2000": "log_path=x atexit_sleep_ms=2000",
	} {
		if got := noExitSleep(in); got != want {
			t.Errorf("noExitSleep(%q) = %q; want %q", in, got, want)
		}
	}
}
