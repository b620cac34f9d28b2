// Package proxy is pipgate's index server: the simple-index routes pip and
// uv use, the file and provenance routes, health and status, error-to-status
// mapping, the access and audit logs and its metrics. Handlers parse and
// write; package gate runs the lookups, verification, decisions and fills
// they ask for. The egress proxy (package egress) is given
// [Server.TunnelHandler]; proxy knows nothing else of it.
package proxy

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/audit"
	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/gate"
	"github.com/pipgate/pipgate/policy/reload"
	"github.com/pipgate/pipgate/proxy/upstream"
)

// upstreamLister is implemented by an Upstream that can describe its
// upstreams (*upstream.Router): the status page and /readyz use it.
type upstreamLister interface {
	Upstreams() []upstream.Info
}

// healthReporter is implemented by a shared blob store that can say
// whether it is in use, and why not (*shared.Store): /readyz and the status
// page show it.
type healthReporter interface {
	Health() (up bool, detail string)
}

// Options configure a Server. The embedded [gate.Options] are the gate's,
// declared there once and handed to gate.New as they are: the
// collaborators (Upstream, Store, Verifier and Policy are required; a
// Shared store that also reports its Health is shown on /readyz and the
// status page), the limits of lookups, fills and eager verification, the
// clock, the logger (it also receives the access log), the registry (it
// also receives the proxy's metrics) and the test hooks. The fields below
// are the HTTP server's own; every one works at its zero value.
type Options struct {
	gate.Options

	// MetricsHandler serves /metrics on the index listener; nil: no route.
	MetricsHandler http.Handler
	// Audit receives one record per decision; nil: none.
	Audit *audit.Log
	// Version is reported in pipgate_build_info and on the status page.
	Version string
	// UpstreamName is shown on the status page (the upstream URL).
	UpstreamName string
	// TrustInfo reports the trust root's source and last refresh for the
	// status page; nil: unknown.
	TrustInfo func() (source string, refreshed time.Time)
	// MemoryLimit is the Go soft memory limit in force and
	// MemoryLimitOrigin where it came from (memory_limit, GOMEMLIMIT,
	// cgroup, default), for the status page; 0: not shown.
	MemoryLimit       int64
	MemoryLimitOrigin string

	// CheckFirstMax: a cache miss of a file up to this size (by the index
	// size, else the upstream Content-Length) is downloaded and checked
	// before the status line, so a bad body is a clean 403; 0: 8 MiB.
	CheckFirstMax int64
	// CheckWait bounds how long such a miss waits for its check before it
	// streams like a large file (status line at once, tail held back, verdict
	// in the trailer), so a slow upstream never leaves a client without a
	// status line past its own timeout (pip: 15s); 0: 5s.
	CheckWait time.Duration
	// WriteIdleTimeout drops a file response whose client has not taken the
	// next chunk within it; config server.write_idle_timeout; 0: 1m.
	WriteIdleTimeout time.Duration
}

// withDefaults fills the proxy's own defaults, and the logger, registry and
// clock it shares with the gate (so both use the same ones).
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CheckFirstMax <= 0 {
		o.CheckFirstMax = checkFirstMaxDefault
	}
	if o.CheckWait <= 0 {
		o.CheckWait = checkWaitDefault
	}
	if o.WriteIdleTimeout <= 0 {
		o.WriteIdleTimeout = writeIdleDefault
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	return o
}

// Server is the index-mode HTTP handler.
type Server struct {
	opts      Options
	up        gate.Upstream
	store     *cache.Store
	verifier  gate.Verifier
	policy    gate.PolicySource
	log       *slog.Logger
	metrics   *metrics
	gate      *gate.Gate
	audit     *audit.Log
	decisions *decisionLog
	history   *audit.Recorder // the durable decision history
	histDone  chan struct{}   // closed when the history's writer has written its last batch
	mux       *http.ServeMux  // the index listener
	tunnel    *http.ServeMux  // requests from the egress tunnel: see TunnelHandler
	started   time.Time
	ready     atomic.Bool
}

// New returns a Server; it is ready to serve once SetReady(true) is called
// (the command does so when the listener is up).
func New(opts Options) (*Server, error) {
	// The required collaborators (Upstream, Store, Verifier, Policy) are
	// the gate's: gate.New checks them, once, with the same field names.
	opts = opts.withDefaults()
	s := &Server{
		opts:      opts,
		up:        opts.Upstream,
		store:     opts.Store,
		verifier:  opts.Verifier,
		policy:    opts.Policy,
		log:       opts.Logger,
		metrics:   newMetrics(opts.Registerer, opts.Version),
		audit:     opts.Audit,
		decisions: newDecisionLog(200, opts.Now),
		started:   opts.Now(),
	}
	g, err := gate.New(opts.Options)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s.gate = g
	if s.audit != nil {
		s.audit.Register(s.metrics.reg)
	}
	s.history = audit.NewRecorder(opts.Store, cache.DefaultMaxDecisions, opts.Logger, s.metrics.reg)
	// Not in the gate's background work: that counts work that ends on its
	// own (tests wait for it); this runs until Close.
	s.histDone = make(chan struct{})
	go func() {
		defer close(s.histDone)
		s.history.Run(g.Done())
	}()
	s.ready.Store(true)
	s.routes()
	return s, nil
}

