package provenance_test

import (
	"testing"

	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/provenance/provenancetest"
)

func TestUnknownLogs(t *testing.T) {
	ps := provenancetest.New(t)
	other := provenancetest.New(t)
	content := []byte("x")
	prov := ps.ProvenanceFor("x-1.tar.gz", content, provenancetest.GitHub("o/r", "release.yml"))
	load := func(p *provenancetest.Sigstore) *provenance.Verifier {
		src, err := provenance.NewTrustSource(t.Context(), provenance.TrustSourceOptions{TrustedRootPath: p.WriteTrustedRoot(t.TempDir())})
		if err != nil {
			t.Fatal(err)
		}
		return src.Verifier()
	}
	if got := load(ps).UnknownLogs(prov); len(got) != 0 {
		t.Errorf("own root: unknown logs %v; want none", got)
	}
	if got := load(other).UnknownLogs(prov); len(got) != 1 || len(got[0]) != 64 {
		t.Errorf("another root: unknown logs %v; want the one log's hex ID", got)
	}
	if got := load(ps).UnknownLogs([]byte("not json")); got != nil {
		t.Errorf("garbage: %v; want nil", got)
	}
}
