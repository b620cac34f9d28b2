// Command pipgate is a verifying proxy for the Python Package Index: it serves
// the simple index to pip and uv, mirrors the files, verifies their PEP 740
// attestations with Sigstore and enforces a trusted-publisher policy.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand: it gets its own arguments (without the command
// name) and returns the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"serve":   {"run the proxy (embedded defaults without --config)", runServe},
		"verify":  {"verify a local distribution file offline", runVerify},
		"policy":  {"policy check|from-lock|suggest|test: validate a policy; write one from a lock or the history; replay the history", runPolicy},
		"report":  {"report: attestation coverage per project, from the decision history", runReport},
		"ca":      {"ca init --cert FILE --key FILE: create the egress CA", runCA},
		"cache":   {"cache stats|purge|verify: inspect the data directory", runCache},
		"status":  {"status PROJECT: what was served or refused, from the decision history", runStatus},
		"version": {"print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) < 2 || args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
		usage(stderr, cmds)
		if len(args) < 2 {
			return 2
		}
		return 0
	}
	if args[1] == "--version" || args[1] == "-version" || args[1] == "-v" {
		return runVersion(ctx, nil, stdout, stderr)
	}
	c, ok := cmds[args[1]]
	if !ok {
		fmt.Fprintf(stderr, "pipgate: unknown command %q\n", args[1])
		usage(stderr, cmds)
		return 2
	}
	return c.run(ctx, args[2:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: pipgate <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'pipgate <command> --help' for a command's flags; 'pipgate --version' prints the version.")
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	bi, _ := debug.ReadBuildInfo()
	fmt.Fprintln(stdout, versionString(bi))
	return 0
}

// versionString renders "pipgate VERSION (module MODVERSION, commit REV
// [modified], built TIME, GOVERSION)": VERSION from -ldflags -X main.version,
// else the module version; the rest from the build info the Go toolchain
// embeds (the VCS stamp needs a build inside the git checkout).
func versionString(bi *debug.BuildInfo) string {
	v := version
	if bi == nil {
		return "pipgate " + v
	}
	mod := bi.Main.Version
	if v == "dev" && mod != "" && mod != "(devel)" {
		v = mod
	}
	parts := []string{}
	if mod != "" {
		parts = append(parts, "module "+mod)
	}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		c := "commit " + rev
		if modified == "true" {
			c += " (modified)"
		}
		parts = append(parts, c)
	} else {
		parts = append(parts, "no VCS revision")
	}
	if at != "" {
		parts = append(parts, "committed "+at)
	}
	parts = append(parts, bi.GoVersion)
	return "pipgate " + v + " (" + strings.Join(parts, ", ") + ")"
}
