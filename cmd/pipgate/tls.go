package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/config"
)

// tlsServerName is the name clients use to reach the index listener, which
// its certificate must cover: tls.server_name, else the host of listen when
// it is a name (not an IP address, not empty). "" when neither says: then
// no name is checked (a reload that changes every name is logged).
func tlsServerName(cfg *config.Config) string {
	if cfg.TLS.ServerName != "" {
		return cfg.TLS.ServerName
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil || host == "" || net.ParseIP(host) != nil {
		return ""
	}
	return host
}

// loadCertificate reads a PEM certificate chain and its key and checks that
// clients can use it: see [checkServingCert].
func loadCertificate(certFile, keyFile, serverName string, now time.Time) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile) // also: the key matches the certificate
	if err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", certFile, keyFile, err)
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", certFile, err)
		}
		c.Leaf = leaf
	}
	if err := checkServingCert(leaf, serverName, now); err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	return &c, nil
}

// checkServingCert reports why no verifying client could connect to a
// server presenting leaf, or nil: not valid at now (expired, or not yet
// valid); extended key usages without serverAuth (or any); a key usage
// without digitalSignature (every cipher suite offered signs the
// handshake); no subject alternative name (clients ignore the common
// name); a serverName it does not cover.
func checkServingCert(leaf *x509.Certificate, serverName string, now time.Time) error {
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("certificate not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if len(leaf.ExtKeyUsage)+len(leaf.UnknownExtKeyUsage) > 0 &&
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return fmt.Errorf("certificate is not for TLS servers: its extended key usage (%s) lacks serverAuth", ekuNames(leaf))
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return errors.New("certificate's key usage lacks digitalSignature, which the TLS handshake needs")
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses) == 0 {
		return fmt.Errorf("certificate has no subject alternative names (clients ignore the common name %q)", leaf.Subject.CommonName)
	}
	if serverName != "" {
		if err := leaf.VerifyHostname(serverName); err != nil {
			return fmt.Errorf("certificate does not cover the server name %q (tls.server_name, else the listen host): it is for %s",
				serverName, strings.Join(certNames(leaf), ", "))
		}
	}
	return nil
}

// certNames lists the DNS names and IP addresses leaf is for.
func certNames(leaf *x509.Certificate) []string {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

func ekuNames(leaf *x509.Certificate) string {
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageClientAuth: "clientAuth", x509.ExtKeyUsageCodeSigning: "codeSigning",
		x509.ExtKeyUsageEmailProtection: "emailProtection", x509.ExtKeyUsageTimeStamping: "timeStamping",
		x509.ExtKeyUsageOCSPSigning: "OCSPSigning",
	}
	var out []string
	for _, u := range leaf.ExtKeyUsage {
		if n, ok := names[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, "usage "+strconv.Itoa(int(u)))
		}
	}
	for _, oid := range leaf.UnknownExtKeyUsage {
		out = append(out, oid.String())
	}
	return strings.Join(out, ", ")
}

// certReloaderOptions configure newCertReloader.
type certReloaderOptions struct {
	CertFile, KeyFile string
	// ServerName, when set, must be covered by every certificate loaded
	// (tlsServerName).
	ServerName string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// certReloader serves the index listener's certificate and swaps it
// atomically on Reload; a pair that does not load, or that no client could
// use (checkServingCert), keeps the current one.
type certReloader struct {
	opts certReloaderOptions
	cur  atomic.Pointer[tls.Certificate]

	reloadOK   prometheus.Gauge // pipgate_tls_certificate_last_reload_successful
	reloadTime prometheus.Gauge // pipgate_tls_certificate_last_reload_success_timestamp_seconds
	notAfter   prometheus.Gauge // pipgate_tls_certificate_not_after_timestamp_seconds
}

// newCertReloader loads the pair (an error if it does not load or no client
// could use it) and registers the reloader's gauges.
func newCertReloader(opts certReloaderOptions) (*certReloader, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	r := &certReloader{opts: opts}
	r.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pipgate_tls_certificate_last_reload_successful",
		Help: "Whether the last load of the index listener's TLS certificate succeeded (1) or kept the previous one (0).",
	})
	r.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pipgate_tls_certificate_last_reload_success_timestamp_seconds",
		Help: "When the index listener's TLS certificate was last loaded successfully.",
	})
	r.notAfter = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pipgate_tls_certificate_not_after_timestamp_seconds",
		Help: "When the TLS certificate the index listener serves expires.",
	})
	if err := r.Reload(); err != nil {
		return nil, err
	}
	for _, c := range []prometheus.Collector{r.reloadOK, r.reloadTime, r.notAfter} {
		if err := opts.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("tls: registering metrics: %w", err)
		}
	}
	return r, nil
}

