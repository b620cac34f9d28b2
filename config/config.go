// Package config reads pipgate's server configuration: the YAML file (or the
// embedded defaults) and the serve flags over it, validated into typed
// options. Every problem is an [*Error] that says where it is
// ("FILE:LINE: path: message", or "--flag: message").
package config

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

	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

// Config is the server configuration file (product.md "Server configuration").
// Relative paths in it resolve against the folder of the file; without a file
// (embedded defaults) against the working directory.
type Config struct {
	// Listen is the index server's address: PIP_INDEX_URL=http://<listen>/simple/.
	Listen string `yaml:"listen"`
	// DataDir holds the bbolt database and the file blobs.
	DataDir string `yaml:"data_dir"`
	// Upstream is the index pipgate mirrors (one upstream, named "default").
	Upstream Upstream `yaml:"upstream"`
	// Upstreams replaces Upstream with several indexes, each owning the
	// project names its Projects match (product.md "Several upstreams").
	Upstreams []UpstreamEntry `yaml:"upstreams"`
	// Trust selects the Sigstore trusted root.
	Trust Trust `yaml:"trust"`
	// Policy is the policy file; empty: the built-in default (observe only).
	Policy string `yaml:"policy"`
	// MetricsListen serves /metrics on its own address; empty: on Listen.
	MetricsListen string `yaml:"metrics_listen"`
	// AuditLog is "-" for stdout, a file path, or "" for none.
	AuditLog string `yaml:"audit_log"`
	// Verification tunes eager verification at index time.
	Verification Verification `yaml:"verification"`
	// ShutdownGrace is how long in-flight requests get on SIGINT/SIGTERM.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// WriteIdleTimeout drops a file download whose client takes no data
	// for this long.
	WriteIdleTimeout Duration `yaml:"write_idle_timeout"`
	// Egress is the HTTPS egress proxy mode (off when Listen is empty).
	Egress Egress `yaml:"egress"`
	// TLS serves Listen over HTTPS when Cert and Key are set.
	TLS TLS `yaml:"tls"`
	// Cache bounds the blob store.
	Cache Cache `yaml:"cache"`
	// MemoryLimit is the Go runtime's soft memory limit (the collector
	// works harder above it; nothing fails). Unset: derived, see
	// [Config.EffectiveMemoryLimit].
	MemoryLimit ByteSize `yaml:"memory_limit"`

	// path is the file the config was read from ("" for embedded defaults).
	path string
	// file is the config file as given on the command line, for messages.
	file string
	// lines maps a YAML path ("upstream.url") to its line in the file.
	lines map[string]int
	// set maps a YAML path to the serve flag ("--upstream") or environment
	// variable ("$PIPGATE_UPSTREAM") that set it.
	set map[string]string
	// notes are things Load changed that serve logs and the check prints.
	notes []string
	// memLimit is the soft memory limit serve applies, resolved by validate.
	memLimit MemoryLimit
}

// UpstreamEntry is one item of "upstreams:".
type UpstreamEntry struct {
	// Name names the upstream in metrics, logs, the status page and cache
	// keys: lower-case letters, digits, "-" and "_".
	Name string `yaml:"name"`
	// URL is the base URL: simple index at <url>simple/, Integrity API at <url>integrity/.
	URL string `yaml:"url"`
	// Projects are the names this upstream owns (PEP 503-normalised, globs
	// allowed); empty: it serves every name no upstream owns, if it is the
	// first such entry.
	Projects []string `yaml:"projects"`
	// FileHosts are the hosts files may be fetched from besides URL's own.
	FileHosts []string `yaml:"file_hosts"`
	// IndexTTL is how long a project page is fresh; unset or 0s: 10m.
	IndexTTL Duration `yaml:"index_ttl"`
	// Timeout bounds one upstream request; unset or 0s: 30s.
	Timeout Duration `yaml:"timeout"`
	// Username turns on HTTP basic auth, sent only to URL's own origin.
	Username string `yaml:"username"`
	// PasswordFile holds the password (one line); or PasswordEnv names the
	// environment variable that does. Exactly one with Username.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
}

// maxPasswordBytes bounds a password file.
const maxPasswordBytes = 4 << 10

