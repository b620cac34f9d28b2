// Package testbin gives tests the pipgate binary, built once for every test
// binary of a `go test` run, and subprocesses that die with the test.
//
// Two builds of ./cmd/pipgate are on offer. Release is the Dockerfile's
// build step (BuildCommand: static, -trimpath, not -race, stamped with
// Version): the one the end-to-end tests, the deployment checks and the
// memory measurements run, a compile of every package in another
// configuration than the tests' (on an empty cache it costs CPU time, which
// is cheaper than every server of a warm run under -race). Pipgate is built
// with the settings the running test binary was built with (-race, -tags,
// CGO_ENABLED, ... read from its build info), so that every package it
// needs is already in the Go build cache from compiling the tests and the
// build is a compile of package main and a link; cmd/pipgate's end-to-end
// tests run it with PIPGATE_E2E_RACE=1.
//
// Each goes into the Go build cache's folder (GOCACHE/pipgate-testbin/
// {test,release}/KEY), KEY being a hash of every input of the build: the Go toolchain and
// environment, the command, go.mod, go.sum and the files of every package of
// this module the binary is built from (other modules by version). A file
// lock per kind makes parallel test binaries (cmd/pipgate and deploy run at
// the same time under `go test ./...`) share one build: the first builds,
// the others wait and reuse it; the two kinds build side by side. A warm cache costs a hash of the sources. Reading the
// sources in the test process also tells `go test`'s result cache that the
// tests depend on them.
//
// Command starts subprocesses in their own process group, killed (the
// whole group) when the test ends, and, on Linux, killed by the kernel when
// the test binary dies (a `go test` timeout or a killed run).
package testbin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the VERSION build argument the binaries are stamped with.
const Version = "pipgate-test"

// pkg is the package the binary is built from, relative to the module root.
const pkg = "./cmd/pipgate"

// BuildCommand returns the environment and argv of the release build, output
// at out: the Dockerfile's `go build` step with VERSION=Version (deploy's
// TestDockerfileBuild checks that they are the same).
func BuildCommand(out string) (env, argv []string) {
	return []string{"CGO_ENABLED=0"},
		[]string{"go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=" + Version, "-o", out, pkg}
}

// TestBuildCommand returns the environment and argv of the build Pipgate
// runs, output at out: `go build` with the build settings of the running
// test binary (so that it reuses the packages compiled for the tests),
// stamped with Version. Settings it cannot repeat (none of the flags below)
// only cost a longer build.
func TestBuildCommand(out string) (env, argv []string, err error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil, nil, errors.New("the test binary has no build information")
	}
	argv = []string{"go", "build", "-buildvcs=false"}
	ldflags := "-X main.version=" + Version
	for _, s := range bi.Settings {
		switch k := s.Key; k {
		case "-race", "-msan", "-asan", "-trimpath":
			argv = append(argv, k+"="+s.Value)
		case "-tags", "-gcflags", "-asmflags", "-buildmode", "-compiler", "-pgo":
			argv = append(argv, k+"="+s.Value)
		case "-ldflags":
			ldflags = s.Value + " " + ldflags
		case "CGO_ENABLED", "CGO_CFLAGS", "CGO_CPPFLAGS", "CGO_CXXFLAGS", "CGO_LDFLAGS", "GOARCH", "GOOS",
			"GOAMD64", "GOARM64", "GO386", "GOARM", "GOEXPERIMENT":
			env = append(env, k+"="+s.Value)
		}
	}
	return env, append(argv, "-ldflags", ldflags, "-o", out, pkg), nil
}

type builds struct {
	once sync.Once
	path string
	err  error
}

var testBuild, releaseBuild builds

// Pipgate returns the path of the pipgate binary built by TestBuildCommand
// (the running tests' settings: with -race under `go test -race`), building
// it when no test binary built it from these sources before. The build has
// no deadline of its own: it takes what it takes, within the test binary's
// -timeout.
func Pipgate(t testing.TB) string {
	t.Helper()
	testBuild.once.Do(func() {
		env, argv, err := TestBuildCommand("OUT")
		if err != nil {
			testBuild.err = err
			return
		}
		testBuild.path, testBuild.err = build("test", env, argv)
	})
	if testBuild.err != nil {
		t.Fatal(testBuild.err)
	}
	return testBuild.path
}

// Release returns the path of the pipgate binary the Dockerfile builds
// (BuildCommand: static, not -race), building it when no test binary built
// it from these sources before; on an empty Go cache that is a compile of
// every package.
func Release(t testing.TB) string {
	t.Helper()
	releaseBuild.once.Do(func() {
		env, argv := BuildCommand("OUT")
		releaseBuild.path, releaseBuild.err = build("release", env, argv)
	})
	if releaseBuild.err != nil {
		t.Fatal(releaseBuild.err)
	}
	return releaseBuild.path
}

// ModuleRoot returns the folder holding go.mod, walking up from the working
// directory (a test runs in its package's folder).
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// keep is how many builds (source states and commands) the cache folder
// keeps of each kind.
const keep = 4

