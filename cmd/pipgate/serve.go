package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pipgate/pipgate/audit"
	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/config"
	"github.com/pipgate/pipgate/egress"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/internal/logbuf"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/policy/reload"
	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/proxy"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pipgate serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (YAML); empty: embedded defaults")
	check := fs.Bool("config.check", false, "load everything serve would (config, policy, trust root, TLS files, data dir), then exit 0 or 1")
	logFormat := fs.String("log.format", "json", "log format: json or text")
	logLevel := fs.String("log.level", "info", "log level: debug, info, warn or error")
	pprofListen := fs.String("debug.pprof-listen", "", "serve net/http/pprof on this address (keep it on loopback); empty: off")
	for _, f := range config.ServeFlags {
		fs.String(f.Flag, "", f.Usage)
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pipgate serve [--config FILE] [--listen ADDR] [--upstream URL] [--trusted-root FILE]")
		fmt.Fprintln(stderr, "                     [--data-dir DIR] [--policy FILE] [--config.check] [--log.format json|text] [--log.level LEVEL]")
		fmt.Fprintln(stderr, "                     [--debug.pprof-listen ADDR]")
		fmt.Fprintln(stderr, "\nFlags override the environment (PIPGATE_LISTEN, PIPGATE_UPSTREAM, PIPGATE_TRUSTED_ROOT,")
		fmt.Fprintln(stderr, "PIPGATE_DATA_DIR, PIPGATE_POLICY), which overrides the config file; without --config the")
		fmt.Fprintln(stderr, "embedded defaults apply.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "pipgate serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "debug.pprof-listen" {
			set[f.Name] = f.Value.String()
		}
	})
	if *check {
		return runCheck(ctx, *configPath, set, stdout, stderr)
	}
	cfg, err := config.Load(*configPath, set)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	// The log is buffered (one write a second, or at once from a warning
	// up) and written out when serve returns.
	logw := logbuf.New(stderr, logbuf.Interval)
	defer func() { _ = logw.Close() }()
	logger, err := newLogger(logw, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "pipgate serve: %v\n", err)
		return 2
	}
	for _, n := range cfg.Notes() {
		logger.Warn("config adjusted", "note", n)
	}
	if err := serve(ctx, cfg, *pprofListen, logger, stdout); err != nil {
		logger.Error("pipgate stopped", "err", err)
		printConfigErrors(stderr, err)
		return 1
	}
	return 0
}

// printConfigErrors writes one line per joined error: config errors as they
// render ("FILE:LINE: path: message"), anything else after "pipgate serve: ".
func printConfigErrors(w io.Writer, err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			printConfigErrors(w, e)
		}
		return
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		fmt.Fprintln(w, ce.Error())
	} else {
		fmt.Fprintf(w, "pipgate serve: %v\n", err)
	}
}

// policyProblems renders a policy.Load error in the config's format: each
// problem at FILE:LINE of the policy file; an I/O error at the policy key.
func policyProblems(cfg *config.Config, err error) error {
	probs := policy.Problems(err)
	if len(probs) == 0 {
		return cfg.At("policy", "cannot read %s: %s", cfg.Policy, config.PathErrorText(err))
	}
	out := make([]error, 0, len(probs))
	for _, pr := range probs {
		out = append(out, &config.Error{File: relPath(cfg.Policy), Line: pr.Line, Path: pr.Path, Msg: pr.Msg})
	}
	return errors.Join(out...)
}

// relPath shortens an absolute path under the working directory.
func relPath(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return p
}

