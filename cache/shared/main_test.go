package shared

import (
	"testing"

	"github.com/pipgate/pipgate/internal/testbin"
)

// TestMain keeps every temporary file of the run in one folder that is
// removed however the test binary ends (internal/testbin); versitygw
// processes die with the test that started them.
func TestMain(m *testing.M) { testbin.Main(m) }
