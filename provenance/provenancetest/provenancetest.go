// Package provenancetest is a hermetic fake Sigstore for tests: it writes a
// trusted_root.json and mints PyPI-style PEP 740 attestations and Integrity
// API provenance objects for arbitrary file bytes, signed by GitHub, GitLab,
// Google or e-mail identities, with options to tamper.
//
// Typical use:
//
//	ps := provenancetest.New(t)
//	prov := ps.ProvenanceFor("demo-1.0-py3-none-any.whl", content, provenancetest.GitHub("owner/repo", "release.yml"))
//	v := ps.Verifier()
//	facts := v.Facts(prov, provenancetest.DistFor("demo-1.0-py3-none-any.whl", content))
//
// The fake root has no CT log, so verifiers built from it do not require
// SCTs (the minted leaves carry none); it does have a Fulcio CA, a Rekor v1
// log, a Rekor v2 log and a timestamp authority. By default an attestation
// is entered in the Rekor v1 log (dsse 0.0.1) with a real inclusion proof,
// checkpoint and signed entry timestamp; [WithRekorV2] enters it in the
// Rekor v2 log instead (hashedrekord 0.0.2 over the hash of the envelope's
// PAE, an inclusion proof against a signed checkpoint, no time) with an
// RFC 3161 timestamp from the fake timestamp authority. Certificates are
// valid for a few minutes around the time of signing and the root for a
// few hours: mint and verify within one test run.
package provenancetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/pypi"
)

// Sigstore is a fake Sigstore instance: a Fulcio CA, a Rekor v1 log, a
// Rekor v2 log and a timestamp authority.
type Sigstore struct {
	t        testing.TB
	vs       *ca.VirtualSigstore
	interm   *x509.Certificate
	intKey   *ecdsa.PrivateKey
	rekor2   *ecdsa.PrivateKey // the Rekor v2 log's checkpoint key
	tsa      *tsa              // in the trusted root
	rogueTSA *tsa              // not in the trusted root
	rootJSON []byte
	trusted  *root.TrustedRoot
}

// Rekor2URL is the base URL of the fake Rekor v2 log; checkpoints name its
// host as their origin.
const Rekor2URL = "https://log2025-1.rekor.pipgate.test"

// New returns a fresh fake Sigstore; any failure fails t. Methods without
// an error result fail t too.
func New(t testing.TB) *Sigstore {
	t.Helper()
	s, err := NewSigstore()
	if err != nil {
		t.Fatalf("provenancetest: %v", err)
	}
	s.t = t
	return s
}

// NewSigstore returns a fresh fake Sigstore without a testing.TB; its
// methods without an error result panic on failure.
func NewSigstore() (*Sigstore, error) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		return nil, err
	}
	rootCert, rootKey, err := ca.GenerateRootCa()
	if err != nil {
		return nil, err
	}
	interm, intKey, err := ca.GenerateFulcioIntermediate(rootCert, rootKey)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	fulcio := &root.FulcioCertificateAuthority{
		Root:                rootCert,
		Intermediates:       []*x509.Certificate{interm},
		ValidityPeriodStart: now.Add(-5 * time.Hour),
		ValidityPeriodEnd:   now.Add(5 * time.Hour),
		URI:                 "https://fulcio.pipgate.test",
	}
	logs := vs.RekorLogs()
	for id, l := range logs {
		raw, err := hex.DecodeString(id)
		if err != nil {
			return nil, err
		}
		l.ID = raw // RekorLogs stores the hex string's bytes; the JSON needs the raw key ID
	}
	rekor2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	r2ID, err := logID(&rekor2.PublicKey)
	if err != nil {
		return nil, err
	}
	logs[hex.EncodeToString(r2ID)] = &root.TransparencyLog{
		BaseURL: Rekor2URL, ID: r2ID, HashFunc: crypto.SHA256, PublicKey: &rekor2.PublicKey, SignatureHashFunc: crypto.SHA256,
		ValidityPeriodStart: now.Add(-5 * time.Hour), ValidityPeriodEnd: now.Add(5 * time.Hour),
	}
	ts, err := newTSA("https://timestamp.pipgate.test/api/v1/timestamp", now)
	if err != nil {
		return nil, err
	}
	rogue, err := newTSA("https://rogue-timestamp.pipgate.test/api/v1/timestamp", now)
	if err != nil {
		return nil, err
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, []root.CertificateAuthority{fulcio}, nil,
		[]root.TimestampingAuthority{ts.authority}, logs)
	if err != nil {
		return nil, err
	}
	rootJSON, err := tr.MarshalJSON()
	if err != nil {
		return nil, err
	}
	// Load it back, as the proxy will: the round trip must hold.
	loaded, err := root.NewTrustedRootFromJSON(rootJSON)
	if err != nil {
		return nil, fmt.Errorf("reloading the fake trusted root: %w", err)
	}
	return &Sigstore{vs: vs, interm: interm, intKey: intKey, rekor2: rekor2, tsa: ts, rogueTSA: rogue, rootJSON: rootJSON, trusted: loaded}, nil
}

