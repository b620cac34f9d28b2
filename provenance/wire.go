package provenance

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pipgate/pipgate/pypi"
)

// Limits applied to untrusted provenance input.
const (
	// MaxProvenanceSize is the largest provenance object or attestation accepted, in bytes.
	MaxProvenanceSize = 4 << 20
	// MaxBundles is the largest number of attestation bundles in one provenance object.
	MaxBundles = 16
	// MaxAttestations is the largest number of attestations in one bundle (PyPI caps it at 2).
	MaxAttestations = 8
	// MaxTransparencyEntries is the largest number of transparency entries in one attestation.
	MaxTransparencyEntries = 8
	// MaxTimestamps is the largest number of RFC 3161 timestamps in one attestation.
	MaxTimestamps = 8
	// MaxDepth is the deepest JSON nesting accepted.
	MaxDepth = 32
)

// Provenance is PyPI's Integrity API provenance object (PEP 740).
type Provenance struct {
	// Version is always 1.
	Version int
	// Bundles holds one entry per publisher; never empty.
	Bundles []AttestationBundle
}

// AttestationBundle is a set of attestations with the publisher PyPI
// recorded for them at upload.
type AttestationBundle struct {
	// Publisher is the recorded (unsigned) publisher, converted.
	Publisher pypi.Publisher
	// Attestations is never empty.
	Attestations []Attestation
}

// Attestation is one PEP 740 attestation, its binary fields decoded.
type Attestation struct {
	// Version is always 1.
	Version int
	// Certificate is the DER X.509 signing certificate.
	Certificate []byte
	// TransparencyEntries are the Rekor entries in protobuf-JSON form; only the first is used.
	TransparencyEntries []json.RawMessage
	// Timestamps are RFC 3161 timestamp responses, DER; often empty.
	Timestamps [][]byte
	// Statement is the exact in-toto statement bytes that were signed.
	Statement []byte
	// Signature is the DER ECDSA signature over the DSSE PAE of Statement.
	Signature []byte
}

type wireProvenance struct {
	Version            *int              `json:"version"`
	AttestationBundles []json.RawMessage `json:"attestation_bundles"`
}

type wireBundle struct {
	Publisher    json.RawMessage   `json:"publisher"`
	Attestations []json.RawMessage `json:"attestations"`
}

type wireAttestation struct {
	Version              *int `json:"version"`
	VerificationMaterial *struct {
		Certificate         *string           `json:"certificate"`
		TransparencyEntries []json.RawMessage `json:"transparency_entries"`
		Timestamps          []string          `json:"timestamps"`
	} `json:"verification_material"`
	Envelope *struct {
		Statement *string `json:"statement"`
		Signature *string `json:"signature"`
	} `json:"envelope"`
}

type wirePublisher struct {
	Kind             *string         `json:"kind"`
	Repository       *string         `json:"repository"`
	Workflow         *string         `json:"workflow"`
	WorkflowFilepath *string         `json:"workflow_filepath"`
	Environment      json.RawMessage `json:"environment"`
	Email            *string         `json:"email"`
	Claims           json.RawMessage `json:"claims"`
}

func formatErr(err error, format string, args ...any) *Error {
	return newError(ReasonFormat, err, format, args...)
}