// Password reads the entry's password from its file or environment
// variable; "" without Username. The error never contains the password;
// PasswordKey names the key it is about.
func (e UpstreamEntry) Password() (string, error) {
	switch {
	case e.Username == "":
		return "", nil
	case e.PasswordFile != "":
		data, err := readLimited(e.PasswordFile, maxPasswordBytes)
		if err != nil {
			return "", fmt.Errorf("cannot read %s: %s", e.PasswordFile, PathErrorText(err))
		}
		pw := strings.TrimRight(string(data), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("%s is empty", e.PasswordFile)
		}
		if strings.ContainsAny(pw, "\r\n") {
			return "", fmt.Errorf("%s: want the password on one line", e.PasswordFile)
		}
		return pw, nil
	default:
		pw := os.Getenv(e.PasswordEnv)
		if pw == "" {
			return "", fmt.Errorf("environment variable %s is unset or empty", e.PasswordEnv)
		}
		return pw, nil
	}
}

// PasswordKey is the key Password's error is about.
func (e UpstreamEntry) PasswordKey() string {
	if e.PasswordFile != "" {
		return "password_file"
	}
	return "password_env"
}

// UpstreamPath is the YAML path of key in the i-th upstream.
func (c *Config) UpstreamPath(i int, key string) string {
	if len(c.Upstreams) == 0 {
		return "upstream." + key
	}
	return fmt.Sprintf("upstreams[%d].%s", i, key)
}

// UpstreamList returns the configured upstreams in order: the entries of
// "upstreams:", or the single "upstream:" named "default".
func (c *Config) UpstreamList() []UpstreamEntry {
	if len(c.Upstreams) > 0 {
		return c.Upstreams
	}
	u := c.Upstream
	return []UpstreamEntry{{Name: upstream.DefaultName, URL: u.URL, FileHosts: u.FileHosts, IndexTTL: u.IndexTTL, Timeout: u.Timeout}}
}

// TLS is the "tls:" section: HTTPS on the index listener.
type TLS struct {
	// Cert and Key are PEM files (the certificate chain, leaf first, and its
	// private key). Both empty: plain HTTP. Reread on SIGHUP; a pair that
	// does not load keeps the old one.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName is the host name (or IP address) clients use to reach the
	// listener, which the certificate must cover, at start and on reload.
	// Empty: the host of Listen when it is a name; when that is an IP
	// address too, no name is checked.
	ServerName string `yaml:"server_name"`
}

// Cache is the "cache:" section: bounds of the blob store and page memory.
type Cache struct {
	// MaxSize bounds the bytes of file blobs; above it the least recently
	// used blobs are evicted. 0: no limit.
	MaxSize ByteSize `yaml:"max_size"`
	// MaxFileSize bounds one file or .metadata download whose size the
	// index does not give (the index size bounds it when given).
	MaxFileSize ByteSize `yaml:"max_file_size"`
	// PageMemory bounds the memory of project pages kept in RAM (decoded
	// and rendered, least recently used evicted first).
	PageMemory ByteSize `yaml:"page_memory"`
	// Shared is a blob store several replicas share, behind each one's
	// local blobs (product.md "Several replicas"); unset: none.
	Shared Shared `yaml:"shared"`
}

// Shared is the "cache.shared:" section.
type Shared struct {
	// S3 is an S3-compatible bucket; nil: no shared store.
	S3 *SharedS3 `yaml:"s3"`
}

// SharedS3 is "cache.shared.s3:". Credentials come from the standard AWS
// chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web
// identity, container and instance roles), never from this file.
type SharedS3 struct {
	// Endpoint is the S3 API base URL of an S3-compatible server
	// (http://minio:9000); empty: AWS.
	Endpoint string `yaml:"endpoint"`
	// Bucket is the bucket's name (required).
	Bucket string `yaml:"bucket"`
	// Prefix goes before every key: <prefix>blobs/sha256/ab/<sha256>; a
	// missing trailing "/" is added.
	Prefix string `yaml:"prefix"`
	// Region is the bucket's region; empty: AWS_REGION or the profile's,
	// else us-east-1.
	Region string `yaml:"region"`
	// PathStyle addresses <endpoint>/<bucket>/<key> (most S3-compatible
	// servers) instead of <bucket>.<endpoint>/<key>. Unset: true with an
	// Endpoint, false for AWS.
	PathStyle *bool `yaml:"path_style"`
	// Timeout bounds the wait for the bucket's answer and any stall in a
	// body; past it the lookup is a miss and counts towards the breaker.
	// Unset or 0s: 5s.
	Timeout Duration `yaml:"timeout"`
	// FillWait is how long a replica that misses a blob another replica is
	// already fetching (it claimed the fill in the bucket) waits for that
	// replica's upload before it fetches the blob from the upstream too.
	// The client gets no bytes meanwhile, so keep it under the installers'
	// read timeout (pip: 15s). Unset or 0s: 5s.
	FillWait Duration `yaml:"fill_wait"`
}

