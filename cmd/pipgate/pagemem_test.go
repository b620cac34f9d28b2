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
	"testing/iotest"
	"time"

	"github.com/pipgate/pipgate/config"
	"github.com/pipgate/pipgate/internal/testbin"
	"github.com/pipgate/pipgate/provenance/provenancetest"
)

// The page memory test runs the real binary (testbin.Release, built without
// -race, whose shadow memory would be measured too) in front of an upstream
// that serves huge project pages, and reads the server's peak RSS from
// /proc/<pid>/status (VmHWM, reset with clear_refs once idle). It runs in
// every `go test ./...` (about 2.5 s of the server's CPU per page, which
// the log gives, and as much for the whole test process under -race; the
// four pages are parsed one after another by design): the bound is the
// product's.

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

// writeHugePage writes project's page of hugePageFiles files, as JSON or
// HTML, to w in pieces of about 1 MiB, and returns its length. Each entry
// is about 150 bytes of JSON: a wheel named under-A.B.C-py3-none-any.whl
// (A.B.C counting the entries), its URL f/<hex of i>, a sha256 made of a
// hash of i. On the pages of projects ending in "1" (hugeProvenance), the
// first file (the oldest release) has a provenance URL, so that eager
// verification reads the versions of the whole page for its newest
// releases (it does not on a page without provenance), with nothing to
// verify: no newer file has provenance. Nothing of a page is kept: the upstream streams it, and its
// length (the Content-Length) is a write to io.Discard.
//
// The bytes are written by hugeEntry and put, which the race detector
// does not instrument (//go:norace, and indexing instead of append or
// copy, which call into the race runtime for every slice): they write
// only the generator's own buffer, and under -race an instrumented
// generator cost about 0.5 s of CPU per page, the test serving five.
func writeHugePage(w io.Writer, project string, asJSON bool) (int64, error) {
	under := underscored(project)
	prov := hugeProvenance(project)
	buf := make([]byte, hugeChunk+hugeEntryMax)
	k := 0
	if asJSON {
		k = put(buf, k, `{"meta":{"api-version":"1.1","_last-serial":7},"name":"`)
		k = put(buf, k, project)
		k = put(buf, k, `","files":[`)
	} else {
		k = put(buf, k, "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\"></head><body>\n")
	}
	var total int64
	for i := range hugePageFiles {
		k = hugeEntry(buf, k, under, i, asJSON, prov && i == 0)
		if k >= hugeChunk {
			if _, err := w.Write(buf[:k]); err != nil {
				return total, err
			}
			total += int64(k)
			k = 0
		}
	}
	if asJSON {
		k = put(buf, k, "]}\n")
	} else {
		k = put(buf, k, "</body></html>\n")
	}
	_, err := w.Write(buf[:k])
	return total + int64(k), err
}

// hugeChunk is the size of the pieces writeHugePage writes; hugeEntryMax
// bounds one entry (under is a short project name).
const (
	hugeChunk    = 1 << 20
	hugeEntryMax = 1024
)

// hugeEntry writes file i of a huge page at buf[k:] and returns the end:
// in JSON {"filename":F,"url":U,"hashes":{"sha256":S}}, preceded by a
// comma after the first; in HTML <a href="U/F#sha256=S">F</a><br />.
//
//go:norace
func hugeEntry(buf []byte, k int, under string, i int, asJSON, prov bool) int {
	// F: under-A.B.C-py3-none-any.whl.
	var fnb [128]byte
	n := put(fnb[:], 0, under)
	n = put(fnb[:], n, "-")
	n = putUint(fnb[:], n, uint64(i/10000), 10, 0)
	n = put(fnb[:], n, ".")
	n = putUint(fnb[:], n, uint64((i/100)%100), 10, 0)
	n = put(fnb[:], n, ".")
	n = putUint(fnb[:], n, uint64(i%100), 10, 0)
	n = put(fnb[:], n, "-py3-none-any.whl")
	fn := fnb[:n]
	if asJSON {
		if i > 0 {
			k = put(buf, k, ",")
		}
		k = put(buf, k, `{"filename":"`)
		k = putBytes(buf, k, fn)
		k = put(buf, k, `","url":"f/`)
		k = putUint(buf, k, uint64(i), 16, 0)
		k = put(buf, k, `","hashes":{"sha256":"`)
		k = putUint(buf, k, uint64(i)*0x9e3779b97f4a7c15, 16, 64)
		if prov {
			return put(buf, k, `"},"provenance":"p/0"}`)
		}
		return put(buf, k, `"}}`)
	}
	// HTML names the file by its URL.
	k = put(buf, k, `<a href="f/`)
	k = putUint(buf, k, uint64(i), 16, 0)
	k = put(buf, k, "/")
	k = putBytes(buf, k, fn)
	k = put(buf, k, "#sha256=")
	k = putUint(buf, k, uint64(i)*0x9e3779b97f4a7c15, 16, 64)
	k = put(buf, k, `"`)
	if prov {
		k = put(buf, k, ` data-provenance="p/0"`)
	}
	k = put(buf, k, `>`)
	k = putBytes(buf, k, fn)
	return put(buf, k, "</a><br />\n")
}

