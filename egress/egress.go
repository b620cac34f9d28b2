// Package egress is pipgate's HTTPS egress proxy: it accepts CONNECT for the
// intercepted package hosts (pypi.org, files.pythonhosted.org) on port 443,
// decrypts the tunnel with a per-host certificate minted from its own CA,
// checks that the name inside (SNI, Host, URL) is the one asked for, and
// hands each request to the http.Handler it is given. Everything else is
// refused with 403 and counted. It never dials out.
//
// The package also loads, generates and checks the CA ([LoadCA],
// [GenerateCA]); `pipgate ca init` uses that alone. egress knows nothing of
// the index server beyond the handler, and never imports package proxy.
package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/pipgate/pipgate/internal/statusline"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/prometheus/client_golang/prometheus"
)

// Reason is why an egress request is refused: one of the Reason constants.
// The set is closed, so it is safe as a metric label.
type Reason string

// The reasons an egress request is refused, as found in [Refusal.Reason].
const (
	ReasonNotIntercepted Reason = "host not intercepted"       // CONNECT to a host outside Intercept
	ReasonPort           Reason = "port not allowed"           // CONNECT to an intercepted host on a port other than 443
	ReasonBadTarget      Reason = "malformed target"           // CONNECT target that is not host:port
	ReasonPlainHTTP      Reason = "plain HTTP proxying"        // GET http://... through the proxy
	ReasonNotProxy       Reason = "not a proxy request"        // GET /path sent to the egress listener itself
	ReasonHostMismatch   Reason = "inner host differs"         // Host or URL inside the tunnel is not the CONNECT target
	ReasonSNIMismatch    Reason = "TLS server name differs"    // SNI inside the tunnel is not the CONNECT target
	ReasonNotTLS         Reason = "tunnel without TLS"         // cleartext HTTP inside a CONNECT tunnel
	ReasonNoTunnel       Reason = "request outside any tunnel" // defensive: a request goproxy routed without a CONNECT
)

// Defaults of [Options] and the certificate cache bound.
const (
	defaultHandshakeTimeout = 10 * time.Second
	defaultIdleTimeout      = 2 * time.Minute
	certCacheSize           = 256
)

// errNoUpstream is what goproxy's own transport returns if anything
// ever tries to use it: egress mode never dials out itself.
var errNoUpstream = errors.New("egress: pipgate does not dial upstream through goproxy")

// Options configures [New].
type Options struct {
	// Handler serves decrypted requests for intercepted hosts: the index
	// server's tunnel handler. Required. Requests reach it with URL scheme
	// https, URL.Host and Host set to the intercepted name (no port), TLS set
	// to the tunnel's connection state and no Proxy-* headers.
	Handler http.Handler
	// CA signs the per-host certificates: see [LoadCA]. Required; Leaf is
	// parsed from Certificate[0] when nil. Its key is never logged.
	CA tls.Certificate
	// Intercept lists the host names to decrypt, e.g. pypi.org and
	// files.pythonhosted.org. Exact names, compared case-insensitively; only
	// port 443 is allowed. Required.
	Intercept []string
	// Logger receives refusals (Info), failed client handshakes (Warn) and
	// goproxy's other messages (Debug). Nil: discard.
	Logger *slog.Logger
	// Registerer receives pipgate_egress_refused_total. Nil: a private
	// registry (counted, not exported).
	Registerer prometheus.Registerer
	// OnRefuse, if set, is called for every refused request, after the refusal
	// is decided and before the response is written. It must not block.
	OnRefuse func(r Refusal)
	// HandshakeTimeout bounds the TLS handshake inside a tunnel. Zero: 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout is how long a tunnel may wait for the client's next request,
	// and how long one write to a client that stopped reading may block.
	// Zero: 2 minutes.
	IdleTimeout time.Duration
}

// Refusal describes one refused egress request.
type Refusal struct {
	Client string // client IP address
	Method string // CONNECT, GET, ...
	Host   string // the destination asked for (host or host:port)
	Reason Reason // why
}