func (s *Sigstore) fail(err error) {
	if s.t != nil {
		s.t.Helper()
		s.t.Fatalf("provenancetest: %v", err)
	}
	panic("provenancetest: " + err.Error())
}

// TrustedRootJSON returns the trusted_root.json of this fake Sigstore.
func (s *Sigstore) TrustedRootJSON() []byte { return append([]byte(nil), s.rootJSON...) }

// WriteTrustedRoot writes trusted_root.json into dir and returns its path.
func (s *Sigstore) WriteTrustedRoot(dir string) string {
	p := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(p, s.rootJSON, 0o644); err != nil {
		s.fail(err)
	}
	return p
}

// Verifier returns a provenance.Verifier that trusts this fake Sigstore.
func (s *Sigstore) Verifier() *provenance.Verifier {
	v, err := provenance.NewVerifier(provenance.VerifierOptions{TrustedRoot: s.trusted})
	if err != nil {
		s.fail(err)
	}
	return v
}

// DistFor returns the provenance.Dist of a file with these bytes.
func DistFor(filename string, content []byte) provenance.Dist {
	sum := sha256.Sum256(content)
	return provenance.Dist{Filename: filename, SHA256: hex.EncodeToString(sum[:])}
}

// Signer is the identity a minted certificate carries.
type Signer struct {
	// Issuer goes into Fulcio extensions .1 (raw) and .8 (UTF8String).
	Issuer string
	// URI is a URI SAN (CI identities); Email an e-mail SAN.
	URI, Email string
	// The Fulcio extensions .9, .12, .13, .14 and .18; empty ones are left out.
	BuildSignerURI, SourceRepositoryURI, SourceRepositoryDigest, SourceRepositoryRef, BuildConfigURI string
	// Recorded is the publisher PyPI would record for this signer.
	Recorded pypi.Publisher
}

// Commit is the source commit every CI Signer claims.
const Commit = "0123456789abcdef0123456789abcdef01234567"

// Ref is the source ref every CI Signer claims.
const Ref = "refs/tags/v1.0"

// GitHub returns a GitHub Actions signer for repository "owner/name" and
// the workflow file name, as Fulcio would issue it.
func GitHub(repository, workflow string) Signer {
	wf := "https://github.com/" + repository + "/.github/workflows/" + workflow + "@" + Ref
	return Signer{
		Issuer: provenance.IssuerGitHub, URI: wf, BuildSignerURI: wf,
		SourceRepositoryURI: "https://github.com/" + repository, SourceRepositoryDigest: Commit, SourceRepositoryRef: Ref,
		BuildConfigURI: wf,
		Recorded:       pypi.Publisher{Kind: pypi.KindGitHub, Repository: repository, Workflow: workflow},
	}
}