// runCheck is serve --config.check: it prints every effective setting with
// where it came from, then every problem it finds in one run (the config
// file's, then those of the files it names), one line each, and exits 0 or
// 1.
func runCheck(ctx context.Context, path string, flags map[string]string, stdout, stderr io.Writer) int {
	cfg, err := config.LoadForCheck(path, flags)
	if cfg == nil {
		printConfigErrors(stderr, err)
		return 1
	}
	for _, n := range cfg.Notes() {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	skip := func(path string) bool { return config.HasProblemAt(err, path) }
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, s := range cfg.Settings() {
		v := s.Value
		if skip(s.Path) {
			// A value that did not decode is the default here: never
			// print it as the file's. The problem below quotes it.
			v = "(invalid: see below)"
		}
		fmt.Fprintf(tw, "%s\t%s\t(%s)\n", s.Path, v, s.Source)
	}
	_ = tw.Flush()
	if cerr := checkConfig(ctx, cfg, stdout, skip); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	what := displayPath(cfg.Path())
	if cfg.Overridden() && cfg.Path() == "" {
		what = "flags and environment over the embedded defaults"
	}
	fmt.Fprintf(stdout, "%s: ok\n", what)
	return 0
}

// checkConfig loads everything serve would, without listening or writing
// anything: the trust root, the policy, the TLS pair, the egress CA, and
// whether the data directory can be written. It leaves out a value the
// config already has a problem with (skip).
func checkConfig(ctx context.Context, cfg *config.Config, stdout io.Writer, skip func(path string) bool) error {
	var errs []error
	switch {
	case skip("trust.trusted_root"): // reported with the config's problems
	case cfg.Trust.TrustedRoot != "":
		if _, err := provenance.NewTrustSource(ctx, provenance.TrustSourceOptions{TrustedRootPath: cfg.Trust.TrustedRoot}); err != nil {
			errs = append(errs, cfg.At("trust.trusted_root", "%s", trustRootProblem(err)))
		}
	default:
		fmt.Fprintf(stdout, "note: trust.trusted_root is empty: the Sigstore public-good root is fetched through TUF at start (not checked here); offline, the snapshot embedded in pipgate (%s) is used until TUF answers\n",
			provenance.EmbeddedRoot().Date.Format(time.DateOnly))
	}
	if cfg.Policy != "" && !skip("policy") {
		if _, err := policy.Load(cfg.Policy); err != nil {
			errs = append(errs, policyProblems(cfg, err))
		}
	}
	for i, e := range cfg.UpstreamList() {
		key := cfg.UpstreamPath(i, e.PasswordKey())
		if skip(key) || skip(cfg.UpstreamPath(i, "username")) {
			continue
		}
		if _, err := e.Password(); err != nil {
			errs = append(errs, cfg.At(key, "%v", err))
		}
	}
	if cfg.TLS.Cert != "" && !skip("tls.cert") && !skip("tls.key") {
		if _, err := loadCertificate(cfg.TLS.Cert, cfg.TLS.Key, tlsServerName(cfg), time.Now()); err != nil {
			errs = append(errs, cfg.At("tls.cert", "%v", err))
		}
	}
	if cfg.Egress.Listen != "" && !skip("egress.ca_cert") && !skip("egress.ca_key") {
		if _, err := egress.LoadCA(cfg.Egress.CACert, cfg.Egress.CAKey); err != nil {
			errs = append(errs, cfg.At("egress.ca_cert", "%v", err))
		}
	}
	if !skip("data_dir") {
		if err := checkWritableDir(cfg.DataDir); err != nil {
			errs = append(errs, cfg.At("data_dir", "%v", err))
		}
	}
	return errors.Join(errs...)
}

// trustRootProblem says in one line why a pinned trusted root did not load.
func trustRootProblem(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, provenance.ErrNoTrustRoot.Error()+": ")
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return "cannot read " + pe.Path + ": " + pe.Err.Error()
	}
	return strings.ReplaceAll(msg, "\n", "; ")
}

// checkWritableDir reports whether dir (or, when it does not exist yet, the
// nearest existing folder above it, where serve would create it) takes a
// new file. It leaves nothing behind.
func checkWritableDir(dir string) error {
	d := dir
	for {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("%s: no existing parent folder", dir)
		}
		d = parent
	}
	f, err := os.CreateTemp(d, ".pipgate-check-*")
	if err != nil {
		if d != dir {
			return fmt.Errorf("%s does not exist and %s is not writable: %s", dir, d, config.PathErrorText(err))
		}
		return fmt.Errorf("%s is not writable: %s", dir, config.PathErrorText(err))
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

func displayPath(p string) string {
	if p == "" {
		return "embedded defaults"
	}
	return p
}

// printErrors writes one line per joined error.
func printErrors(w io.Writer, prefix string, err error) {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {

		for _, e := range joined.Unwrap() {
			printErrors(w, prefix, e)
		}
		return
	}
	fmt.Fprintf(w, "%s: %v\n", prefix, err)
}

// newLogger returns the server's logger on w, which flushes w after every
// warning or error.
func newLogger(w *logbuf.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(logbuf.NewJSON(w, opts)), nil
	case "text":
		return slog.New(logbuf.NewHandler(slog.NewTextHandler(w, opts), w)), nil
	}
	return nil, fmt.Errorf("--log.format: want json or text, got %q", format)
}

// verifierAdapter presents a provenance.TrustSource as a gate.Verifier.
type verifierAdapter struct{ ts *provenance.TrustSource }