// Proxy is the HTTP handler of the egress listener: an HTTPS proxy that
// decrypts CONNECT tunnels to the intercepted hosts with certificates minted
// from the CA, serves what is inside them with the index handler, and refuses
// everything else with 403. It never connects anywhere itself.
type Proxy struct {
	handler          http.Handler
	ca               tls.Certificate
	intercept        map[string]bool
	log              *slog.Logger
	onRefuse         func(Refusal)
	refused          prometheus.Counter // pipgate_egress_refused_total
	handshakeTimeout time.Duration
	idleTimeout      time.Duration
	certs            *caCertCache
	gp               *goproxy.ProxyHttpServer

	mu      sync.Mutex
	closed  bool
	tunnels map[*trackedConn]struct{} // hijacked client connections still open
}

// New checks opts and builds the egress handler.
func New(opts Options) (*Proxy, error) {
	if opts.Handler == nil {
		return nil, errors.New("egress: Options.Handler is required")
	}
	ca := opts.CA
	if len(ca.Certificate) == 0 || ca.PrivateKey == nil {
		return nil, errors.New("egress: Options.CA is required (certificate and key)")
	}
	if ca.Leaf == nil {
		leaf, err := x509.ParseCertificate(ca.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("egress: Options.CA: %w", err)
		}
		ca.Leaf = leaf
	}
	signer, err := caSigner(ca.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("egress: Options.CA: %w", err)
	}
	if err := caCheck(ca.Leaf, signer, time.Now()); err != nil {
		return nil, fmt.Errorf("egress: Options.CA: %w", err)
	}
	if len(opts.Intercept) == 0 {
		return nil, errors.New("egress: Options.Intercept is required")
	}
	e := &Proxy{
		handler:          opts.Handler,
		ca:               ca,
		intercept:        make(map[string]bool, len(opts.Intercept)),
		log:              opts.Logger,
		onRefuse:         opts.OnRefuse,
		handshakeTimeout: opts.HandshakeTimeout,
		idleTimeout:      opts.IdleTimeout,
		certs:            newCACertCache(certCacheSize),
		tunnels:          make(map[*trackedConn]struct{}),
	}
	for i, h := range opts.Intercept {
		name := strings.ToLower(strings.TrimSpace(h))
		if !validHost(name) {
			return nil, fmt.Errorf("egress: Options.Intercept[%d]: %q is not a host name", i, h)
		}
		e.intercept[name] = true
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.handshakeTimeout <= 0 {
		e.handshakeTimeout = defaultHandshakeTimeout
	}
	if e.idleTimeout <= 0 {
		e.idleTimeout = defaultIdleTimeout
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	e.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pipgate_egress_refused_total",
		Help: "Requests refused by the egress proxy (a host or port that is not intercepted).",
	})
	if err := reg.Register(e.refused); err != nil {
		return nil, fmt.Errorf("egress: registering metrics: %w", err)
	}
	e.gp = e.newGoproxy()
	return e, nil
}

// newGoproxy builds the goproxy server with every open default closed: no
// CONNECT is tunnelled as is, its transport and CONNECT dialer never dial, no
// environment proxy is read, and HTTP/2 is off (clients get HTTP/1.1).
func (e *Proxy) newGoproxy() *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = goproxyLogger{e.log}
	gp.Verbose = false
	refuseDial := func(context.Context, string, string) (net.Conn, error) { return nil, errNoUpstream }
	gp.Tr = &http.Transport{Proxy: nil, DialContext: refuseDial, DialTLSContext: refuseDial}
	gp.ConnectDial = nil
	gp.ConnectDialWithReq = nil
	gp.ConnectionErrHandler = func(w io.Writer, _ *goproxy.ProxyCtx, _ error) {
		_, _ = io.WriteString(w, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	}
	gp.AllowHTTP2 = false
	gp.CertStore = e.certs
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.refuseHTTP(w, r, r.Host, ReasonNotProxy)
	})
	gp.OnRequest().HandleConnectFunc(e.handleConnect)
	gp.OnRequest().DoFunc(e.serveTunnel)
	return gp
}

// goproxyLogger sends goproxy's log lines (only warnings: Verbose is
// off) to slog. A client that rejects the tunnel's certificate (it does not
// trust the egress CA) makes goproxy log its TLS alert ("remote error: tls:
// unknown certificate authority"; OpenSSL, so pip, sends its alert in the
// clear and Go reads "bad record MAC"): that becomes one warning per
// connection saying so and how to fix it. Other failed handshakes are
// warnings as goproxy words them; the rest (idle tunnels timing out,
// clients hanging up) is debug. goproxy never prints key material.
type goproxyLogger struct{ log *slog.Logger }

