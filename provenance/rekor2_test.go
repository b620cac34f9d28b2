package provenance_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
)

// rekor2Case is one sigstore-conformance rekor2-* case.
type rekor2Case struct {
	name string
	// pass is the case's expected outcome (its name ends in _fail when not).
	pass bool
	// reason and text: how pipgate's Sigstore step must fail (a substring
	// of the detail).
	reason provenance.Reason
	text   string
	// dsse: the case is a DSSE envelope, re-wrapped as a PEP 740 attestation
	// in pep740/conformance-<name>.attestation.
	dsse bool
}

const (
	inclusionFails  = "failed to verify log inclusion"
	checkpointFails = "unverified checkpoint signature"
	noTimestamp     = "no usable signing time: a Rekor v2 log entry records none, and the attestation has no RFC 3161 timestamp (verification_material.timestamps)"
	badTimestamp    = "no usable signing time: a Rekor v2 log entry records none, and none of the attestation's 1 RFC 3161 timestamps is over this signature from a timestamp authority in the trusted root"
)

// rekor2Cases lists every case in conformance/ with its expected outcome.
var rekor2Cases = []rekor2Case{
	{name: "rekor2-happy-path", pass: true},
	{name: "rekor2-checkpoint-cosigned", pass: true},
	{name: "rekor2-checkpoint-multiple-cosigs", pass: true},
	{name: "rekor2-checkpoint-origin-not-first", pass: true},
	{name: "rekor2-checkpoint-two-sigs-cosigned", pass: true},
	{name: "rekor2-checkpoint-two-sigs-from-origin", pass: true},
	{name: "rekor2-timestamp-with-embedded-cert", pass: true},
	{name: "rekor2-timestamp-without-embedded-cert", pass: true},
	{name: "rekor2-timestamp-with-expired-cert-chain", pass: true},
	{name: "rekor2-dsse-happy-path", pass: true, dsse: true},

	{name: "rekor2-checkpoint-missing-log-signature_fail", reason: provenance.ReasonSignature, text: checkpointFails},
	{name: "rekor2-checkpoint-missing-origin_fail", reason: provenance.ReasonSignature, text: checkpointFails},
	{name: "rekor2-checkpoint-missing-root-hash_fail", reason: provenance.ReasonSignature, text: checkpointFails},
	{name: "rekor2-checkpoint-missing-size_fail", reason: provenance.ReasonSignature, text: checkpointFails},
	{name: "rekor2-checkpoint-no-matching-signature_fail", reason: provenance.ReasonSignature, text: checkpointFails},
	{name: "rekor2-no-inclusion-proof_fail", reason: provenance.ReasonSignature, text: "entry must contain an inclusion proof"},
	{name: "rekor2-no-timestamp_fail", reason: provenance.ReasonSignature, text: noTimestamp},
	{name: "rekor2-timestamp-outside-trust-root-tsa-validity_fail", reason: provenance.ReasonSignature, text: badTimestamp},
	{name: "rekor2-timestamp-outside-tsa-cert-validity_fail", reason: provenance.ReasonSignature, text: badTimestamp},
	{name: "rekor2-timestamp-payload-mismatch_fail", reason: provenance.ReasonSignature, text: badTimestamp},
	{name: "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail", reason: provenance.ReasonSignature, text: badTimestamp},
	{name: "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail", reason: provenance.ReasonSignature, text: badTimestamp},
	// Its timestamp's base64 has line breaks, which protobuf JSON refuses
	// (and so does pipgate's attestation parser): removed, the timestamp is
	// valid, but its time is outside the certificate's validity.
	{name: "rekor2-timestamp-with-incorrect-time_fail", reason: provenance.ReasonSignature, text: "failed to verify leaf certificate"},
	{name: "rekor2-dsse-invalid-sig_fail", reason: provenance.ReasonSignature, text: inclusionFails, dsse: true},
	{name: "rekor2-dsse-mismatch-envelope_fail", reason: provenance.ReasonSignature, text: inclusionFails, dsse: true},
	{name: "rekor2-dsse-mismatch-sig_fail", reason: provenance.ReasonSignature, text: inclusionFails, dsse: true},
}

