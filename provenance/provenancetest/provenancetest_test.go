package provenancetest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
)

func TestMintedProvenanceVerifies(t *testing.T) {
	ps := provenancetest.New(t)
	v := ps.Verifier()
	content := []byte("wheel bytes")
	const name = "demo_pkg-1.0-py3-none-any.whl"
	cases := []struct {
		signer provenancetest.Signer
		want   string
	}{
		{provenancetest.GitHub("owner/repo", "release.yml"), "github:owner/repo@release.yml (refs/tags/v1.0)"},
		{provenancetest.GitLab("group/sub/project", ".gitlab-ci.yml"), "gitlab:group/sub/project@.gitlab-ci.yml (refs/tags/v1.0)"},
		{provenancetest.Google("builder@project.iam.gserviceaccount.com"), "google:builder@project.iam.gserviceaccount.com"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			f := v.Facts(ps.ProvenanceFor(name, content, c.signer), provenancetest.DistFor(name, content))
			if f.Verdict != pypi.VerdictVerified {
				t.Fatalf("got %q (%s: %s); want verified", f.Verdict, f.Reason, f.Detail)
			}
			if got := f.Identity.String(); got != c.want {
				t.Errorf("got identity %q; want %q", got, c.want)
			}
			if *f.Recorded != c.signer.Recorded {
				t.Errorf("got recorded %+v; want %+v", *f.Recorded, c.signer.Recorded)
			}
		})
	}
	t.Run("email", func(t *testing.T) {
		id := provenancetest.Email("dev@example.com", "https://github.com/login/oauth")
		res, err := v.VerifyAttestation(ps.Attestation(name, content, id), provenancetest.DistFor(name, content), &id.Recorded)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := res.Identity.String(), "identity:dev@example.com (https://github.com/login/oauth)"; got != want {
			t.Errorf("got identity %q; want %q", got, want)
		}
	})
}

func TestTrustedRootRoundTrip(t *testing.T) {
	ps := provenancetest.New(t)
	path := ps.WriteTrustedRoot(t.TempDir())
	src, err := provenance.NewTrustSource(t.Context(), provenance.TrustSourceOptions{TrustedRootPath: path})
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("sdist bytes")
	const name = "demo-2.0.tar.gz"
	f := src.Verifier().Facts(ps.ProvenanceFor(name, content, provenancetest.GitHub("o/r", "ci.yml")), provenancetest.DistFor(name, content))
	if f.Verdict != pypi.VerdictVerified {
		t.Fatalf("got %q (%s: %s); want verified", f.Verdict, f.Reason, f.Detail)
	}
}

// TestMintedRekorV2 checks what WithRekorV2 mints: a hashedrekord 0.0.2
// entry without time and with an inclusion proof, one RFC 3161 timestamp,
// and an attestation that verifies through a trusted_root.json round trip.
func TestMintedRekorV2(t *testing.T) {
	ps := provenancetest.New(t)
	content := []byte("sdist bytes")
	const name = "demo-2.0.tar.gz"
	att := ps.Attestation(name, content, provenancetest.GitHub("o/r", "ci.yml"), provenancetest.WithRekorV2())
	a, err := provenance.ParseAttestation(att)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		KindVersion    struct{ Kind, Version string } `json:"kindVersion"`
		IntegratedTime string                         `json:"integratedTime"`
		InclusionProof *struct {
			Hashes     []string                  `json:"hashes"`
			Checkpoint struct{ Envelope string } `json:"checkpoint"`
		} `json:"inclusionProof"`
		InclusionPromise any `json:"inclusionPromise"`
	}
	if err := json.Unmarshal(a.TransparencyEntries[0], &e); err != nil {
		t.Fatal(err)
	}
	if e.KindVersion.Kind != "hashedrekord" || e.KindVersion.Version != "0.0.2" || e.IntegratedTime != "" || e.InclusionPromise != nil ||
		e.InclusionProof == nil || len(e.InclusionProof.Hashes) != 1 || !strings.HasPrefix(e.InclusionProof.Checkpoint.Envelope, "log2025-1.rekor.pipgate.test\n2\n") {
		t.Errorf("entry %s; want hashedrekord 0.0.2, no time, no promise, a proof in a tree of 2 under the v2 log's checkpoint", a.TransparencyEntries[0])
	}
	if len(a.Timestamps) != 1 {
		t.Errorf("%d timestamps; want 1", len(a.Timestamps))
	}
	src, err := provenance.NewTrustSource(t.Context(), provenance.TrustSourceOptions{TrustedRootPath: ps.WriteTrustedRoot(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	f := src.Verifier().Facts(ps.Provenance(provenancetest.GitHub("o/r", "ci.yml").Recorded, att), provenancetest.DistFor(name, content))
	if f.Verdict != pypi.VerdictVerified {
		t.Fatalf("got %q (%s: %s); want verified", f.Verdict, f.Reason, f.Detail)
	}
}
