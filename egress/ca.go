package egress

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Errors returned by [LoadCA] and [GenerateCA]. They are wrapped in a
// [*CAError] naming the file; match them with errors.Is.
var (
	// ErrCANotPEM means a file holds no PEM block of the expected type.
	ErrCANotPEM = errors.New("no PEM block found")
	// ErrCAKeyMismatch means the private key does not belong to the certificate.
	ErrCAKeyMismatch = errors.New("private key does not match the certificate")
	// ErrCANotCA means the certificate may not sign other certificates.
	ErrCANotCA = errors.New("certificate is not a CA (needs basicConstraints CA:true and keyUsage certSign)")
	// ErrCAExpired means the certificate is outside its validity period.
	ErrCAExpired = errors.New("certificate is expired or not yet valid")
	// ErrCAKeyType means the private key is of an unsupported type or encoding.
	ErrCAKeyType = errors.New("unsupported private key (want PKCS#8, SEC 1 EC or PKCS#1 RSA)")
)

// CAError reports a problem with one file of the egress CA. It never carries
// key material: only the path, a short description of what was being done and
// the cause.
type CAError struct {
	Path string // the file concerned
	Op   string // "reading certificate", "parsing key", ...
	Err  error
}

func (e *CAError) Error() string { return fmt.Sprintf("CA %s %s: %v", e.Op, e.Path, e.Err) }

func (e *CAError) Unwrap() error { return e.Err }

// LoadCA reads the egress CA certificate and its private key from PEM files.
// The certificate file may hold a chain: the first certificate is the CA that
// signs per-host certificates, the rest are sent to clients after it. The
// returned certificate has Leaf set. A missing or unreadable file, a file
// without PEM, a key that does not match, a certificate that is not a CA or
// is outside its validity period are errors ([*CAError]); key bytes never
// appear in an error.
func LoadCA(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, &CAError{Path: certFile, Op: "reading certificate", Err: caPathCause(err)}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, &CAError{Path: keyFile, Op: "reading key", Err: caPathCause(err)}
	}
	var chain [][]byte
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return tls.Certificate{}, &CAError{Path: certFile, Op: "parsing certificate", Err: ErrCANotPEM}
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return tls.Certificate{}, &CAError{Path: certFile, Op: "parsing certificate", Err: err}
	}
	key, err := caParseKey(keyPEM)
	if err != nil {
		return tls.Certificate{}, &CAError{Path: keyFile, Op: "parsing key", Err: err}
	}
	if err := caCheck(leaf, key, time.Now()); err != nil {
		path := certFile
		if errors.Is(err, ErrCAKeyMismatch) {
			path = keyFile
		}
		return tls.Certificate{}, &CAError{Path: path, Op: "checking", Err: err}
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// caPathCause drops the *fs.PathError wrapper (its path is already in the
// [CAError]) and keeps the cause, so errors.Is(err, fs.ErrNotExist) still works.
func caPathCause(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// caParseKey finds the first private key block in data. Its errors are
// generic on purpose: the parsers' own messages are dropped so that nothing
// derived from the key bytes can reach a log.
func caParseKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, ErrCANotPEM
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if strings.Contains(b.Type, "ENCRYPTED") {
			return nil, fmt.Errorf("%w: the key is encrypted", ErrCAKeyType)
		}
		if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
			return caSigner(k)
		}
		if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		return nil, ErrCAKeyType
	}
}

func caSigner(k any) (crypto.Signer, error) {
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, ErrCAKeyType
	}
}

