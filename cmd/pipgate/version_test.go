package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/pipgate/pipgate", Version: "v0.0.0-20261201151328-4f7ef93963d9"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "4f7ef93963d94537e131198c29f1e05df4f315cd"},
			{Key: "vcs.time", Value: "2026-12-01T15:13:28Z"}, {Key: "vcs.modified", Value: "true"}}}
	for _, c := range []struct {
		name, ldflags string
		bi            *debug.BuildInfo
		want          string
	}{
		{"stamped by the toolchain", "dev", stamped,
			"pipgate v0.0.0-20261201151328-4f7ef93963d9 (module v0.0.0-20261201151328-4f7ef93963d9, commit 4f7ef93963d94537e131198c29f1e05df4f315cd (modified), committed 2026-12-01T15:13:28Z, go1.26.8)"},
		{"version from -ldflags wins", "1.2.3", stamped,
			"pipgate 1.2.3 (module v0.0.0-20261201151328-4f7ef93963d9, commit 4f7ef93963d94537e131198c29f1e05df4f315cd (modified), committed 2026-12-01T15:13:28Z, go1.26.8)"},
		{"no VCS (go run, -buildvcs=false)", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"pipgate dev (module (devel), no VCS revision, go1.26.8)"},
		{"no build info", "dev", nil, "pipgate dev"},
	} {
		t.Run(c.name, func(t *testing.T) {
			old := version
			version = c.ldflags
			defer func() { version = old }()
			if got := versionString(c.bi); got != c.want {
				t.Errorf("got %q; want %q", got, c.want)
			}
		})
	}
	// --version and version print the same line.
	code1, out1, _ := runPipgate(t, "--version")
	code2, out2, _ := runPipgate(t, "version")
	if code1 != 0 || code2 != 0 || out1 != out2 || !strings.HasPrefix(out1, "pipgate ") {
		t.Errorf("--version: %d %q; version: %d %q", code1, out1, code2, out2)
	}
}
