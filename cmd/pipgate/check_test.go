package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runPipgate runs the command in-process and returns its exit code, stdout
// and stderr.
func runPipgate(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb strings.Builder
	code := run(context.Background(), append([]string{"pipgate"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestConfigCheckLoadsEverything(t *testing.T) {
	fx := verifyFixtures(t)
	root := filepath.Join(fx, "trust", "trusted_root.production.json")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodPolicy := write("policy.yaml", "version: 1\ndefaults:\n  require: none\n  action: warn\n")
	badPolicy := write("bad-policy.yaml", "version: 1\ndefaults:\n  requre: none\n")
	notRoot := write("not-a-root.json", `{"mediaType": "nonsense"}`)
	cert, key := writeTestCert(t, dir, "localhost")
	readOnly := filepath.Join(dir, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		t.Log("running as root: the unwritable data dir case is skipped")
	}

	for _, c := range []struct {
		name     string
		args     []string
		wantCode int
		want     string // on stderr when wantCode is 1, else on stdout
	}{
		{"flags only", []string{"--trusted-root", root, "--data-dir", filepath.Join(dir, "data"), "--policy", goodPolicy}, 0, "embedded defaults: ok"},
		{"missing trust root", []string{"--trusted-root", filepath.Join(dir, "nope.json"), "--data-dir", dir},
			1, "--trusted-root: cannot read " + filepath.Join(dir, "nope.json") + ": no such file or directory\n"},
		{"not a trust root", []string{"--trusted-root", notRoot, "--data-dir", dir}, 1, "--trusted-root: "},
		{"bad policy", []string{"--trusted-root", root, "--data-dir", dir, "--policy", badPolicy},
			1, relPath(badPolicy) + ":3: defaults.requre: unknown field (did you mean require?)\n"},
		{"missing policy", []string{"--trusted-root", root, "--data-dir", dir, "--policy", filepath.Join(dir, "nope.yaml")},
			1, "--policy: cannot read " + filepath.Join(dir, "nope.yaml") + ": no such file or directory\n"},
		{"pip-style upstream", []string{"--trusted-root", root, "--data-dir", dir, "--upstream", "https://pypi.org/simple/"},
			0, `note: upstream.url "https://pypi.org/simple/" is a simple index (the URL pip takes); using its base "https://pypi.org/"`},
		{"data dir under a file", []string{"--trusted-root", root, "--data-dir", filepath.Join(goodPolicy, "data")},
			1, "--data-dir: " + goodPolicy + " is not a directory\n"},
		{"bad upstream", []string{"--trusted-root", root, "--data-dir", dir, "--upstream", "pypi.org/simple"},
			1, `--upstream: want an absolute http(s) URL, got "pypi.org/simple"` + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runPipgate(t, append([]string{"serve", "--config.check"}, c.args...)...)
			if code != c.wantCode {
				t.Fatalf("exit %d; want %d\nstdout: %s\nstderr: %s", code, c.wantCode, out, errOut)
			}
			got := out
			if c.wantCode != 0 {
				got = errOut
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("output\n%s\nwant it to contain %q", got, c.want)
			}
		})
	}

	t.Run("config file problems at their lines", func(t *testing.T) {
		cfg := write("pipgate.yaml", "listen: 127.0.0.1:0\n"+
			"data_dir: ro/data\n"+
			"trust:\n  trusted_root: missing.json\n"+
			"tls:\n  cert: "+filepath.Base(cert)+"\n  key: "+filepath.Base(cert)+"\n"+ // the cert as its own key
			"policy: bad-policy.yaml\n")
		code, out, errOut := runPipgate(t, "serve", "--config", cfg, "--config.check")
		if code != 1 {
			t.Fatalf("exit %d; want 1\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		want := []string{
			cfg + ":4: trust.trusted_root: cannot read " + filepath.Join(dir, "missing.json") + ": no such file or directory",
			relPath(badPolicy) + ":3: defaults.requre: unknown field (did you mean require?)",
			cfg + ":6: tls.cert: loading " + cert + " and " + cert + ": tls: found a certificate rather than a key in the PEM for the private key",
		}
		if os.Getuid() != 0 {
			want = append(want, cfg+":2: data_dir: "+filepath.Join(readOnly, "data")+" does not exist and "+readOnly+" is not writable: permission denied")
		}
		for _, w := range want {
			if !strings.Contains(errOut, w+"\n") && !strings.Contains(errOut, w+" ") {
				t.Errorf("stderr\n%s\nwant a line %q", errOut, w)
			}
		}
		if n := strings.Count(errOut, "\n"); n != len(want) {
			t.Errorf("stderr has %d lines; want %d:\n%s", n, len(want), errOut)
		}
	})
	t.Run("every problem in one run", func(t *testing.T) {
		cfg := write("several.yaml", "listen: 127.0.0.1:0\n"+
			"lisen: 127.0.0.1:1\n"+ // a typo
			"data_dir: ro/data\n"+
			"upstream:\n  timeout: 30\n"+ // a value of the wrong kind
			"trust:\n  trusted_root: missing.json\n"+
			"tls:\n  cert: "+filepath.Base(cert)+"\n  key: "+filepath.Base(cert)+"\n"+
			"verification:\n  eager_concurrency: 0\n"+ // a value out of range
			"policy: bad-policy.yaml\n"+
			"upstream:\n  index_ttl: 1m\n") // a repeated section: it hid every other problem
		code, out, errOut := runPipgate(t, "serve", "--config", cfg, "--config.check")
		if code != 1 {
			t.Fatalf("exit %d; want 1\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		want := []string{
			cfg + ":2: lisen: unknown field (did you mean listen?)",
			cfg + ":14: upstream: duplicate key (first at line 4)",
			cfg + `:5: upstream.timeout: want a duration like "30s" or "10m", got 30`,
			cfg + ":12: verification.eager_concurrency: must be at least 1",
			cfg + ":7: trust.trusted_root: cannot read " + filepath.Join(dir, "missing.json") + ": no such file or directory",
			relPath(badPolicy) + ":3: defaults.requre: unknown field (did you mean require?)",
			cfg + ":9: tls.cert: loading " + cert + " and " + cert + ": tls: found a certificate rather than a key in the PEM for the private key",
		}
		if os.Getuid() != 0 {
			want = append(want, cfg+":3: data_dir: "+filepath.Join(readOnly, "data")+" does not exist and "+readOnly+" is not writable: permission denied")
		}
		for _, w := range want {
			if !strings.Contains(errOut, w+"\n") {
				t.Errorf("stderr\n%s\nwant a line %q", errOut, w)
			}
		}
		if n := strings.Count(errOut, "\n"); n != len(want) {
			t.Errorf("stderr has %d lines; want %d:\n%s", n, len(want), errOut)
		}
		// The listing never shows a value that did not decode as the
		// file's (it holds the default, 30s); a valid one it shows.
		if !regexp.MustCompile(`(?m)^upstream\.timeout +\(invalid: see below\) +\(`+regexp.QuoteMeta(cfg)+`:5\)$`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^upstream\.index_ttl +10m +\(default\)$`).MatchString(out) {
			t.Errorf("stdout\n%s\nwant upstream.timeout (invalid: see below) at line 5, upstream.index_ttl 10m from the defaults (its repeat at line 14 is not read)", out)
		}
	})

	t.Run("sources of the settings", func(t *testing.T) {
		data := filepath.Join(dir, "env-data")
		t.Setenv("PIPGATE_DATA_DIR", data)
		t.Setenv("PIPGATE_LISTEN", "127.0.0.1:7777")
		cfg := write("sources.yaml", "listen: 127.0.0.1:0\npolicy: policy.yaml\n")
		code, out, errOut := runPipgate(t, "serve", "--config", cfg, "--config.check", "--trusted-root", root)
		absRoot, err := filepath.Abs(root)
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Fatalf("exit %d; want 0\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		lines := map[string][]string{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 3 {
				lines[f[0]] = f[1:]
			}
		}
		for key, want := range map[string][2]string{
			"listen":             {"127.0.0.1:7777", "($PIPGATE_LISTEN)"},
			"data_dir":           {data, "($PIPGATE_DATA_DIR)"},
			"trust.trusted_root": {absRoot, "(--trusted-root)"},
			"write_idle_timeout": {"1m", "(default)"},
			"policy":             {goodPolicy, "(" + cfg + ":2)"},
			"upstream.url":       {"https://pypi.org/", "(default)"},
		} {
			if got := lines[key]; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("check prints %s as %q; want %q\n%s", key, got, want, out)
			}
		}
	})
	t.Run("memory limit and its origin", func(t *testing.T) {
		base := "listen: 127.0.0.1:0\ndata_dir: data\ntrust:\n  trusted_root: " + root + "\n"
		t.Setenv("GOMEMLIMIT", "1GiB")
		cfg := write("mem-file.yaml", base+"memory_limit: 300MiB\n")
		code, out, errOut := runPipgate(t, "serve", "--config", cfg, "--config.check")
		if code != 0 {
			t.Fatalf("exit %d; want 0\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		if !regexp.MustCompile(`(?m)^memory_limit +300MiB +\(`+regexp.QuoteMeta(cfg)+`:5\)$`).MatchString(out) ||
			!strings.Contains(out, "note: memory_limit 300MiB overrides GOMEMLIMIT=1GiB\n") {
			t.Errorf("stdout\n%s\nwant memory_limit 300MiB from line 5 and a note that it overrides GOMEMLIMIT", out)
		}
		cfg = write("mem-env.yaml", base)
		code, out, errOut = runPipgate(t, "serve", "--config", cfg, "--config.check")
		if code != 0 {
			t.Fatalf("exit %d; want 0\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		if !regexp.MustCompile(`(?m)^memory_limit +\(the Go runtime's\) +\(\$GOMEMLIMIT=1GiB, left to the Go runtime\)$`).MatchString(out) {
			t.Errorf("stdout\n%s\nwant memory_limit left to GOMEMLIMIT", out)
		}
		cfg = write("mem-small.yaml", base+"memory_limit: 100MiB\n")
		code, out, errOut = runPipgate(t, "serve", "--config", cfg, "--config.check")
		if want := cfg + ":5: memory_limit: 100MiB is below cache.page_memory (64MiB) plus 64MiB for the server's own heap and requests"; code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, stderr\n%s\nwant 1 and %q\nstdout: %s", code, errOut, want, out)
		}
	})
	_ = key
}
