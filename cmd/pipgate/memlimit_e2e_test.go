package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/config"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestE2EMemoryLimit runs the binary and reads the soft memory limit in
// force from the runtime's own export (go_gc_gomemlimit_bytes, the Go
// collector's) and the "memory limit" log line: memory_limit in the file
// wins over GOMEMLIMIT; GOMEMLIMIT alone is left to the runtime; with
// neither, this machine's cgroup v2 limit (75% of it) or 224 MiB.
func TestE2EMemoryLimit(t *testing.T) {
	t.Parallel() // its own servers and data dirs
	if testing.Short() {
		t.Skip("skipping the end-to-end test in -short mode")
	}
	up := pypitest.NewServer(t)
	dir := t.TempDir()
	root := provenancetest.New(t).WriteTrustedRoot(dir)
	machine := config.MemoryLimit{Bytes: config.DefaultMemoryLimit, Origin: config.MemoryLimitFromDefault}
	if limit, _, err := config.CgroupMemoryMax("/"); err == nil && limit > 0 {
		machine = config.MemoryLimit{Bytes: config.CgroupShare(limit), Origin: config.MemoryLimitFromCgroup}
	}
	for i, c := range []struct {
		name, key, env string
		want           config.MemoryLimit
	}{
		{"file over GOMEMLIMIT", "memory_limit: 300MiB\n", "1GiB", config.MemoryLimit{Bytes: 300 << 20, Origin: "memory_limit"}},
		{"GOMEMLIMIT", "", "1GiB", config.MemoryLimit{Bytes: 1 << 30, Origin: "GOMEMLIMIT"}},
		{"neither: " + machine.Origin, "", "", machine},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := filepath.Join(dir, fmt.Sprintf("pipgate-%d.yaml", i))
			body := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: data-%d\nupstream:\n  url: %s\ntrust:\n  trusted_root: %s\n%s", i, up.URL(), root, c.key)
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			p := startPipgateEnv(t, []string{"--config", cfg}, "", false, nil, []string{"GOMEMLIMIT=" + c.env})
			if got := p.metric(t, "go_gc_gomemlimit_bytes"); got != float64(c.want.Bytes) {
				t.Errorf("go_gc_gomemlimit_bytes = %v; want %d", got, c.want.Bytes)
			}
			line := regexp.MustCompile(`(?m)^\{.*"msg":"memory limit".*$`).FindString(p.stderr.String())
			var m struct {
				Origin     string
				LimitBytes int64 `json:"limit_bytes"`
			}
			if err := json.Unmarshal([]byte(line), &m); err != nil || m.Origin != c.want.Origin || m.LimitBytes != c.want.Bytes {
				t.Errorf("log line %q (%v); want origin %s, limit_bytes %d", line, err, c.want.Origin, c.want.Bytes)
			}
			if st := p.status(t); st["memory_limit_bytes"] != float64(c.want.Bytes) || st["memory_limit_origin"] != c.want.Origin {
				t.Errorf("/-/status memory_limit_bytes %v, memory_limit_origin %v; want %d, %s", st["memory_limit_bytes"], st["memory_limit_origin"], c.want.Bytes, c.want.Origin)
			}
			if c.key != "" && c.env != "" && !strings.Contains(p.stderr.String(), "memory_limit 300MiB overrides GOMEMLIMIT=1GiB") {
				t.Errorf("no warning that memory_limit overrides GOMEMLIMIT:\n%s", tail(p.stderr.String(), 20))
			}
		})
	}
}