// rekor2Verifier returns a verifier for a conformance case's trusted root.
func rekor2Verifier(t *testing.T, caseDir string) *provenance.Verifier {
	t.Helper()
	verifiersMu.Lock()
	defer verifiersMu.Unlock()
	if v, ok := verifiers[caseDir]; ok {
		return v
	}
	raw, err := os.ReadFile(filepath.Join(caseDir, "trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRootFromJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, err := provenance.NewVerifier(provenance.VerifierOptions{TrustedRoot: tr})
	if err != nil {
		t.Fatal(err)
	}
	verifiers[caseDir] = v
	return v
}

// loadConformanceBundle reads a case's bundle without sigstore-go's
// structural validation (bundle.LoadJSONFromPath already refuses a Rekor v2
// entry without inclusion proof), so that pipgate's own path decides.
func loadConformanceBundle(t *testing.T, caseDir string) (*bundle.Bundle, bool) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(caseDir, "bundle.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	pb := new(protobundle.Bundle)
	if err := protojson.Unmarshal(raw, pb); err != nil {
		// The only such case: base64 with line breaks. It must not
		// verify, and does not; check the rest of it without them.
		t.Logf("bundle does not parse (%v); checking it with the line breaks in base64 removed", err)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		ts := m["verificationMaterial"].(map[string]any)["timestampVerificationData"].(map[string]any)["rfc3161Timestamps"].([]any)
		for _, x := range ts {
			x := x.(map[string]any)
			x["signedTimestamp"] = strings.ReplaceAll(x["signedTimestamp"].(string), "\n", "")
		}
		if raw, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		if err := protojson.Unmarshal(raw, pb); err != nil {
			t.Fatal(err)
		}
		return &bundle.Bundle{Bundle: pb}, false
	}
	return &bundle.Bundle{Bundle: pb}, true
}

// TestRekor2Conformance runs every sigstore-conformance rekor2-* case
// through pipgate's verification with the case's trusted root:
//   - every bundle through the Sigstore step every attestation goes
//     through (the verifier chosen for its log entry, sigstore-go's checks
//     against a.txt's digest, failures as reasons). For the message
//     signatures (hashedrekord over a.txt itself) that is all pipgate can
//     test: a PEP 740 attestation is always a DSSE envelope, so they cannot
//     go through VerifyAttestation; their checkpoint, inclusion and
//     timestamp variants are the same for a DSSE entry.
//   - each DSSE case as its PEP 740 re-wrapping, through VerifyAttestation
//     and Facts: the good one passes the Sigstore step and stops at the
//     name check (its subject is a.txt, not a distribution); the _fail
//     ones fail on the signature.
func TestRekor2Conformance(t *testing.T) {
	dir := rekor2Dir(t)
	a, err := os.ReadFile(filepath.Join(dir, "conformance", "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256Sum(a)
	dist := provenance.Dist{Filename: "a-1.0-py3-none-any.whl", SHA256: sha256Hex(a)}

	// The table covers the folder exactly, and agrees with the names.
	ents, err := os.ReadDir(filepath.Join(dir, "conformance"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk, listed []string
	for _, e := range ents {
		if e.IsDir() {
			onDisk = append(onDisk, e.Name())
		}
	}
	for _, c := range rekor2Cases {
		listed = append(listed, c.name)
		if c.pass == strings.HasSuffix(c.name, "_fail") {
			t.Errorf("%s: pass=%v disagrees with its name", c.name, c.pass)
		}
	}
	slices.Sort(listed)
	if !slices.Equal(onDisk, listed) {
		t.Errorf("conformance cases on disk %q; the table lists %q", onDisk, listed)
	}

	for _, c := range rekor2Cases {
		t.Run(c.name, func(t *testing.T) {
			caseDir := filepath.Join(dir, "conformance", c.name)
			v := rekor2Verifier(t, caseDir)
			b, parsed := loadConformanceBundle(t, caseDir)
			if !parsed && c.pass {
				t.Fatal("a passing case's bundle does not parse")
			}
			checkOutcome(t, "Sigstore step", v.VerifyBundleSigstore(b, digest), c)
			if !c.dsse {
				return
			}
			att, err := os.ReadFile(filepath.Join(dir, "pep740", "conformance-"+c.name+".attestation"))
			if err != nil {
				t.Fatal(err)
			}
			checkOutcome(t, "PEP 740 attestation, Sigstore step", v.VerifyAttestationSigstore(att, digest), c)
			_, err = v.VerifyAttestation(att, dist, nil)
			want := c
			if c.pass {
				want = rekor2Case{reason: provenance.ReasonNameMismatch, text: "invalid subject: unknown distribution format: a.txt"}
			}
			checkOutcome(t, "PEP 740 attestation", err, want)
			// The provenance object path gives the same verdict.
			prov := provenancetest.ProvenanceJSON([]byte(`{"kind":"GitHub","repository":"sigstore-conformance/extremely-dangerous-public-oidc-beacon","workflow":"extremely-dangerous-oidc-beacon.yml","environment":""}`), att)
			f := v.Facts(prov, dist)
			if f.Verdict != pypi.VerdictInvalid || f.Reason != want.reason {
				t.Errorf("Facts: got %q/%q (%s); want invalid/%q", f.Verdict, f.Reason, f.Detail, want.reason)
			}
		})
	}
}

// checkOutcome checks err against c's expected outcome.
func checkOutcome(t *testing.T, what string, err error, c rekor2Case) {
	t.Helper()
	if c.pass {
		if err != nil {
			t.Errorf("%s: %v; want it to pass", what, err)
		}
		return
	}
	if err == nil {
		t.Errorf("%s: passed; want %s (%s)", what, c.reason, c.text)
		return
	}
	if got := provenance.ReasonOf(err); got != c.reason || !strings.Contains(err.Error(), c.text) {
		t.Errorf("%s: got %q: %v; want %q containing %q", what, got, err, c.reason, c.text)
	}
}

// conformanceTimestamp returns the first RFC 3161 timestamp (base64) of a
// conformance case's bundle.
func conformanceTimestamp(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(rekor2Dir(t), "conformance", name, "bundle.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		VerificationMaterial struct {
			TimestampVerificationData struct {
				RFC3161Timestamps []struct {
					SignedTimestamp string `json:"signedTimestamp"`
				} `json:"rfc3161Timestamps"`
			} `json:"timestampVerificationData"`
		} `json:"verificationMaterial"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	return b.VerificationMaterial.TimestampVerificationData.RFC3161Timestamps[0].SignedTimestamp
}

// TestRekor2Tampered attacks the PEP 740 re-wrapping of
// rekor2-dsse-happy-path: every change to its time source, log entry or
// label is refused with the class and words a user can act on, never
// verified, never "unsupported" unless the kind is one pipgate cannot check.
func TestRekor2Tampered(t *testing.T) {
	dir := rekor2Dir(t)
	caseDir := filepath.Join(dir, "conformance", "rekor2-dsse-happy-path")
	v := rekor2Verifier(t, caseDir)
	a, err := os.ReadFile(filepath.Join(dir, "conformance", "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, "pep740", "conformance-rekor2-dsse-happy-path.attestation"))
	if err != nil {
		t.Fatal(err)
	}
	// The timestamps of another signature of the same statement.
	otherTimestamps := func() any {
		raw, err := os.ReadFile(filepath.Join(dir, "pep740", "conformance-rekor2-dsse-mismatch-envelope_fail.attestation"))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return vm(m)["timestamps"]
	}
	cases := []struct {
		name   string
		att    []byte
		reason provenance.Reason
		text   string
	}{
		{"untouched", good, provenance.ReasonNameMismatch, "invalid subject: unknown distribution format: a.txt"},
		{"timestamps removed", mutate(t, good, func(m map[string]any) { delete(vm(m), "timestamps") }), provenance.ReasonSignature, noTimestamp},
		{"timestamps empty", mutate(t, good, func(m map[string]any) { vm(m)["timestamps"] = []any{} }), provenance.ReasonSignature, noTimestamp},
		// The adversary's next step: an integrated time inside the
		// certificate's validity. A Rekor v2 entry has no signed one, so
		// it is no signing time either.
		{"timestamps removed, integrated time added", mutate(t, good, func(m map[string]any) {
			delete(vm(m), "timestamps")
			entry(m)["integratedTime"] = "1778700252" // 2026-05-13T19:24:12Z, a minute into the certificate
		}), provenance.ReasonSignature, noTimestamp},
		{"timestamp from a TSA not in the trusted root", mutate(t, good, func(m map[string]any) {
			vm(m)["timestamps"] = []any{conformanceTimestamp(t, "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail")}
		}), provenance.ReasonSignature, badTimestamp},
		{"trusted TSA's timestamp over another signature", mutate(t, good, func(m map[string]any) {
			vm(m)["timestamps"] = []any{conformanceTimestamp(t, "rekor2-happy-path")}
		}), provenance.ReasonSignature, badTimestamp},
		{"timestamp of another envelope signature", mutate(t, good, func(m map[string]any) { vm(m)["timestamps"] = otherTimestamps() }),
			provenance.ReasonSignature, badTimestamp},
		{"timestamp byte", mutate(t, good, func(m map[string]any) {
			ts := vm(m)["timestamps"].([]any)
			x := map[string]any{"t": ts[0]}
			flipB64(x, "t", -20)
			ts[0] = x["t"]
		}), provenance.ReasonSignature, "no usable signing time"},
		{"a good and an untrusted timestamp", mutate(t, good, func(m map[string]any) {
			vm(m)["timestamps"] = append(vm(m)["timestamps"].([]any), conformanceTimestamp(t, "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail"))
		}), provenance.ReasonNameMismatch, "a.txt"},
		// The proof is checked against the checkpoint's signed root hash;
		// the entry's own rootHash field is not used (sigstore-go v1.3.0).
		{"unsigned root hash field", mutate(t, good, func(m map[string]any) { flipB64(entry(m)["inclusionProof"].(map[string]any), "rootHash", 3) }),
			provenance.ReasonNameMismatch, "a.txt"},
		{"inclusion proof hash", mutate(t, good, func(m map[string]any) {
			hs := entry(m)["inclusionProof"].(map[string]any)["hashes"].([]any)
			x := map[string]any{"h": hs[len(hs)-1]}
			flipB64(x, "h", 0)
			hs[len(hs)-1] = x["h"]
		}), provenance.ReasonSignature, inclusionFails},
		{"log index", mutate(t, good, func(m map[string]any) {
			entry(m)["logIndex"] = "1"
			entry(m)["inclusionProof"].(map[string]any)["logIndex"] = "1"
		}), provenance.ReasonSignature, inclusionFails},
		{"checkpoint of the message-signature log", mutate(t, good, func(m map[string]any) {
			raw, err := os.ReadFile(filepath.Join(dir, "conformance", "rekor2-happy-path", "bundle.sigstore.json"))
			if err != nil {
				t.Fatal(err)
			}
			var b map[string]any
			if err := json.Unmarshal(raw, &b); err != nil {
				t.Fatal(err)
			}
			other := b["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)
			entry(m)["inclusionProof"].(map[string]any)["checkpoint"] = other["inclusionProof"].(map[string]any)["checkpoint"]
		}), provenance.ReasonSignature, checkpointFails},
		{"log ID of another log", mutate(t, good, func(m map[string]any) {
			entry(m)["logId"] = map[string]any{"keyId": "8w1amZ2S5mJWwcvE4KCNBFcfr2cu+rO75ozkkQJNKrg="}
		}), provenance.ReasonSignature, "not enough verified log entries"},
		{"no inclusion proof", mutate(t, good, func(m map[string]any) { delete(entry(m), "inclusionProof") }), provenance.ReasonFormat, "missing inclusionProof"},
		{"labelled dsse 0.0.2", mutate(t, good, func(m map[string]any) { entry(m)["kindVersion"] = map[string]any{"kind": "dsse", "version": "0.0.2"} }),
			provenance.ReasonUnsupported, "dsse 0.0.2"},
		{"labelled dsse 0.0.1 (Rekor v1)", mutate(t, good, func(m map[string]any) { entry(m)["kindVersion"] = map[string]any{"kind": "dsse", "version": "0.0.1"} }),
			provenance.ReasonFormat, "its body is not the dsse/0.0.1 entry its kindVersion says"},
		{"labelled hashedrekord 0.0.1", mutate(t, good, func(m map[string]any) {
			entry(m)["kindVersion"] = map[string]any{"kind": "hashedrekord", "version": "0.0.1"}
		}), provenance.ReasonUnsupported, `kind "hashedrekord" version "0.0.1" is not supported`},
		{"statement byte", mutate(t, good, func(m map[string]any) { flipB64(env(m), "statement", 40) }), provenance.ReasonSignature, ""},
		{"signature byte", mutate(t, good, func(m map[string]any) { flipB64(env(m), "signature", 10) }), provenance.ReasonSignature, ""},
	}
	dist := provenance.Dist{Filename: "a-1.0-py3-none-any.whl", SHA256: sha256Hex(a)}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.VerifyAttestation(c.att, dist, nil)
			checkOutcome(t, "attestation", err, rekor2Case{reason: c.reason, text: c.text})
			f := v.Facts(provenancetest.ProvenanceJSON([]byte(`{"kind":"Google","email":"x@example.com"}`), c.att), dist)
			if f.Verdict == pypi.VerdictVerified {
				t.Errorf("Facts: verified")
			}
		})
	}
}

// TestRekor2RealRoots checks the PEP 740 re-wrapping of
// rekor2-dsse-happy-path (signed with Sigstore staging's Rekor v2 log
// log2025-alpha3) against the real trust roots: staging's passes the
// Sigstore checks; production's refuses it on the signature and names the
// unknown log, for `pipgate verify`'s hint.
func TestRekor2RealRoots(t *testing.T) {
	dir := rekor2Dir(t)
	a, err := os.ReadFile(filepath.Join(dir, "conformance", "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	att, err := os.ReadFile(filepath.Join(dir, "pep740", "conformance-rekor2-dsse-happy-path.attestation"))
	if err != nil {
		t.Fatal(err)
	}
	dist := provenance.Dist{Filename: "a-1.0-py3-none-any.whl", SHA256: sha256Hex(a)}
	staging := realVerifier(t, "staging")
	if err := staging.VerifyAttestationSigstore(att, sha256Sum(a)); err != nil {
		t.Errorf("staging root, Sigstore step: %v; want it to pass", err)
	}
	_, err = staging.VerifyAttestation(att, dist, nil)
	checkOutcome(t, "staging root", err, rekor2Case{reason: provenance.ReasonNameMismatch, text: "a.txt"})

	production := realVerifier(t, "production")
	_, err = production.VerifyAttestation(att, dist, nil)
	checkOutcome(t, "production root", err, rekor2Case{reason: provenance.ReasonSignature, text: "not enough verified log entries"})
	const alpha3 = "d3d3a70ca130eff8696626153e84d1cd16e0947934b3296c528bde8274549496"
	if got := production.UnknownLogs(att); !slices.Equal(got, []string{alpha3}) {
		t.Errorf("production UnknownLogs = %q; want [%s] (log2025-alpha3.rekor.sigstage.dev)", got, alpha3)
	}
	if got := staging.UnknownLogs(att); len(got) != 0 {
		t.Errorf("staging UnknownLogs = %q; want none", got)
	}
}

// TestRekor2Fake checks Rekor v2 attestations minted by the fake Sigstore:
// verified with a timestamp from its TSA, refused in words without one, and
// every attack on the pair (entry, timestamp) fails on the signature.
func TestRekor2Fake(t *testing.T) {
	ps := provenancetest.New(t)
	v := ps.Verifier()
	const name = "sample_project-1.2.3-py3-none-any.whl"
	content := []byte("PK\x03\x04 pretend this is a wheel")
	d := provenancetest.DistFor(name, content)
	gh := provenancetest.GitHub("octo/sample", "release.yml")
	v2 := provenancetest.WithRekorV2()
	good := ps.Attestation(name, content, gh, v2)
	other := ps.Attestation(name, content, gh, v2)
	field := func(att []byte, f func(m map[string]any) any) any {
		var m map[string]any
		if err := json.Unmarshal(att, &m); err != nil {
			t.Fatal(err)
		}
		return f(m)
	}
	cases := []struct {
		name   string
		att    []byte
		v      *provenance.Verifier
		reason provenance.Reason // "" means verified
		text   string
	}{
		{name: "rekor v2", att: good},
		{name: "rekor v1 with a timestamp", att: ps.Attestation(name, content, gh, provenancetest.WithTimestamp())},
		// Rekor v1 is unchanged: its integrated time is a signing time,
		// whatever the timestamps (sigstore-go's observer timestamps).
		{name: "rekor v1 with an untrusted timestamp", att: ps.Attestation(name, content, gh, provenancetest.WithUntrustedTimestamp())},
		{name: "no timestamp", att: ps.Attestation(name, content, gh, v2, provenancetest.WithoutTimestamp()), reason: provenance.ReasonSignature, text: noTimestamp},
		{name: "timestamp from a TSA outside the root", att: ps.Attestation(name, content, gh, v2, provenancetest.WithUntrustedTimestamp()),
			reason: provenance.ReasonSignature, text: badTimestamp},
		{name: "timestamp of another attestation", att: mutate(t, good, func(m map[string]any) {
			vm(m)["timestamps"] = field(other, func(o map[string]any) any { return vm(o)["timestamps"] })
		}), reason: provenance.ReasonSignature, text: badTimestamp},
		{name: "log entry of another attestation", att: mutate(t, good, func(m map[string]any) {
			vm(m)["transparency_entries"] = field(other, func(o map[string]any) any { return vm(o)["transparency_entries"] })
		}), reason: provenance.ReasonSignature, text: inclusionFails},
		{name: "signed an hour ago, timestamped now", att: ps.Attestation(name, content, gh, v2, provenancetest.WithTime(time.Now().Add(-time.Hour))),
			reason: provenance.ReasonSignature, text: "failed to verify leaf certificate"},
		{name: "other payload type", att: ps.Attestation(name, content, gh, v2, provenancetest.WithPayloadType("fake-type")), reason: provenance.ReasonSignature, text: inclusionFails},
		{name: "statement byte", att: mutate(t, good, func(m map[string]any) { flipB64(env(m), "statement", 30) }), reason: provenance.ReasonSignature},
		{name: "checkpoint line", att: mutate(t, good, func(m map[string]any) {
			cp := entry(m)["inclusionProof"].(map[string]any)["checkpoint"].(map[string]any)
			cp["envelope"] = strings.Replace(cp["envelope"].(string), "\n2\n", "\n3\n", 1)
		}), reason: provenance.ReasonSignature, text: checkpointFails},
		{name: "another Sigstore's root", att: good, v: provenancetest.New(t).Verifier(), reason: provenance.ReasonSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vv := v
			if c.v != nil {
				vv = c.v
			}
			res, err := vv.VerifyAttestation(c.att, d, &gh.Recorded)
			f := vv.Facts(ps.Provenance(gh.Recorded, c.att), d)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("got %v; want verified", err)
				}
				if !gh.Recorded.Matches(res.Identity) || f.Verdict != pypi.VerdictVerified {
					t.Errorf("got identity %s, Facts %q; want %s, verified", res.Identity, f.Verdict, gh.Recorded)
				}
				return
			}
			checkOutcome(t, "attestation", err, rekor2Case{reason: c.reason, text: c.text})
			if f.Verdict != pypi.VerdictInvalid || f.Reason != c.reason || !strings.Contains(f.Detail, c.text) {
				t.Errorf("Facts: got %q/%q %q; want invalid/%q containing %q", f.Verdict, f.Reason, f.Detail, c.reason, c.text)
			}
		})
	}
}

// TestRekor2RootWithoutTSA: a trusted root that lists the Rekor v2 log but
// no timestamp authority cannot give a Rekor v2 entry a signing time, and
// says so.
func TestRekor2RootWithoutTSA(t *testing.T) {
	dir := rekor2Dir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "conformance", "rekor2-dsse-happy-path", "trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "timestampAuthorities")
	if raw, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRootFromJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, err := provenance.NewVerifier(provenance.VerifierOptions{TrustedRoot: tr})
	if err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(filepath.Join(dir, "conformance", "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	att, err := os.ReadFile(filepath.Join(dir, "pep740", "conformance-rekor2-dsse-happy-path.attestation"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.VerifyAttestation(att, provenance.Dist{Filename: "a-1.0-py3-none-any.whl", SHA256: sha256Hex(a)}, nil)
	checkOutcome(t, "root without TSA", err, rekor2Case{reason: provenance.ReasonSignature,
		text: "no usable signing time: a Rekor v2 log entry records none, and the trusted root lists no timestamp authority"})
}

// BenchmarkVerifyRekorV1V2 compares the whole path on fake-Sigstore
// attestations of the same file: Rekor v1 (integrated time) and Rekor v2
// (RFC 3161 timestamp, inclusion proof against a checkpoint).
func BenchmarkVerifyRekorV1V2(b *testing.B) {
	ps := provenancetest.New(b)
	v := ps.Verifier()
	const name = "demo-1.0-py3-none-any.whl"
	content := []byte("wheel bytes")
	d := provenancetest.DistFor(name, content)
	gh := provenancetest.GitHub("o/r", "release.yml")
	for _, c := range []struct {
		name string
		att  []byte
	}{{"v1", ps.Attestation(name, content, gh)}, {"v2", ps.Attestation(name, content, gh, provenancetest.WithRekorV2())}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.VerifyAttestation(c.att, d, &gh.Recorded); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