// caCheck holds a CA certificate and key to what minting needs.
func caCheck(cert *x509.Certificate, key crypto.Signer, now time.Time) error {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return ErrCAKeyMismatch
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return ErrCANotCA
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return ErrCANotCA
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("%w (valid %s to %s)", ErrCAExpired,
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// GenerateCA creates a self-signed ECDSA P-256 CA certificate (CA:true,
// path length 0, keyUsage certSign and cRLSign) valid from an hour ago for
// validFor, and returns it and its PKCS#8 private key, both PEM-encoded.
func GenerateCA(commonName string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if strings.TrimSpace(commonName) == "" {
		return nil, nil, errors.New("generating CA: empty common name")
	}
	if validFor <= 0 {
		return nil, nil, errors.New("generating CA: validity must be positive")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := caSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"pipgate egress CA"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, errors.New("encoding CA key failed")
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

func caSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return serial, nil
}

// caLeafLifetime is how long a minted per-host certificate is valid; it is
// cut to the CA's own expiry.
const caLeafLifetime = 7 * 24 * time.Hour

// caMintLeaf signs a server certificate for host with a fresh ECDSA P-256
// key. The chain sent to clients is the leaf followed by the CA's chain.
func caMintLeaf(ca tls.Certificate, host string, now time.Time) (*tls.Certificate, error) {
	signer, ok := ca.PrivateKey.(crypto.Signer)
	if !ok || ca.Leaf == nil {
		return nil, errors.New("minting certificate: CA has no usable key or parsed certificate")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("minting certificate key: %w", err)
	}
	serial, err := caSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(caLeafLifetime)
	if notAfter.After(ca.Leaf.NotAfter) {
		notAfter = ca.Leaf.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Leaf, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("minting certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("minting certificate for %s: %w", host, err)
	}
	chain := make([][]byte, 0, 1+len(ca.Certificate))
	chain = append(chain, der)
	chain = append(chain, ca.Certificate...)
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// caRenewBefore is how long before its expiry a cached certificate is
// replaced by a fresh one.
const caRenewBefore = time.Hour

// caCertCache is a bounded, concurrency-safe LRU of minted certificates keyed
// by host name. It implements goproxy.CertStorage. Concurrent misses for one
// host mint once (singleflight); certificates close to expiry are minted anew.
type caCertCache struct {
	max   int
	now   func() time.Time
	group singleflight.Group

	mu    sync.Mutex
	order *list.List               // front: most recently used; values are *caCacheEntry
	byKey map[string]*list.Element // host → element of order
}

type caCacheEntry struct {
	host string
	cert *tls.Certificate
}

func newCACertCache(maxEntries int) *caCertCache {
	if maxEntries < 1 {
		maxEntries = 1
	}
	return &caCertCache{max: maxEntries, now: time.Now, order: list.New(), byKey: make(map[string]*list.Element)}
}

// Fetch returns the cached certificate for hostname, or calls gen, caches and
// returns its result.
func (c *caCertCache) Fetch(hostname string, gen func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	if cert := c.get(hostname); cert != nil {
		return cert, nil
	}
	v, err, _ := c.group.Do(hostname, func() (any, error) {
		if cert := c.get(hostname); cert != nil {
			return cert, nil
		}
		cert, err := gen()
		if err != nil {
			return nil, err
		}
		if cert.Leaf == nil {
			if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return nil, fmt.Errorf("parsing minted certificate: %w", err)
			}
		}
		c.put(hostname, cert)
		return cert, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tls.Certificate), nil
}

func (c *caCertCache) get(host string) *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[host]
	if !ok {
		return nil
	}
	e := el.Value.(*caCacheEntry)
	if c.now().After(e.cert.Leaf.NotAfter.Add(-caRenewBefore)) {
		c.order.Remove(el)
		delete(c.byKey, host)
		return nil
	}
	c.order.MoveToFront(el)
	return e.cert
}

func (c *caCertCache) put(host string, cert *tls.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[host]; ok {
		el.Value.(*caCacheEntry).cert = cert
		c.order.MoveToFront(el)
		return
	}
	c.byKey[host] = c.order.PushFront(&caCacheEntry{host: host, cert: cert})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*caCacheEntry).host)
	}
}

// len reports the number of cached certificates.
func (c *caCertCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
