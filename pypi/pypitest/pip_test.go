package pypitest_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/pypi/pypitest"
)

func newPip(t *testing.T) *pypitest.Pip {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping real pip in -short mode")
	}
	return pypitest.NewPip(t)
}

func TestPipEnvIsClean(t *testing.T) {
	t.Setenv("PIP_INDEX_URL", "http://example.invalid/simple/")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:9")
	t.Setenv("REQUESTS_CA_BUNDLE", "/nonexistent")
	t.Setenv("SSL_CERT_DIR", "/nonexistent")
	p := newPip(t)
	p.Extra = []string{"PIP_RETRIES=3"}
	env := p.Env("X_TEST=1")
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PIP_INDEX_URL", "HTTPS_PROXY", "REQUESTS_CA_BUNDLE", "SSL_CERT_DIR", "PIP_FIND_LINKS", "PIP_CERT":
			t.Errorf("environment keeps %q", kv)
		}
	}
	for _, want := range []string{"PIP_CONFIG_FILE=/dev/null", "PIP_NO_CACHE_DIR=1", "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1", "X_TEST=1"} {
		if !slices.Contains(env, want) {
			t.Errorf("environment lacks %q", want)
		}
	}
	// A later value wins in os/exec, so Extra overrides the default.
	if i, j := slices.Index(env, "PIP_RETRIES=0"), slices.Index(env, "PIP_RETRIES=3"); i < 0 || j < i {
		t.Errorf("PIP_RETRIES: got default at %d, extra at %d; want the extra after the default", i, j)
	}
	out, err := p.Run(context.Background(), "", "config", "list")
	if err != nil {
		t.Fatalf("pip config list: %v\n%s", err, out)
	}
	if strings.Contains(out, "index-url") || strings.Contains(out, "find-links") {
		t.Errorf("pip sees machine configuration:\n%s", out)
	}
}

// TestPipDownload checks that real pip reads the fake index in both
// formats: asked for the project under another spelling of its name and
// no version, it finds the page, passes over the yanked 2.0 (PEP 592),
// prefers the 1.0 wheel to the 1.0 sdist, verifies the hash and fetches
// the wheel, and nothing else.
func TestPipDownload(t *testing.T) {
	t.Parallel()
	p := newPip(t)
	s := pypitest.NewServer(t)
	whl := pypitest.MakeWheel("Foo.Bar", "1.0", pypitest.WheelOptions{})
	s.AddDist("Foo.Bar", pypitest.Dist{Filename: pypitest.WheelFilename("Foo.Bar", "1.0"), Content: whl})
	s.AddDist("Foo.Bar", pypitest.Dist{Filename: pypitest.SdistFilename("Foo.Bar", "1.0"), Content: pypitest.MakeSdist("Foo.Bar", "1.0")})
	s.AddDist("Foo.Bar", pypitest.Dist{Filename: pypitest.WheelFilename("Foo.Bar", "2.0"),
		Content: pypitest.MakeWheel("Foo.Bar", "2.0", pypitest.WheelOptions{}), Yanked: true})
	for _, c := range []struct {
		htmlOnly bool
		project  string
	}{{false, "foo.bar"}, {true, "FOO_bar"}} {
		s.HTMLOnly(c.htmlOnly)
		dir := t.TempDir()
		before := s.Hits("/simple/foo-bar/")
		out, err := p.Run(context.Background(), "", "download", "--no-deps", "--index-url", s.URL()+"simple/", c.project, "-d", dir)
		if err != nil {
			t.Fatalf("htmlOnly=%v: pip download %s: %v\n%s", c.htmlOnly, c.project, err, out)
		}
		got, err := os.ReadFile(filepath.Join(dir, pypitest.WheelFilename("Foo.Bar", "1.0")))
		if err != nil || !bytes.Equal(got, whl) {
			t.Errorf("htmlOnly=%v: downloaded wheel: err %v, %d bytes; want the 1.0 wheel, %d bytes\n%s", c.htmlOnly, err, len(got), len(whl), out)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("htmlOnly=%v: pip downloaded %d files; want the 1.0 wheel alone\n%s", c.htmlOnly, len(entries), out)
		}
		if s.Hits("/simple/foo-bar/") == before {
			t.Errorf("htmlOnly=%v: pip did not ask for /simple/foo-bar/", c.htmlOnly)
		}
	}
}

