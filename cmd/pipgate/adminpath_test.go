package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A data directory whose socket path is too long for sun_path gets a
// sentence saying so, not the kernel's bare "invalid argument".
func TestAdminGetPathTooLong(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", maxSocketPath))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var v any
	err := adminGet(dir, "/cache/stats", 1<<10, &v)
	if err == nil || !strings.Contains(err.Error(), "longer than a Unix socket path may be") || !strings.Contains(err.Error(), "shorter data_dir") {
		t.Fatalf("adminGet with a %d-byte socket path: %v; want the too-long sentence", len(filepath.Join(dir, adminSocket)), err)
	}
}
