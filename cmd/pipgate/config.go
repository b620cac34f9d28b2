package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// config is the server configuration file (product.md "Server configuration").
// Relative paths in it resolve against the folder of the file; without a file
// (embedded defaults) against the working directory.
type config struct {
	// Listen is the index server's address: PIP_INDEX_URL=http://<listen>/simple/.
	Listen string `yaml:"listen"`
	// DataDir holds the bbolt database and the file blobs.
	DataDir string `yaml:"data_dir"`
	// Upstream is the index pipgate mirrors.
	Upstream upstreamConfig `yaml:"upstream"`
	// Trust selects the Sigstore trusted root.
	Trust trustConfig `yaml:"trust"`
	// Policy is the policy file; empty: the built-in default (observe only).
	Policy string `yaml:"policy"`
	// MetricsListen serves /metrics on its own address; empty: on Listen.
	MetricsListen string `yaml:"metrics_listen"`
	// AuditLog is "-" for stdout, a file path, or "" for none.
	AuditLog string `yaml:"audit_log"`
	// Verification tunes eager verification at index time.
	Verification verificationConfig `yaml:"verification"`
	// ShutdownGrace is how long in-flight requests get on SIGINT/SIGTERM.
	ShutdownGrace duration `yaml:"shutdown_grace"`
	// Egress is the HTTPS egress proxy mode (off when Listen is empty).
	Egress egressConfig `yaml:"egress"`

	// path is the file the config was read from ("" for embedded defaults).
	path string
}

type upstreamConfig struct {
	// URL is the upstream base URL: simple index at <url>simple/, Integrity API at <url>integrity/.
	URL string `yaml:"url"`
	// FileHosts are the hosts files may be fetched from besides URL's own.
	FileHosts []string `yaml:"file_hosts"`
	// IndexTTL is how long a project page is fresh.
	IndexTTL duration `yaml:"index_ttl"`
	// Timeout bounds one upstream request (headers and idle reads for files).
	Timeout duration `yaml:"timeout"`
}

type trustConfig struct {
	// TrustedRoot is a Sigstore trusted_root.json; empty: public-good via TUF.
	TrustedRoot string `yaml:"trusted_root"`
}

type verificationConfig struct {
	// EagerReleases is how many of a project's newest releases are verified
	// when its page is served, so the resolver sees yanks on the first request.
	// 0 turns eager verification off (downloads are still verified).
	EagerReleases int `yaml:"eager_releases"`
	// EagerConcurrency bounds parallel verifications for one page.
	EagerConcurrency int `yaml:"eager_concurrency"`
	// EagerBudget bounds how long a page waits for eager verification.
	EagerBudget duration `yaml:"eager_budget"`
}

type egressConfig struct {
	// Listen is the egress proxy address, e.g. 127.0.0.1:3128; empty: off.
	Listen string `yaml:"listen"`
	// CACert and CAKey are the PEM CA used to mint per-host certificates.
	CACert string `yaml:"ca_cert"`
	CAKey  string `yaml:"ca_key"`
	// Intercept are the host names decrypted and served by pipgate.
	Intercept []string `yaml:"intercept"`
}

// duration is a time.Duration written as a Go duration string ("30s").
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return fmt.Errorf("line %d: want a duration string like \"30s\", got %q", n.Line, n.Value)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d duration) D() time.Duration { return time.Duration(d) }

// defaultConfig is the embedded default configuration; configs/pipgate.yaml
// must decode to exactly this (TestExampleConfigMatchesDefault).
func defaultConfig() config {
	return config{
		Listen:  "127.0.0.1:8080",
		DataDir: "./pipgate-data",
		Upstream: upstreamConfig{
			URL:       "https://pypi.org/",
			FileHosts: []string{"files.pythonhosted.org"},
			IndexTTL:  duration(10 * time.Minute),
			Timeout:   duration(30 * time.Second),
		},
		Policy:   "",
		AuditLog: "-",
		Verification: verificationConfig{
			EagerReleases:    1,
			EagerConcurrency: 4,
			EagerBudget:      duration(5 * time.Second),
		},
		ShutdownGrace: duration(15 * time.Second),
		Egress: egressConfig{
			Intercept: []string{"pypi.org", "files.pythonhosted.org"},
		},
	}
}

// maxConfigBytes bounds a config file; real ones are a few hundred bytes.
const maxConfigBytes = 1 << 20

