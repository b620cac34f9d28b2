package statusline

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/internal/testbin"
)

// TestMain keeps every temporary file of the run in one folder that is
// removed however the test binary ends (internal/testbin).
func TestMain(m *testing.M) { testbin.Main(m) }

func TestReason(t *testing.T) {
	long := strings.Repeat("x", 400)
	for _, tc := range []struct{ in, want string }{
		{"pipgate: demo: no provenance (unattested)", "pipgate: demo: no provenance (unattested)"},
		{"a\r\nb\x00c\td  e", "a b c d e"},
		{"  lead and trail \n", "lead and trail"},
		{"caf\u00e9 \u2603", "caf? ?"},
		{"", "Forbidden"},
		{"\r\n\t", "Forbidden"},
		{long, long[:297] + "..."},
	} {
		if got := Reason(http.StatusForbidden, tc.in); got != tc.want {
			t.Errorf("Reason(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
