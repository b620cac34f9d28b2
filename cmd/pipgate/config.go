package main

import (
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
	// TLS serves Listen over HTTPS when Cert and Key are set.
	TLS tlsConfig `yaml:"tls"`
	// Cache bounds the blob store.
	Cache cacheConfig `yaml:"cache"`

	// path is the file the config was read from ("" for embedded defaults).
	path string
	// file is the config file as given on the command line, for messages.
	file string
	// lines maps a YAML path ("upstream.url") to its line in the file.
	lines map[string]int
	// flags maps a YAML path to the serve flag that set it ("--upstream").
	flags map[string]string
	// notes are things loadConfig changed that serve logs and the check prints.
	notes []string
}

type tlsConfig struct {
	// Cert and Key are PEM files (the certificate chain, leaf first, and its
	// private key). Both empty: plain HTTP. Reread on SIGHUP; a pair that
	// does not load keeps the old one.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

type cacheConfig struct {
	// MaxSize bounds the bytes of file blobs; above it the least recently
	// used blobs are evicted. 0: no limit.
	MaxSize byteSize `yaml:"max_size"`
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

// serveFlags maps each serve flag that overrides a config value to that
// value's YAML path.
var serveFlags = []struct{ flag, path, usage string }{
	{"listen", "listen", "index listener address, e.g. 127.0.0.1:8080 (overrides listen)"},
	{"upstream", "upstream.url", "upstream index base URL, e.g. https://pypi.org/ (overrides upstream.url)"},
	{"trusted-root", "trust.trusted_root", "Sigstore trusted_root.json (overrides trust.trusted_root)"},
	{"data-dir", "data_dir", "data directory (overrides data_dir)"},
	{"policy", "policy", "policy file (overrides policy)"},
}

// loadConfig reads, validates and resolves the config at path; path "" gives
// the embedded defaults (resolved against the working directory).
func loadConfig(path string) (*config, error) { return loadConfigFlags(path, nil) }

// loadConfigFlags is loadConfig with the values of serve flags given on the
// command line (keyed by flag name, see serveFlags) applied over the file's.
// Relative paths from flags resolve against the working directory. Every
// error is a joined list of [*configError].
func loadConfigFlags(path string, flags map[string]string) (*config, error) {
	cfg := defaultConfig()
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	base := cwd
	if path != "" {
		data, err := readLimited(path, maxConfigBytes)
		if err != nil {
			return nil, &configError{File: path, Msg: unwrapPathError(err)}
		}
		if err := decodeConfig(data, &cfg); err != nil {
			return nil, withFile(path, err)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		cfg.path, cfg.file = abs, path
		base = filepath.Dir(abs)
	}
	cfg.resolve(base)
	for _, f := range serveFlags {
		v, ok := flags[f.flag]
		if !ok {
			continue
		}
		if cfg.flags == nil {
			cfg.flags = map[string]string{}
		}
		cfg.flags[f.path] = "--" + f.flag
		switch f.path {
		case "listen":
			cfg.Listen = v
		case "upstream.url":
			cfg.Upstream.URL = v
		case "trust.trusted_root":
			cfg.Trust.TrustedRoot = absFrom(cwd, v)
		case "data_dir":
			cfg.DataDir = absFrom(cwd, v)
		case "policy":
			cfg.Policy = absFrom(cwd, v)
		}
	}
	if errs := cfg.validate(); len(errs) > 0 {
		return nil, cfg.locate(path, errs)
	}
	return &cfg, nil
}

func absFrom(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
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
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// validate collects every problem, each naming its YAML path. It also
// normalises upstream.url (a trailing slash; a pip-style .../simple/ URL
// becomes its base) and records what it changed in c.notes.
func (c *config) validate() []*configError {
	var errs []*configError
	bad := func(field, format string, args ...any) {
		errs = append(errs, &configError{Path: field, Msg: fmt.Sprintf(format, args...)})
	}
	checkAddr := func(field, addr string, required bool) {
		if addr == "" {
			if required {
				bad(field, "required")
			}
			return
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			var ae *net.AddrError
			if errors.As(err, &ae) {
				bad(field, "want host:port, got %q (%s)", addr, ae.Err)
			} else {
				bad(field, "want host:port, got %q", addr)
			}
			return
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad(field, "bad port %q", port)
		}
	}
	checkAddr("listen", c.Listen, true)
	checkAddr("metrics_listen", c.MetricsListen, false)
	if c.DataDir == "" {
		bad("data_dir", "required")
	}
	if u, err := url.Parse(c.Upstream.URL); err != nil {
		bad("upstream.url", "want an absolute http(s) URL, got %q", c.Upstream.URL)
	} else if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("upstream.url", "want an absolute http(s) URL, got %q", c.Upstream.URL)
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		bad("upstream.url", "must not carry a query, fragment or credentials")
	} else {
		given := c.Upstream.URL
		if !strings.HasSuffix(c.Upstream.URL, "/") {
			c.Upstream.URL += "/"
		}
		if base, ok := strings.CutSuffix(c.Upstream.URL, "/simple/"); ok {
			c.Upstream.URL = base + "/"
			c.notes = append(c.notes, fmt.Sprintf("upstream.url %q is a simple index (the URL pip takes); using its base %q: pipgate reads <url>simple/ and <url>integrity/", given, c.Upstream.URL))
		}
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
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		if c.TLS.Cert == "" {
			bad("tls.cert", "required when tls.key is set")
		} else {
			bad("tls.key", "required when tls.cert is set")
		}
	}
	if c.Cache.MaxSize < 0 {
		bad("cache.max_size", "must not be negative")
	}
	return errs
}

// resolve makes every relative path absolute against base.
func (c *config) resolve(base string) {
	abs := func(p *string) {
		if *p != "-" {
			*p = absFrom(base, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.Trust.TrustedRoot)
	abs(&c.Policy)
	abs(&c.AuditLog)
	abs(&c.Egress.CACert)
	abs(&c.Egress.CAKey)
	abs(&c.TLS.Cert)
	abs(&c.TLS.Key)
}
