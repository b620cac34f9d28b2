package provenance_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/pipgate/pipgate/internal/fixtures"
	"github.com/pipgate/pipgate/provenance"
)

// fixturesDir returns the real PyPI fixtures folder (internal/fixtures).
func fixturesDir(t testing.TB) string {
	t.Helper()
	return fixtures.PyPI(t)
}

// rekor2Dir returns the Rekor v2 fixtures folder (internal/fixtures:
// shared/fixtures/sigstore-rekor2).
func rekor2Dir(t testing.TB) string {
	t.Helper()
	return fixtures.Path(t, "sigstore-rekor2")
}

func readFixture(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixturesDir(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var (
	verifiersMu sync.Mutex
	verifiers   = map[string]*provenance.Verifier{}
)

// realVerifier returns a verifier for the "production" or "staging" root.
func realVerifier(t testing.TB, which string) *provenance.Verifier {
	t.Helper()
	verifiersMu.Lock()
	defer verifiersMu.Unlock()
	if v, ok := verifiers[which]; ok {
		return v
	}
	tr, err := root.NewTrustedRootFromJSON(readFixture(t, "trust/trusted_root."+which+".json"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := provenance.NewVerifier(provenance.VerifierOptions{TrustedRoot: tr})
	if err != nil {
		t.Fatal(err)
	}
	verifiers[which] = v
	return v
}

var base64Std = base64.StdEncoding

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