// put writes s at b[k:] and returns the end.
//
//go:norace
func put(b []byte, k int, s string) int {
	for j := 0; j < len(s); j++ {
		b[k+j] = s[j]
	}
	return k + len(s)
}

//go:norace
func putBytes(b []byte, k int, s []byte) int {
	for j := 0; j < len(s); j++ {
		b[k+j] = s[j]
	}
	return k + len(s)
}

// putUint writes u in base (10 or 16, lower-case), left-padded with zeros
// to width digits, at b[k:] and returns the end.
//
//go:norace
func putUint(b []byte, k int, u, base uint64, width int) int {
	const digits = "0123456789abcdef"
	var d [64]byte
	i := len(d)
	for {
		i--
		if base == 16 { // shifts, not divisions: most digits written are hex
			d[i] = digits[u&15]
			u >>= 4
		} else {
			d[i] = digits[u%base]
			u /= base
		}
		if u == 0 {
			break
		}
	}
	for ; len(d)-i < width; i-- {
		d[i-1] = '0'
	}
	for ; i < len(d); i++ {
		b[k] = d[i]
		k++
	}
	return k
}

func underscored(project string) string { return strings.ReplaceAll(project, "-", "_") }

// hugeUpstream serves huge pages (writeHugePage) for the projects "huge-j"
// or "huge-h" and a letter or digit: JSON for "huge-j*", HTML otherwise,
// with their Content-Length.
func hugeUpstream(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		project := strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")
		if !hugeProject(project) {
			http.NotFound(w, r)
			return
		}
		asJSON := project[5] == 'j'
		if asJSON {
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
		} else {
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+html")
		}
		w.Header().Set("Content-Length", strconv.FormatInt(hugePageSize(project, asJSON), 10))
		_, _ = writeHugePage(w, project, asJSON)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// hugePageSize returns the length of project's page (writeHugePage), which
// depends only on the name's length, the format and hugeProvenance:
// computed once for each.
func hugePageSize(project string, asJSON bool) int64 {
	k := hugeSizeKey{len(project), asJSON, hugeProvenance(project)}
	hugeSizes.mu.Lock()
	defer hugeSizes.mu.Unlock()
	if n, ok := hugeSizes.m[k]; ok {
		return n
	}
	n, _ := writeHugePage(io.Discard, project, asJSON)
	if hugeSizes.m == nil {
		hugeSizes.m = map[hugeSizeKey]int64{}
	}
	hugeSizes.m[k] = n
	return n
}

type hugeSizeKey struct {
	nameLen int
	asJSON  bool
	prov    bool
}

// hugeProvenance reports whether project's huge page gives its first file
// a provenance URL (writeHugePage): the one page of TestHugePageMemory/one
// ("huge-j1"), about 0.3 s more of the server's CPU.
func hugeProvenance(project string) bool { return strings.HasSuffix(project, "1") }

var hugeSizes struct {
	mu sync.Mutex
	m  map[hugeSizeKey]int64
}

// hugeProject reports whether project is one hugeUpstream serves.
func hugeProject(project string) bool {
	if len(project) != len("huge-j0") || !strings.HasPrefix(project, "huge-") || project[5] != 'j' && project[5] != 'h' {
		return false
	}
	c := project[6]
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z'
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

// cpuSeconds returns the CPU time the server used so far (user and
// system, from /proc/<pid>/stat, in clock ticks of 1/100 s: USER_HZ on
// Linux), for the log: what the test costs on the product's side.
func (p *memProc) cpuSeconds(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after "(comm) ": state is the first, utime the 12th,
	// stime the 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", p.cmd.Process.Pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", p.cmd.Process.Pid, b)
	}
	return float64(utime+stime) / 100
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
	if resp.StatusCode != http.StatusOK {
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 300)])), err
	}
	marker := []byte(`"filename":`)
	if !strings.Contains(accept, "json") {
		marker = []byte("</a>")
	}
	if hugeProvenance(project) {
		// Counted as the page streams by: its one provenance URL is served,
		// rewritten to pipgate's own.
		pr, pw := io.Pipe()
		provs := make(chan int, 1)
		go func() {
			n, _, _ := countIn(pr, []byte("/integrity/"+project+"/"))
			provs <- n
		}()
		n, size, err := countIn(io.TeeReader(resp.Body, pw), marker)
		_ = pw.Close() // the counter reads to its end
		if p := <-provs; err == nil && p != 1 {
			return resp.StatusCode, "", fmt.Errorf("%s: %d provenance URLs served; want 1", project, p)
		}
		return resp.StatusCode, "", checkCount(project, n, size, err)
	}
	n, size, err := countIn(resp.Body, marker)
	return resp.StatusCode, "", checkCount(project, n, size, err)
}

