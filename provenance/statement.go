package provenance

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/pipgate/pipgate/pypi"
)

// The predicate types PyPI accepts.
const (
	PredicatePublishV1 = "https://docs.pypi.org/attestations/publish/v1"
	PredicateSLSAV1    = "https://slsa.dev/provenance/v1"
)

const (
	inTotoPayloadType = "application/vnd.in-toto+json"
	inTotoStatementV1 = "https://in-toto.io/Statement/v1"
)

// Dist is the distribution file an attestation must cover.
type Dist struct {
	// Filename is the file's name as the index lists it.
	Filename string
	// SHA256 is the lower-case hex sha256 of the file's actual bytes.
	SHA256 string
}

type statement struct {
	Type          *string           `json:"_type"`
	Subject       []json.RawMessage `json:"subject"`
	PredicateType *string           `json:"predicateType"`
	Predicate     json.RawMessage   `json:"predicate"`
}

type subject struct {
	Name   *string            `json:"name"`
	Digest *map[string]string `json:"digest"`
}

func validDigestAlg(alg string) bool {
	switch alg {
	case "sha256", "sha384", "sha512":
		return true
	}
	return strings.HasPrefix(alg, "sha3_")
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// checkStatement applies the PEP 740 checks of pypi-attestations'
// Attestation.verify (steps 6 to 11) to verified statement bytes and
// returns the predicate type.
func checkStatement(raw []byte, d Dist) (string, error) {
	var st statement
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", newError(ReasonFormat, err, "invalid statement: %v", err)
	}
	switch {
	case st.Type == nil || *st.Type != inTotoStatementV1:
		return "", newError(ReasonFormat, nil, "invalid statement: _type is not %s", inTotoStatementV1)
	case len(st.Subject) == 0:
		return "", newError(ReasonFormat, nil, "invalid statement: no subject")
	case st.PredicateType == nil:
		return "", newError(ReasonFormat, nil, "invalid statement: missing predicateType")
	}
	if p := bytes.TrimSpace(st.Predicate); len(p) > 0 && p[0] != '{' && !bytes.Equal(p, []byte("null")) {
		return "", newError(ReasonFormat, nil, "invalid statement: predicate is not an object")
	}
	subs := make([]subject, len(st.Subject))
	for i, rs := range st.Subject {
		if err := json.Unmarshal(rs, &subs[i]); err != nil {
			return "", newError(ReasonFormat, err, "invalid statement: subject %d: %v", i, err)
		}
		if subs[i].Digest == nil {
			return "", newError(ReasonFormat, nil, "invalid statement: subject %d has no digest", i)
		}
		for alg, v := range *subs[i].Digest {
			if !validDigestAlg(alg) || !isHex(v) {
				return "", newError(ReasonFormat, nil, "invalid statement: subject %d has an invalid digest %q", i, alg)
			}
		}
	}
	if len(subs) != 1 {
		return "", newError(ReasonFormat, nil, "too many subjects in statement (must be exactly one)")
	}
	sub := subs[0]
	if sub.Name == nil || *sub.Name == "" {
		return "", newError(ReasonFormat, nil, "invalid subject: missing name")
	}
	if err := sameDist(*sub.Name, d.Filename); err != nil {
		return "", err
	}
	if got := (*sub.Digest)["sha256"]; got == "" || got != strings.ToLower(d.SHA256) {
		return "", newError(ReasonDigestMismatch, nil, "subject does not match distribution digest: %s != %s", got, d.SHA256)
	}
	switch pt := *st.PredicateType; pt {
	case PredicatePublishV1, PredicateSLSAV1:
		return pt, nil
	default:
		return "", newError(ReasonPredicate, nil, "unknown attestation type: %s", pt)
	}
}

// sameDist compares a subject name with the distribution filename after
// parsing both, as pypi-attestations does (normalised name, PEP 440 version,
// build tag, wheel tags as a set).
func sameDist(subjectName, filename string) error {
	sub, err := pypi.ParseFilename(subjectName)
	if err != nil {
		return newError(ReasonNameMismatch, err, "invalid subject: %v", err)
	}
	dist, err := pypi.ParseFilename(filename)
	if err != nil {
		return newError(ReasonNameMismatch, err, "invalid distribution name: %v", err)
	}
	if !sub.Equal(dist) {
		return newError(ReasonNameMismatch, nil, "subject does not match distribution name: %s != %s", subjectName, filename)
	}
	return nil
}