// build runs `env argv` with its output path ("OUT" in argv) in the cache
// folder, unless a build of the same inputs is there.
func build(kind string, env, argv []string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	goenv, cacheDir, err := goEnv(root, env)
	if err != nil {
		return "", err
	}
	key, err := sourceKey(root, env, argv, goenv)
	if err != nil {
		return "", fmt.Errorf("hashing the build's inputs: %w", err)
	}
	dir := filepath.Join(cacheDir, "pipgate-testbin", kind)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(dir, "lock"))
	if err != nil {
		return "", fmt.Errorf("locking %s: %w", dir, err)
	}
	defer unlock()

	final := filepath.Join(dir, key)
	bin := filepath.Join(final, "pipgate")
	if _, err := os.Stat(bin); err == nil {
		now := time.Now()
		_ = os.Chtimes(final, now, now) // most recently used: pruned last
		return bin, nil
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	argv = slices.Clone(argv)
	for i := range argv {
		if argv[i] == "OUT" {
			argv[i] = filepath.Join(tmp, "pipgate")
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...) //nolint:gosec // a fixed command (BuildCommand, TestBuildCommand), the output path ours
	prepare(cmd)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", strings.Join(env, " "), strings.Join(argv, " "), err, out)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	prune(dir, final)
	return bin, nil
}

// goEnv returns the Go settings that change a build's output, and GOCACHE.
func goEnv(root string, env []string) (settings []byte, gocache string, err error) {
	cmd := exec.Command("go", "env", "-json", "GOVERSION", "GOOS", "GOARCH", "GOFLAGS", "GOEXPERIMENT",
		"GOAMD64", "GOARM64", "GO386", "GOARM", "CGO_ENABLED", "GOTOOLCHAIN", "GOCACHE")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("go env: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, "", fmt.Errorf("go env: %w", err)
	}
	if m["GOCACHE"] == "" || m["GOCACHE"] == "off" {
		return nil, "", fmt.Errorf("go env GOCACHE is %q: the test binary is kept in the Go build cache", m["GOCACHE"])
	}
	gocache = m["GOCACHE"]
	delete(m, "GOCACHE")
	settings, err = json.Marshal(m) // sorted keys
	return settings, gocache, err
}

// listedPackage is the part of `go list -json` sourceKey reads.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	Module     *struct {
		Path, Version string
		Main          bool
		Replace       *struct{ Path, Version string }
	}
	GoFiles, CgoFiles, SFiles, HFiles, CFiles, EmbedFiles []string
}

// sourceKey hashes every input of the build: the settings, the command,
// go.mod and go.sum, and the packages of the binary (files of this module
// and of local replacements, versions of other modules).
func sourceKey(root string, env, argv []string, settings []byte) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "settings %s\ncommand %q %q\n", settings, env, argv)
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := hashFile(h, root, f); err != nil {
			return "", err
		}
	}
	list := []string{"list", "-deps", "-json=ImportPath,Dir,Standard,Module,GoFiles,CgoFiles,SFiles,HFiles,CFiles,EmbedFiles"}
	for _, a := range argv {
		if strings.HasPrefix(a, "-tags=") || strings.HasPrefix(a, "-race=") {
			list = append(list, a) // they choose files
		}
	}
	cmd := exec.Command("go", append(list, pkg)...) //nolint:gosec // go list with the build's own flags
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list: %w\n%s", err, stderr.Bytes())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("go list: %w", err)
		}
		if p.Standard {
			continue // GOVERSION covers it
		}
		fmt.Fprintf(h, "package %s\n", p.ImportPath)
		local := p.Module == nil || p.Module.Main || (p.Module.Replace != nil && p.Module.Replace.Version == "")
		if !local {
			fmt.Fprintf(h, "module %s@%s\n", p.Module.Path, p.Module.Version)
			if r := p.Module.Replace; r != nil {
				fmt.Fprintf(h, "replace %s@%s\n", r.Path, r.Version)
			}
			continue
		}
		var files []string
		for _, fs := range [][]string{p.GoFiles, p.CgoFiles, p.SFiles, p.HFiles, p.CFiles, p.EmbedFiles} {
			files = append(files, fs...)
		}
		sort.Strings(files)
		for _, f := range files {
			if err := hashFile(h, p.Dir, f); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(h io.Writer, dir, name string) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	fmt.Fprintf(h, "file %s %x\n", filepath.ToSlash(name), sum)
	return nil
}

// prune removes the builds beyond the keep most recently used, and build
// folders a killed test left behind.
func prune(dir, current string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type build struct {
		path string
		used time.Time
	}
	var builds []build
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil || !e.IsDir() || p == current {
			continue
		}
		if strings.HasPrefix(e.Name(), ".build-") { // a killed build's: the builder holds the lock
			_ = os.RemoveAll(p)
			continue
		}
		builds = append(builds, build{p, info.ModTime()})
	}
	sort.Slice(builds, func(i, j int) bool { return builds[i].used.After(builds[j].used) })
	for i, b := range builds {
		if i >= keep-1 {
			_ = os.RemoveAll(b.path)
		}
	}
}

// Command returns exec.CommandContext(ctx, name, args...) for test t, set up to die with
// the test: the process runs in its own process group, which is SIGKILLed
// when ctx ends and when the test ends (after the cleanups registered later,
// such as a graceful SIGTERM and wait, have run), and, on Linux, the kernel
// SIGKILLs the process when the test binary dies.
func Command(ctx context.Context, t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	Prepare(cmd)
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = killGroup(cmd)
		}
	})
	return cmd
}

// Prepare sets up a command made by exec.CommandContext (before Start) to
// die with the test binary as Command's do, for helpers without a
// testing.TB: its own process group, SIGKILLed as a whole when the context
// ends, and killed by the kernel when the test binary dies (Linux).
func Prepare(cmd *exec.Cmd) {
	prepare(cmd)
	cmd.Cancel = func() error { return killGroup(cmd) }
}

// KillGroup SIGKILLs the process group of a started Command (the process
// and whatever it started).
func KillGroup(cmd *exec.Cmd) error { return killGroup(cmd) }
