package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
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
	r, err := newCertReloader(certPath, keyPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
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

	// A broken pair, a mismatched pair and an expired certificate each keep
	// the one in use.
	certC, keyC := ca.issue(t, dir, "expired", time.Now().Add(-48*time.Hour))
	for _, c := range []struct{ name, cert, key string }{
		{"garbage", "", ""},
		{"mismatched key", certB, keyA},
		{"expired", certC, keyC},
	} {
		if c.cert == "" {
			if err := os.WriteFile(certPath, []byte("not PEM"), 0o600); err != nil {
				t.Fatal(err)
			}
		} else {
			copyFile(c.cert, certPath)
			copyFile(c.key, keyPath)
		}
		if err := r.Reload(); err == nil {
			t.Errorf("%s: Reload succeeded", c.name)
		}
		if got := servedName(t, addr, ca); got != "second" {
			t.Errorf("%s: serves %q after a failed reload; want second", c.name, got)
		}
	}

	// TLS 1.1 is refused.
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS11}); err == nil { //nolint:gosec // the point of the test
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
}