// Upstream is the "upstream:" section: the one upstream index.
type Upstream struct {
	// URL is the upstream base URL: simple index at <url>simple/, Integrity API at <url>integrity/.
	URL string `yaml:"url"`
	// FileHosts are the hosts files may be fetched from besides URL's own.
	FileHosts []string `yaml:"file_hosts"`
	// IndexTTL is how long a project page is fresh.
	IndexTTL Duration `yaml:"index_ttl"`
	// Timeout bounds one upstream request (headers and idle reads for files).
	Timeout Duration `yaml:"timeout"`
}

// Trust is the "trust:" section: the Sigstore trusted root.
type Trust struct {
	// TrustedRoot is a Sigstore trusted_root.json; empty: public-good via TUF.
	TrustedRoot string `yaml:"trusted_root"`
}

// Verification is the "verification:" section: eager verification.
type Verification struct {
	// EagerReleases is how many of a project's newest releases are verified
	// when its page is served, so the resolver sees yanks on the first request.
	// 0 turns eager verification off (downloads are still verified).
	EagerReleases int `yaml:"eager_releases"`
	// EagerConcurrency bounds parallel verifications for one page.
	EagerConcurrency int `yaml:"eager_concurrency"`
	// EagerBudget bounds how long a page waits for eager verification.
	EagerBudget Duration `yaml:"eager_budget"`
}

// Egress is the "egress:" section: the HTTPS egress proxy.
type Egress struct {
	// Listen is the egress proxy address, e.g. 127.0.0.1:3128; empty: off.
	Listen string `yaml:"listen"`
	// CACert and CAKey are the PEM CA used to mint per-host certificates.
	CACert string `yaml:"ca_cert"`
	CAKey  string `yaml:"ca_key"`
	// Intercept are the host names decrypted and served by pipgate.
	Intercept []string `yaml:"intercept"`
}

// Default is the embedded default configuration; configs/pipgate.yaml
// must decode to exactly this (TestExampleConfigMatchesDefault).
func Default() Config {
	return Config{
		Listen:  "127.0.0.1:8080",
		DataDir: "./pipgate-data",
		Upstream: Upstream{
			URL:       "https://pypi.org/",
			FileHosts: []string{"files.pythonhosted.org"},
			IndexTTL:  Duration(10 * time.Minute),
			Timeout:   Duration(30 * time.Second),
		},
		Policy:   "",
		AuditLog: "-",
		Verification: Verification{
			EagerReleases:    1,
			EagerConcurrency: 4,
			EagerBudget:      Duration(5 * time.Second),
		},
		ShutdownGrace:    Duration(15 * time.Second),
		WriteIdleTimeout: Duration(time.Minute),
		Cache:            Cache{MaxFileSize: 4 << 30, PageMemory: 64 << 20},
		Egress: Egress{
			Intercept: []string{"pypi.org", "files.pythonhosted.org"},
		},
	}
}

// maxConfigBytes bounds a config file; real ones are a few hundred bytes.
const maxConfigBytes = 1 << 20

