package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/pypi/pypitest"
)

// testCA is a throwaway CA for server certificates in tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	path string // PEM of the CA certificate
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pipgate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := filepath.Join(dir, "ca.pem")
	writePEM(t, p, "CERTIFICATE", der)
	return &testCA{cert: cert, key: key, path: p}
}

// issue writes a server certificate for 127.0.0.1 and localhost with the
// given common name to dir/<name>.pem and dir/<name>-key.pem, valid from
// notBefore for a day.
func (ca *testCA) issue(t *testing.T, dir, name string, notBefore time.Time) (certPath, keyPath string) {
	t.Helper()
	return ca.issueWith(t, dir, name, func(c *x509.Certificate) { c.NotBefore, c.NotAfter = notBefore, notBefore.Add(24*time.Hour) })
}

// issueWith is issue with a certificate valid from an hour ago for a day,
// changed by edit before it is signed.
func (ca *testCA) issueWith(t *testing.T, dir, name string, edit func(*x509.Certificate)) (certPath, keyPath string) {
	t.Helper()
	notBefore := time.Now().Add(-time.Hour)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "PRIVATE KEY", kder)
	return certPath, keyPath
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeTestCert issues a certificate named name from a new CA in dir.
func writeTestCert(t *testing.T, dir, name string) (certPath, keyPath string) {
	return newTestCA(t, dir).issue(t, dir, name, time.Now().Add(-time.Hour))
}

// servedName connects to addr trusting ca and returns the common name of
// the certificate the server presented.
func servedName(t *testing.T, addr string, ca *testCA) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	certA, keyA := ca.issue(t, dir, "first", time.Now().Add(-time.Hour))
	certPath, keyPath := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(certA, certPath)
	copyFile(keyA, keyPath)
	reg := prometheus.NewRegistry()
	logs := &pypitest.LogBuffer{}
	r, err := newCertReloader(certReloaderOptions{CertFile: certPath, KeyFile: keyPath, ServerName: "localhost",
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv.TLS = r.TLSConfig()
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	if got := servedName(t, addr, ca); got != "first" {
		t.Fatalf("serves %q; want first", got)
	}
	certB, keyB := ca.issue(t, dir, "second", time.Now().Add(-time.Hour))
	copyFile(certB, certPath)
	copyFile(keyB, keyPath)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedName(t, addr, ca); got != "second" {
		t.Errorf("after reload serves %q; want second", got)
	}
	leafB, _ := tls.LoadX509KeyPair(certB, keyB)
	if ok, na := gauge("pipgate_tls_certificate_last_reload_successful"), gauge("pipgate_tls_certificate_not_after_timestamp_seconds"); ok != 1 || na != float64(leafB.Leaf.NotAfter.Unix()) {
		t.Errorf("after a good reload: last_reload_successful %v, not_after %v; want 1, %d", ok, na, leafB.Leaf.NotAfter.Unix())
	}

	// Each pair no client could use keeps the one in use, says why, and
	// sets last_reload_successful to 0 (not_after stays the served one's).
	for _, c := range []struct {
		name, want string
		edit       func(*x509.Certificate)
	}{
		{"garbage", "failed to find any PEM data", nil},
		{"mismatched key", "private key does not match public key", nil},
		{"expired", "certificate expired at", func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
		}},
		{"not yet valid", "certificate not valid before", func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(time.Hour), time.Now().Add(48*time.Hour)
		}},
		{"client auth only", "certificate is not for TLS servers: its extended key usage (clientAuth) lacks serverAuth", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }},
		{"no digital signature", "key usage lacks digitalSignature", func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCertSign }},
		{"another host", `certificate does not cover the server name "localhost" (tls.server_name, else the listen host): it is for other.example, 10.9.9.9`, func(c *x509.Certificate) {
			c.DNSNames, c.IPAddresses = []string{"other.example"}, []net.IP{net.IPv4(10, 9, 9, 9)}
		}},
		{"no names", `certificate has no subject alternative names (clients ignore the common name "no names")`, func(c *x509.Certificate) { c.DNSNames, c.IPAddresses = nil, nil }},
	} {
		switch c.name {
		case "garbage":
			if err := os.WriteFile(certPath, []byte("not PEM"), 0o600); err != nil {
				t.Fatal(err)
			}
		case "mismatched key":
			copyFile(certB, certPath)
			copyFile(keyA, keyPath)
		default:
			cert, key := ca.issueWith(t, dir, c.name, c.edit)
			copyFile(cert, certPath)
			copyFile(key, keyPath)
		}
		err := r.Reload()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Reload: %v; want an error with %q", c.name, err, c.want)
		}
		if got := servedName(t, addr, ca); got != "second" {
			t.Errorf("%s: serves %q after a failed reload; want second", c.name, got)
		}
		if ok, na := gauge("pipgate_tls_certificate_last_reload_successful"), gauge("pipgate_tls_certificate_not_after_timestamp_seconds"); ok != 0 || na != float64(leafB.Leaf.NotAfter.Unix()) {
			t.Errorf("%s: last_reload_successful %v, not_after %v; want 0 and the served one's", c.name, ok, na)
		}
		// The same checks refuse to start.
		if _, err := newCertReloader(certReloaderOptions{CertFile: certPath, KeyFile: keyPath, ServerName: "localhost"}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: starting: %v; want an error with %q", c.name, err, c.want)
		}
	}

	// Without a server name, a certificate for other names is taken, with
	// a warning.
	r2, err := newCertReloader(certReloaderOptions{CertFile: certB, KeyFile: keyB, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	other, otherKey := ca.issueWith(t, dir, "other", func(c *x509.Certificate) { c.DNSNames, c.IPAddresses = []string{"other.example"}, nil })
	r2.opts.CertFile, r2.opts.KeyFile = other, otherKey
	if err := r2.Reload(); err != nil {
		t.Fatalf("no server name: %v", err)
	}
	if !strings.Contains(logs.String(), `the new tls certificate covers none of the names the previous one did`) ||
		!strings.Contains(logs.String(), `old_names="[localhost 127.0.0.1]" new_names=[other.example]`) {
		t.Errorf("no warning for a certificate with other names:\n%s", logs.String())
	}

	// TLS 1.1 is refused.
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS11}); err == nil { //nolint:gosec // the point of the test
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
}