// Reload rereads the certificate and key files. On error the certificate
// in use stays, and the error says why.
func (r *certReloader) Reload() error {
	now := time.Now()
	c, err := loadCertificate(r.opts.CertFile, r.opts.KeyFile, r.opts.ServerName, now)
	if err != nil {
		r.reloadOK.Set(0)
		return err
	}
	log := r.opts.Logger
	if old := r.cur.Load(); old != nil && r.opts.ServerName == "" && !sharesName(old.Leaf, c.Leaf) {
		log.Warn("the new tls certificate covers none of the names the previous one did; clients using the old names will fail (set tls.server_name to have this refused)",
			"old_names", certNames(old.Leaf), "new_names", certNames(c.Leaf))
	}
	r.cur.Store(c)
	r.reloadOK.Set(1)
	r.reloadTime.Set(float64(now.Unix()))
	r.notAfter.Set(float64(c.Leaf.NotAfter.Unix()))
	log.Info("tls certificate loaded", "path", r.opts.CertFile, "subject", c.Leaf.Subject.String(),
		"names", certNames(c.Leaf), "server_name", r.opts.ServerName, "not_after", c.Leaf.NotAfter.UTC())
	return nil
}

// sharesName reports whether b covers one of a's names.
func sharesName(a, b *x509.Certificate) bool {
	for _, n := range certNames(a) {
		if b.VerifyHostname(n) == nil {
			return true
		}
	}
	return false
}

// TLSConfig is the listener's configuration: TLS 1.2 and 1.3 with Go's
// default cipher suites (AEAD only with forward secrecy in TLS 1.2) and
// curves, the certificate from the reloader, HTTP/2 and HTTP/1.1.
func (r *certReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := r.cur.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("no certificate loaded")
		},
	}
}

// httpsOnlyListener wraps the TLS listener's raw connections: a client that
// speaks plain HTTP to it (an http:// index URL) gets a readable 400 naming
// the https:// URL to use, in the status line and the body, with a
// Content-Length, after its request was read (net/http's own answer has
// neither and closes with unread bytes: the reset made pip print a
// traceback). pip logs a 4xx on an index page only at -vv and then says
// "from versions: none", so a request with pip's User-Agent gets the same
// message in a 200 whose Content-Type pip refuses, which pip prints:
// "WARNING: Skipping page ... because the GET request got Content-Type:
// text/plain; error="this listener speaks HTTPS: use https://HOST/simple/"".
type httpsOnlyListener struct{ net.Listener }

func (l httpsOnlyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &httpsOnlyConn{Conn: c}, nil
}

// errPlainHTTP ends the TLS handshake of a connection answered as plain HTTP.
var errPlainHTTP = errors.New("plain HTTP request on the HTTPS listener: answered with the https:// URL to use")

// plainHTTPTimeout bounds reading the plain request and writing the answer.
const plainHTTPTimeout = 5 * time.Second

// httpsOnlyConn looks at the first bytes the TLS server reads: a TLS record
// starts with 0x16 (handshake), an HTTP request with an upper-case method.
type httpsOnlyConn struct {
	net.Conn
	looked bool // touched only by the goroutine serving the connection
}

func (c *httpsOnlyConn) Read(p []byte) (int, error) {
	if c.looked {
		return c.Conn.Read(p)
	}
	n, err := c.Conn.Read(p)
	if n == 0 {
		return n, err
	}
	c.looked = true
	if p[0] < 'A' || p[0] > 'Z' {
		return n, err // TLS, or garbage the TLS server refuses
	}
	c.answerPlainHTTP(p[:n])
	return 0, errPlainHTTP
}

// answerPlainHTTP reads the request that starts with head and answers 400.
func (c *httpsOnlyConn) answerPlainHTTP(head []byte) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(plainHTTPTimeout))
	host, pip := "", false
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(head), io.LimitReader(c.Conn, 64<<10)))
	if req, err := http.ReadRequest(br); err == nil {
		host, pip = cleanHost(req.Host), strings.HasPrefix(req.UserAgent(), "pip/")
	}
	if host == "" {
		host = cleanHost(c.Conn.LocalAddr().String())
	}
	msg := "this listener speaks HTTPS: use https://" + host + "/simple/"
	body := "pipgate: " + msg + " (an http:// index URL reached the TLS port)\n"
	status, ctype := "400 "+msg, "text/plain; charset=utf-8"
	if pip {
		status, ctype = "200 OK", `text/plain; error="`+msg+`"`
	}
	fmt.Fprintf(c.Conn, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, ctype, len(body), body)
	// Close our side first and wait briefly for the client's, so the
	// answer is not lost to a reset (net/http lingers the same way).
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, 256<<10))
	}
}

// cleanHost keeps a Host header's host:port characters (letters, digits,
// ".-:[]"), at most 255 bytes: it goes into a status line.
func cleanHost(h string) string {
	if len(h) > 255 {
		return ""
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-:[]", r)) {
			return ""
		}
	}
	return h
}