// checkCount is getPage's check of a page's file count.
func checkCount(project string, n int, size int64, err error) error {
	if err != nil {
		return fmt.Errorf("%s: after %d bytes: %w", project, size, err)
	}
	if n != hugePageFiles {
		return fmt.Errorf("%s: %d files in %d bytes; want %d", project, n, size, hugePageFiles)
	}
	return nil

}

// countIn counts the occurrences of marker in what r reads, as it reads
// (a page is never held whole: under -race every byte a test process
// holds costs shadow memory), and returns the bytes read.
func countIn(r io.Reader, marker []byte) (int, int64, error) {
	buf := make([]byte, 1<<20)
	keep, n := 0, 0 // keep: the bytes carried over, a marker's start cut off by the last read
	var size int64
	for {
		m, err := r.Read(buf[keep:])
		size += int64(m)
		data := buf[:keep+m]
		n += bytes.Count(data, marker)
		// A marker that starts in the last len(marker)-1 bytes was not
		// counted (a whole one there was, and cannot fit again).
		keep = min(len(marker)-1, len(data))
		copy(buf, data[len(data)-keep:])
		if err == io.EOF {
			return n, size, nil
		}
		if err != nil {
			return n, size, err
		}
	}
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
	probe := hugePageSize("huge-j0", true)
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
		t.Logf("one huge page: idle RSS %d MiB, peak %d MiB, +%d MiB; server CPU %.1f s", idle>>20, peak>>20, (peak-idle)>>20, p.cpuSeconds(t))
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
		t.Logf("four huge pages at once: idle RSS %d MiB, peak %d MiB, +%d MiB; server CPU %.1f s", idle>>20, peak>>20, (peak-idle)>>20, p.cpuSeconds(t))
		if peak-idle > fourPageRSSBound {
			t.Errorf("four huge pages at once took the RSS from %d MiB to %d MiB; want at most +%d MiB", idle>>20, peak>>20, fourPageRSSBound>>20)
		}
	})
}

// TestCountIn holds the page check's counter to bytes.Count over the
// whole body, whatever the reads' sizes: a marker cut by a read is counted
// once.
func TestCountIn(t *testing.T) {
	body := []byte(strings.Repeat(`{"filename":"a"},"filename":"filename":`, 3) + `"filename"`)
	marker := []byte(`"filename":`)
	want := bytes.Count(body, marker)
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(body),
		"one byte": iotest.OneByteReader(bytes.NewReader(body)),
		"halves":   iotest.HalfReader(bytes.NewReader(body)),
		"data+EOF": iotest.DataErrReader(bytes.NewReader(body)),
	} {
		n, size, err := countIn(r, marker)
		if n != want || size != int64(len(body)) || err != nil {
			t.Errorf("%s: countIn = %d, %d, %v; want %d, %d, nil", name, n, size, err, want, len(body))
		}
	}
	if _, _, err := countIn(iotest.TimeoutReader(bytes.NewReader(body)), marker); err == nil {
		t.Error("countIn hid a read error")
	}
}