// TestPipRejectsWrongHash shows that the ServeContent fault is caught by pip.
func TestPipRejectsWrongHash(t *testing.T) {
	t.Parallel()
	p := newPip(t)
	s := pypitest.NewServer(t)
	whl := pypitest.MakeWheel("evil", "1.0", pypitest.WheelOptions{})
	s.AddDist("evil", pypitest.Dist{Filename: pypitest.WheelFilename("evil", "1.0"), Content: whl,
		ServeContent: pypitest.MakeWheel("evil", "1.0", pypitest.WheelOptions{Summary: "tampered"})})
	out, err := p.Run(context.Background(), "", "download", "--no-deps", "--index-url", s.URL()+"simple/", "evil==1.0", "-d", t.TempDir())
	if err == nil || !strings.Contains(out, "THESE PACKAGES DO NOT MATCH THE HASHES") {
		t.Errorf("got err %v; want pip to refuse the hash mismatch\n%s", err, out)
	}
}

// TestPipInstallInVenv installs a wheel and its dependency into a fresh
// venv and imports it.
func TestPipInstallInVenv(t *testing.T) {
	t.Parallel()
	p := newPip(t)
	s := pypitest.NewServer(t)
	s.AddDist("app", pypitest.Dist{Filename: pypitest.WheelFilename("app", "1.0"),
		Content: pypitest.MakeWheel("app", "1.0", pypitest.WheelOptions{Requires: []string{"lib>=2"}, RequiresPython: ">=3.7"}), RequiresPython: ">=3.7"})
	s.AddDist("lib", pypitest.Dist{Filename: pypitest.WheelFilename("lib", "2.1"), Content: pypitest.MakeWheel("lib", "2.1", pypitest.WheelOptions{})})
	s.AddDist("lib", pypitest.Dist{Filename: pypitest.WheelFilename("lib", "1.0"), Content: pypitest.MakeWheel("lib", "1.0", pypitest.WheelOptions{})})
	// pip 23.2 reads PEP 658 metadata from HTML (data-dist-info-metadata)
	// but not from JSON's core-metadata, so serve HTML to exercise .metadata.
	s.HTMLOnly(true)
	start := time.Now()
	py := p.Venv(t)
	t.Logf("venv in %v", time.Since(start))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := p.Run(ctx, py, "install", "--index-url", s.URL()+"simple/", "app")
	if err != nil {
		t.Fatalf("pip install: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Successfully installed app-1.0 lib-2.1") {
		t.Errorf("unexpected install:\n%s", out)
	}
	appURL := s.FileURL("app", pypitest.WheelFilename("app", "1.0"))
	if n := s.Hits(strings.TrimPrefix(appURL, strings.TrimSuffix(s.URL(), "/")) + ".metadata"); n == 0 {
		t.Errorf("pip never fetched %s.metadata", appURL)
	}
	cmd := exec.CommandContext(ctx, py, "-c", "import app, lib, sys; print(app.__version__, lib.__version__, sys.prefix)")
	cmd.Env = p.Env()
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("import: %v\n%s", err, got)
	}
	fields := strings.Fields(string(got))
	if len(fields) != 3 || fields[0] != "1.0" || fields[1] != "2.1" || !strings.HasPrefix(py, fields[2]) {
		t.Errorf("got %q; want versions 1.0 2.1 in the venv %s", got, py)
	}
	// Installed reads the venv's versions, names normalized as pip does.
	for project, want := range map[string]string{"app": "1.0", "LIB": "2.1", "setuptools": "", "not-installed": ""} {
		if v, err := p.Installed(ctx, py, project); err != nil || v != want {
			t.Errorf("Installed(%s) = %q, %v; want %q", project, v, err, want)
		}
	}
	// The venv sees none of the machine's site-packages.
	cmd = exec.CommandContext(ctx, py, "-c", "import importlib.util as u; print(u.find_spec('wheel') is None and u.find_spec('setuptools') is None)")
	cmd.Env = p.Env()
	if got, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(got)) != "True" {
		t.Errorf("venv isolation: got %q, %v; want True", got, err)
	}
}
