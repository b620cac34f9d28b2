package cache_test

import (
	"testing"

	"github.com/pipgate/pipgate/internal/testbin"
)

// TestMain keeps every temporary file of the run in one folder that is
// removed however the test binary ends, killed included (internal/testbin).
// Started as a database check's child (damage_test.go), it runs that only.
func TestMain(m *testing.M) {
	runCheckChild()
	testbin.Main(m)
}