// TestPlainHTTPOnTLSListener: a plain-HTTP request on the HTTPS listener
// gets a whole 400 whose status line names the https:// URL (the line pip
// prints), and pip shows it without a traceback; TLS clients are unaffected.
func TestPlainHTTPOnTLSListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	cert, key := ca.issue(t, dir, "server", time.Now().Add(-time.Hour))
	r, err := newCertReloader(certReloaderOptions{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	srv.Listener = httpsOnlyListener{srv.Listener}
	srv.TLS = r.TLSConfig()
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	if got := servedName(t, addr, ca); got != "server" {
		t.Fatalf("TLS through the listener: serves %q", got)
	}
	for _, c := range []struct{ request, wantURL string }{
		{"GET /simple/requests/ HTTP/1.1\r\nHost: pypi.example:8443\r\nUser-Agent: pip\r\n\r\n", "https://pypi.example:8443/simple/"},
		{"GET /simple/ HTTP/1.0\r\n\r\n", "https://" + addr + "/simple/"},
		{"GET / HTTP/1.1\r\nHost: evil\r\n\x1b[31m\r\n\r\n", "https://" + addr + "/simple/"},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, c.request); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", c.request, err)
		}
		body, err := io.ReadAll(resp.Body)
		conn.Close()
		want := "400 this listener speaks HTTPS: use " + c.wantURL
		if err != nil || resp.Status != want || int64(len(body)) != resp.ContentLength || !strings.Contains(string(body), c.wantURL) {
			t.Errorf("%q: status %q, body %q (%v); want %q and a whole body", c.request, resp.Status, body, err, want)
		}
	}

	// pip logs a 400 on a page only at -vv: it gets the message where it
	// prints it, in a Content-Type it refuses.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /simple/requests/ HTTP/1.1\r\nHost: "+addr+"\r\nUser-Agent: pip/23.2.1 {}\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != `text/plain; error="this listener speaks HTTPS: use https://`+addr+`/simple/"` {
		t.Errorf("pip's answer: %s, Content-Type %q", resp.Status, ct)
	}
	pip := pypitest.NewPip(t)
	out, err := pip.Run(t.Context(), "", "download", "--no-deps", "-d", t.TempDir(), "--index-url", "http://"+addr+"/simple/", "requests")
	t.Logf("pip says:\n%s", out)
	if err == nil || !strings.Contains(out, "WARNING: Skipping page http://"+addr+"/simple/requests/ because the GET request got Content-Type: text/plain; error=\"this listener speaks HTTPS: use https://"+addr+"/simple/\"") ||
		strings.Contains(out, "Traceback") {
		t.Errorf("pip with an http:// URL on the TLS port: %v\n%s", err, out)
	}
}
