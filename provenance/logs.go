package provenance

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
)

// UnknownLogs returns the hex IDs of the transparency logs that the
// attestations in data (an Integrity API provenance object or a single
// PEP 740 attestation) were entered in but the verifier's trusted root does
// not know, sorted and without repeats; nil when data does not parse. It
// checks nothing: after a failed verification it tells "signed with another
// Sigstore instance" (staging against production) from other failures.
func (v *Verifier) UnknownLogs(data []byte) []string {
	var atts []Attestation
	if p, err := ParseProvenance(data); err == nil {
		for _, b := range p.Bundles {
			atts = append(atts, b.Attestations...)
		}
	} else if a, err := ParseAttestation(data); err == nil {
		atts = append(atts, *a)
	}
	var out []string
	for _, a := range atts {
		for _, e := range a.TransparencyEntries {
			var entry struct {
				LogID struct {
					KeyID string `json:"keyId"`
				} `json:"logId"`
			}
			if json.Unmarshal(e, &entry) != nil {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(entry.LogID.KeyID)
			if err != nil || len(raw) == 0 {
				continue
			}
			if id := hex.EncodeToString(raw); !v.logIDs[id] && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}