// GitLab returns a GitLab CI signer for the project path and the workflow
// file path (".gitlab-ci.yml"), with the "//" form Fulcio uses.
func GitLab(repository, workflowPath string) Signer {
	wf := "https://gitlab.com/" + repository + "//" + workflowPath + "@" + Ref
	return Signer{
		Issuer: provenance.IssuerGitLab, URI: wf, BuildSignerURI: wf,
		SourceRepositoryURI: "https://gitlab.com/" + repository, SourceRepositoryDigest: Commit, SourceRepositoryRef: Ref,
		BuildConfigURI: wf,
		Recorded:       pypi.Publisher{Kind: pypi.KindGitLab, Repository: repository, Workflow: workflowPath},
	}
}

// Google returns a Google service-account signer.
func Google(email string) Signer {
	return Signer{Issuer: provenance.IssuerGoogle, Email: email, Recorded: pypi.Publisher{Kind: pypi.KindGoogle, Email: email}}
}

// Email returns a generic e-mail identity from issuer (no PyPI publisher
// form: use it with VerifyAttestation and an explicit expected publisher).
func Email(email, issuer string) Signer {
	return Signer{Issuer: issuer, Email: email, Recorded: pypi.Publisher{Kind: pypi.KindIdentity, Issuer: issuer, Subject: email}}
}

// Subject is one in-toto statement subject.
type Subject struct {
	Name   string
	SHA256 string
}

type config struct {
	subjects      []Subject
	predicateType string
	predicate     json.RawMessage
	statement     []byte
	payloadType   string
	kindVersion   string
	at            time.Time
	rekor2        bool
	timestamp     timestampKind
}

// timestampKind says which RFC 3161 timestamp an attestation carries.
type timestampKind int

const (
	timestampDefault   timestampKind = iota // one for Rekor v2, none for Rekor v1
	timestampNone                           // none
	timestampTrusted                        // one from the fake root's TSA
	timestampUntrusted                      // one from a TSA outside the root
)

// Option changes what Sign mints, to tamper.
type Option func(*config)

// WithSubjects replaces the statement's subjects.
func WithSubjects(subjects ...Subject) Option {
	return func(c *config) { c.subjects = subjects }
}

// WithPredicateType sets the predicate type (default publish/v1).
func WithPredicateType(pt string) Option { return func(c *config) { c.predicateType = pt } }

// WithPredicate sets the predicate JSON (default null).
func WithPredicate(raw string) Option { return func(c *config) { c.predicate = json.RawMessage(raw) } }

// WithStatement signs exactly these statement bytes instead of a generated one.
func WithStatement(raw []byte) Option { return func(c *config) { c.statement = raw } }

// WithPayloadType signs the DSSE PAE with another payload type; PyPI's
// attestation form has no payload type field, so verifiers assume in-toto
// and the signature must then fail.
func WithPayloadType(pt string) Option { return func(c *config) { c.payloadType = pt } }

// WithKindVersion labels the transparency entry with another dsse version
// ("0.0.2" looks like a deprecated Rekor v2 dsse entry, which verifiers
// call unsupported).
func WithKindVersion(v string) Option { return func(c *config) { c.kindVersion = v } }

// WithTime signs at t (default: now); the certificate is valid for 10
// minutes from one minute before t. An RFC 3161 timestamp is always made at
// the real time, so far from now it falls outside the certificate.
func WithTime(t time.Time) Option { return func(c *config) { c.at = t } }

// WithRekorV2 enters the attestation in the fake Rekor v2 log as
// hashedrekord 0.0.2 over the hash of the envelope's PAE, with an RFC 3161
// timestamp from the fake timestamp authority (the only signing time a
// Rekor v2 entry can have), as Sigstore's Rekor v2 signing config does.
func WithRekorV2() Option { return func(c *config) { c.rekor2 = true } }

