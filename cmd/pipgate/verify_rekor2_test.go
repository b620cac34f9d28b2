package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/internal/fixtures"
)

// TestVerifyRekor2 runs `pipgate verify` on a Rekor v2 attestation (the
// PEP 740 re-wrapping of sigstore-conformance's rekor2-dsse-happy-path,
// logged to staging's log2025-alpha3, subject a.txt) over a.txt's bytes:
// with staging's root it passes the Sigstore checks and stops at the name
// check, with no hint; with production's it fails on the signature and the
// hint, read from the Rekor v2 entry's log ID, names staging.
func TestVerifyRekor2(t *testing.T) {
	fx := verifyFixtures(t)
	r2 := fixtures.Path(t, "sigstore-rekor2")
	a, err := os.ReadFile(filepath.Join(r2, "conformance", "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dist := writeFile(t, t.TempDir(), "a-1.0-py3-none-any.whl", a)
	att := filepath.Join(r2, "pep740", "conformance-rekor2-dsse-happy-path.attestation")

	code, out, errOut := verifyRun("--trusted-root", filepath.Join(fx, "trust", "trusted_root.staging.json"), "--attestation", att, dist)
	if code != 1 || !strings.Contains(out, "a-1.0-py3-none-any.whl: invalid (name-mismatch)") || !strings.Contains(out, "a.txt") || strings.Contains(out, "hint:") {
		t.Errorf("staging root: exit %d; want 1, name-mismatch on a.txt, no hint\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = verifyRun("--trusted-root", filepath.Join(fx, "trust", "trusted_root.production.json"), "--attestation", att, dist)
	if code != 1 || !strings.Contains(out, "invalid (signature)") ||
		!strings.Contains(out, "  hint:        signed with Sigstore staging (its transparency log is not in this trust root): retry with --staging") {
		t.Errorf("production root: exit %d; want 1, signature, the staging hint\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
