package egress_test

import (
	"go/parser"
	"go/token"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

const (
	modProxy  = "github.com/pipgate/pipgate/proxy"
	modEgress = "github.com/pipgate/pipgate/egress"
)

// deps lists the packages pkg depends on (go list -deps, tests excluded).
func deps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not in PATH: cannot list dependencies")
	}
	out, err := exec.Command(gobin, "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	set := make(map[string]bool)
	for _, d := range strings.Fields(string(out)) {
		set[d] = true
	}
	if !set["net/http"] || !set[pkg] {
		t.Fatalf("go list -deps %s listed %d packages, not itself and net/http: the listing is not what this test expects", pkg, len(set))
	}
	return set
}

// TestPackageGraph holds the architecture's lines: the egress proxy and the
// index server know each other only through the http.Handler serve wires
// between them.
func TestPackageGraph(t *testing.T) {
	if deps(t, modEgress)[modProxy] {
		t.Errorf("%s depends on %s", modEgress, modProxy)
	}
	if deps(t, modProxy)[modEgress] {
		t.Errorf("%s depends on %s", modProxy, modEgress)
	}
}

// TestCAInitNeedsNoProxy: `pipgate ca init` (cmd/pipgate/ca.go) generates
// and checks the CA with this package alone. cmd/pipgate is one package
// that also wires the server, so the check is on the file's imports.
func TestCAInitNeedsNoProxy(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../cmd/pipgate/ca.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var usesEgress bool
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if p == modEgress {
			usesEgress = true
		}
		if strings.HasPrefix(p, "github.com/pipgate/pipgate/") && p != modEgress {
			t.Errorf("cmd/pipgate/ca.go imports %s; the ca command needs only %s", p, modEgress)
		}
	}
	if !usesEgress {
		t.Errorf("cmd/pipgate/ca.go does not import %s: where does the CA come from?", modEgress)
	}
}