// Close cancels the background work (shared fills, eager verification) and
// waits for it, so the store can be closed after it. Call it after the HTTP
// server has shut down.
func (s *Server) Close() {
	s.gate.Close()
	<-s.histDone
}

// SetReady flips /readyz.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

func (s *Server) now() time.Time { return s.opts.Now() }

func (s *Server) routes() {
	m := http.NewServeMux()
	s.indexRoutes(m)
	m.Handle("GET /healthz", s.handle(routeHealthz, s.serveHealthz))
	m.Handle("GET /readyz", s.handle(routeReadyz, s.serveReadyz))
	m.Handle("GET /-/status", s.handle(routeStatus, s.serveStatus))
	m.Handle("GET /-/status/{project}", s.handle(routeStatus, s.serveProjectStatus))
	m.Handle("GET /-/report", s.handle(routeStatus, s.serveReport))
	if s.opts.MetricsHandler != nil {
		mh := s.opts.MetricsHandler
		m.Handle("GET /metrics", s.handle(routeMetrics, func(w http.ResponseWriter, r *http.Request) error {
			mh.ServeHTTP(w, r)
			return nil
		}))
	}
	m.Handle("/", s.handle(routeOther, s.serveNotFound))
	s.mux = m

	// The tunnel serves the index and nothing of pipgate's own: no health,
	// status or metrics on https://pypi.org/... . A file URL pipgate did
	// not write (files.pythonhosted.org/packages/...) is still served, and
	// verified.
	t := http.NewServeMux()
	s.indexRoutes(t)
	t.Handle("/", s.handle(routeOther, s.serveTunnelOther))
	s.tunnel = t
}

// indexRoutes adds the routes pip uses: pages, files, provenance.
func (s *Server) indexRoutes(m *http.ServeMux) {
	m.Handle("GET /simple/{$}", s.handle(routeSimpleRoot, s.serveRoot))
	m.Handle("GET /simple/{project}/{$}", s.handle(routeSimple, s.serveProject))
	m.Handle("GET /simple/{project}", s.handle(routeSimple, s.redirectSlash))
	m.Handle("GET /files/{project}/{filename}", s.handle(routeFile, s.serveFileRoute))
	m.Handle("GET /integrity/{project}/{version}/{filename}/provenance", s.handle(routeProvenance, s.serveProvenance))
}

// serveNotFound answers every path the index listener does not route.
func (s *Server) serveNotFound(_ http.ResponseWriter, r *http.Request) error {
	return errorf(http.StatusNotFound, "pipgate: no such route %s", r.URL.Path)
}

// ServeHTTP implements http.Handler: the index listener's routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// TunnelHandler returns the handler for requests decrypted by the egress
// proxy (package egress) on an intercepted origin such as https://pypi.org.
// It serves the index routes and any distribution file URL on that origin,
// but none of pipgate's own routes (/metrics, /-/status, /healthz,
// /readyz): those answer 404 inside the tunnel. Pages it renders link to
// the origin of the request (https and its Host).
func (s *Server) TunnelHandler() http.Handler { return s.tunnel }

func (s *Server) serveHealthz(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := io.WriteString(w, "ok\n")
	return err
}

