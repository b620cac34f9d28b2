package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// BenchmarkStreamLargeFile streams one large file (500 MB by default;
// PIPGATE_BENCH_FILE_MB overrides) through the pipgate binary twice: a cache
// miss (streamed from the upstream while stored) and a cache hit. It reports
// the throughput of each and pipgate's peak RSS (VmHWM), which must stay flat:
// nothing buffers the file in memory.
func BenchmarkStreamLargeFile(b *testing.B) {
	mb := 500
	if s := os.Getenv("PIPGATE_BENCH_FILE_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	content := make([]byte, mb<<20)
	if _, err := rand.Read(content); err != nil {
		b.Fatal(err)
	}
	up := pypitest.NewServer(b)
	fn := pypitest.WheelFilename("huge", "1.0")
	up.AddDist("huge", pypitest.Dist{Filename: fn, Content: content})
	dir := b.TempDir()
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: data\naudit_log: \"\"\nupstream:\n  url: %s\ntrust:\n  trusted_root: %s\n",
		up.URL(), provenancetest.New(b).WriteTrustedRoot(dir))
	cfgPath := filepath.Join(dir, "pipgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	p := startPipgate(b, cfgPath, "", false)
	url := p.base + "/files/huge/" + fn
	for i := 0; i < b.N; i++ {
		for _, pass := range []string{"miss", "hit"} {
			start := time.Now()
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || n != int64(len(content)) || resp.StatusCode != 200 {
				b.Fatalf("%s: status %d, %d bytes, %v", pass, resp.StatusCode, n, err)
			}
			if i == 0 {
				b.ReportMetric(float64(n)/(1<<20)/time.Since(start).Seconds(), "MB/s-"+pass)
			}
		}
		if i == 0 {
			b.ReportMetric(float64(vmHWM(b, p.cmd.Process.Pid))/1024, "peak-RSS-MB")
		}
		// The next iteration starts cold again.
		if err := os.RemoveAll(filepath.Join(dir, "data", "blobs", "sha256")); err != nil {
			b.Fatal(err)
		}
	}
}

// vmHWM returns a process's peak resident set size in KiB.
func vmHWM(tb testing.TB, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	tb.Fatal("no VmHWM in /proc status")
	return 0
}