// ServeFlags are the settings a serve flag and an environment variable
// override: Flag (without "--") and Env name the overrides of the value at
// YAML path Path. Flags win over the environment, the environment over the
// file, the file over the embedded defaults.
var ServeFlags = []struct{ Flag, Env, Path, Usage string }{
	{"listen", "PIPGATE_LISTEN", "listen", "index listener address, e.g. 127.0.0.1:8080 (overrides listen and $PIPGATE_LISTEN)"},
	{"upstream", "PIPGATE_UPSTREAM", "upstream.url", "upstream index base URL, e.g. https://pypi.org/ (overrides upstream.url and $PIPGATE_UPSTREAM)"},
	{"trusted-root", "PIPGATE_TRUSTED_ROOT", "trust.trusted_root", "Sigstore trusted_root.json (overrides trust.trusted_root and $PIPGATE_TRUSTED_ROOT)"},
	{"data-dir", "PIPGATE_DATA_DIR", "data_dir", "data directory (overrides data_dir and $PIPGATE_DATA_DIR)"},
	{"policy", "PIPGATE_POLICY", "policy", "policy file (overrides policy and $PIPGATE_POLICY)"},
}

// Load reads, validates and resolves the config at path, with the
// environment variables of ServeFlags (set and not empty) over the file's
// values and the serve flags given on the command line (keyed by flag name)
// over both. Path "" gives the embedded defaults; their relative paths, and
// those from flags and the environment, resolve against the working
// directory. Every error is a joined list of [*Error].
func Load(path string, flags map[string]string) (*Config, error) {
	cfg, err := LoadForCheck(path, flags)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadForCheck is [Load] for --config.check: it goes as far as it can and
// reports every problem in one run. When the file parses as YAML it returns
// the config as far as its values decode (defaults where they do not) along
// with every problem of the file and of the overrides, so the check can go
// on to the files the config names. On a YAML syntax error, an unreadable
// file or a second document the config is nil.
func LoadForCheck(path string, flags map[string]string) (*Config, error) {
	cfg := Default()
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	base := cwd
	var probs []*Error
	if path != "" {
		data, err := readLimited(path, maxConfigBytes)
		if err != nil {
			return nil, &Error{File: path, Msg: PathErrorText(err)}
		}
		decoded, err := decodeConfig(data, &cfg)
		if !decoded {
			return nil, withFile(path, err)
		}
		probs = problemsIn(err)
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		cfg.path, cfg.file = abs, path
		base = filepath.Dir(abs)
	}
	cfg.resolve(base)
	for _, f := range ServeFlags {
		v, ok := flags[f.Flag]
		origin := "--" + f.Flag
		if !ok {
			v = os.Getenv(f.Env)
			ok, origin = v != "", "$"+f.Env
		}
		if !ok {
			continue
		}
		if cfg.set == nil {
			cfg.set = map[string]string{}
		}
		cfg.set[f.Path] = origin
		switch f.Path {
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
	decoding := probs
	for _, v := range cfg.validate() {
		if !coveredBy(v.Path, decoding) {
			probs = append(probs, v)
		}
	}
	if len(probs) > 0 {
		return &cfg, cfg.locate(path, probs)
	}
	return &cfg, nil
}

// coveredBy reports whether a problem at path (or under it, or above it)
// is already among probs: a value that did not decode is not also reported
// as, say, "must be positive" for the default left in its place.
func coveredBy(path string, probs []*Error) bool {
	if path == "" {
		return false
	}
	for _, p := range probs {
		if p.Path == "" {
			continue
		}
		if p.Path == path || strings.HasPrefix(path, p.Path+".") || strings.HasPrefix(path, p.Path+"[") ||
			strings.HasPrefix(p.Path, path+".") || strings.HasPrefix(p.Path, path+"[") {
			return true
		}
	}
	return false
}

// problemsIn returns the [*Error]s of a joined error.
func problemsIn(err error) []*Error {
	var out []*Error
	for _, e := range splitErrors(err) {
		var ce *Error
		if errors.As(e, &ce) {
			out = append(out, ce)
		}
	}
	return out
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
func (c *Config) validate() []*Error {
	var errs []*Error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &Error{Path: field, Msg: fmt.Sprintf(format, args...)})
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
	if u, problem := absoluteHTTPURL(c.Upstream.URL); problem != "" {
		bad("upstream.url", "%s", problem)
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
	c.validateUpstreams(bad)
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
	if c.TLS.ServerName != "" && c.TLS.Cert == "" {
		bad("tls.server_name", "only used with tls.cert and tls.key")
	}
	if c.Cache.MaxFileSize <= 0 {
		bad("cache.max_file_size", "must be positive")
	}
	if c.Cache.PageMemory <= 0 {
		bad("cache.page_memory", "must be positive")
	}
	if c.WriteIdleTimeout <= 0 {
		bad("write_idle_timeout", "must be positive")
	}
	if c.Cache.MaxSize < 0 {
		bad("cache.max_size", "must not be negative")
	}
	if s3 := c.Cache.Shared.S3; s3 != nil {
		c.validateSharedS3(s3, bad)
	}
	c.resolveMemoryLimit(os.Getenv("GOMEMLIMIT"), bad)
	return errs
}

// validateSharedS3 checks "cache.shared.s3:" and fills in its defaults.
func (c *Config) validateSharedS3(s3 *SharedS3, bad func(field, format string, args ...any)) {
	const p = "cache.shared.s3."
	switch {
	case s3.Bucket == "":
		bad(p+"bucket", "required")
	case !validBucketName(s3.Bucket):
		bad(p+"bucket", "want an S3 bucket name (3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit), got %q", s3.Bucket)
	}
	if s3.Endpoint != "" {
		u, problem := absoluteHTTPURL(s3.Endpoint)
		switch {
		case problem != "":
			bad(p+"endpoint", "%s", problem)
		case u.User != nil:
			bad(p+"endpoint", "must not carry credentials (they come from the AWS chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or a role)")
		case u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
			bad(p+"endpoint", "want the server's base URL without a path, query or fragment, got %q", u.Redacted())
		}
	}
	if strings.HasPrefix(s3.Prefix, "/") || strings.Contains(s3.Prefix, "//") || strings.ContainsAny(s3.Prefix, "\x00\r\n") || len(s3.Prefix) > 512 {
		bad(p+"prefix", "want a key prefix such as \"pipgate/\" (no leading '/', no '//', at most 512 bytes), got %q", s3.Prefix)
	} else if s3.Prefix != "" && !strings.HasSuffix(s3.Prefix, "/") {
		s3.Prefix += "/"
	}
	if strings.ContainsAny(s3.Region, "/: ") {
		bad(p+"region", "want a region name such as eu-west-1, got %q", s3.Region)
	}
	if s3.PathStyle == nil {
		ps := s3.Endpoint != ""
		s3.PathStyle = &ps
	}
	if s3.Timeout < 0 {
		bad(p+"timeout", "must not be negative")
	} else if s3.Timeout == 0 {
		s3.Timeout = Duration(5 * time.Second)
	}
	if s3.FillWait < 0 {
		bad(p+"fill_wait", "must not be negative")
	} else if s3.FillWait == 0 {
		s3.FillWait = Duration(5 * time.Second)
	}
}

// validBucketName applies S3's bucket naming rules (the subset every
// S3-compatible server accepts).
func validBucketName(s string) bool {
	if len(s) < 3 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && (c != '.' && c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return !strings.Contains(s, "..")
}

// resolve makes every relative path absolute against base.
func (c *Config) resolve(base string) {
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
	for i := range c.Upstreams {
		abs(&c.Upstreams[i].PasswordFile)
	}
}

// validateUpstreams checks "upstreams:" (and that it is not combined with
// "upstream:" or --upstream), and fills in each entry's defaults.
func (c *Config) validateUpstreams(bad func(field, format string, args ...any)) {
	if l := c.lines["upstreams"]; l > 0 {
		if u := c.lines["upstream"]; u > 0 {
			bad("upstreams", "cannot be combined with upstream: (line %d); use one of them", u)
		}
		if f, ok := c.set["upstream.url"]; ok {
			bad("upstreams", "cannot be combined with %s", f)
		}
		if len(c.Upstreams) == 0 {
			bad("upstreams", "want at least one upstream")
		}
	}
	names := map[string]int{}
	catchAll := -1
	for i := range c.Upstreams {
		e := &c.Upstreams[i]
		f := func(field string) string { return fmt.Sprintf("upstreams[%d].%s", i, field) }
		if len(e.Projects) == 0 {
			if catchAll >= 0 {
				bad(fmt.Sprintf("upstreams[%d]", i), "would serve nothing: it has no projects, and upstreams[%d] already serves every name no upstream owns", catchAll)
			} else {
				catchAll = i
			}
		}
		switch {
		case e.Name == "":
			bad(f("name"), "required")
		case !upstream.ValidName(e.Name):
			bad(f("name"), "want lower-case letters, digits, '-' and '_' (at most 64, starting with a letter or digit), got %q", e.Name)
		default:
			if j, dup := names[e.Name]; dup {
				bad(f("name"), "%q is already the name of upstreams[%d]", e.Name, j)
			}
			names[e.Name] = i
		}
		if e.URL == "" {
			bad(f("url"), "required")
		} else if u, problem := absoluteHTTPURL(e.URL); problem != "" {
			bad(f("url"), "%s", problem)
		} else if u.User != nil {
			bad(f("url"), "must not carry credentials (use username with password_file or password_env)")
		} else if u.RawQuery != "" || u.Fragment != "" {
			bad(f("url"), "must not carry a query or fragment")
		} else {
			given := e.URL
			if !strings.HasSuffix(e.URL, "/") {
				e.URL += "/"
			}
			if base, ok := strings.CutSuffix(e.URL, "/simple/"); ok {
				e.URL = base + "/"
				c.notes = append(c.notes, fmt.Sprintf("%s %q is a simple index (the URL pip takes); using its base %q", f("url"), given, e.URL))
			}
		}
		for j, p := range e.Projects {
			if _, err := pypi.ParseNamePattern(p); err != nil {
				bad(fmt.Sprintf("upstreams[%d].projects[%d]", i, j), "%q: %v", p, err)
			}
		}
		for j, h := range e.FileHosts {
			if h == "" || strings.ContainsAny(h, "/:@ ") {
				bad(fmt.Sprintf("upstreams[%d].file_hosts[%d]", i, j), "want a host name, got %q", h)
			}
		}
		if e.IndexTTL < 0 {
			bad(f("index_ttl"), "must not be negative")
		} else if e.IndexTTL == 0 {
			e.IndexTTL = Duration(10 * time.Minute)
		}
		if e.Timeout < 0 {
			bad(f("timeout"), "must not be negative")
		} else if e.Timeout == 0 {
			e.Timeout = Duration(30 * time.Second)
		}
		switch {
		case e.Username == "" && (e.PasswordFile != "" || e.PasswordEnv != ""):
			bad(f("username"), "required with password_file or password_env")
		case e.Username != "" && e.PasswordFile == "" && e.PasswordEnv == "":
			bad(f("username"), "is set: give password_file or password_env")
		case e.PasswordFile != "" && e.PasswordEnv != "":
			bad(f("password_env"), "give password_file or password_env, not both")
		}
		if strings.ContainsAny(e.Username, ":\r\n") {
			bad(f("username"), "must not contain ':' or a line break")
		}
		if e.PasswordEnv != "" && !validEnvName(e.PasswordEnv) {
			bad(f("password_env"), "want an environment variable name, got %q", e.PasswordEnv)
		}
	}
}

// validEnvName reports whether s is a portable environment variable name.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// absoluteHTTPURL parses raw as an absolute http or https URL; problem says
// what is wrong with it otherwise (credentials redacted), "" when nothing is.
func absoluteHTTPURL(raw string) (u *url.URL, problem string) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Sprintf("want an absolute http(s) URL (%v)", redactURLError(err))
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Sprintf("want an absolute http(s) URL, got %q", u.Redacted())
	}
	return u, ""
}

// redactURLError drops the URL from a url.Parse error (it quotes the URL,
// which may carry a password).
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Path is the absolute path of the file the config was read from; "" for
// the embedded defaults.
func (c *Config) Path() string { return c.path }

// Notes are the adjustments Load made (a pip-style upstream URL turned into
// its base), for serve to log and the check to print.
func (c *Config) Notes() []string { return c.notes }

// Overridden reports whether a serve flag or an environment variable set
// any value.
func (c *Config) Overridden() bool { return len(c.set) > 0 }

// At returns an [*Error] for the value at path: located at the flag that
// set it or at its line in the config file.
func (c *Config) At(path, format string, args ...any) *Error {
	e := &Error{File: c.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if f, ok := c.set[path]; ok {
		e.Flag = f
	} else {
		e.Line = c.lineOf(path)
	}
	return e
}
