package gate

import (
	"testing"

	"github.com/pipgate/pipgate/internal/testbin"
)

// TestMain keeps every temporary file of the run in one folder that is
// removed however the test binary ends, killed included (internal/testbin).
func TestMain(m *testing.M) { testbin.Main(m) }
