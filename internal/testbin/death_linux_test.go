package testbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// TestCommandDiesWithTestBinary: a test binary that dies without running
// its cleanups (a -timeout panic, a kill) leaves no process it started
// behind. The test re-runs itself as that binary.
func TestCommandDiesWithTestBinary(t *testing.T) {
	if os.Getenv("TESTBIN_DIE_EARLY") == "1" {
		cmd := Command(context.Background(), t, "sleep", "1000")
		cmd.ExtraFiles = []*os.File{os.NewFile(3, "pipe")}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		fmt.Println("started")
		select {} // until killed
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCommandDiesWithTestBinary$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTBIN_DIE_EARLY=1")
	r := sleeper(t, cmd)
	defer r.Close()
	// sleep started: kill the test binary as a timeout or a kill would.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitEOF(t, r)
}

// TestMainDiesWithParent: a test binary whose parent (go test) is killed
// dies too, and so do the processes it started; its janitor cleans up. The
// test runs itself under sh and kills the sh.
func TestMainDiesWithParent(t *testing.T) {
	if os.Getenv("TESTBIN_ORPHANED") == "1" {
		cmd := Command(context.Background(), t, "sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		fmt.Println("started")
		select {} // until killed
	}
	cmd := exec.Command("sh", "-c", `"$0" -test.run='^TestMainDiesWithParent$' -test.count=1 & wait`, os.Args[0])
	cmd.Env = append(os.Environ(), "TESTBIN_ORPHANED=1")
	r := sleeper(t, cmd) // fd 3 is held by sh, the test binary under it, its janitor and its sleep
	defer r.Close()
	if err := cmd.Process.Kill(); err != nil { // sh, as a kill -9 of go test
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitEOF(t, r)
}
