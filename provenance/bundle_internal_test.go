package provenance

import (
	"os"
	"path/filepath"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/pipgate/pipgate/internal/fixtures"
)

// TestToBundleMatchesSigstoreBundle checks the conversion against the
// fixture pair: the PyPI attestation and the same signature as a native
// Sigstore bundle v0.3.
func TestToBundleMatchesSigstoreBundle(t *testing.T) {
	dir := fixtures.PyPI(t)
	for _, base := range []string{"pypi_attestation_models-0.0.4a2.tar.gz", "rfc8785-0.1.2-py3-none-any.whl"} {
		attJSON, err := os.ReadFile(filepath.Join(dir, "pypi-attestations", base+".attestation"))
		if err != nil {
			t.Fatal(err)
		}
		sigJSON, err := os.ReadFile(filepath.Join(dir, "pypi-attestations", base+".sigstore"))
		if err != nil {
			t.Fatal(err)
		}
		a, err := ParseAttestation(attJSON)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := toBundle(a)
		if err != nil {
			t.Fatal(err)
		}
		want := new(protobundle.Bundle)
		if err := protojson.Unmarshal(sigJSON, want); err != nil {
			t.Fatal(err)
		}
		// An empty timestampVerificationData object means no timestamps.
		if tv := want.GetVerificationMaterial().GetTimestampVerificationData(); tv != nil && len(tv.GetRfc3161Timestamps()) == 0 {
			want.VerificationMaterial.TimestampVerificationData = nil
		}
		if !proto.Equal(got.Bundle.Bundle, want) {
			g, _ := protojson.Marshal(got.Bundle.Bundle)
			w, _ := protojson.Marshal(want)
			t.Errorf("%s: converted bundle differs from the .sigstore fixture\ngot  %.300s\nwant %.300s", base, g, w)
		}
	}
}