// goproxyHandshake matches goproxy's line for a failed client handshake.
var goproxyHandshake = regexp.MustCompile(`Cannot handshake client (\S+) (.*)$`)

// certRejections are the TLS errors of a client that rejected the
// certificate it was shown.
var certRejections = []string{
	"tls: bad record MAC", // OpenSSL's alert, sent unencrypted mid-handshake
	"remote error: tls: unknown certificate authority",
	"remote error: tls: bad certificate",
	"remote error: tls: unknown certificate",
	"remote error: tls: unsupported certificate",
	"remote error: tls: certificate unknown",
}

func (l goproxyLogger) Printf(format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	if m := goproxyHandshake.FindStringSubmatch(msg); m != nil {
		if slices.ContainsFunc(certRejections, func(s string) bool { return strings.HasSuffix(m[2], s) }) {
			l.log.Warn("egress client rejected pipgate's certificate: install the egress CA in the client (pip --cert CA.pem or PIP_CERT; REQUESTS_CA_BUNDLE, when set, overrides both)",
				"target", m[1], "tls_error", m[2])
			return
		}
		l.log.Warn("egress client TLS handshake failed", "target", m[1], "tls_error", m[2])
		return
	}
	level := slog.LevelDebug
	if strings.Contains(msg, "handshake") {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "goproxy", "detail", msg)
}

// tunnel is what one CONNECT tunnel knows about itself. It is filled on
// the server goroutine before goproxy starts the tunnel's own goroutine, and
// then used only on that goroutine.
type tunnel struct {
	target string               // the CONNECT target as asked, host:port
	host   string               // the intercepted name: lower case, no port
	client string               // client IP
	conn   net.Conn             // the hijacked client connection
	tls    *tls.ConnectionState // set once the handshake completes
}

type tunnelKey struct{}

// ServeHTTP serves the egress listener: CONNECT goes to goproxy, which
// decrypts intercepted targets and refuses the rest; every other request
// (plain-HTTP proxying, or a request to the listener itself) is refused.
func (e *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		if r.URL.IsAbs() {
			e.refuseHTTP(w, r, r.URL.Host, ReasonPlainHTTP)
		} else {
			e.refuseHTTP(w, r, r.Host, ReasonNotProxy)
		}
		return
	}
	tun := &tunnel{client: clientIP(r.RemoteAddr)}
	r = r.WithContext(context.WithValue(r.Context(), tunnelKey{}, tun))
	e.gp.ServeHTTP(&hijacker{ResponseWriter: w, e: e, tun: tun}, r)
}

// Close closes every open tunnel. http.Server.Shutdown does not see
// hijacked connections, so call Close after it. Tunnels opened later are
// closed at once.
func (e *Proxy) Close() error {
	e.mu.Lock()
	e.closed = true
	conns := make([]*trackedConn, 0, len(e.tunnels))
	for c := range e.tunnels {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}

// trackedConn is a hijacked client connection that leaves the set of open
// tunnels when closed.
type trackedConn struct {
	net.Conn
	e    *Proxy
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.e.mu.Lock()
		delete(c.e.tunnels, c)
		c.e.mu.Unlock()
	})
	return c.Conn.Close()
}

// track adds a hijacked connection to the open tunnels, or reports false
// once the Proxy is closed.
func (e *Proxy) track(c *trackedConn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.tunnels[c] = struct{}{}
	return true
}

// hijacker hands goproxy the client connection with a deadline for the
// CONNECT reply, the TLS handshake and the first request: goproxy sets none.
type hijacker struct {
	http.ResponseWriter
	e   *Proxy
	tun *tunnel
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	raw, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	conn := &trackedConn{Conn: raw, e: h.e}
	if !h.e.track(conn) {
		_ = raw.Close()
		return nil, nil, net.ErrClosed
	}
	_ = conn.SetDeadline(time.Now().Add(h.e.handshakeTimeout))
	h.tun.conn = conn
	return conn, rw, nil
}

