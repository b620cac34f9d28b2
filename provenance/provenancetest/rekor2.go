package provenancetest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/digitorus/timestamp"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekortiles "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	rekornote "github.com/sigstore/rekor-tiles/v2/pkg/note"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore/pkg/signature"
	tlogformat "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
)

// logID is a transparency log's ID: the sha256 of its DER public key.
func logID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return sum[:], nil
}

// rekor2Entry enters a DSSE envelope in the fake Rekor v2 log the way
// Rekor v2 does: a hashedrekord 0.0.2 entry over the sha256 of the
// envelope's PAE (payloadType, stmt), its signature sig and the signing
// certificate leaf, at index 1 of a two-entry tree, with an inclusion proof
// and a checkpoint signed by the log's key. The entry records no time. It
// returns the entry in protobuf JSON, as PEP 740 attestations carry it.
func (s *Sigstore) rekor2Entry(leaf *x509.Certificate, payloadType string, stmt, sig []byte) ([]byte, error) {
	digest := sha256.Sum256(dsse.PAE(payloadType, stmt))
	entry := &rekortiles.Entry{Kind: "hashedrekord", ApiVersion: "0.0.2", Spec: &rekortiles.Spec{
		Spec: &rekortiles.Spec_HashedRekordV002{HashedRekordV002: &rekortiles.HashedRekordLogEntryV002{
			Data: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: digest[:]},
			Signature: &rekortiles.Signature{Content: sig, Verifier: &rekortiles.Verifier{
				KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256,
				Verifier:   &rekortiles.Verifier_X509Certificate{X509Certificate: &protocommon.X509Certificate{RawBytes: leaf.Raw}},
			}},
		}},
	}}
	raw, err := protojson.Marshal(entry)
	if err != nil {
		return nil, err
	}
	body, err := jsoncanonicalizer.Transform(raw)
	if err != nil {
		return nil, err
	}
	// A tree of two entries: someone else's at index 0, this one at 1.
	other := make([]byte, 32)
	if _, err := rand.Read(other); err != nil {
		return nil, err
	}
	h := rfc6962.DefaultHasher
	sibling := h.HashLeaf(other)
	rootHash := h.HashChildren(sibling, h.HashLeaf(body))

	u, err := url.Parse(Rekor2URL)
	if err != nil {
		return nil, err
	}
	origin := u.Hostname()
	sv, err := signature.LoadECDSASignerVerifier(s.rekor2, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	signer, err := rekornote.NewNoteSigner(context.Background(), origin, sv)
	if err != nil {
		return nil, err
	}
	checkpoint, err := note.Sign(&note.Note{Text: string(tlogformat.Checkpoint{Origin: origin, Size: 2, Hash: rootHash}.Marshal())}, signer)
	if err != nil {
		return nil, fmt.Errorf("signing the checkpoint: %w", err)
	}
	id, err := logID(&s.rekor2.PublicKey)
	if err != nil {
		return nil, err
	}
	return protojson.Marshal(&protorekor.TransparencyLogEntry{
		LogIndex:    1,
		LogId:       &protocommon.LogId{KeyId: id},
		KindVersion: &protorekor.KindVersion{Kind: "hashedrekord", Version: "0.0.2"},
		InclusionProof: &protorekor.InclusionProof{
			LogIndex: 1, TreeSize: 2, RootHash: rootHash, Hashes: [][]byte{sibling},
			Checkpoint: &protorekor.Checkpoint{Envelope: string(checkpoint)},
		},
		CanonicalizedBody: body,
	})
}

// tsa is a fake RFC 3161 timestamp authority.
type tsa struct {
	authority *root.SigstoreTimestampingAuthority
	key       *ecdsa.PrivateKey
}

// newTSA returns a timestamp authority with its own root, intermediate and
// leaf, all valid for hours around now (sigstore-go's test TSA leaf lives
// ten minutes, shorter than a slow test run).
func newTSA(uri string, now time.Time) (*tsa, error) {
	rootCert, rootKey, err := ca.GenerateRootCa()
	if err != nil {
		return nil, err
	}
	interm, intKey, err := ca.GenerateTSAIntermediate(rootCert, rootKey)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}}) // id-kp-timeStamping
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pipgate test TSA"},
		NotBefore:    now.Add(-5 * time.Hour),
		NotAfter:     now.Add(5 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// RFC 3161 requires the timestamping EKU, alone and critical.
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, interm, &key.PublicKey, intKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tsa{key: key, authority: &root.SigstoreTimestampingAuthority{
		Root: rootCert, Intermediates: []*x509.Certificate{interm}, Leaf: leaf, URI: uri,
		ValidityPeriodStart: now.Add(-5 * time.Hour), ValidityPeriodEnd: now.Add(5 * time.Hour),
	}}, nil
}

// timestamp returns an RFC 3161 timestamp response over sig, at the
// current time, with the TSA's certificate embedded.
func (a *tsa) timestamp(sig []byte) ([]byte, error) {
	sum := sha256.Sum256(sig)
	ts := timestamp.Timestamp{
		HashAlgorithm:     crypto.SHA256,
		HashedMessage:     sum[:],
		Time:              time.Now(),
		Policy:            asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2},
		AddTSACertificate: true,
	}
	return ts.CreateResponseWithOpts(a.authority.Leaf, a.key, crypto.SHA256)
}
