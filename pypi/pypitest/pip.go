package pypitest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipgate/pipgate/internal/testbin"
)

// runTimeout bounds one pip run when the caller's context has no deadline.
const runTimeout = 2 * time.Minute

// PipAvailable returns nil when `python3 -m pip` and the venv module work;
// tests call t.Skip with the error otherwise. The answer is found once per
// test process (a pyenv shim alone costs about 0.1 s of CPU).
func PipAvailable() error { return pipAvailable() }

var pipAvailable = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-c", "import venv, pip, sys; print(pip.__path__[0])")
	testbin.Prepare(cmd)
	cmd.Env = cleanEnv(os.Environ())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("python3 with pip and venv unavailable: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
})

// Pip runs the machine's pip in a clean, hermetic environment: HOME, TMPDIR
// and caches in a test's temporary folder, no configuration file, no cache,
// no version check, no prompts, no retries, and none of the machine's PIP_*,
// CA bundle or proxy variables.
type Pip struct {
	// Extra are KEY=value pairs added after the clean environment (a later
	// value for the same key wins), e.g. "HTTPS_PROXY=http://127.0.0.1:3128".
	Extra []string

	home    string
	python3 string // the real interpreter behind python3 (no pyenv shim)
	pipDir  string // the folder holding the system pip package
}

// NewPip returns a harness rooted in t.TempDir(). It calls t.Skip when pip
// is unavailable.
func NewPip(t testing.TB) *Pip {
	t.Helper()
	if err := PipAvailable(); err != nil {
		t.Skipf("skipping: real pip needed: %v", err)
	}
	home := t.TempDir()
	for _, d := range []string{"tmp", "cache"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := &Pip{home: home}
	// Where python3 and its pip are, found once per test process, in the
	// first harness's environment (an empty HOME: no user site-packages).
	located.once.Do(func() {
		out, err := p.python(context.Background(), "python3", "-c", "import os, sys, pip; print(sys.executable); print(os.path.dirname(pip.__path__[0]))")
		if err != nil {
			located.err = fmt.Errorf("locating pip: %w: %s", err, out)
			return
		}
		lines := strings.Fields(out)
		if len(lines) != 2 {
			located.err = fmt.Errorf("locating pip: unexpected output %q", out)
			return
		}
		located.python3, located.pipDir = lines[0], lines[1]
	})
	if located.err != nil {
		t.Fatal(located.err)
	}
	p.python3, p.pipDir = located.python3, located.pipDir
	return p
}

// located is python3's interpreter and pip folder, as NewPip found them.
var located struct {
	once            sync.Once
	python3, pipDir string
	err             error
}

// cleanEnv drops everything from env that would make pip depend on the
// machine: pip settings, CA bundles, proxies, Python paths and venvs. Rust's
// settings go too: pip runs `rustc --version` for its User-Agent at every
// start, and a rustup rustc finds no toolchain under the harness's HOME; with
// RUST_BACKTRACE=1 it symbolized a backtrace first, 65 ms of CPU per start
// against 9 ms.
func cleanEnv(env []string) []string {
	drop := []string{"PIP_", "PYTHON", "VIRTUAL_ENV", "CONDA_", "RUST_"}
	exact := map[string]bool{
		"REQUESTS_CA_BUNDLE": true, "CURL_CA_BUNDLE": true, "SSL_CERT_FILE": true, "SSL_CERT_DIR": true,
		"HTTPLIB2_CA_CERTS": true, "HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true,
		"ALL_PROXY": true, "FTP_PROXY": true, "HOME": true, "TMPDIR": true, "XDG_CACHE_HOME": true,
		"XDG_CONFIG_HOME": true, "NETRC": true, "UV_INDEX_URL": true,
	}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		uk := strings.ToUpper(k)
		if exact[uk] || hasAnyPrefix(uk, drop) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// Env returns the environment pip runs with: the machine's, cleaned, then
// the harness settings, then p.Extra, then extra.
func (p *Pip) Env(extra ...string) []string {
	env := cleanEnv(os.Environ())
	env = append(env,
		"HOME="+p.home,
		"TMPDIR="+filepath.Join(p.home, "tmp"),
		"XDG_CACHE_HOME="+filepath.Join(p.home, "cache"),
		"XDG_CONFIG_HOME="+filepath.Join(p.home, "config"),
		"PIP_CONFIG_FILE=/dev/null",
		"PIP_NO_CACHE_DIR=1",
		"PIP_DISABLE_PIP_VERSION_CHECK=1",
		"PIP_NO_INPUT=1",
		"PIP_RETRIES=0",
		"PIP_DEFAULT_TIMEOUT=30",
		"PIP_ROOT_USER_ACTION=ignore",
		"PIP_NO_PYTHON_VERSION_WARNING=1",
		"PYTHONDONTWRITEBYTECODE=1",
		"NO_COLOR=1",
	)
	env = append(env, p.Extra...)
	return append(env, extra...)
}

// Venv creates a throwaway virtual environment in a t.TempDir() and returns
// its python. To stay fast (no ensurepip: about 0.2 s, not 5 s) the venv is
// made without pip and a .pth file puts only the machine's pip package on
// its path, so `python -m pip install` installs into the venv, which sees
// nothing of the machine's site-packages.
func (p *Pip) Venv(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "venv")
	ctx := context.Background()
	if out, err := p.python(ctx, p.python3, "-m", "venv", "--without-pip", dir); err != nil {
		t.Fatalf("creating venv: %v: %s", err, out)
	}
	python := filepath.Join(dir, "bin", "python")
	out, err := p.python(ctx, python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
	if err != nil {
		t.Fatalf("locating venv site-packages: %v: %s", err, out)
	}
	shim := filepath.Join(dir, "pipgate-pip")
	if err := os.MkdirAll(shim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(p.pipDir, "pip"), filepath.Join(shim, "pip")); err != nil {
		t.Fatal(err)
	}
	pth := filepath.Join(strings.TrimSpace(out), "pipgate-pip.pth")
	if err := os.WriteFile(pth, []byte(shim+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return python
}

// Run runs `python -m pip args...` (python "" means python3) with
// [Pip.Env] and returns the combined output. Without a deadline on ctx it
// gives up after two minutes.
func (p *Pip) Run(ctx context.Context, python string, args ...string) (string, error) {
	if python == "" {
		python = p.python3
	}
	return p.python(ctx, python, append([]string{"-m", "pip"}, args...)...)
}

// installedScript prints the version of the distribution named by its
// argument, or nothing when none is installed; importlib.metadata
// normalizes the name as pip does.
const installedScript = `import importlib.metadata as m, sys
try:
    print(m.version(sys.argv[1]))
except m.PackageNotFoundError:
    pass
`

// Installed returns the version of project installed in the venv of
// python ("" when none is), what `pip show` reports, read with
// importlib.metadata: a bare Python start (about 0.05 s of CPU) instead of
// pip's (about 0.5 s).
func (p *Pip) Installed(ctx context.Context, python, project string) (string, error) {
	out, err := p.python(ctx, python, "-c", installedScript, project)
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(out))
	}
	return strings.TrimSpace(out), nil
}

func (p *Pip) python(ctx context.Context, python string, args ...string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, runTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, python, args...)
	testbin.Prepare(cmd) // pip dies with the test binary; what it started, with ctx
	cmd.Env = p.Env()
	cmd.Dir = p.home
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", filepath.Base(python), strings.Join(args, " "), err)
	}
	return string(out), nil
}
