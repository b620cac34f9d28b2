package provenance_test

import (
	"strings"
	"testing"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/pypi"
)

// TestContinuityRealIdentities runs the policy's continuity check on
// identities read from real PyPI attestations (production trust root): the
// GitHub publisher of pypi-attestations 0.0.19 and the GitLab publisher of
// gitlab-oidc-project 0.0.3, standing in for a project whose release
// pipeline moved.
func TestContinuityRealIdentities(t *testing.T) {
	v := realVerifier(t, "production")
	gh := v.Facts(readFixture(t, att019+".provenance"), provenance.Dist{Filename: "pypi_attestations-0.0.19.tar.gz", SHA256: sha019})
	if gh.Verdict != pypi.VerdictVerified || gh.Identity == nil {
		t.Fatalf("0.0.19: %+v; want verified", gh)
	}
	res, err := v.VerifyAttestation(readFixture(t, gitlabDist+".publish.attestation"),
		provenance.Dist{Filename: "gitlab_oidc_project-0.0.3.tar.gz", SHA256: sha256Hex(readFixture(t, gitlabDist))}, &glProject)
	if err != nil {
		t.Fatal(err)
	}
	gl := res.Identity
	// The same repository releasing from another workflow and tag.
	moved := *gh.Identity
	moved.Workflow, moved.Ref, moved.BuildConfigURI = "publish.yml", "refs/tags/v0.0.18", ""

	p, err := policy.Parse([]byte("version: 1\npackages:\n  - name: pypi-attestations\n    continuity: block\n  - name: accepted\n    continuity: block\n    publishers:\n      - {kind: github, repository: trailofbits/pypi-attestations}\n"))
	if err != nil {
		t.Fatal(err)
	}
	v19 := pypi.MustParseVersion("0.0.19")
	// A history of 0.0.18 signed by id, then 0.0.19 signed by gh.
	hist := func(id pypi.Identity) *policy.Record {
		us := []policy.Upload{
			{Filename: "pypi_attestations-0.0.18.tar.gz", Version: pypi.MustParseVersion("0.0.18"), Provenance: true},
			{Filename: "pypi_attestations-0.0.19.tar.gz", Version: v19, Provenance: true},
		}
		timed := policy.SortUploads(us)
		rec := policy.FindRecord(us, timed, func(i int) policy.Attestation {
			if i == 0 {
				return policy.Attestation{Publisher: &id}
			}
			return policy.Attestation{Publisher: gh.Identity}
		})
		return &rec
	}
	tests := []struct {
		name, project string
		history       *policy.Record
		want          policy.Action
		reason        []string
	}{
		{"same publisher, other workflow and tag", "pypi-attestations", hist(moved), policy.ActionAllow, nil},
		{"from GitLab to GitHub", "pypi-attestations", hist(gl), policy.ActionBlock, []string{
			"publisher-changed: 0.0.19 is signed by github:trailofbits/pypi-attestations@release.yml (refs/tags/v0.0.19)",
			"publisher of record of this project is gitlab:facutuesca/gitlab-oidc-project",
			"add {kind: github, repository: trailofbits/pypi-attestations} to the publishers of policy rule \"pypi-attestations\""}},
		{"accepted by the rule", "accepted", hist(gl), policy.ActionAllow, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.DecideFile(tt.project, policy.File{Facts: gh, Filename: "pypi_attestations-0.0.19.tar.gz", Version: &v19, Record: tt.history})
			if d.Action != tt.want {
				t.Errorf("DecideFile = %s (%s); want %s", d.Action, d.Reason, tt.want)
			}
			for _, s := range tt.reason {
				if !strings.Contains(d.Reason, s) {
					t.Errorf("reason %q lacks %q", d.Reason, s)
				}
			}
		})
	}
}