func (a verifierAdapter) Facts(prov []byte, filename, sha256 string) pypi.Facts {
	return a.ts.Verifier().Facts(prov, provenance.Dist{Filename: filename, SHA256: sha256})
}

func (a verifierAdapter) TrustRootDigest() string { return a.ts.Digest() }

// app is the wired server: the handlers and everything cleanup must close.
type app struct {
	cfg      *config.Config
	log      *slog.Logger
	proxy    *proxy.Server
	egress   *egress.Proxy
	metrics  http.Handler
	policy   *reload.Reloader
	audit    *audit.Log
	trust    *provenance.TrustSource
	store    *cache.Store
	certs    *certReloader // nil: plain HTTP
	cleanups []func()
}

func (a *app) cleanup() {
	for i := len(a.cleanups) - 1; i >= 0; i-- {
		a.cleanups[i]()
	}
}

// wire builds the application from cfg. On error everything built so far is
// closed again.
func wire(ctx context.Context, cfg *config.Config, logger *slog.Logger, stdout io.Writer) (_ *app, err error) {
	a := &app{cfg: cfg, log: logger}
	defer func() {
		if err != nil {
			a.cleanup() // a, not the named result: "return nil, err" has cleared that
		}
	}()
	reg := prometheus.NewRegistry()
	a.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if cfg.TLS.Cert != "" {
		a.certs, err = newCertReloader(certReloaderOptions{CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key,
			ServerName: tlsServerName(cfg), Logger: logger.With("component", "tls"), Registerer: reg})
		if err != nil {
			return nil, cfg.At("tls.cert", "%v", err)
		}
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	a.store, err = cache.Open(cache.Options{
		Dir:          cfg.DataDir,
		Logger:       logger.With("component", "cache"),
		MaxBlobBytes: int64(cfg.Cache.MaxSize),
		Registerer:   reg,
		Check:        dbChecker(), // a damaged pipgate.db is moved aside, never a crash
	})
	if err != nil {
		return nil, fmt.Errorf("opening the cache: %w", err)
	}
	a.cleanups = append(a.cleanups, func() { _ = a.store.Close() })
	shared, err := openSharedStore(ctx, cfg, a.store, logger.With("component", "shared"), reg)
	if err != nil {
		return nil, err
	}
	if shared != nil {
		a.cleanups = append(a.cleanups, shared.Close) // after the proxy's fills, before the store
	}

	a.trust, err = provenance.NewTrustSource(ctx, provenance.TrustSourceOptions{
		TrustedRootPath: cfg.Trust.TrustedRoot,
		CacheDir:        filepath.Join(cfg.DataDir, "tuf"),
		Logger:          logger.With("component", "trust"),
		Registerer:      reg,
	})
	if err != nil {
		if cfg.Trust.TrustedRoot == "" {
			return nil, fmt.Errorf("trust root (pass --trusted-root FILE, a Sigstore trusted_root.json, or set PIPGATE_TRUSTED_ROOT or trust.trusted_root in the config): %s",
				strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		return nil, cfg.At("trust.trusted_root", "%s", trustRootProblem(err))
	}

	router, err := newRouter(cfg, reg, logger.With("component", "upstream"))
	if err != nil {
		return nil, err
	}

	a.policy, err = reload.New(reload.Options{
		Path:       cfg.Policy,
		Logger:     logger.With("component", "policy"),
		Registerer: reg,
	})
	if err != nil {
		return nil, policyProblems(cfg, err)
	}

	a.audit, err = audit.New(audit.Options{Path: cfg.AuditLog, Stdout: stdout})
	if err != nil {
		return nil, fmt.Errorf("audit_log: %w", err)
	}
	a.audit.SetLogger(logger.With("component", "audit"))
	a.cleanups = append(a.cleanups, func() { _ = a.audit.Close() })

	var metricsOnMain http.Handler
	if cfg.MetricsListen == "" {
		metricsOnMain = a.metrics
	}
	a.proxy, err = proxy.New(proxy.Options{
		// The gate: one download's lookups, verification, decisions and fills.
		Options: gate.Options{
			Upstream:         router,
			Store:            a.store,
			Verifier:         verifierAdapter{a.trust},
			Policy:           a.policy,
			Shared:           sharedOption(shared),
			Logger:           logger.With("component", "proxy"),
			Registerer:       reg,
			IndexTTL:         cfg.Upstream.IndexTTL.D(),
			EagerReleases:    cfg.Verification.EagerReleases,
			EagerConcurrency: cfg.Verification.EagerConcurrency,
			EagerBudget:      cfg.Verification.EagerBudget.D(),
			MaxFileSize:      int64(cfg.Cache.MaxFileSize),
			PageCacheBytes:   int64(cfg.Cache.PageMemory),
		},
		// The HTTP server's own.
		MetricsHandler: metricsOnMain,
		Audit:          a.audit,
		Version:        version,
		UpstreamName:   upstreamSummary(cfg),
		TrustInfo:      func() (string, time.Time) { return a.trust.Describe(), a.trust.LastRefresh() },
		// serve applied it (setMemoryLimit) before wire.
		MemoryLimit:       debug.SetMemoryLimit(-1),
		MemoryLimitOrigin: cfg.EffectiveMemoryLimit().Origin,
		WriteIdleTimeout:  cfg.WriteIdleTimeout.D(),
	})
	if err != nil {
		return nil, err
	}
	a.cleanups = append(a.cleanups, a.proxy.Close) // before the store closes

	if cfg.Egress.Listen != "" {
		ca, err := egress.LoadCA(cfg.Egress.CACert, cfg.Egress.CAKey)
		if err != nil {
			return nil, fmt.Errorf("egress: %w", err)
		}
		a.egress, err = egress.New(egress.Options{
			Handler:    a.proxy.TunnelHandler(),
			CA:         ca,
			Intercept:  cfg.Egress.Intercept,
			Logger:     logger.With("component", "egress"),
			Registerer: reg,
			OnRefuse: func(r egress.Refusal) {
				a.audit.LogEgressRefusal(r.Client, r.Method, r.Host, string(r.Reason))
			},
		})
		if err != nil {
			return nil, fmt.Errorf("egress: %w", err)
		}
	}
	return a, nil
}

// serve runs the listeners until ctx ends, then shuts down gracefully.
// pprofListen is the --debug.pprof-listen flag (not a config setting:
// profiling is opt-in per run).
func serve(ctx context.Context, cfg *config.Config, pprofListen string, logger *slog.Logger, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	setMemoryLimit(logger, cfg.EffectiveMemoryLimit())
	a, err := wire(ctx, cfg, logger, stdout)
	if err != nil {
		return err
	}
	defer a.cleanup()

	type listener struct {
		name string
		ln   net.Listener
		srv  *http.Server
		tls  bool
	}
	var lns []listener
	defer func() {
		for _, l := range lns {
			_ = l.ln.Close()
		}
	}()
	listen := func(name, addr string, h http.Handler) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		lns = append(lns, listener{name: name, ln: ln, srv: newHTTPServer(h, logger)})
		return nil
	}
	if err := listen("listen", cfg.Listen, a.proxy); err != nil {
		return err
	}
	if a.certs != nil {
		lns[0].srv.TLSConfig = a.certs.TLSConfig()
		lns[0].tls = true
		lns[0].ln = httpsOnlyListener{lns[0].ln} // plain HTTP gets a 400 naming the https:// URL
	}
	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.metrics)
		if err := listen("metrics_listen", cfg.MetricsListen, mux); err != nil {
			return err
		}
	}
	if a.egress != nil {
		if err := listen("egress.listen", cfg.Egress.Listen, a.egress); err != nil {
			return err
		}
	}
	if pprofListen != "" {
		if err := listen("debug.pprof-listen", pprofListen, pprofHandler()); err != nil {
			return err
		}
	}
	adminLn, err := listenAdmin(cfg.DataDir, logger)
	if err != nil {
		return err
	}
	if adminLn != nil {
		lns = append(lns, listener{name: "admin", ln: adminLn, srv: newHTTPServer(adminHandler(a.store, int64(cfg.Cache.MaxSize), a.proxy.DecisionHistory), logger)})
	}

	// Background work: trust-root refresh and policy file watching.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = a.trust.Run(ctx)
	}()
	if cfg.Policy != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = a.policy.Watch(ctx, 5*time.Second)
		}()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: reloading the policy and the TLS certificate, reopening the audit log")
				if a.certs != nil {
					if err := a.certs.Reload(); err != nil {
						logger.Error("tls certificate reload failed; keeping the old certificate", "err", err)
					}
				}
				if cfg.Policy != "" {
					if err := a.policy.Reload(); err != nil {
						logger.Error("policy reload failed; keeping the old policy", "err", err)
					}
				}
				if err := a.audit.Reopen(); err != nil {
					logger.Error("reopening the audit log", "err", err)
				}
			}
		}
	}()

	errc := make(chan error, len(lns))
	for _, l := range lns {
		logger.Info("listening", "listener", l.name, "addr", l.ln.Addr().String())
		go func() {
			serveFn := func() error { return l.srv.Serve(l.ln) }
			if l.tls {
				serveFn = func() error { return l.srv.ServeTLS(l.ln, "", "") }
			}
			if err := serveFn(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", l.name, err)
			}
		}()
	}
	scheme := "http://"
	if lns[0].tls {
		scheme = "https://"
	}
	logger.InfoContext(logbuf.Flushing(ctx), "pipgate ready", "version", version, "index_url", scheme+lns[0].ln.Addr().String()+"/simple/",
		"upstreams", upstreamSummary(cfg), "policy", a.policy.Current().Source(), "trust_root", a.trust.Describe(), "trust_root_refreshed", a.trust.LastRefresh())

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "grace_seconds", cfg.ShutdownGrace.D().Seconds())
	case runErr = <-errc:
	}
	a.proxy.SetReady(false)
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace.D())
	defer scancel()
	for _, l := range lns {
		if err := l.srv.Shutdown(sctx); err != nil {
			logger.Warn("shutdown did not finish in time", "listener", l.name, "err", err)
			_ = l.srv.Close()
		}
	}
	if a.egress != nil {
		// Shutdown does not end hijacked CONNECT tunnels; Close does.
		_ = a.egress.Close()
	}
	cancel()
	wg.Wait()
	return runErr
}