// checkJSON enforces the size and nesting limits before any decoding.
func checkJSON(data []byte, what string) error {
	if len(data) > MaxProvenanceSize {
		return formatErr(nil, "%s is %d bytes, more than the limit of %d", what, len(data), MaxProvenanceSize)
	}
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > MaxDepth {
				return formatErr(nil, "%s nests deeper than %d levels", what, MaxDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

func decodeStrict(data []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return formatErr(err, "invalid %s: %v", what, err)
	}
	if _, err := dec.Token(); err == nil {
		return formatErr(nil, "invalid %s: trailing data after the JSON value", what)
	}
	return nil
}

// decodeBase64 decodes standard, padded base64 and rejects the embedded
// newlines Go's decoder would otherwise skip silently.
func decodeBase64(s, what string) ([]byte, error) {
	if s == "" {
		return nil, formatErr(nil, "invalid %s: empty", what)
	}
	if bytes.ContainsAny([]byte(s), "\r\n") {
		return nil, formatErr(nil, "invalid %s: base64 contains a line break", what)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, formatErr(err, "invalid %s: %v", what, err)
	}
	return b, nil
}

// ParseProvenance parses an Integrity API provenance object, enforcing the
// package limits. Errors are [*Error] with Reason "format".
func ParseProvenance(data []byte) (*Provenance, error) {
	if err := checkJSON(data, "provenance"); err != nil {
		return nil, err
	}
	var w wireProvenance
	if err := decodeStrict(data, &w, "provenance"); err != nil {
		return nil, err
	}
	if w.Version == nil {
		return nil, formatErr(nil, "invalid provenance: missing version")
	}
	if *w.Version != 1 {
		return nil, formatErr(nil, "invalid provenance: unsupported version %d", *w.Version)
	}
	if len(w.AttestationBundles) == 0 {
		return nil, formatErr(nil, "invalid provenance: no attestation bundles")
	}
	if len(w.AttestationBundles) > MaxBundles {
		return nil, formatErr(nil, "invalid provenance: %d attestation bundles, more than %d", len(w.AttestationBundles), MaxBundles)
	}
	p := &Provenance{Version: 1}
	for i, raw := range w.AttestationBundles {
		var wb wireBundle
		if err := decodeStrict(raw, &wb, fmt.Sprintf("attestation bundle %d", i)); err != nil {
			return nil, err
		}
		pub, err := ParsePublisher(wb.Publisher)
		if err != nil {
			return nil, fmt.Errorf("attestation bundle %d: %w", i, err)
		}
		if len(wb.Attestations) == 0 {
			return nil, formatErr(nil, "invalid provenance: attestation bundle %d has no attestations", i)
		}
		if len(wb.Attestations) > MaxAttestations {
			return nil, formatErr(nil, "invalid provenance: attestation bundle %d has %d attestations, more than %d", i, len(wb.Attestations), MaxAttestations)
		}
		b := AttestationBundle{Publisher: pub}
		for j, ra := range wb.Attestations {
			a, err := parseAttestation(ra)
			if err != nil {
				return nil, fmt.Errorf("attestation bundle %d, attestation %d: %w", i, j, err)
			}
			b.Attestations = append(b.Attestations, *a)
		}
		p.Bundles = append(p.Bundles, b)
	}
	return p, nil
}

// ParseAttestation parses one PEP 740 attestation, enforcing the package
// limits. Errors are [*Error] with Reason "format".
func ParseAttestation(data []byte) (*Attestation, error) {
	if err := checkJSON(data, "attestation"); err != nil {
		return nil, err
	}
	return parseAttestation(data)
}

func parseAttestation(data []byte) (*Attestation, error) {
	var w wireAttestation
	if err := decodeStrict(data, &w, "attestation"); err != nil {
		return nil, err
	}
	switch {
	case w.Version == nil:
		return nil, formatErr(nil, "invalid attestation: missing version")
	case *w.Version != 1:
		return nil, formatErr(nil, "invalid attestation: unsupported version %d", *w.Version)
	case w.VerificationMaterial == nil:
		return nil, formatErr(nil, "invalid attestation: missing verification_material")
	case w.VerificationMaterial.Certificate == nil:
		return nil, formatErr(nil, "invalid attestation: missing verification_material.certificate")
	case len(w.VerificationMaterial.TransparencyEntries) == 0:
		return nil, formatErr(nil, "invalid attestation: no transparency_entries")
	case len(w.VerificationMaterial.TransparencyEntries) > MaxTransparencyEntries:
		return nil, formatErr(nil, "invalid attestation: %d transparency_entries, more than %d", len(w.VerificationMaterial.TransparencyEntries), MaxTransparencyEntries)
	case len(w.VerificationMaterial.Timestamps) > MaxTimestamps:
		return nil, formatErr(nil, "invalid attestation: %d timestamps, more than %d", len(w.VerificationMaterial.Timestamps), MaxTimestamps)
	case w.Envelope == nil:
		return nil, formatErr(nil, "invalid attestation: missing envelope")
	case w.Envelope.Statement == nil:
		return nil, formatErr(nil, "invalid attestation: missing envelope.statement")
	case w.Envelope.Signature == nil:
		return nil, formatErr(nil, "invalid attestation: missing envelope.signature")
	}
	a := &Attestation{Version: 1, TransparencyEntries: w.VerificationMaterial.TransparencyEntries}
	var err error
	if a.Certificate, err = decodeBase64(*w.VerificationMaterial.Certificate, "certificate"); err != nil {
		return nil, err
	}
	if a.Statement, err = decodeBase64(*w.Envelope.Statement, "statement"); err != nil {
		return nil, err
	}
	if a.Signature, err = decodeBase64(*w.Envelope.Signature, "signature"); err != nil {
		return nil, err
	}
	for i, t := range w.VerificationMaterial.Timestamps {
		b, err := decodeBase64(t, fmt.Sprintf("timestamp %d", i))
		if err != nil {
			return nil, err
		}
		a.Timestamps = append(a.Timestamps, b)
	}
	for i, e := range a.TransparencyEntries {
		if t := bytes.TrimSpace(e); len(t) == 0 || t[0] != '{' {
			return nil, formatErr(nil, "invalid transparency log entry %d: not a JSON object", i)
		}
	}
	return a, nil
}

// ParsePublisher parses the publisher object of an attestation bundle
// (kinds GitHub, GitLab and Google, as pypi-attestations models them) and
// converts it to a [pypi.Publisher]. Unknown kinds and missing fields are
// errors; claims and environment are accepted in any form and ignored.
func ParsePublisher(data json.RawMessage) (pypi.Publisher, error) {
	if len(bytes.TrimSpace(data)) == 0 || bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return pypi.Publisher{}, formatErr(nil, "invalid publisher: missing")
	}
	var w wirePublisher
	if err := decodeStrict(data, &w, "publisher"); err != nil {
		return pypi.Publisher{}, err
	}
	if w.Kind == nil {
		return pypi.Publisher{}, formatErr(nil, "invalid publisher: missing kind")
	}
	if err := checkOptionalString(w.Environment); err != nil {
		return pypi.Publisher{}, err
	}
	need := func(v *string, field string) (string, error) {
		if v == nil || *v == "" {
			return "", formatErr(nil, "invalid %s publisher: missing %s", *w.Kind, field)
		}
		return *v, nil
	}
	var p pypi.Publisher
	var err error
	switch *w.Kind {
	case "GitHub":
		p.Kind = pypi.KindGitHub
		if p.Repository, err = need(w.Repository, "repository"); err != nil {
			return pypi.Publisher{}, err
		}
		if p.Workflow, err = need(w.Workflow, "workflow"); err != nil {
			return pypi.Publisher{}, err
		}
	case "GitLab":
		p.Kind = pypi.KindGitLab
		if p.Repository, err = need(w.Repository, "repository"); err != nil {
			return pypi.Publisher{}, err
		}
		if p.Workflow, err = need(w.WorkflowFilepath, "workflow_filepath"); err != nil {
			return pypi.Publisher{}, err
		}
	case "Google":
		p.Kind = pypi.KindGoogle
		if p.Email, err = need(w.Email, "email"); err != nil {
			return pypi.Publisher{}, err
		}
	default:
		return pypi.Publisher{}, formatErr(nil, "invalid publisher: unknown kind %q", *w.Kind)
	}
	return p, nil
}

func checkOptionalString(raw json.RawMessage) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(t, &s); err != nil {
		return formatErr(errors.Unwrap(err), "invalid publisher: environment is not a string")
	}
	return nil
}

// PublisherJSON renders p as the publisher object PyPI records (kind
// "GitHub", "GitLab" or "Google"); other kinds are an error.
func PublisherJSON(p pypi.Publisher) ([]byte, error) {
	var m map[string]any
	switch p.Kind {
	case pypi.KindGitHub:
		m = map[string]any{"kind": "GitHub", "repository": p.Repository, "workflow": p.Workflow, "environment": ""}
	case pypi.KindGitLab:
		m = map[string]any{"kind": "GitLab", "repository": p.Repository, "workflow_filepath": p.Workflow, "environment": ""}
	case pypi.KindGoogle:
		m = map[string]any{"kind": "Google", "email": p.Email}
	default:
		return nil, fmt.Errorf("publisher kind %q has no PyPI form", p.Kind)
	}
	return json.Marshal(m)
}
