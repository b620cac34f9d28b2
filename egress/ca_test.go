package egress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestGenerateCA(t *testing.T) {
	certPEM, keyPEM, err := GenerateCA("Example Corp egress", 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("certificate PEM block %v; want CERTIFICATE", b)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM block type %v; want PRIVATE KEY", kb)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T; want ECDSA P-256", cert.PublicKey)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"CA:true", cert.BasicConstraintsValid && cert.IsCA},
		{"path length 0", cert.MaxPathLen == 0 && cert.MaxPathLenZero},
		{"keyUsage certSign", cert.KeyUsage&x509.KeyUsageCertSign != 0},
		{"self-signed", cert.CheckSignatureFrom(cert) == nil},
		{"valid now", time.Now().After(cert.NotBefore) && time.Now().Before(cert.NotAfter)},
		{"valid about 30 days", time.Until(cert.NotAfter) > 29*24*time.Hour && time.Until(cert.NotAfter) <= 30*24*time.Hour},
		{"common name", cert.Subject.CommonName == "Example Corp egress"},
		{"subject key id", len(cert.SubjectKeyId) > 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("generated CA: %s does not hold", c.name)
		}
	}
	for _, tt := range []struct {
		cn  string
		dur time.Duration
	}{{"", time.Hour}, {"x", 0}, {"x", -time.Hour}} {
		if _, _, err := GenerateCA(tt.cn, tt.dur); err == nil {
			t.Errorf("GenerateCA(%q, %v) succeeded; want an error", tt.cn, tt.dur)
		}
	}
}

// caTestFiles writes PEM files for LoadCA tests into dir.
type caTestFiles struct {
	dir string
}

func (f caTestFiles) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// caTestSelfSigned builds a self-signed ECDSA certificate from tmpl.
func caTestSelfSigned(t *testing.T, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

func TestLoadCA(t *testing.T) {
	files := caTestFiles{t.TempDir()}
	certPEM, keyPEM, err := GenerateCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey, err := GenerateCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	expiredCert, expiredKey := caTestSelfSigned(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "expired"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	})
	leafCert, leafKey := caTestSelfSigned(t, &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "pypi.org"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{"pypi.org"},
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	})
	noSignCert, noSignKey := caTestSelfSigned(t, &x509.Certificate{
		SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: "no certSign"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
	})
	// The EC key of the second pair, re-encoded as SEC 1, must load too.
	ecCert, ecKey := caTestSelfSigned(t, &x509.Certificate{
		SerialNumber: big.NewInt(5), Subject: pkix.Name{CommonName: "sec1 CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	})

	cert := files.write(t, "ca.pem", certPEM)
	key := files.write(t, "ca-key.pem", keyPEM)
	keyDir := filepath.Join(files.dir, "keydir")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	chain := files.write(t, "chain.pem", append(append([]byte{}, certPEM...), otherCert...))
	tests := []struct {
		name      string
		cert, key string
		wantErr   error  // nil: success
		wantPath  string // the file the error must name
		wantChain int
	}{
		{"good pair", cert, key, nil, "", 1},
		{"chain file", chain, key, nil, "", 2},
		{"SEC 1 EC key", files.write(t, "ec.pem", ecCert), files.write(t, "ec-key.pem", ecKey), nil, "", 1},
		{"missing certificate", filepath.Join(files.dir, "absent.pem"), key, fs.ErrNotExist, "absent.pem", 0},
		{"missing key", cert, filepath.Join(files.dir, "absent-key.pem"), fs.ErrNotExist, "absent-key.pem", 0},
		{"key path is a folder", cert, keyDir, syscall.EISDIR, "keydir", 0},
		{"certificate not PEM", files.write(t, "junk.pem", []byte("not a certificate\n")), key, ErrCANotPEM, "junk.pem", 0},
		{"key not PEM", cert, files.write(t, "junk-key.pem", []byte("not a key\n")), ErrCANotPEM, "junk-key.pem", 0},
		{"key file holds a certificate", cert, files.write(t, "cert-as-key.pem", certPEM), ErrCANotPEM, "cert-as-key.pem", 0},
		{"certificate file holds a key", files.write(t, "key-as-cert.pem", keyPEM), key, ErrCANotPEM, "key-as-cert.pem", 0},
		{"key of another CA", cert, files.write(t, "other-key.pem", otherKey), ErrCAKeyMismatch, "other-key.pem", 0},
		{"expired", files.write(t, "expired.pem", expiredCert), files.write(t, "expired-key.pem", expiredKey), ErrCAExpired, "expired.pem", 0},
		{"not a CA", files.write(t, "leaf.pem", leafCert), files.write(t, "leaf-key.pem", leafKey), ErrCANotCA, "leaf.pem", 0},
		{"CA without certSign", files.write(t, "nosign.pem", noSignCert), files.write(t, "nosign-key.pem", noSignKey), ErrCANotCA, "nosign.pem", 0},
		{"encrypted key", cert, files.write(t, "enc-key.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})), ErrCAKeyType, "enc-key.pem", 0},
		{"garbage key", cert, files.write(t, "garbage-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret-material-0123456789")})), ErrCAKeyType, "garbage-key.pem", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadCA(tt.cert, tt.key)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadCA: %v", err)
				}
				if got.Leaf == nil || !got.Leaf.IsCA {
					t.Errorf("Leaf %v; want the parsed CA", got.Leaf)
				}
				if len(got.Certificate) != tt.wantChain {
					t.Errorf("chain length %d; want %d", len(got.Certificate), tt.wantChain)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v; want %v", err, tt.wantErr)
			}
			var caErr *CAError
			if !errors.As(err, &caErr) || filepath.Base(caErr.Path) != tt.wantPath {
				t.Errorf("got %v; want a *CAError naming %q", err, tt.wantPath)
			}
			msg := err.Error()
			if strings.Contains(msg, "secret-material") || strings.Contains(msg, "PRIVATE KEY") {
				t.Errorf("error %q carries key material", msg)
			}
			if strings.Count(msg, tt.wantPath) != 1 {
				t.Errorf("error %q; want the path named once", msg)
			}
		})
	}
}