// WithoutTimestamp leaves the RFC 3161 timestamp out (with WithRekorV2:
// an attestation without a signing time, which verifiers refuse).
func WithoutTimestamp() Option { return func(c *config) { c.timestamp = timestampNone } }

// WithTimestamp adds an RFC 3161 timestamp from the fake timestamp
// authority (with a Rekor v1 entry, a second signing time).
func WithTimestamp() Option { return func(c *config) { c.timestamp = timestampTrusted } }

// WithUntrustedTimestamp makes the RFC 3161 timestamp come from a timestamp
// authority that is not in the trusted root.
func WithUntrustedTimestamp() Option { return func(c *config) { c.timestamp = timestampUntrusted } }

// Statement returns the in-toto statement Sign would sign for a file.
func Statement(subjects []Subject, predicateType string, predicate json.RawMessage) []byte {
	type subj struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	}
	st := struct {
		Type          string          `json:"_type"`
		Subject       []subj          `json:"subject"`
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}{Type: "https://in-toto.io/Statement/v1", PredicateType: predicateType, Predicate: predicate}
	for _, s := range subjects {
		st.Subject = append(st.Subject, subj{Name: s.Name, Digest: map[string]string{"sha256": s.SHA256}})
	}
	b, err := json.Marshal(st)
	if err != nil {
		panic(err)
	}
	return b
}

func utf8Ext(oid asn1.ObjectIdentifier, v string) (pkix.Extension, error) {
	b, err := asn1.MarshalWithParams(v, "utf8")
	return pkix.Extension{Id: oid, Value: b}, err
}

// Sign mints a PyPI-style attestation (JSON) for a file with these bytes,
// signed by id.
func (s *Sigstore) Sign(filename string, content []byte, id Signer, opts ...Option) ([]byte, error) {
	d := DistFor(filename, content)
	c := config{
		subjects:      []Subject{{Name: filename, SHA256: d.SHA256}},
		predicateType: provenance.PredicatePublishV1,
		predicate:     json.RawMessage("null"),
		payloadType:   "application/vnd.in-toto+json",
		kindVersion:   "0.0.1",
		at:            time.Now(),
	}
	for _, o := range opts {
		o(&c)
	}
	stmt := c.statement
	if stmt == nil {
		stmt = Statement(c.subjects, c.predicateType, c.predicate)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	exts := []pkix.Extension{{Id: certificate.OIDIssuer, Value: []byte(id.Issuer)}} //nolint:staticcheck // mints the v1 issuer extension older certificates carry
	for _, e := range []struct {
		oid asn1.ObjectIdentifier
		v   string
	}{
		{certificate.OIDIssuerV2, id.Issuer},
		{certificate.OIDBuildSignerURI, id.BuildSignerURI},
		{certificate.OIDSourceRepositoryURI, id.SourceRepositoryURI},
		{certificate.OIDSourceRepositoryDigest, id.SourceRepositoryDigest},
		{certificate.OIDSourceRepositoryRef, id.SourceRepositoryRef},
		{certificate.OIDBuildConfigURI, id.BuildConfigURI},
	} {
		if e.v == "" {
			continue
		}
		x, err := utf8Ext(e.oid, e.v)
		if err != nil {
			return nil, err
		}
		exts = append(exts, x)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		NotBefore:       c.at.Add(-time.Minute),
		NotAfter:        c.at.Add(9 * time.Minute),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: exts,
	}
	if id.URI != "" {
		u, err := url.Parse(id.URI)
		if err != nil {
			return nil, err
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	if id.Email != "" {
		tmpl.EmailAddresses = []string{id.Email}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.interm, &key.PublicKey, s.intKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}

	pae := dsse.PAE(c.payloadType, stmt)
	h := sha256.Sum256(pae)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return nil, err
	}
	env := &dsse.Envelope{
		PayloadType: c.payloadType,
		Payload:     base64.StdEncoding.EncodeToString(stmt),
		Signatures:  []dsse.Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}},
	}
	var entryJSON []byte
	if c.rekor2 {
		entryJSON, err = s.rekor2Entry(leaf, c.payloadType, stmt, sig)
	} else {
		entryJSON, err = s.rekor1Entry(leaf, env, sig, c)
	}
	if err != nil {
		return nil, err
	}
	vmat := map[string]any{
		"certificate":          base64.StdEncoding.EncodeToString(der),
		"transparency_entries": []json.RawMessage{entryJSON},
	}
	if c.timestamp == timestampTrusted || c.timestamp == timestampUntrusted || (c.timestamp == timestampDefault && c.rekor2) {
		authority := s.tsa
		if c.timestamp == timestampUntrusted {
			authority = s.rogueTSA
		}
		tsr, err := authority.timestamp(sig)
		if err != nil {
			return nil, fmt.Errorf("minting the timestamp: %w", err)
		}
		vmat["timestamps"] = []string{base64.StdEncoding.EncodeToString(tsr)}
	}
	att := map[string]any{
		"version":               1,
		"verification_material": vmat,
		"envelope": map[string]any{
			"statement": base64.StdEncoding.EncodeToString(stmt),
			"signature": base64.StdEncoding.EncodeToString(sig),
		},
	}
	return json.Marshal(att)
}

