package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigMatchesDefault(t *testing.T) {
	data, err := os.ReadFile("../../configs/pipgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := defaultConfig()
	got.Upstream.FileHosts = nil
	got.Egress.Intercept = nil
	if err := decodeConfig(data, &got); err != nil {
		t.Fatal(err)
	}
	if want := defaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("configs/pipgate.yaml decodes to\n%+v\nwant defaultConfig()\n%+v", got, want)
	}
}

func TestLoadConfigResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pipgate.yaml")
	body := "data_dir: data\npolicy: policy.yaml\ntrust:\n  trusted_root: /abs/root.json\naudit_log: \"-\"\nupstream:\n  url: http://127.0.0.1:9/base\n  index_ttl: 1m\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"data_dir", cfg.DataDir, filepath.Join(dir, "data")},
		{"policy", cfg.Policy, filepath.Join(dir, "policy.yaml")},
		{"trusted_root", cfg.Trust.TrustedRoot, "/abs/root.json"},
		{"audit_log", cfg.AuditLog, "-"},
		{"upstream.url", cfg.Upstream.URL, "http://127.0.0.1:9/base/"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q; want %q", c.name, c.got, c.want)
		}
	}
	if cfg.Upstream.IndexTTL.D() != time.Minute {
		t.Errorf("index_ttl = %v; want 1m", cfg.Upstream.IndexTTL.D())
	}
	if cfg.Upstream.Timeout.D() != 30*time.Second {
		t.Errorf("timeout = %v; want the default 30s", cfg.Upstream.Timeout.D())
	}
}

func TestLoadConfigEmbeddedDefaults(t *testing.T) {
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(cfg.DataDir) || filepath.Base(cfg.DataDir) != "pipgate-data" {
		t.Errorf("data_dir = %q; want an absolute path ending in pipgate-data", cfg.DataDir)
	}
	if cfg.Upstream.URL != "https://pypi.org/" {
		t.Errorf("upstream.url = %q", cfg.Upstream.URL)
	}
}

func TestLoadBadConfigs(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"unknown key", "listen: 127.0.0.1:8080\nlisen: x\n", "line 2: field lisen not found in type main.config"},
		{"unknown nested key", "upstream:\n  urls: x\n", "line 2: field urls not found in type main.upstreamConfig"},
		{"int duration", "upstream:\n  timeout: 30\n", `line 2: want a duration string like "30s", got "30"`},
		{"bad duration", "upstream:\n  index_ttl: ten\n", `line 2: time: invalid duration "ten"`},
		{"bad url", "upstream:\n  url: ftp://x/\n", `upstream.url: want an absolute http(s) URL, got "ftp://x/"`},
		{"bad listen", "listen: nonsense\n", "listen: address nonsense: missing port in address"},
		{"egress without CA", "egress:\n  listen: 127.0.0.1:3128\n", "egress.ca_cert: required when egress.listen is set"},
		{"bad file host", "upstream:\n  file_hosts: [\"a/b\"]\n", `upstream.file_hosts[0]: want a host name, got "a/b"`},
		{"two documents", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", "more than one YAML document"},
		{"zero timeout", "upstream:\n  timeout: 0s\n", "upstream.timeout: must be positive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(path)
			if err == nil {
				t.Fatalf("loadConfig accepted %q", c.body)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), path+": ") {
				t.Errorf("got %q; want it to start with the path and contain %q", err, c.want)
			}
		})
	}
}
