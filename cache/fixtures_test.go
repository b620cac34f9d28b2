package cache_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pipgate/pipgate/cache"
)

// TestRealDistributions stores the real PyPI distributions of the fixture
// folder under the sha256 its README states, and their provenance bodies
// byte for byte.
func TestRealDistributions(t *testing.T) {
	dir := pypiFixtures(t)
	s := openStore(t, "")
	cases := []struct{ file, sha256 string }{
		{"pypi_attestations-0.0.19.tar.gz", "9bb1add04b1b4e182be6b0b80931593f7a291eb49d69b4fd728a5d4cbcdc4bd3"},
		{"pypi_attestation_models-0.0.4a2.tar.gz", "c9709ce6fd5b67b59b4a28758cf14d3f411803c4b89b6068b1f1a8e4ee94c8ef"},
		{"gitlab_oidc_project-0.0.3.tar.gz", "c1ca9b0d85df1606451098233018534497bf584362e10e4a8c21dfaea92c02a8"},
		{"rfc8785-0.1.2-py3-none-any.whl", "c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, "pypi-attestations", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := writeBlob(t, s, data, tc.sha256)
			if err != nil || got != tc.sha256 {
				t.Fatalf("Commit: got %q, %v; want %q", got, err, tc.sha256)
			}
			f, err := s.OpenBlob(tc.sha256)
			if err != nil {
				t.Fatal(err)
			}
			back, _ := io.ReadAll(f)
			f.Close()
			if !bytes.Equal(back, data) {
				t.Errorf("blob %s differs from %s", tc.sha256, tc.file)
			}
			// One byte changed: refused.
			bad := bytes.Clone(data)
			bad[len(bad)/2] ^= 1
			if _, err := writeBlob(t, s, bad, tc.sha256); err == nil {
				t.Error("Commit of a changed file: got nil error")
			}
		})
	}
	rep, err := s.Verify()
	if err != nil || !rep.OK() || rep.Blobs != len(cases) {
		t.Errorf("Verify: got %+v, %v; want %d blobs, no problems", rep, err, len(cases))
	}

	for _, p := range []string{
		"pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance",
		"pypi-attestations-upstream/gcb_attestation_test-0.0.0.tar.gz.provenance",
	} {
		body, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		u := "https://pypi.org/integrity/x/1/" + filepath.Base(p)
		if err := s.PutProvenance("default", u, cache.ProvenanceEntry{Body: body, SHA256: sha(body), FetchedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		e, err := s.Provenance("default", u)
		if err != nil || !bytes.Equal(e.Body, body) || e.SHA256 != sha(body) {
			t.Errorf("Provenance(%s): got %d bytes (sha256 %s), %v; want the %d bytes of the fixture", p, len(e.Body), e.SHA256, err, len(body))
		}
	}
}
