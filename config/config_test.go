package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pipgate/pipgate/policy"
)

func TestExampleConfigMatchesDefault(t *testing.T) {
	data, err := os.ReadFile("../configs/pipgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := Default()
	got.Upstream.FileHosts = nil
	got.Egress.Intercept = nil
	if _, err := decodeConfig(data, &got); err != nil {
		t.Fatal(err)
	}
	got.lines = nil
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("configs/pipgate.yaml decodes to\n%+v\nwant Default()\n%+v", got, want)
	}
}

func TestLoadConfigResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pipgate.yaml")
	body := "data_dir: data\npolicy: policy.yaml\ntrust:\n  trusted_root: /abs/root.json\naudit_log: \"-\"\nupstream:\n  url: http://127.0.0.1:9/base\n  index_ttl: 1m\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
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
	cfg, err := Load("", nil)
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
		{"unknown key", "listen: 127.0.0.1:8080\nlisen: x\n", `F:2: lisen: unknown field (did you mean listen?)`},
		{"unknown nested key", "upstream:\n  urls: x\n", `F:2: upstream.urls: unknown field (did you mean url?)`},
		{"key in the wrong section", "index_ttl: 5m\n", `F:1: index_ttl: unknown field (did you mean upstream.index_ttl?)`},
		{"unknown key, nothing close", "upstream:\n  zzzzzzzz: 1\n", `F:2: upstream.zzzzzzzz: unknown field (want url, file_hosts, index_ttl or timeout)`},
		{"int duration", "upstream:\n  timeout: 30\n", `F:2: upstream.timeout: want a duration like "30s" or "10m", got 30`},
		{"bad duration", "upstream:\n  index_ttl: ten\n", `F:2: upstream.index_ttl: want a duration like "30s" or "10m", got "ten"`},
		{"string for int", "verification:\n  eager_releases: many\n", `F:2: verification.eager_releases: want an integer, got "many"`},
		{"list for string", "listen: [a, b]\n", `F:1: listen: want a string, got a list`},
		{"scalar for section", "upstream: https://pypi.org/\n", `F:1: upstream: want a mapping, got "https://pypi.org/"`},
		{"bad size", "cache:\n  max_size: 5 parsecs\n", `F:2: cache.max_size: want a size like "50GiB" or "512MiB" (0: no limit), got "5 parsecs"`},
		{"bad url", "upstream:\n  url: ftp://x/\n", `F:2: upstream.url: want an absolute http(s) URL, got "ftp://x/"`},
		{"bad listen", "listen: nonsense\n", `F:1: listen: want host:port, got "nonsense" (missing port in address)`},
		{"egress without CA", "egress:\n  listen: 127.0.0.1:3128\n",
			"F:1: egress.ca_cert: required when egress.listen is set (create one with 'pipgate ca init')\nF:1: egress.ca_key: required when egress.listen is set"},
		{"tls key without cert", "tls:\n  key: k.pem\n", "F:1: tls.cert: required when tls.key is set"},
		{"bad file host", "upstream:\n  file_hosts: [\"a/b\"]\n", `F:2: upstream.file_hosts[0]: want a host name, got "a/b"`},
		{"two documents", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", "F:2: a second YAML document; want exactly one"},
		{"syntax", "listen: [\n", "F:1: YAML: did not find expected node content"},
		{"duplicate key", "listen: a:1\nlisten: b:2\n", `F:2: listen: duplicate key (first at line 1)`},
		{"zero timeout", "upstream:\n  timeout: 0s\n", "F:2: upstream.timeout: must be positive"},
		{"zero page memory", "cache:\n  page_memory: 0\n", "F:2: cache.page_memory: must be positive"},
		{"not a mapping", "- a\n", "F:1: want a mapping, got a list"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, nil)
			if err == nil {
				t.Fatalf("Load accepted %q", c.body)
			}
			got := strings.ReplaceAll(err.Error(), path, "F")
			if got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
			if strings.Contains(got, "!!") || strings.Contains(got, "config.") || strings.Contains(got, "time.Duration") {
				t.Errorf("Go or YAML type names in %q", got)
			}
		})
	}
}

