package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pipgate/pipgate/config"
	"github.com/pipgate/pipgate/internal/testbin"
	"github.com/pipgate/pipgate/provenance/provenancetest"
)

// The page memory test runs the real binary (testbin.Release, built without
// -race, whose shadow memory would be measured too) in front of an upstream
// that serves huge project pages, and reads the server's peak RSS from
// /proc/<pid>/status (VmHWM, reset with clear_refs once idle). It runs in
// every `go test ./...` (about 5 s of CPU per page; the four pages are
// parsed one after another by design): the bound is the product's.

const (
	// hugePageFiles and the entry size make a page just under the 64 MiB
	// page limit, ~390k small entries: the shape of issue 17.
	hugePageFiles = 390_000
	// Bounds of issue 17, over the idle RSS.
	onePageRSSBound  = 300 << 20
	fourPageRSSBound = 600 << 20
)

// pipgateBinaryNoRace returns the release build (internal/testbin.Release:
// the Dockerfile's, without -race).
func pipgateBinaryNoRace(t testing.TB) string {
	t.Helper()
	return testbin.Release(t)
}

// hugePage returns project's page of hugePageFiles files, as JSON or HTML.
// Each entry is about 160 bytes of JSON. The page of each format is written
// once per test process for a placeholder name (writing 56 MiB costs about
// 5 s of CPU under -race even without fmt, and the test needs six pages);
// a project's page is that template with the placeholder replaced, so the
// project names must have the placeholder's length.
func hugePage(project string, asJSON bool) []byte {
	i, placeholder := 0, "huge-hX"
	if asJSON {
		i, placeholder = 1, "huge-jX"
	}
	if len(project) != len(placeholder) {
		panic("hugePage: project " + project + " is not as long as " + placeholder)
	}
	hugeTemplates.once[i].Do(func() { hugeTemplates.page[i] = writeHugePage(placeholder, hugePageFiles, asJSON) })
	page := bytes.ReplaceAll(hugeTemplates.page[i], []byte(placeholder), []byte(project))
	return bytes.ReplaceAll(page, []byte(underscored(placeholder)), []byte(underscored(project)))
}

var hugeTemplates struct {
	once [2]sync.Once
	page [2][]byte
}

func underscored(project string) string { return strings.ReplaceAll(project, "-", "_") }

// writeHugePage writes project's page with n files, as JSON or HTML, with
// appends (fmt costs several times more under -race).
func writeHugePage(project string, n int, asJSON bool) []byte {
	b := make([]byte, 0, n*170+256)
	if asJSON {
		b = fmt.Appendf(b, `{"meta":{"api-version":"1.1","_last-serial":7},"name":%q,"files":[`, project)
	} else {
		b = append(b, "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\"></head><body>\n"...)
	}
	under := underscored(project)
	var fn, sum, u []byte
	zeros := strings.Repeat("0", 64)
	for i := range n {
		// fn: under-A.B.C-py3-none-any.whl; sum: %064x of a hash of i; u: f/%x of i.
		fn = append(fn[:0], under...)
		fn = append(fn, '-')
		fn = strconv.AppendInt(fn, int64(i/10000), 10)
		fn = append(fn, '.')
		fn = strconv.AppendInt(fn, int64((i/100)%100), 10)
		fn = append(fn, '.')
		fn = strconv.AppendInt(fn, int64(i%100), 10)
		fn = append(fn, "-py3-none-any.whl"...)
		hex := strconv.AppendUint(u[:0], uint64(i)*0x9e3779b97f4a7c15, 16)
		sum = append(append(sum[:0], zeros[:64-len(hex)]...), hex...)
		u = strconv.AppendUint(append(u[:0], "f/"...), uint64(i), 16)
		if asJSON {
			// JSON names the file; HTML takes the name from the URL.
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"filename":"`...)
			b = append(b, fn...)
			b = append(b, `","url":"`...)
			b = append(b, u...)
			b = append(b, `","hashes":{"sha256":"`...)
			b = append(b, sum...)
			b = append(b, `"}}`...)
		} else {
			b = append(b, `<a href="`...)
			b = append(b, u...)
			b = append(b, '/')
			b = append(b, fn...)
			b = append(b, "#sha256="...)
			b = append(b, sum...)
			b = append(b, `">`...)
			b = append(b, fn...)
			b = append(b, "</a><br />\n"...)
		}
	}
	if asJSON {
		b = append(b, "]}\n"...)
	} else {
		b = append(b, "</body></html>\n"...)
	}
	return b
}

