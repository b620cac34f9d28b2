package provenance_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/pypi"
)

func addFixtureSeeds(f *testing.F, names ...string) {
	dir := fixtures.Optional(f, "pypi")
	if dir == "" {
		return
	}
	for _, n := range names {
		if b, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
			f.Add(b)
		}
	}
}

func FuzzParseProvenance(f *testing.F) {
	f.Add([]byte(`{"version":1,"attestation_bundles":[]}`))
	f.Add([]byte(`{"version":1,"attestation_bundles":[{"publisher":{"kind":"GitHub","repository":"a/b","workflow":"w.yml","environment":null,"claims":{}},"attestations":[{}]}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	addFixtureSeeds(f, "pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance", "pypi-attestations-upstream/gcb_attestation_test-0.0.0.tar.gz.provenance")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := provenance.ParseProvenance(data)
		if err != nil {
			if provenance.ReasonOf(err) != provenance.ReasonFormat {
				t.Fatalf("got %v; want a format error", err)
			}
			return
		}
		if p.Version != 1 || len(p.Bundles) == 0 || len(p.Bundles) > provenance.MaxBundles {
			t.Fatalf("accepted %+v", p)
		}
		for _, b := range p.Bundles {
			if len(b.Attestations) == 0 || b.Publisher.Kind == "" {
				t.Fatalf("accepted bundle %+v", b)
			}
		}
	})
}

func FuzzParseAttestation(f *testing.F) {
	f.Add([]byte(`{"version":1,"verification_material":{"certificate":"Zm9v","transparency_entries":[{}]},"envelope":{"statement":"e30=","signature":"Zm9v"}}`))
	f.Add([]byte(`{"version":1,"verification_material":{"certificate":"Zm9v\n","transparency_entries":[{}]},"envelope":{"statement":"e30=","signature":"Zm9v"}}`))
	f.Add([]byte(`{"version":1,"verification_material":{"certificate":"Zm9v","transparency_entries":[{}],"timestamps":["Zm9v"]},"envelope":{"statement":"e30=","signature":"Zm9v"}}`))
	f.Add([]byte(`{"version":1,"verification_material":{"certificate":"Zm9v","transparency_entries":[{}],"timestamps":["Zm9v\n",""]},"envelope":{"statement":"e30=","signature":"Zm9v"}}`))
	addFixtureSeeds(f, "pypi-attestations/pypi_attestations-0.0.19.tar.gz.publish.attestation", "pypi-attestations-upstream/pypi_attestations-0.0.19.tar.gz.publish.attestation.with_rekor2_timestamp",
		rekor2Attestation)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := provenance.ParseAttestation(data)
		if err != nil {
			if provenance.ReasonOf(err) != provenance.ReasonFormat {
				t.Fatalf("got %v; want a format error", err)
			}
			return
		}
		if a.Version != 1 || len(a.Certificate) == 0 || len(a.Statement) == 0 || len(a.TransparencyEntries) == 0 || len(a.Timestamps) > provenance.MaxTimestamps {
			t.Fatalf("accepted %+v", a)
		}
		for _, ts := range a.Timestamps {
			if len(ts) == 0 {
				t.Fatalf("accepted an empty timestamp")
			}
		}
	})
}

// rekor2Attestation is the PEP 740 re-wrapping of sigstore-conformance's
// rekor2-dsse-happy-path, relative to the PyPI fixtures folder.
const rekor2Attestation = "../sigstore-rekor2/pep740/conformance-rekor2-dsse-happy-path.attestation"

// FuzzVerifyRekor2 runs the whole path on mutated Rekor v2 attestations
// (rekor2-dsse-happy-path, whose subject a.txt is no distribution) with
// their trusted root: nothing verifies, and only a change that keeps the
// signed statement, signature and certificate gets past the Sigstore
// checks to the name check.
func FuzzVerifyRekor2(f *testing.F) {
	addFixtureSeeds(f, rekor2Attestation)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := rekor2Dir(t)
		v := rekor2Verifier(t, filepath.Join(dir, "conformance", "rekor2-dsse-happy-path"))
		orig, err := os.ReadFile(filepath.Join(dir, "pep740", "conformance-rekor2-dsse-happy-path.attestation"))
		if err != nil {
			t.Fatal(err)
		}
		const aTxt = "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"
		res, err := v.VerifyAttestation(data, provenance.Dist{Filename: "a-1.0-py3-none-any.whl", SHA256: aTxt}, nil)
		if err == nil {
			t.Fatalf("verified (%s)", res.Identity)
		}
		if !slices.Contains(pypi.Reasons, provenance.ReasonOf(err)) {
			t.Fatalf("error outside the reason set: %v", err)
		}
		if provenance.ReasonOf(err) == provenance.ReasonNameMismatch {
			a, perr := provenance.ParseAttestation(data)
			b, _ := provenance.ParseAttestation(orig)
			if perr != nil || string(a.Statement) != string(b.Statement) || string(a.Signature) != string(b.Signature) || string(a.Certificate) != string(b.Certificate) {
				t.Fatalf("a changed attestation passed the Sigstore checks")
			}
		}
	})
}

// FuzzVerifyAttestation runs the whole path on mutated real attestations:
// it must never panic and never verify anything but the original.
func FuzzVerifyAttestation(f *testing.F) {
	addFixtureSeeds(f, "pypi-attestations/pypi_attestations-0.0.19.tar.gz.publish.attestation")
	f.Fuzz(func(t *testing.T, data []byte) {
		v := realVerifier(t, "production")
		orig := readFixture(t, "pypi-attestations/pypi_attestations-0.0.19.tar.gz.publish.attestation")
		_, err := v.VerifyAttestation(data, provenance.Dist{Filename: "pypi_attestations-0.0.19.tar.gz", SHA256: sha019}, &ghAttestations)
		if err == nil && string(data) != string(orig) {
			// Only JSON-equivalent re-encodings of the original may verify.
			a, perr := provenance.ParseAttestation(data)
			b, _ := provenance.ParseAttestation(orig)
			if perr != nil || string(a.Statement) != string(b.Statement) || string(a.Signature) != string(b.Signature) || string(a.Certificate) != string(b.Certificate) {
				t.Fatalf("a changed attestation verified")
			}
		}
	})
}