// loadConfig reads, validates and resolves the config at path; path "" gives
// the embedded defaults (resolved against the working directory).
func loadConfig(path string) (*config, error) {
	cfg := defaultConfig()
	base, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if path != "" {
		data, err := readLimited(path, maxConfigBytes)
		if err != nil {
			return nil, err
		}
		if err := decodeConfig(data, &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		cfg.path = abs
		base = filepath.Dir(abs)
	}
	if err := cfg.validate(); err != nil {
		if path != "" {
			return nil, prefixErrors(path, err)
		}
		return nil, err
	}
	cfg.resolve(base)
	return &cfg, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// decodeConfig decodes one strict YAML document over cfg. An empty document
// keeps the defaults; unknown keys and a second document are errors.
func decodeConfig(data []byte, cfg *config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return cleanYAMLError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document; want exactly one")
	}
	return nil
}

// cleanYAMLError turns yaml.v3's "yaml: unmarshal errors:\n  line 3: …" into
// one problem per line.
func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, e := range te.Errors {
			errs = append(errs, errors.New(strings.TrimSpace(e)))
		}
		return errors.Join(errs...)
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// prefixErrors puts "path: " in front of every joined error.
func prefixErrors(path string, err error) error {
	var out []error
	for _, line := range strings.Split(err.Error(), "\n") {
		out = append(out, fmt.Errorf("%s: %s", path, line))
	}
	return errors.Join(out...)
}

// validate collects every problem, each naming its YAML path.
func (c *config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	checkAddr := func(field, addr string, required bool) {
		if addr == "" {
			if required {
				bad(field, "required")
			}
			return
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			bad(field, "%v", err)
			return
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad(field, "bad port %q", port)
		}
		_ = host
	}
	checkAddr("listen", c.Listen, true)
	checkAddr("metrics_listen", c.MetricsListen, false)
	if c.DataDir == "" {
		bad("data_dir", "required")
	}
	if u, err := url.Parse(c.Upstream.URL); err != nil {
		bad("upstream.url", "%v", err)
	} else if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("upstream.url", "want an absolute http(s) URL, got %q", c.Upstream.URL)
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		bad("upstream.url", "must not carry a query, fragment or credentials")
	} else if !strings.HasSuffix(c.Upstream.URL, "/") {
		c.Upstream.URL += "/"
	}
	for i, h := range c.Upstream.FileHosts {
		if h == "" || strings.ContainsAny(h, "/:@ ") {
			bad(fmt.Sprintf("upstream.file_hosts[%d]", i), "want a host name, got %q", h)
		}
	}
	if c.Upstream.IndexTTL < 0 {
		bad("upstream.index_ttl", "must not be negative")
	}
	if c.Upstream.Timeout <= 0 {
		bad("upstream.timeout", "must be positive")
	}
	if c.Verification.EagerReleases < 0 {
		bad("verification.eager_releases", "must not be negative")
	}
	if c.Verification.EagerConcurrency < 1 {
		bad("verification.eager_concurrency", "must be at least 1")
	}
	if c.Verification.EagerBudget < 0 {
		bad("verification.eager_budget", "must not be negative")
	}
	if c.ShutdownGrace < 0 {
		bad("shutdown_grace", "must not be negative")
	}
	if c.Egress.Listen != "" {
		checkAddr("egress.listen", c.Egress.Listen, true)
		if c.Egress.CACert == "" {
			bad("egress.ca_cert", "required when egress.listen is set (create one with 'pipgate ca init')")
		}
		if c.Egress.CAKey == "" {
			bad("egress.ca_key", "required when egress.listen is set")
		}
		if len(c.Egress.Intercept) == 0 {
			bad("egress.intercept", "required when egress.listen is set")
		}
	}
	for i, h := range c.Egress.Intercept {
		if h == "" || strings.ContainsAny(h, "/:@ ") {
			bad(fmt.Sprintf("egress.intercept[%d]", i), "want a host name, got %q", h)
		}
	}
	return errors.Join(errs...)
}

// resolve makes every relative path absolute against base.
func (c *config) resolve(base string) {
	abs := func(p *string) {
		if *p != "" && *p != "-" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.Trust.TrustedRoot)
	abs(&c.Policy)
	abs(&c.AuditLog)
	abs(&c.Egress.CACert)
	abs(&c.Egress.CAKey)
}