// handleConnect decides a CONNECT: decrypt an intercepted host on port 443,
// refuse anything else.
func (e *Proxy) handleConnect(target string, pctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	r := pctx.Req
	tun, ok := r.Context().Value(tunnelKey{}).(*tunnel)
	if !ok {
		tun = &tunnel{client: clientIP(r.RemoteAddr)}
	}
	host, reason := e.connectTarget(target)
	if reason != "" {
		e.refuse(tun.client, r.Method, target, reason)
		pctx.Resp = refusalResponse(r, http.StatusForbidden, target, reason) //nolint:bodyclose // a response built here, sent by goproxy
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, target
	}
	tun.target, tun.host = target, host
	pctx.UserData = tun
	return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: e.tlsConfig}, target
}

// connectTarget checks a CONNECT target and returns its host name, or the
// reason to refuse it.
func (e *Proxy) connectTarget(target string) (host string, reason Reason) {
	h, port, err := net.SplitHostPort(target)
	if err != nil || h == "" {
		return "", ReasonBadTarget
	}
	h = strings.ToLower(h)
	if !e.intercept[h] {
		return "", ReasonNotIntercepted
	}
	if port != "443" {
		return "", ReasonPort
	}
	return h, ""
}

// tlsConfig is the goproxy TLSConfig hook: the tunnel's certificate, from the
// cache or freshly minted, TLS 1.2 or later, HTTP/1.1, and a handshake that
// fails when the client names another server (SNI).
func (e *Proxy) tlsConfig(_ string, pctx *goproxy.ProxyCtx) (*tls.Config, error) {
	tun, ok := pctx.UserData.(*tunnel)
	if !ok || tun.host == "" {
		return nil, errors.New("egress: TLS requested outside an intercepted tunnel")
	}
	cert, err := e.certs.Fetch(tun.host, func() (*tls.Certificate, error) {
		return caMintLeaf(e.ca, tun.host, time.Now())
	})
	if err != nil {
		e.log.Error("minting egress certificate failed", "host", tun.host, "err", err)
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*cert},
		NextProtos:   []string{"http/1.1"},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			sni := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
			if sni != "" && sni != tun.host {
				e.refuse(tun.client, http.MethodConnect, hello.ServerName, ReasonSNIMismatch)
				return nil, fmt.Errorf("egress: server name %q in a tunnel to %s", hello.ServerName, tun.host)
			}
			return nil, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			tun.tls = &cs
			return nil
		},
	}, nil
}

// serveTunnel is goproxy's request hook, run for every request decrypted in
// a tunnel. It re-checks the request against the tunnel and hands it to the
// index handler. It always returns a response, so goproxy never forwards a
// request anywhere.
func (e *Proxy) serveTunnel(req *http.Request, pctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	tun, ok := pctx.UserData.(*tunnel)
	if !ok || tun.host == "" {
		return nil, e.refuseInTunnel(req, clientIP(req.RemoteAddr), req.Host, ReasonNoTunnel)
	}
	if req.URL.Scheme != "https" {
		return nil, e.refuseInTunnel(req, tun.client, tun.target, ReasonNotTLS)
	}
	if h, ok := innerHost(req.Host); !ok || h != tun.host {
		return nil, e.refuseInTunnel(req, tun.client, req.Host, ReasonHostMismatch)
	}
	if h, ok := innerHost(req.URL.Host); !ok || h != tun.host {
		return nil, e.refuseInTunnel(req, tun.client, req.URL.Host, ReasonHostMismatch)
	}
	if tun.conn != nil {
		_ = tun.conn.SetDeadline(time.Time{})
	}

	out := req.WithContext(req.Context()) // a shallow copy; the fields below are replaced
	u := *req.URL
	u.Scheme, u.Host, u.User = "https", tun.host, nil
	out.URL = &u
	out.Host = tun.host
	out.RequestURI = u.RequestURI()
	out.Header = req.Header.Clone()
	for _, h := range []string{"Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate"} {
		out.Header.Del(h)
	}
	if tun.tls != nil {
		cs := *tun.tls
		out.TLS = &cs
	} else {
		out.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: tun.host}
	}
	resp := e.serveStreaming(out, tun.conn)
	if tun.conn != nil {
		_ = tun.conn.SetWriteDeadline(time.Now().Add(e.idleTimeout))
	}
	return nil, resp
}