// hugeUpstream serves huge pages (hugePage) for the projects "huge-" and
// two characters: JSON for "huge-j*", HTML otherwise.
func hugeUpstream(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		project := strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")
		if !strings.HasPrefix(project, "huge-") || len(project) != len("huge-j0") || strings.Contains(project, "/") {
			http.NotFound(w, r)
			return
		}
		asJSON := strings.HasPrefix(project, "huge-j")
		if asJSON {
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
		} else {
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+html")
		}
		body := hugePage(project, asJSON)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// memProc is a running pipgate whose memory is measured.
type memProc struct {
	cmd  *exec.Cmd
	base string
}

func startMemPipgate(t *testing.T, upstreamURL string) *memProc {
	t.Helper()
	dir := t.TempDir()
	ss := provenancetest.New(t)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: data
upstream:
  url: %s/
  index_ttl: 1h
  timeout: 120s
trust:
  trusted_root: %s
memory_limit: %d
`, upstreamURL, ss.WriteTrustedRoot(dir), config.DefaultMemoryLimit)
	cfgPath := filepath.Join(dir, "pipgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pipgateBinaryNoRace(t), "serve", "--config", cfgPath, "--log.format", "json")
	cmd.Dir = dir
	// The runtime's defaults as pipgate sets them: no memory limit or GC
	// setting from the test's environment. The bounds are those of the
	// default limit a machine without a cgroup memory limit gets, pinned
	// above: a CI container's cgroup limit must not change what is
	// measured.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "GOGC=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &memProc{cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := make(chan string, 1)
	var logMu sync.Mutex
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			logMu.Lock()
			log.Write(sc.Bytes())
			log.WriteByte('\n')
			logMu.Unlock()
			var m struct{ Msg, Listener, Addr string }
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "listening" && m.Listener == "listen" {
				addr <- m.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-time.After(60 * time.Second):
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("pipgate did not start; log:\n%s", log.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			logMu.Lock()
			t.Logf("pipgate log (tail):\n%s", tail(log.String(), 30))
			logMu.Unlock()
		}
	})
	return p
}

// status reads a "Vm...: N kB" line of /proc/<pid>/status, in bytes.
func (p *memProc) status(t *testing.T, key string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, p.cmd.Process.Pid)
	return 0
}

// idle waits for the server to answer, then returns its RSS and resets the
// peak (VmHWM) to it.
func (p *memProc) idle(t *testing.T) int64 {
	t.Helper()
	resp, err := http.Get(p.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS: %v", err)
	}
	return p.status(t, "VmRSS")
}

// getPage fetches a project page and checks the answer: the whole page (n
// files) or a clear refusal (a 5xx whose body says why).
func (p *memProc) getPage(project, accept string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, p.base+"/simple/"+project+"/", nil)
	req.Header.Set("Accept", accept)
	c := &http.Client{Timeout: 5 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 300)])), nil
	}
	marker := []byte(`"filename":`)
	if !strings.Contains(accept, "json") {
		marker = []byte("</a>")
	}
	if n := bytes.Count(body, marker); n != hugePageFiles {
		return resp.StatusCode, "", fmt.Errorf("%s: %d files in %d bytes; want %d", project, n, len(body), hugePageFiles)
	}
	return resp.StatusCode, "", nil
}

// TestHugePageMemory holds issue 17's bound: a project page just under the
// page limit with ~390k entries costs at most 300 MB of RSS over idle, four
// different ones at once at most 600 MB, and each answer is the page or a
// clear refusal.
func TestHugePageMemory(t *testing.T) {
	// It measures the servers it starts (their own VmHWM), not this process:
	// it runs beside the other end-to-end tests, not before them all.
	t.Parallel()
	if _, err := os.Stat("/proc/self/clear_refs"); err != nil {
		t.Skipf("needs Linux /proc: %v", err)
	}
	probe := len(hugePage("huge-j0", true))
	t.Logf("a page: %d files, %.1f MiB JSON", hugePageFiles, float64(probe)/(1<<20))
	if probe > 64<<20 || probe < 56<<20 {
		t.Fatalf("the generated page is %d bytes; want just under 64 MiB", probe)
	}

	t.Run("one", func(t *testing.T) {
		up := hugeUpstream(t)
		p := startMemPipgate(t, up.URL)
		idle := p.idle(t)
		code, msg, err := p.getPage("huge-j1", "application/vnd.pypi.simple.v1+json")
		if err != nil || code != 200 {
			t.Fatalf("huge JSON page: %d %s %v", code, msg, err)
		}
		peak := p.status(t, "VmHWM")
		t.Logf("one huge page: idle RSS %d MiB, peak %d MiB, +%d MiB", idle>>20, peak>>20, (peak-idle)>>20)
		if peak-idle > onePageRSSBound {
			t.Errorf("one huge page took the RSS from %d MiB to %d MiB; want at most +%d MiB", idle>>20, peak>>20, onePageRSSBound>>20)
		}
	})
	t.Run("four", func(t *testing.T) {
		up := hugeUpstream(t)
		p := startMemPipgate(t, up.URL)
		idle := p.idle(t)
		var wg sync.WaitGroup
		for i, project := range []string{"huge-j2", "huge-j3", "huge-h4", "huge-h5"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				accept := "application/vnd.pypi.simple.v1+json"
				if i%2 == 1 {
					accept = "text/html"
				}
				code, msg, err := p.getPage(project, accept)
				switch {
				case err != nil:
					t.Errorf("%s: %v", project, err)
				case code != 200 && (code < 500 || msg == ""):
					t.Errorf("%s: %d %q; want the page or a clear refusal", project, code, msg)
				case code != 200:
					t.Logf("%s: refused: %d %s", project, code, msg)
				}
			}()
		}
		wg.Wait()
		peak := p.status(t, "VmHWM")
		t.Logf("four huge pages at once: idle RSS %d MiB, peak %d MiB, +%d MiB", idle>>20, peak>>20, (peak-idle)>>20)
		if peak-idle > fourPageRSSBound {
			t.Errorf("four huge pages at once took the RSS from %d MiB to %d MiB; want at most +%d MiB", idle>>20, peak>>20, fourPageRSSBound>>20)
		}
	})
}
