package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/egress"
)

// caRun runs 'pipgate ca' with args and returns the exit code and output.
func caRun(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runCA(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCAInit(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	code, out, errOut := caRun("init", "--cert", cert, "--key", key, "--common-name", "Example egress", "--days", "30")
	if code != 0 {
		t.Fatalf("exit %d; want 0\n%s", code, errOut)
	}
	modes := []struct {
		path string
		want fs.FileMode
	}{{cert, 0o644}, {key, 0o600}}
	for _, m := range modes {
		st, err := os.Stat(m.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != m.want {
			t.Errorf("%s: mode %o; want %o", filepath.Base(m.path), got, m.want)
		}
	}
	ca, err := egress.LoadCA(cert, key)
	if err != nil {
		t.Fatalf("LoadCA on the written pair: %v", err)
	}
	if got := ca.Leaf.Subject.CommonName; got != "Example egress" {
		t.Errorf("common name %q; want %q", got, "Example egress")
	}
	if left := time.Until(ca.Leaf.NotAfter); left < 29*24*time.Hour || left > 30*24*time.Hour {
		t.Errorf("validity left %v; want about 30 days", left)
	}
	for _, want := range []string{cert, key, "PIP_CERT=" + cert, "--cert " + cert, "SSL_CERT_FILE=" + cert, "UV_NATIVE_TLS", "ca_key: " + key} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not mention %q:\n%s", want, out)
		}
	}
	keyPEM, _ := os.ReadFile(key)
	if strings.Contains(out, string(keyPEM)) || strings.Contains(out, "PRIVATE KEY") {
		t.Error("output carries the private key")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("folder holds %d entries; want 2 (no temporary files left)", len(entries))
	}
}

func TestCAInitOverwrite(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if code, _, errOut := caRun("init", "--cert", cert, "--key", key); code != 0 {
		t.Fatalf("first init: exit %d\n%s", code, errOut)
	}
	before, _ := os.ReadFile(key)
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"both exist", []string{"--cert", cert, "--key", key}, 1, "already exists (use --force"},
		{"certificate exists", []string{"--cert", cert, "--key", filepath.Join(dir, "new-key.pem")}, 1, cert + " already exists"},
		{"key exists", []string{"--cert", filepath.Join(dir, "new.pem"), "--key", key}, 1, key + " already exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := caRun(append([]string{"init"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tt.code, tt.want)
			}
		})
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
		t.Error("the key was replaced without --force")
	}
	for _, p := range []string{"new.pem", "new-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was written although init refused", p)
		}
	}

	if code, _, errOut := caRun("init", "--cert", cert, "--key", key, "--force"); code != 0 {
		t.Fatalf("init --force: exit %d\n%s", code, errOut)
	}
	after, _ := os.ReadFile(key)
	if bytes.Equal(before, after) {
		t.Error("--force kept the old key")
	}
	if st, _ := os.Stat(key); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode after --force %o; want 600", st.Mode().Perm())
	}
	if _, err := egress.LoadCA(cert, key); err != nil {
		t.Errorf("LoadCA after --force: %v", err)
	}
}

func TestCAUsage(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	tests := []struct {
		name string
		args []string
		code int
		want string // in stdout for 0, stderr otherwise
	}{
		{"no subcommand", nil, 2, "usage: pipgate ca init"},
		{"help", []string{"--help"}, 0, "usage: pipgate ca init"},
		{"init help", []string{"init", "--help"}, 0, "-common-name"},
		{"unknown subcommand", []string{"rotate"}, 2, `unknown subcommand "rotate"`},
		{"missing cert", []string{"init", "--key", key}, 2, "--cert is required"},
		{"missing key", []string{"init", "--cert", cert}, 2, "--key is required"},
		{"bad days", []string{"init", "--cert", cert, "--key", key, "--days", "0"}, 2, "--days must be positive"},
		{"days not a number", []string{"init", "--cert", cert, "--key", key, "--days", "ten"}, 2, "invalid value"},
		{"unknown flag", []string{"init", "--cert", cert, "--key", key, "--rsa"}, 2, "flag provided but not defined: -rsa"},
		{"extra argument", []string{"init", "--cert", cert, "--key", key, "extra"}, 2, `unexpected argument "extra"`},
		{"same file", []string{"init", "--cert", cert, "--key", cert}, 2, "must be different files"},
		{"empty common name", []string{"init", "--cert", cert, "--key", key, "--common-name", " "}, 2, "--common-name must not be empty"},
		{"missing folder", []string{"init", "--cert", filepath.Join(dir, "no", "ca.pem"), "--key", filepath.Join(dir, "no", "key.pem")}, 1, "writing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := caRun(tt.args...)
			got := errOut
			if tt.code == 0 {
				got = out
			}
			if code != tt.code || !strings.Contains(got, tt.want) {
				t.Errorf("exit %d, output %q; want %d and %q", code, got, tt.code, tt.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors left %d files; want none", len(entries))
	}
}

func TestCAInitCertificateFailureRemovesKey(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "ca-key.pem")
	code, _, errOut := caRun("init", "--cert", filepath.Join(dir, "missing", "ca.pem"), "--key", key)
	if code != 1 || !strings.Contains(errOut, "writing certificate") {
		t.Errorf("exit %d, stderr %q; want 1 and a certificate write error", code, errOut)
	}
	if _, err := os.Stat(key); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the key was left behind without its certificate")
	}
}