func (s *Server) serveReadyz(w http.ResponseWriter, _ *http.Request) error {
	if !s.ready.Load() {
		return errorf(http.StatusServiceUnavailable, "not ready")
	}
	if s.policy.Current() == nil || s.verifier.TrustRootDigest() == "" {
		return errorf(http.StatusServiceUnavailable, "not ready: no policy or trust root")
	}
	// A damaged database found while serving: it is being replaced (or
	// could not be), and requests go to the upstream meanwhile.
	if err := s.store.Health(); err != nil {
		return errorf(http.StatusServiceUnavailable, "not ready: cache database: %v", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	b.WriteString("ready\n")
	// An upstream that refuses pipgate's credentials does not make pipgate
	// unready (the other upstreams and the cache still serve, and an unready
	// instance would get no traffic to notice the fix): it is reported here.
	for _, u := range s.upstreams() {
		if f := u.AuthFailure; f != nil {
			fmt.Fprintf(&b, "upstream %s: authentication failed: %d %s at %s (check its username and password)\n",
				u.Name, f.Code, http.StatusText(f.Code), f.At.UTC().Format(time.RFC3339))
		}
		// Likewise an unreachable upstream: each one's last success and
		// last failure, with its cause.
		b.WriteString(upstreamHealthLine(u))
	}
	// A shared blob store that is down does not make pipgate unready
	// either: local disk and the upstream serve meanwhile.
	if h, ok := s.opts.Shared.(healthReporter); ok {
		_, detail := h.Health()
		b.WriteString(detail + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// upstreamHealthLine is one /readyz line for u: "upstream pypi
// (https://pypi.org/): ok|failing (N in a row); last success T|never; last
// failure T: cause".
func upstreamHealthLine(u upstream.Info) string {
	h := u.Health
	var b strings.Builder
	fmt.Fprintf(&b, "upstream %s (%s): ", u.Name, u.URL)
	switch {
	case h.Failing():
		fmt.Fprintf(&b, "failing (%d in a row)", h.ConsecutiveFailures)
	case h.LastSuccess.IsZero():
		b.WriteString("no request yet")
	default:
		b.WriteString("ok")
	}
	if !h.LastSuccess.IsZero() {
		fmt.Fprintf(&b, "; last success %s", h.LastSuccess.UTC().Format(time.RFC3339))
	} else if h.Failing() {
		b.WriteString("; no success since start")
	}
	if !h.LastFailure.IsZero() {
		fmt.Fprintf(&b, "; last failure %s: %s", h.LastFailure.UTC().Format(time.RFC3339), h.LastError)
	}
	b.WriteString("\n")
	return b.String()
}

// upstreams describes the configured upstreams, when the Upstream can.
func (s *Server) upstreams() []upstream.Info {
	if l, ok := s.up.(upstreamLister); ok {
		return l.Upstreams()
	}
	return nil
}

// serveStatus serves /-/status: HTML, or JSON for Accept: application/json.
func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) error {
	snap := s.statusSnapshot()
	var buf bytes.Buffer
	if wantsJSON(r) {
		if err := writeStatusJSON(&buf, snap); err != nil {
			return err
		}
	} else if err := writeStatusHTML(&buf, snap); err != nil {
		return err
	}
	return writeStatusPage(w, r, buf.Bytes())
}

// wantsJSON reports whether a status request asks for JSON.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// writeStatusPage writes a rendered status page (HTML or JSON, by wantsJSON).
func writeStatusPage(w http.ResponseWriter, r *http.Request, body []byte) error {
	h := w.Header()
	if wantsJSON(r) {
		h.Set("Content-Type", "application/json")
	} else {
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", statusCSP)
	}
	h.Set("Vary", "Accept")
	h.Set("Cache-Control", "no-store")
	_, err := w.Write(body)
	return err
}

// policyStater is implemented by a PolicySource that can say when the policy
// in force was loaded and whether the last reload failed (*reload.Reloader).
type policyStater interface {
	State() reload.State
}

func (s *Server) statusSnapshot() statusSnapshot {
	// The reload state first, then the policy: a reloader records the load
	// time after the swap, so a snapshot never shows a new load time beside
	// rows decided by the old policy.
	var st reload.State
	ps, hasState := s.policy.(policyStater)
	if hasState {
		st = ps.State()
	}
	pol := s.policy.Current()
	lookups := s.gate.Lookups()
	ratio, counts := s.metrics.statusCounts(lookups)
	snap := statusSnapshot{
		Version:         s.opts.Version,
		StartedAt:       s.started,
		GeneratedAt:     s.now(),
		Upstream:        s.opts.UpstreamName,
		MemoryLimit:     s.opts.MemoryLimit,
		MemoryOrigin:    s.opts.MemoryLimitOrigin,
		PolicySource:    pol.Source(),
		PolicyDigest:    pol.Digest(),
		PolicyRules:     len(pol.Rules()),
		TrustRootDigest: s.verifier.TrustRootDigest(),
		TrustRootAge:    -1,
		CacheBlobBytes:  s.store.BlobBytes(),
		CacheMaxBytes:   s.store.MaxBlobBytes(),
		CacheDBBytes:    s.store.DBBytes(),
		CacheBytes:      s.store.SizeBytes(),
		CacheHitRatio:   ratio,
		Lookups:         lookups,
		Decisions:       s.decisions.recentDecisions(),
		Blocked:         s.decisions.redecide((&redecider{s: s, pol: pol, pages: map[string]*gate.PageDecider{}}).redecide),
		Counts:          counts,
		Upstreams:       s.upstreams(),
	}
	if hasState {
		snap.PolicyLoadedAt = st.LoadedAt
		snap.PolicyInPlaceAt = st.InPlaceAt
		if st.Err != nil {
			snap.PolicyReloadError = st.Err.Error()
			snap.PolicyReloadFailedAt = st.FailedAt
		}
	}
	if h, ok := s.opts.Shared.(healthReporter); ok {
		up, detail := h.Health()
		snap.SharedStore, snap.SharedStoreDown = detail, !up
	}
	if s.opts.TrustInfo != nil {
		src, refreshed := s.opts.TrustInfo()
		snap.TrustRoot = src
		if !refreshed.IsZero() {
			snap.TrustRootAge = s.now().Sub(refreshed)
		}
	}
	return snap
}

// DecisionHistory returns the durable decision history of project (all
// projects when ""), most recently seen first, after writing the pending
// batch so it includes every decision made so far (a failed write is
// logged and counted; what is stored is read all the same). It reads while
// the server serves: bbolt readers do not block writers.
func (s *Server) DecisionHistory(project string) ([]cache.Decision, error) {
	_ = s.history.Flush()
	return s.store.Decisions(project)
}
