package deploy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/internal/testbin"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

// These tests run the pipgate binary the Dockerfile builds (built once, with
// the Dockerfile's own build command) on the configs of this folder, in
// front of a fake PyPI whose attestations a fake Sigstore signed.

// repoFile returns the path of a repository file from this folder.
func repoFile(parts ...string) string {
	return filepath.Join(append([]string{".."}, parts...)...)
}

// readFile returns a repository file's bytes.
func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoFile(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testVersion is the VERSION build argument the binary is built with.
const testVersion = testbin.Version

// release returns the binary the Dockerfile's `go build` step builds (see
// TestDockerfileBuild): every deployment check runs it, as cmd/pipgate's
// end-to-end tests do (internal/testbin.Release, built once per source state
// for both packages: not -race, which made the servers cost several times
// the CPU and whose reports no check read).
func release(t *testing.T) string {
	t.Helper()
	return testbin.Release(t)
}

// buildInputs lists the folders, relative to the repository root, of the
// packages of this module cmd/pipgate is built from.
func buildInputs() (dirs []string, err error) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.Module.Path}} {{.Dir}}{{end}}`, "../cmd/pipgate").Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	root, err := filepath.Abs(repoFile())
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "github.com/pipgate/pipgate" {
			continue
		}
		rel, err := filepath.Rel(root, f[1])
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, filepath.ToSlash(rel))
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("go list: no package of this module in cmd/pipgate's build")
	}
	return dirs, nil
}

// run runs the binary with args and returns its combined output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runBin(t, release(t), args...) // built before the deadline: a cold build takes what it takes
}

// runBin runs bin with args and returns its combined output.
func runBin(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := testbin.Command(ctx, t, bin, args...).CombinedOutput()
	return string(out), err
}

// upstream is a fake PyPI with one project whose only file carries an
// attestation the fake Sigstore signed, and that Sigstore's trusted root.
type upstream struct {
	srv         *pypitest.Server
	trustedRoot string
	project     string
	filename    string
	sha256      string
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	ss := provenancetest.New(t)
	u := &upstream{srv: pypitest.NewServer(t), project: "demo", trustedRoot: ss.WriteTrustedRoot(t.TempDir())}
	u.filename = pypitest.WheelFilename(u.project, "1.0")
	content := pypitest.MakeWheel(u.project, "1.0", pypitest.WheelOptions{})
	sum := sha256.Sum256(content)
	u.sha256 = hex.EncodeToString(sum[:])
	u.srv.AddDist(u.project, pypitest.Dist{Filename: u.filename, Content: content,
		Provenance: ss.ProvenanceFor(u.filename, content, provenancetest.GitHub("good/repo", "release.yml"))})
	return u
}

// server is a running `pipgate serve`.
type server struct {
	addrs map[string]string // listener name ("listen", "egress.listen") -> host:port
	logs  *pypitest.LogBuffer
}

// url returns http://ADDR/PATH on the named listener.
func (s *server) url(listener, path string) string { return "http://" + s.addrs[listener] + path }

// startServer runs `pipgate serve --config config` (with env added to its
// environment) with the deployment's
// own settings except what cannot hold on a test machine: the listen
// address (an ephemeral port on loopback), the upstream (the fake PyPI),
// the trusted root (the fake Sigstore's; the configs fetch the public-good
// one through TUF) and data_dir. It returns once the server logged "pipgate
// ready", which it does after binding every listener.
func startServer(t *testing.T, config string, up *upstream, env ...string) *server {
	t.Helper()
	return startServerBin(t, release(t), config, up, env...)
}

// startServerBin is startServer running bin.
func startServerBin(t *testing.T, bin, config string, up *upstream, env ...string) *server {
	t.Helper()
	cmd := testbin.Command(context.Background(), t, bin, "serve", "--config", config, "--listen", "127.0.0.1:0",
		"--upstream", up.srv.URL(), "--trusted-root", up.trustedRoot, "--data-dir", t.TempDir(), "--log.format", "json")
	if env != nil {
		cmd.Env = append(os.Environ(), env...) // the shared store's AWS credentials
	}
	s := &server{addrs: map[string]string{}, logs: &pypitest.LogBuffer{}}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = io.Discard // the audit log ("-")
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		signalled := false
		for sc.Scan() {
			_, _ = s.logs.Write(append(sc.Bytes(), '\n'))
			var m struct{ Msg, Listener, Addr string }
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			switch m.Msg {
			case "listening": // logged before "pipgate ready": no lock needed
				s.addrs[m.Listener] = m.Addr
			case "pipgate ready":
				if !signalled {
					signalled = true
					close(ready)
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = pw.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("pipgate did not stop within 30s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("pipgate serve --config %s log:\n%s", config, s.logs.String())
		}
	})
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("pipgate serve --config %s exited: %v\n%s", config, err, s.logs.String())
	case <-time.After(time.Minute):
		t.Fatalf("pipgate serve --config %s: not ready after a minute\n%s", config, s.logs.String())
	}
	if s.addrs["listen"] == "" {
		t.Fatalf("no listen address logged:\n%s", s.logs.String())
	}
	return s
}

// get fetches u and returns the status and body.
func get(t *testing.T, u string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, b
}

// install does what pip does for one file: the project page (JSON), then
// the file it links, whose bytes must match the upstream's sha256.
func install(t *testing.T, s *server, up *upstream) {
	t.Helper()
	base := s.url("listen", "/simple/"+up.project+"/")
	code, body := get(t, base, "Accept", "application/vnd.pypi.simple.v1+json")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", base, code, body)
	}
	var page struct {
		Files []struct{ Filename, URL string } `json:"files"`
	}
	if err := json.Unmarshal(body, &page); err != nil || len(page.Files) != 1 {
		t.Fatalf("project page %s: %v, %d files", body, err, len(page.Files))
	}
	ref, err := url.Parse(page.Files[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := url.Parse(base)
	code, file := get(t, b.ResolveReference(ref).String())
	sum := sha256.Sum256(file)
	if code != http.StatusOK || hex.EncodeToString(sum[:]) != up.sha256 {
		t.Fatalf("GET %s: %d, %d bytes not the upstream's", ref, code, len(file))
	}
}

// yamlDocs decodes every document of a YAML file (duplicate keys are errors).
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

// deployFiles returns the files of this folder whose name ends in one of exts.
func deployFiles(t *testing.T, exts ...string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, e := range exts {
			if !d.IsDir() && strings.HasSuffix(p, e) {
				files = append(files, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no %v files under deploy/", exts)
	}
	return files
}

// dig walks nested maps by key; nil when a step is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// subset reports whether every key=value of sel (a label map) is in labels.
func subset(sel any, labels map[string]any) bool {
	m, ok := sel.(map[string]any)
	if !ok || len(m) == 0 {
		return false
	}
	for k, v := range m {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// pipgateConfig is the part of a pipgate.yaml these tests reason about.
type pipgateConfig struct {
	Listen        string `yaml:"listen"`
	DataDir       string `yaml:"data_dir"`
	Policy        string `yaml:"policy"`
	MetricsListen string `yaml:"metrics_listen"`
	AuditLog      string `yaml:"audit_log"`
}

func decodeConfig(t *testing.T, name string, data []byte) pipgateConfig {
	t.Helper()
	var c pipgateConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// port returns the port of a host:port address.
func port(t *testing.T, addr string) string {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		t.Fatalf("address %q has no port", addr)
	}
	return addr[i+1:]
}

// promtool returns the path of promtool, or skips the test saying how to
// get it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not on PATH (Debian: apt-get install prometheus); skipping the promtool check")
	}
	return p
}