// setMemoryLimit applies the soft memory limit Load resolved
// (config.Config.EffectiveMemoryLimit: memory_limit, else GOMEMLIMIT,
// else a share of the cgroup v2 memory limit, else 224 MiB) and logs it
// with its origin. From GOMEMLIMIT the runtime has applied it already. It
// is a target for the collector, not a cap: past it, the collector works
// harder (at most half the CPU), nothing fails. go_gc_gomemlimit_bytes
// (the Go collector's) exports the value in force.
func setMemoryLimit(logger *slog.Logger, m config.MemoryLimit) {
	if m.Origin == config.MemoryLimitFromEnv {
		logger.Info("memory limit", "origin", m.Origin, "limit_bytes", debug.SetMemoryLimit(-1), "detail", m.Detail)
		return
	}
	debug.SetMemoryLimit(m.Bytes)
	logger.Info("memory limit", "origin", m.Origin, "limit_bytes", m.Bytes, "detail", m.Detail)
}

// newRouter builds one upstream client per configured upstream (reading
// passwords from their files or environment variables) and the router that
// sends each project to its owner.
func newRouter(cfg *config.Config, reg prometheus.Registerer, logger *slog.Logger) (*upstream.Router, error) {
	var routes []upstream.Route
	pages := upstream.NewPageMemory(0) // shared: the bound is the server's
	for i, e := range cfg.UpstreamList() {
		pw, err := e.Password()
		if err != nil {
			return nil, cfg.At(cfg.UpstreamPath(i, e.PasswordKey()), "%v", err)
		}
		if e.Username != "" && strings.HasPrefix(e.URL, "http://") {
			logger.Warn("upstream credentials are sent over plain http", "upstream", e.Name)
		}
		c, err := upstream.New(upstream.Options{
			Name:       e.Name,
			URL:        e.URL,
			FileHosts:  e.FileHosts,
			Timeout:    e.Timeout.D(),
			IndexTTL:   e.IndexTTL.D(),
			Username:   e.Username,
			Password:   pw,
			Registerer: reg,
			Logger:     logger,
			UserAgent:  "pipgate/" + version,
			PageMemory: pages,
		})
		if err != nil {
			return nil, cfg.At(cfg.UpstreamPath(i, "url"), "%v", err)
		}
		routes = append(routes, upstream.Route{Client: c, Projects: e.Projects})
	}
	r, err := upstream.NewRouter(upstream.RouterOptions{Routes: routes})
	if err != nil {
		return nil, cfg.At("upstreams", "%v", err)
	}
	return r, nil
}

// upstreamSummary names the upstreams for logs and the status page: the
// URL of the one upstream, or "name=url" for each; never a credential.
func upstreamSummary(cfg *config.Config) string {
	if len(cfg.Upstreams) == 0 {
		return cfg.Upstream.URL
	}
	parts := make([]string, 0, len(cfg.Upstreams))
	for _, e := range cfg.Upstreams {
		parts = append(parts, e.Name+"="+e.URL)
	}
	return strings.Join(parts, ", ")
}

// newHTTPServer sets the timeouts every listener needs. There is no global
// WriteTimeout: it would cut large wheel downloads.
func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