// serveStreaming runs the index handler on its own goroutine and returns
// once it has committed its response head. The body streams through a pipe
// as goproxy writes it to the client: nothing is buffered whole.
func (e *Proxy) serveStreaming(req *http.Request, conn net.Conn) *http.Response {
	pr, pw := io.Pipe()
	w := &responseWriter{
		req:    req,
		header: make(http.Header),
		pw:     pw,
		body:   &streamBody{pr: pr, conn: conn, idle: e.idleTimeout},
		ready:  make(chan *http.Response, 1),
	}
	go func() {
		defer func() {
			var err error
			if p := recover(); p != nil {
				if p != http.ErrAbortHandler { //nolint:errorlint // sentinel panic value, compared as net/http does
					e.log.Error("egress handler panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				}
				err = errAborted
				if !w.committed {
					w.committed = true
					w.ready <- refusalResponse(req, http.StatusInternalServerError, "", "internal error") //nolint:bodyclose // a response built here, sent by goproxy
				}
			} else if !w.committed {
				w.commit(nil, true)
			}
			if err == nil {
				w.body.final = w.header.Clone() // trailer values; the pipe's close orders this before EOF
			}
			_ = pw.CloseWithError(err)
		}()
		e.handler.ServeHTTP(w, req)
	}()
	return <-w.ready
}

// errAborted ends a response body whose handler panicked, so the client
// sees a truncated response rather than a complete one.
var errAborted = errors.New("egress: handler aborted the response")

// responseWriter adapts an http.Handler to goproxy's response hook. The
// head is committed on the first Write, on Flush or when the handler returns,
// as net/http does; the body goes through a pipe.
type responseWriter struct {
	req       *http.Request
	header    http.Header
	snap      http.Header // header as of WriteHeader
	status    int
	reason    string // the status line's reason phrase; "": the standard text
	committed bool
	noBody    bool // HEAD, 204, 304: writes are discarded
	pw        *io.PipeWriter
	body      *streamBody
	ready     chan *http.Response
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 || w.committed {
		return
	}
	if code >= 100 && code <= 199 {
		return // informational responses are not forwarded
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	w.status = code
	w.snap = w.header.Clone()
}

// WriteHeaderReason is WriteHeader with reason as the status line's reason
// phrase (the index handler's refusals say why there: pip prints that line).
func (w *responseWriter) WriteHeaderReason(code int, reason string) {
	if w.status != 0 || w.committed {
		return
	}
	w.WriteHeader(code)
	w.reason = reason
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.committed {
		w.commit(p, false)
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	return w.pw.Write(p)
}

// Flush commits the head; the body pipe itself is unbuffered.
func (w *responseWriter) Flush() {
	if !w.committed {
		w.commit(nil, false)
	}
}

// commit builds the response head and hands it to goproxy. first is the
// first body chunk (for Content-Type sniffing); final means the handler has
// returned, so a body that was never written is empty.
func (w *responseWriter) commit(first []byte, final bool) {
	w.committed = true
	if w.status == 0 {
		w.status = http.StatusOK
		w.snap = w.header.Clone()
	}
	h := w.snap
	status := w.status
	bodyless := status == http.StatusNoContent || status == http.StatusNotModified
	w.noBody = bodyless || w.req.Method == http.MethodHead
	if _, ok := h["Content-Type"]; !ok && len(first) > 0 && !bodyless {
		h.Set("Content-Type", http.DetectContentType(first))
	}
	reason := w.reason
	if reason == "" {
		reason = http.StatusText(status)
	}
	resp := &http.Response{
		Status:        strconv.Itoa(status) + " " + reason,
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Request:       w.req,
		ContentLength: -1,
		Body:          w.body,
	}
	if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		resp.ContentLength = n
	}
	// Declared trailers (net/http's convention: a Trailer header before the
	// head, the values set after the body) go out after a chunked body.
	for _, v := range h.Values("Trailer") {
		for _, k := range strings.Split(v, ",") {
			if k = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)); k != "" {
				if resp.Trailer == nil {
					resp.Trailer = make(http.Header)
				}
				resp.Trailer[k] = nil
			}
		}
	}
	if resp.Trailer != nil {
		h.Del("Trailer")
		h.Del("Content-Length")
		resp.ContentLength = -1
		resp.TransferEncoding = []string{"chunked"}
		w.body.trailer = resp.Trailer
	}
	switch {
	case status == http.StatusNoContent || status == http.StatusNotModified:
		resp.ContentLength = 0
	case final && resp.ContentLength == -1 && w.req.Method != http.MethodHead:
		resp.ContentLength = 0
		h.Set("Content-Length", "0")
	}
	w.ready <- resp
}

// streamBody is the response body goproxy copies to the client. Before each
// write to the client it pushes the connection's write deadline forward (a
// client that stops reading is dropped after the idle timeout); on Close it
// arms the idle deadline for the tunnel's next request.
type streamBody struct {
	pr   *io.PipeReader
	conn net.Conn
	idle time.Duration
	// trailer is the response's Trailer map, filled from final (the
	// handler's header when it returned) once the body ends cleanly.
	trailer http.Header
	final   http.Header
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.pr.Read(p)
	if errors.Is(err, io.EOF) && b.trailer != nil && b.final != nil {
		for k := range b.trailer {
			b.trailer[k] = b.final.Values(k)
		}
	}
	if n > 0 && b.conn != nil {
		_ = b.conn.SetWriteDeadline(time.Now().Add(b.idle))
	}
	return n, err
}

func (b *streamBody) Close() error {
	err := b.pr.Close()
	if b.conn != nil {
		_ = b.conn.SetReadDeadline(time.Now().Add(b.idle))
	}
	return err
}

// refuse logs and counts a refusal and reports it to OnRefuse.
func (e *Proxy) refuse(client, method, host string, reason Reason) {
	e.log.Info("egress refused", "client", client, "method", method, "host", host, "reason", string(reason))
	e.refused.Inc()
	if e.onRefuse != nil {
		e.onRefuse(Refusal{Client: client, Method: method, Host: host, Reason: reason})
	}
}

// refuseHTTP refuses a request made to the listener itself (not CONNECT).
func (e *Proxy) refuseHTTP(w http.ResponseWriter, r *http.Request, host string, reason Reason) {
	e.refuse(clientIP(r.RemoteAddr), r.Method, host, reason)
	w.Header().Set("Connection", "close")
	http.Error(w, refusalText(host, reason), http.StatusForbidden)
}

// refuseInTunnel refuses a request inside a tunnel and asks the client to
// close it.
func (e *Proxy) refuseInTunnel(req *http.Request, client, host string, reason Reason) *http.Response {
	e.refuse(client, req.Method, host, reason)
	return refusalResponse(req, http.StatusForbidden, host, reason)
}

func refusalText(host string, reason Reason) string {
	if host == "" {
		return "pipgate egress: " + string(reason)
	}
	return fmt.Sprintf("pipgate egress: %s refused: %s", host, reason)
}

// refusalResponse is a small text response that closes the connection.
func refusalResponse(req *http.Request, code int, host string, reason Reason) *http.Response {
	body := refusalText(host, reason) + "\n"
	h := make(http.Header)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	return &http.Response{
		// The reason in the status line too: a client tunnelling through
		// the proxy prints it ("Tunnel connection failed: 403 pipgate
		// egress: ... refused: ...").
		Status:        strconv.Itoa(code) + " " + statusline.Reason(code, refusalText(host, reason)),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Request:       req,
		Close:         true,
		ContentLength: int64(len(body)),
		Body:          io.NopCloser(strings.NewReader(body)),
	}
}

// innerHost normalises a Host header or URL host seen inside a
// tunnel: lower case, ":443" dropped. Any other port is not valid.
func innerHost(h string) (string, bool) {
	if h == "" {
		return "", false
	}
	h = strings.ToLower(h)
	if host, port, err := net.SplitHostPort(h); err == nil {
		if port != "443" || host == "" {
			return "", false
		}
		return host, true
	}
	if strings.ContainsAny(h, ":[]") {
		return "", false
	}
	return h, true
}

// validHost accepts DNS names (letters, digits, '-', '.') and IP
// addresses; no port, wildcard or trailing dot.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func clientIP(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}
