package units

import (
	"testing"

	"github.com/pipgate/pipgate/internal/testbin"
)

// TestMain keeps every temporary file of the run in one folder that is
// removed however the test binary ends (internal/testbin).
func TestMain(m *testing.M) { testbin.Main(m) }

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{5 << 20, "5.0 MiB"}, {3 << 30, "3.0 GiB"}, {3 << 40, "3.0 TiB"}, {1 << 62, "4.0 EiB"},
	} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q; want %q", tc.n, got, tc.want)
		}
	}
}
