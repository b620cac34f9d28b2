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

	"github.com/pipgate/pipgate/provenance"
)

// fixturesDir returns the real PyPI fixtures folder (PIPGATE_FIXTURES, or
// ../../shared/fixtures/pypi from the repository root) or skips the test.
func fixturesDir(t testing.TB) string {
	t.Helper()
	return sharedFixtures(t, "PIPGATE_FIXTURES", "pypi", "README.md")
}

// rekor2Dir returns the Rekor v2 fixtures folder (PIPGATE_REKOR2_FIXTURES,
// or ../../shared/fixtures/sigstore-rekor2) or skips the test.
func rekor2Dir(t testing.TB) string {
	t.Helper()
	return sharedFixtures(t, "PIPGATE_REKOR2_FIXTURES", "sigstore-rekor2", "SOURCES.md")
}

// sharedFixtures returns the folder named by the environment variable env,
// or ../../shared/fixtures/sub, or skips the test when it has no marker file.
func sharedFixtures(t testing.TB, env, sub, marker string) string {
	t.Helper()
	dir := os.Getenv(env)
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "fixtures", sub)
	}
	if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
		t.Skipf("fixtures not found at %s (set %s): %v", dir, env, err)
	}
	return dir
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
