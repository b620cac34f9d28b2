package proxy_test

import (
	"strings"
	"testing"

	"github.com/pipgate/pipgate/proxy"
)

// The required collaborators are checked once, by the gate, and every
// missing one is named in the error proxy.New returns.
func TestNewNamesMissingCollaborators(t *testing.T) {
	_, err := proxy.New(proxy.Options{})
	if err == nil {
		t.Fatal("proxy.New with no collaborators: no error")
	}
	for _, field := range []string{"Options.Upstream", "Options.Store", "Options.Verifier", "Options.Policy"} {
		if !strings.Contains(err.Error(), field+" is required") {
			t.Errorf("proxy.New(Options{}) = %q; want it to name %s", err, field)
		}
	}
}
