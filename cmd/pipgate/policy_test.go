package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunPolicy(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := write("one.yaml", "version: 1\npackages:\n  - name: requests\n")
	bad := write("bad.yaml", "version: 1\ndefaults:\n  acton: warn\npackages:\n  - name: x\n    require: trusted-publisher\n")
	empty := write("empty.yaml", "")
	missing := filepath.Join(dir, "missing.yaml")

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string // a substring; "" means stderr must be empty
	}{
		{"observe-only example", []string{"check", "../../configs/policy.yaml"}, 0,
			"../../configs/policy.yaml: ok (0 rules)\n", ""},
		{"strict example", []string{"check", "../../configs/policy-strict.yaml"}, 0,
			"../../configs/policy-strict.yaml: ok (6 rules)\n", ""},
		{"one rule", []string{"check", one}, 0, one + ": ok (1 rule)\n", ""},
		{"every problem, one a line", []string{"check", bad}, 1, "",
			bad + ":3: defaults.acton: unknown field (did you mean action?)\n" +
				bad + ":6: packages[0].require: trusted-publisher needs publishers; add a publishers list\n"},
		{"no line", []string{"check", empty}, 1, "", empty + ": empty document\n"},
		{"several files", []string{"check", one, bad}, 1, one + ": ok (1 rule)\n", bad + ":3: "},
		{"unreadable", []string{"check", missing}, 2, "", "pipgate policy check: reading policy: open " + missing},
		{"no subcommand", nil, 2, "", "usage: pipgate policy check FILE..."},
		{"unknown subcommand", []string{"lint", one}, 2, "", `unknown subcommand "lint"`},
		{"no file", []string{"check"}, 2, "", "missing FILE"},
		{"bad flag", []string{"check", "--strict", one}, 2, "", "flag provided but not defined: -strict"},
		{"help", []string{"--help"}, 0, "", "usage: pipgate policy check FILE..."},
		{"check help", []string{"check", "-h"}, 0, "", "Exit status: 0 ok, 1 a file is invalid, 2 usage or I/O error."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runPolicy(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d; want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if got := stdout.String(); got != tt.wantStdout {
				t.Errorf("stdout: got %q; want %q", got, tt.wantStdout)
			}
			got := stderr.String()
			if tt.wantStderr == "" && got != "" || !strings.Contains(got, tt.wantStderr) {
				t.Errorf("stderr: got %q; want it to contain %q", got, tt.wantStderr)
			}
		})
	}
}