func TestLoadConfigUpstreams(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pipgate.yaml")
	body := `upstreams:
  - name: internal
    url: https://pypi.internal.example/base
    projects: ["acme-*", "Internal_Lib"]
    username: ci
    password_file: secrets/pw
    index_ttl: 1m
  - name: pypi
    url: https://pypi.org/
    file_hosts: [files.pythonhosted.org]
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ups := cfg.UpstreamList()
	if len(ups) != 2 {
		t.Fatalf("got %d upstreams; want 2", len(ups))
	}
	in, pub := ups[0], ups[1]
	if in.Name != "internal" || in.URL != "https://pypi.internal.example/base/" || in.PasswordFile != filepath.Join(dir, "secrets/pw") {
		t.Errorf("internal = %+v", in)
	}
	if in.IndexTTL.D() != time.Minute || in.Timeout.D() != 30*time.Second || pub.IndexTTL.D() != 10*time.Minute {
		t.Errorf("durations: internal ttl %v timeout %v, pypi ttl %v; want 1m, 30s (default), 10m (default)",
			in.IndexTTL.D(), in.Timeout.D(), pub.IndexTTL.D())
	}
	if _, err := in.Password(); err == nil || !strings.Contains(err.Error(), "cannot read "+filepath.Join(dir, "secrets/pw")) {
		t.Errorf("password() with a missing file: got %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets/pw"), []byte("pa55word\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pw, err := in.Password(); err != nil || pw != "pa55word" {
		t.Errorf("password() = %q, %v; want the file's line without its newline", pw, err)
	}

	// The single upstream: is one upstream named "default".
	cfg, err = Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ups := cfg.UpstreamList(); len(ups) != 1 || ups[0].Name != "default" || ups[0].URL != "https://pypi.org/" {
		t.Errorf("UpstreamList() of the defaults = %+v", ups)
	}
}

func TestLoadBadUpstreams(t *testing.T) {
	const secret = "pw-never-printed"
	for _, c := range []struct{ name, body, want string }{
		{"both", "upstream:\n  url: https://a/\nupstreams:\n  - name: b\n    url: https://b/\n",
			"bad.yaml:3: upstreams: cannot be combined with upstream: (line 1); use one of them"},
		{"both, reversed", "upstreams:\n  - name: b\n    url: https://b/\nupstream:\n  url: https://a/\n",
			"bad.yaml:1: upstreams: cannot be combined with upstream: (line 4)"},
		{"empty list", "upstreams: []\n", "bad.yaml:1: upstreams: want at least one upstream"},
		{"unknown key", "upstreams:\n  - name: a\n    url: https://a/\n    pasword_file: x\n",
			`bad.yaml:4: upstreams[0].pasword_file: unknown field (did you mean password_file?)`},
		{"no name", "upstreams:\n  - name: a\n    url: https://a/\n  - url: https://b/\n", "bad.yaml:4: upstreams[1].name: required"},
		{"bad name", "upstreams:\n  - name: Private Index\n    url: https://a/\n", `bad.yaml:2: upstreams[0].name: want lower-case letters`},
		{"same name", "upstreams:\n  - name: a\n    url: https://a/\n  - name: a\n    url: https://b/\n",
			`bad.yaml:4: upstreams[1].name: "a" is already the name of upstreams[0]`},
		{"no url", "upstreams:\n  - name: a\n", "bad.yaml:2: upstreams[0].url: required"},
		{"credentials in url", "upstreams:\n  - name: a\n    url: https://ci:" + secret + "@a/\n",
			"bad.yaml:3: upstreams[0].url: must not carry credentials (use username with password_file or password_env)"},
		{"credentials in a bad url", "upstreams:\n  - name: a\n    url: ftp://ci:" + secret + "@a/\n",
			`bad.yaml:3: upstreams[0].url: want an absolute http(s) URL, got "ftp://ci:xxxxx@a/"`},
		{"bad glob", "upstreams:\n  - name: a\n    url: https://a/\n    projects: [ok, \"acme-[x\"]\n",
			`bad.yaml:4: upstreams[0].projects[1]: "acme-[x": invalid glob`},
		// A glob that matches no normalised name would leave the private
		// name to the public upstream: dependency confusion by typo.
		{"never-matching glob", "upstreams:\n  - name: a\n    url: https://a/\n    projects: [\"internal[_]lib\"]\n  - name: b\n    url: https://b/\n",
			`bad.yaml:4: upstreams[0].projects[0]: "internal[_]lib": glob never matches a normalised name`},
		{"bad file host", "upstreams:\n  - name: a\n    url: https://a/\n    file_hosts: [\"a/b\"]\n", `bad.yaml:4: upstreams[0].file_hosts[0]: want a host name`},
		{"negative ttl", "upstreams:\n  - name: a\n    url: https://a/\n    index_ttl: -1s\n", "bad.yaml:4: upstreams[0].index_ttl: must not be negative"},
		{"int timeout", "upstreams:\n  - name: a\n    url: https://a/\n    timeout: 30\n", `bad.yaml:4: upstreams[0].timeout: want a duration`},
		{"username alone", "upstreams:\n  - name: a\n    url: https://a/\n    username: ci\n",
			"bad.yaml:4: upstreams[0].username: is set: give password_file or password_env"},
		{"password alone", "upstreams:\n  - name: a\n    url: https://a/\n    password_env: PW\n",
			"bad.yaml:2: upstreams[0].username: required with password_file or password_env"},
		{"two passwords", "upstreams:\n  - name: a\n    url: https://a/\n    username: ci\n    password_env: PW\n    password_file: pw\n",
			"bad.yaml:5: upstreams[0].password_env: give password_file or password_env, not both"},
		{"two catch-alls", "upstreams:\n  - name: a\n    url: https://a/\n  - name: b\n    url: https://b/\n",
			"bad.yaml:4: upstreams[1]: would serve nothing: it has no projects, and upstreams[0] already serves every name no upstream owns"},
		{"bad env name", "upstreams:\n  - name: a\n    url: https://a/\n    username: ci\n    password_env: 1-PW\n",
			`bad.yaml:5: upstreams[0].password_env: want an environment variable name`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, nil)
			if err == nil {
				t.Fatalf("Load accepted %q", c.body)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), path[:len(path)-len("bad.yaml")]) {
				t.Errorf("got %q; want it to start with the path and contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error %q shows the password", err)
			}
		})
	}
}

func TestUpstreamFlagWithUpstreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pipgate.yaml")
	if err := os.WriteFile(path, []byte("upstreams:\n  - name: pypi\n    url: https://pypi.org/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, map[string]string{"upstream": "https://mirror.example/"})
	if want := "pipgate.yaml:1: upstreams: cannot be combined with --upstream"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v; want %q", err, want)
	}
}

// TestTypoWordingMatchesPolicy holds the one wording for both files: a
// typo in the server config reads as one in the policy does.
func TestTypoWordingMatchesPolicy(t *testing.T) {
	_, perr := policy.Parse([]byte("version: 1\ndefaults:\n  requre: none\n"))
	path := filepath.Join(t.TempDir(), "pipgate.yaml")
	if err := os.WriteFile(path, []byte("upstream:\n  timout: 30s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, cerr := Load(path, nil)
	if perr == nil || cerr == nil {
		t.Fatalf("policy error %v, config error %v; want both", perr, cerr)
	}
	for _, c := range []struct{ got, want string }{
		{perr.Error(), "line 3: defaults.requre: unknown field (did you mean require?)"},
		{cerr.Error(), path + ":2: upstream.timout: unknown field (did you mean timeout?)"},
	} {
		if c.got != c.want {
			t.Errorf("got %q; want %q", c.got, c.want)
		}
	}
}

// TestOverridePrecedence: flags over the environment over the file over the
// embedded defaults, and each setting says where it came from.
func TestOverridePrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pipgate.yaml")
	if err := os.WriteFile(path, []byte("listen: 127.0.0.1:1111\ndata_dir: from-file\npolicy: file-policy.yaml\nupstream:\n  url: https://file.example/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIPGATE_LISTEN", "127.0.0.1:2222")
	t.Setenv("PIPGATE_DATA_DIR", "from-env")
	t.Setenv("PIPGATE_UPSTREAM", "https://env.example/")
	t.Setenv("PIPGATE_POLICY", "") // empty: unset
	t.Setenv("PIPGATE_TRUSTED_ROOT", "")
	cfg, err := Load(path, map[string]string{"upstream": "https://flag.example/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"listen", cfg.Listen, "127.0.0.1:2222"},
		{"data_dir", cfg.DataDir, filepath.Join(cwd, "from-env")}, // the environment's relative paths: against the working directory
		{"policy", cfg.Policy, filepath.Join(dir, "file-policy.yaml")},
		{"upstream.url", cfg.Upstream.URL, "https://flag.example/"},
		{"trust.trusted_root", cfg.Trust.TrustedRoot, ""},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q; want %q", c.name, c.got, c.want)
		}
	}
	sources := map[string]string{}
	for _, s := range cfg.Settings() {
		sources[s.Path] = s.Source
	}
	for p, want := range map[string]string{
		"listen":              "$PIPGATE_LISTEN",
		"data_dir":            "$PIPGATE_DATA_DIR",
		"upstream.url":        "--upstream",
		"policy":              path + ":3",
		"upstream.timeout":    "default",
		"trust.trusted_root":  "default",
		"cache.max_file_size": "default",
	} {
		if sources[p] != want {
			t.Errorf("source of %s = %q; want %q", p, sources[p], want)
		}
	}
	if _, ok := sources["upstreams"]; ok {
		t.Errorf("settings list upstreams, which the file does not use")
	}

	// A bad value from the environment is reported at the variable.
	t.Setenv("PIPGATE_LISTEN", "nonsense")
	_, err = Load(path, nil)
	if want := `$PIPGATE_LISTEN: want host:port, got "nonsense" (missing port in address)`; err == nil || err.Error() != want {
		t.Errorf("got %v; want %q", err, want)
	}
	// The flag wins over it, and then nothing is wrong.
	if _, err := Load(path, map[string]string{"listen": "127.0.0.1:3333"}); err != nil {
		t.Errorf("with --listen over a bad $PIPGATE_LISTEN: %v", err)
	}
}

// TestLoadForCheckReportsEverything: one run lists every problem of a file
// with several independent ones, and still returns the config so the check
// can go on to the files it names.
func TestLoadForCheckReportsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pipgate.yaml")
	body := "listen: nonsense\n" + // 1: validation
		"lisen: x\n" + // 2: typo
		"upstream:\n" +
		"  timeout: 30\n" + // 4: wrong kind
		"  index_ttl: -1s\n" + // 5: validation
		"tls:\n" +
		"  key: k.pem\n" + // 7: validation (no cert)
		"verification:\n" +
		"  eager_releases: many\n" + // 9: wrong kind
		"cache:\n" +
		"  max_size: 5 parsecs\n" + // 11: wrong kind
		"trust:\n" +
		"  trusted_root: root.json\n" +
		"cache:\n" + // 14: a repeated section: yaml.v3 refuses the whole file's
		"  page_memory: 0\n" // mapping, so nothing above would be said without DropDuplicates
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadForCheck(path, nil)
	if cfg == nil {
		t.Fatalf("LoadForCheck returned no config: %v", err)
	}
	if cfg.Trust.TrustedRoot != filepath.Join(filepath.Dir(path), "root.json") {
		t.Errorf("trust.trusted_root = %q; want the file's value, resolved", cfg.Trust.TrustedRoot)
	}
	want := strings.Join([]string{
		`F:1: listen: want host:port, got "nonsense" (missing port in address)`,
		`F:2: lisen: unknown field (did you mean listen?)`,
		`F:4: upstream.timeout: want a duration like "30s" or "10m", got 30`,
		`F:5: upstream.index_ttl: must not be negative`,
		`F:6: tls.cert: required when tls.key is set`, // at its section: tls.cert is not in the file
		`F:9: verification.eager_releases: want an integer, got "many"`,
		`F:11: cache.max_size: want a size like "50GiB" or "512MiB" (0: no limit), got "5 parsecs"`,
		`F:14: cache: duplicate key (first at line 10)`,
	}, "\n")
	if got := strings.ReplaceAll(err.Error(), path, "F"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, p := range []string{"upstream.timeout", "tls.cert", "tls", "listen"} {
		if !HasProblemAt(err, p) {
			t.Errorf("HasProblemAt(%q) = false", p)
		}
	}
	// The repeated cache section marks nothing of the first one, which is
	// read (and checked).
	for _, p := range []string{"trust.trusted_root", "data_dir", "policy", "cache.page_memory"} {
		if HasProblemAt(err, p) {
			t.Errorf("HasProblemAt(%q) = true", p)
		}
	}
	if c, err := Load(path, nil); c != nil || err == nil {
		t.Errorf("Load = %v, %v; want no config and the problems", c, err)
	}
}

func TestLoadSharedS3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pipgate.yaml")
	body := "cache:\n  shared:\n    s3:\n      endpoint: http://minio:9000\n      bucket: pipgate-blobs\n      prefix: team/pipgate\n      path_style: true\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Cache.Shared.S3
	yes, no := true, false
	want := &SharedS3{Endpoint: "http://minio:9000", Bucket: "pipgate-blobs", Prefix: "team/pipgate/", PathStyle: &yes, Timeout: Duration(5 * time.Second), FillWait: Duration(5 * time.Second)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cache.shared.s3 = %+v, want %+v", got, want)
	}
	// path_style unset: path style with an endpoint (an S3-compatible
	// server), virtual-hosted for AWS.
	for _, c := range []struct {
		body string
		want *bool
	}{
		{"cache:\n  shared:\n    s3:\n      endpoint: http://s3:7070\n      bucket: b-1\n", &yes},
		{"cache:\n  shared:\n    s3:\n      bucket: b-1\n", &no},
		{"cache:\n  shared:\n    s3:\n      endpoint: http://s3:7070\n      bucket: b-1\n      path_style: false\n", &no},
	} {
		if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Cache.Shared.S3.PathStyle; got == nil || *got != *c.want {
			t.Errorf("%q: path_style %v, want %v", c.body, got, *c.want)
		}
	}
	if def, err := Load("", nil); err != nil || def.Cache.Shared.S3 != nil {
		t.Errorf("default config has a shared store: %+v, %v", def.Cache.Shared.S3, err)
	}
}

func TestLoadBadSharedS3(t *testing.T) {
	for _, c := range []struct{ name, s3, want string }{
		{"no bucket", "region: eu-west-1\n", "F:3: cache.shared.s3.bucket: required"},
		{"bad bucket", "bucket: My_Bucket\n", `F:4: cache.shared.s3.bucket: want an S3 bucket name (3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit), got "My_Bucket"`},
		{"endpoint with credentials", "bucket: b-1\n      endpoint: http://key:secret@minio:9000\n",
			"F:5: cache.shared.s3.endpoint: must not carry credentials (they come from the AWS chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or a role)"},
		{"endpoint not http", "bucket: b-1\n      endpoint: minio:9000\n", `F:5: cache.shared.s3.endpoint: want an absolute http(s) URL, got "minio:9000"`},
		{"endpoint with path", "bucket: b-1\n      endpoint: http://minio:9000/b-1\n", `F:5: cache.shared.s3.endpoint: want the server's base URL without a path, query or fragment, got "http://minio:9000/b-1"`},
		{"absolute prefix", "bucket: b-1\n      prefix: /x/\n", `F:5: cache.shared.s3.prefix: want a key prefix such as "pipgate/" (no leading '/', no '//', at most 512 bytes), got "/x/"`},
		{"negative timeout", "bucket: b-1\n      timeout: -1s\n", "F:5: cache.shared.s3.timeout: must not be negative"},
		{"typo", "bucket: b-1\n      pathstyle: true\n", "F:5: cache.shared.s3.pathstyle: unknown field (did you mean path_style?)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte("cache:\n  shared:\n    s3:\n      "+c.s3), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, nil)
			if err == nil {
				t.Fatal("Load accepted it")
			}
			if got := strings.ReplaceAll(err.Error(), path, "F"); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}