func TestCAMintLeaf(t *testing.T) {
	ca := egressLoadTestCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert.Leaf)
	for _, host := range []string{"pypi.org", "files.pythonhosted.org", "127.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			c, err := caMintLeaf(ca.cert, host, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := c.PrivateKey.(*ecdsa.PrivateKey); !ok {
				t.Errorf("leaf key %T; want ECDSA", c.PrivateKey)
			}
			if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
				t.Errorf("leaf does not verify for %s: %v", host, err)
			}
			if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "example.org", Roots: pool}); err == nil {
				t.Error("leaf verifies for example.org too")
			}
			if len(c.Certificate) != 2 {
				t.Errorf("chain length %d; want leaf + CA", len(c.Certificate))
			}
		})
	}
	// A leaf never outlives its CA.
	c, err := caMintLeaf(ca.cert, "pypi.org", ca.cert.Leaf.NotAfter.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf.NotAfter.After(ca.cert.Leaf.NotAfter) {
		t.Errorf("leaf NotAfter %v; want at most the CA's %v", c.Leaf.NotAfter, ca.cert.Leaf.NotAfter)
	}
}

// caTestCert is a stand-in certificate with only the expiry set.
func caTestCert(notAfter time.Time) *tls.Certificate {
	return &tls.Certificate{Leaf: &x509.Certificate{NotAfter: notAfter}}
}

func TestCACertCache(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCACertCache(2)
	c.now = func() time.Time { return now }
	mints := map[string]int{}
	fetch := func(host string, notAfter time.Time) *tls.Certificate {
		t.Helper()
		got, err := c.Fetch(host, func() (*tls.Certificate, error) {
			mints[host]++
			return caTestCert(notAfter), nil
		})
		if err != nil {
			t.Fatalf("Fetch(%s): %v", host, err)
		}
		return got
	}
	later := now.Add(24 * time.Hour)
	a := fetch("a", later)
	if got := fetch("a", later); got != a {
		t.Error("second Fetch of a minted again; want the cached certificate")
	}
	fetch("b", later)
	fetch("a", later) // a is now the most recently used
	fetch("c", later) // evicts b
	if got := c.len(); got != 2 {
		t.Errorf("cache holds %d; want 2", got)
	}
	fetch("b", later)
	want := map[string]int{"a": 1, "b": 2, "c": 1}
	if fmt.Sprint(mints) != fmt.Sprint(want) {
		t.Errorf("mints %v; want %v", mints, want)
	}
	// Close to its expiry a certificate is minted anew.
	now = later.Add(-caRenewBefore / 2)
	fetch("b", later.Add(48*time.Hour))
	if mints["b"] != 3 {
		t.Errorf("mints of b %d; want 3 after renewal", mints["b"])
	}
	// Errors are returned and not cached.
	boom := errors.New("boom")
	if _, err := c.Fetch("d", func() (*tls.Certificate, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("got %v; want %v", err, boom)
	}
	if got := fetch("d", later.Add(48*time.Hour)); got == nil {
		t.Error("Fetch after an error returned nil")
	}
}

func TestCACertCacheConcurrent(t *testing.T) {
	c := newCACertCache(8)
	var mints atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			host := fmt.Sprintf("h%d", i%2)
			_, err := c.Fetch(host, func() (*tls.Certificate, error) {
				mints.Add(1)
				time.Sleep(20 * time.Millisecond)
				return caTestCert(time.Now().Add(time.Hour * 24)), nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := mints.Load(); got != 2 {
		t.Errorf("mints %d; want 2 (one per host)", got)
	}
}

func FuzzCAParseKey(f *testing.F) {
	_, keyPEM, err := GenerateCA("fuzz", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(keyPEM)
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	f.Add([]byte("not pem"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := caParseKey(data)
		if err == nil && k == nil {
			t.Error("nil key without an error")
		}
		if err != nil && (errors.Is(err, ErrCANotPEM) == errors.Is(err, ErrCAKeyType)) {
			t.Errorf("error %v; want exactly one of ErrCANotPEM, ErrCAKeyType", err)
		}
	})
}

// BenchmarkCAMintLeaf is what the certificate cache saves on every
// handshake after the first: a P-256 key and a signature.
func BenchmarkCAMintLeaf(b *testing.B) {
	ca := egressLoadTestCA(b)
	for b.Loop() {
		if _, err := caMintLeaf(ca.cert, "pypi.org", time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