// Attestation is Sign that fails the test on error.
func (s *Sigstore) Attestation(filename string, content []byte, id Signer, opts ...Option) []byte {
	b, err := s.Sign(filename, content, id, opts...)
	if err != nil {
		s.fail(err)
	}
	return b
}

// Provenance wraps attestations into an Integrity API provenance object with
// pub as the recorded publisher (GitHub, GitLab or Google).
func (s *Sigstore) Provenance(pub pypi.Publisher, atts ...[]byte) []byte {
	pj, err := provenance.PublisherJSON(pub)
	if err != nil {
		s.fail(err)
	}
	return ProvenanceJSON(pj, atts...)
}

// ProvenanceJSON wraps attestations into a provenance object with the raw
// publisher JSON (to test unusual publisher objects).
func ProvenanceJSON(publisher []byte, atts ...[]byte) []byte {
	raw := make([]json.RawMessage, len(atts))
	for i, a := range atts {
		raw[i] = a
	}
	b, err := json.Marshal(map[string]any{
		"version":             1,
		"attestation_bundles": []any{map[string]any{"publisher": json.RawMessage(publisher), "attestations": raw}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// ProvenanceFor mints one publish/v1 attestation for the file and wraps it
// in a provenance object recording id's publisher, as PyPI serves it.
func (s *Sigstore) ProvenanceFor(filename string, content []byte, id Signer, opts ...Option) []byte {
	return s.Provenance(id.Recorded, s.Attestation(filename, content, id, opts...))
}

// rekor1Entry enters the envelope in the fake Rekor v1 log and returns the
// entry (dsse, labelled c.kindVersion) in protobuf JSON.
func (s *Sigstore) rekor1Entry(leaf *x509.Certificate, env *dsse.Envelope, sig []byte, c config) ([]byte, error) {
	entry, err := s.vs.GenerateTlogEntry(leaf, env, sig, c.at.Unix(), true)
	if err != nil {
		return nil, fmt.Errorf("minting the log entry: %w", err)
	}
	tle := entry.TransparencyLogEntry()
	tle.KindVersion = &protorekor.KindVersion{Kind: "dsse", Version: c.kindVersion}
	if tle.InclusionPromise == nil {
		logID, err := s.vs.RekorLogID()
		if err != nil {
			return nil, err
		}
		set, err := s.vs.RekorSignPayload(tlog.RekorPayload{
			Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
			IntegratedTime: tle.IntegratedTime,
			LogIndex:       tle.LogIndex,
			LogID:          logID,
		})
		if err != nil {
			return nil, err
		}
		tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	}
	return protojson.Marshal(tle)
}
