package policy_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNetHTTP holds the architecture's line: policy is pure and never
// imports net/http, even indirectly.
func TestNoNetHTTP(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not in PATH: cannot list dependencies")
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/pipgate/pipgate/policy").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages; want the standard library too: %q", len(deps), deps)
	}
	for _, d := range deps {
		if d == "net/http" || strings.HasPrefix(d, "net/http/") {
			t.Errorf("policy depends on %s", d)
		}
	}
}
