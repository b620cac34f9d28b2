package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// loadCertificate reads a PEM certificate chain and its key, and checks the
// pair matches and the leaf is valid at now.
func loadCertificate(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
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
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("%s: certificate expired at %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("%s: certificate not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &c, nil
}

// certReloader serves the index listener's certificate and swaps it
// atomically on Reload; a pair that does not load keeps the current one.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	cur               atomic.Pointer[tls.Certificate]
}

func newCertReloader(certFile, keyFile string, logger *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: logger}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload rereads the certificate and key files. On error the certificate
// in use stays.
func (r *certReloader) Reload() error {
	c, err := loadCertificate(r.certFile, r.keyFile, time.Now())
	if err != nil {
		return err
	}
	r.cur.Store(c)
	r.log.Info("tls certificate loaded", "path", r.certFile, "subject", c.Leaf.Subject.String(),
		"dns_names", c.Leaf.DNSNames, "not_after", c.Leaf.NotAfter.UTC())
	return nil
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
