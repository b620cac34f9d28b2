package policy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// fixturesDir returns the real PyPI fixtures folder (internal/fixtures).
func fixturesDir(t *testing.T) string {
	t.Helper()
	return fixtures.PyPI(t)
}

// TestStrictPolicyMatchesRecordedPublishers checks that the strict example
// pins each publisher exactly as PyPI recorded it in real Integrity API
// provenance (comparisons are case-sensitive, so a spelling slip would block
// the genuine release), and that another signer is refused.
func TestStrictPolicyMatchesRecordedPublishers(t *testing.T) {
	dir := fixturesDir(t)
	p, err := policy.Load("../configs/policy-strict.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{
		"pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance",
		"pypi-attestations-upstream/gcb_attestation_test-0.0.0.tar.gz.provenance",
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			var prov struct {
				Bundles []struct {
					Publisher struct {
						Kind, Repository, Workflow, Email string
					} `json:"publisher"`
				} `json:"attestation_bundles"`
			}
			if err := json.Unmarshal(b, &prov); err != nil || len(prov.Bundles) == 0 {
				t.Fatalf("parsing %s: %v (%d bundles)", f, err, len(prov.Bundles))
			}
			rec := prov.Bundles[0].Publisher
			// The identity a verified certificate for this publisher carries.
			id := &pypi.Identity{Kind: pypi.PublisherKind(strings.ToLower(rec.Kind)), Repository: rec.Repository, Workflow: rec.Workflow, Email: rec.Email}
			project, _, _ := strings.Cut(filepath.Base(f), "-")

			d := p.Decide(project, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: id})
			if d.Action != policy.ActionAllow || d.Require != policy.RequireTrustedPublisher || d.Rule != pypi.NormalizeName(project) {
				t.Errorf("Decide(%q, recorded publisher %+v) = %+v; want allow by its trusted-publisher rule", project, rec, d)
			}
			other := *id
			other.Repository += "-fork"
			other.Email = "x" + other.Email
			d = p.Decide(project, pypi.Facts{Verdict: pypi.VerdictVerified, Identity: &other})
			if d.Action != policy.ActionBlock || d.Verdict != pypi.VerdictUntrustedPublisher {
				t.Errorf("Decide(%q, another signer) = %+v; want block, untrusted-publisher", project, d)
			}
		})
	}
}
