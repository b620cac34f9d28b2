package provenance_test

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
)

// mutate decodes an attestation, lets f change it, and encodes it again.
func mutate(t *testing.T, att []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(att, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vm(m map[string]any) map[string]any  { return m["verification_material"].(map[string]any) }
func env(m map[string]any) map[string]any { return m["envelope"].(map[string]any) }
func entry(m map[string]any) map[string]any {
	return vm(m)["transparency_entries"].([]any)[0].(map[string]any)
}

// flipB64 flips one bit of the decoded value of m[key], at index at
// (negative: from the end).
func flipB64(m map[string]any, key string, at int) {
	raw, err := base64.StdEncoding.DecodeString(m[key].(string))
	if err != nil {
		panic(err)
	}
	if at < 0 {
		at += len(raw)
	}
	raw[at] ^= 0x01
	m[key] = base64.StdEncoding.EncodeToString(raw)
}

func TestTamperMatrix(t *testing.T) {
	ps := provenancetest.New(t)
	v := ps.Verifier()
	const name = "sample_project-1.2.3-py3-none-any.whl"
	content := []byte("PK\x03\x04 pretend this is a wheel")
	d := provenancetest.DistFor(name, content)
	gh := provenancetest.GitHub("octo/sample", "release.yml")
	good := ps.Attestation(name, content, gh)
	other := ps.Attestation("other-1.0.tar.gz", []byte("other"), gh)

	noRef := gh
	noRef.SourceRepositoryRef, noRef.SourceRepositoryDigest = "", ""
	reusable := gh
	reusable.URI = "https://github.com/shared/workflows/.github/workflows/pypi.yml@refs/heads/main"
	reusable.BuildSignerURI = reusable.URI
	byCommit := gh
	byCommit.BuildConfigURI = "https://github.com/octo/sample/.github/workflows/release.yml@" + provenancetest.Commit
	odd := gh
	odd.BuildConfigURI = "https://github.com/octo/sample/.github/workflows/release.yml@refs/heads/other"
	gl := provenancetest.GitLab("group/sub/sample", "ci/release.yml")
	glNoRef := gl
	glNoRef.SourceRepositoryRef = ""

	rogue := provenancetest.New(t)

	cases := []struct {
		name   string
		att    []byte
		d      provenance.Dist
		expect pypi.Publisher
		v      *provenance.Verifier
		want   provenance.Reason
		text   string
	}{
		{name: "valid", att: good, expect: gh.Recorded},
		{name: "slsa predicate", att: ps.Attestation(name, content, gh, provenancetest.WithPredicateType(provenance.PredicateSLSAV1), provenancetest.WithPredicate(`{"buildDefinition":{}}`)), expect: gh.Recorded},
		{name: "publish predicate {}", att: ps.Attestation(name, content, gh, provenancetest.WithPredicate(`{}`)), expect: gh.Recorded},
		{name: "reusable workflow in SAN", att: ps.Attestation(name, content, reusable), expect: gh.Recorded},
		{name: "build config pinned by commit", att: ps.Attestation(name, content, byCommit), expect: gh.Recorded},
		{name: "gitlab nested path", att: ps.Attestation(name, content, gl), expect: gl.Recorded},

		{name: "statement byte", att: mutate(t, good, func(m map[string]any) { flipB64(env(m), "statement", 30) }), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "signature byte", att: mutate(t, good, func(m map[string]any) { flipB64(env(m), "signature", 12) }), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "certificate signature byte", att: mutate(t, good, func(m map[string]any) { flipB64(vm(m), "certificate", -3) }), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "certificate swapped", att: mutate(t, good, func(m map[string]any) {
			var o map[string]any
			_ = json.Unmarshal(other, &o)
			vm(m)["certificate"] = vm(o)["certificate"]
		}), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "tlog canonicalized body byte", att: mutate(t, good, func(m map[string]any) {
			body, _ := base64.StdEncoding.DecodeString(entry(m)["canonicalizedBody"].(string))
			i := strings.Index(string(body), `"payloadHash":{"algorithm":"sha256","value":"`) + len(`"payloadHash":{"algorithm":"sha256","value":"`)
			body[i] = "01"[boolInt(body[i] == '0')]
			entry(m)["canonicalizedBody"] = base64.StdEncoding.EncodeToString(body)
		}), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "tlog canonicalized body not json", att: mutate(t, good, func(m map[string]any) { flipB64(entry(m), "canonicalizedBody", 0) }), expect: gh.Recorded, want: provenance.ReasonFormat},
		{name: "tlog entry swapped", att: mutate(t, good, func(m map[string]any) {
			var o map[string]any
			_ = json.Unmarshal(other, &o)
			vm(m)["transparency_entries"] = vm(o)["transparency_entries"]
		}), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "integratedTime +1", att: mutate(t, good, func(m map[string]any) {
			n, _ := strconv.ParseInt(entry(m)["integratedTime"].(string), 10, 64)
			entry(m)["integratedTime"] = strconv.FormatInt(n+1, 10)
		}), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "integratedTime as number", att: mutate(t, good, func(m map[string]any) {
			n, _ := strconv.ParseInt(entry(m)["integratedTime"].(string), 10, 64)
			entry(m)["integratedTime"] = n
		}), expect: gh.Recorded},
		{name: "signed entry timestamp byte", att: mutate(t, good, func(m map[string]any) {
			flipB64(entry(m)["inclusionPromise"].(map[string]any), "signedEntryTimestamp", 10)
		}), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "inclusion proof root hash", att: mutate(t, good, func(m map[string]any) {
			flipB64(entry(m)["inclusionProof"].(map[string]any), "rootHash", 0)
		}), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "wrong root", att: good, v: rogue.Verifier(), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "payload type", att: ps.Attestation(name, content, gh, provenancetest.WithPayloadType("fake-type")), expect: gh.Recorded, want: provenance.ReasonSignature},
		{name: "rekor v2 label", att: ps.Attestation(name, content, gh, provenancetest.WithKindVersion("0.0.2")), expect: gh.Recorded, want: provenance.ReasonUnsupported, text: "Rekor v2"},

		{name: "attestation of another file", att: other, expect: gh.Recorded, want: provenance.ReasonNameMismatch, text: "subject does not match distribution name"},
		{name: "same name other bytes", att: good, d: provenancetest.DistFor(name, []byte("evil")), expect: gh.Recorded, want: provenance.ReasonDigestMismatch, text: "subject does not match distribution digest"},
		{name: "parsed-equal name", att: good, d: provenancetest.DistFor("Sample.Project-1.2.3.0-py3-none-any.whl", content), expect: gh.Recorded},
		{name: "two subjects", att: ps.Attestation(name, content, gh, provenancetest.WithSubjects(provenancetest.Subject{Name: name, SHA256: d.SHA256}, provenancetest.Subject{Name: "x-1.0.tar.gz", SHA256: d.SHA256})),
			expect: gh.Recorded, want: provenance.ReasonFormat, text: "too many subjects in statement"},
		{name: "subject without name", att: ps.Attestation(name, content, gh, provenancetest.WithStatement([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":null,"digest":{"sha256":"`+d.SHA256+`"}}],"predicateType":"https://docs.pypi.org/attestations/publish/v1","predicate":null}`))),
			expect: gh.Recorded, want: provenance.ReasonFormat, text: "invalid subject: missing name"},
		{name: "subject invalid wheel name", att: ps.Attestation(name, content, gh, provenancetest.WithSubjects(provenancetest.Subject{Name: "foo-bar-invalid-wheel.whl", SHA256: d.SHA256})),
			expect: gh.Recorded, want: provenance.ReasonNameMismatch, text: "invalid subject: Invalid wheel filename"},
		{name: "statement not json", att: ps.Attestation(name, content, gh, provenancetest.WithStatement([]byte("invalid json"))), expect: gh.Recorded, want: provenance.ReasonFormat, text: "invalid statement"},
		{name: "unknown predicate", att: ps.Attestation(name, content, gh, provenancetest.WithPredicateType("foo")), expect: gh.Recorded, want: provenance.ReasonPredicate, text: "unknown attestation type: foo"},

		{name: "wrong workflow", att: good, expect: pypi.Publisher{Kind: pypi.KindGitHub, Repository: "octo/sample", Workflow: "other.yml"}, want: provenance.ReasonIdentityMismatch, text: "Certificate's Build Config URI (https://github.com/octo/sample/.github/workflows/release.yml@refs/tags/v1.0) does not match expected Trusted Publisher (other.yml @ octo/sample)"},
		{name: "wrong repository", att: good, expect: pypi.Publisher{Kind: pypi.KindGitHub, Repository: "octo/other", Workflow: "release.yml"}, want: provenance.ReasonIdentityMismatch, text: "SourceRepositoryURI"},
		{name: "repository case", att: good, expect: pypi.Publisher{Kind: pypi.KindGitHub, Repository: "Octo/sample", Workflow: "release.yml"}, want: provenance.ReasonIdentityMismatch, text: "SourceRepositoryURI"},
		{name: "reusable workflow repo as publisher", att: ps.Attestation(name, content, reusable), expect: pypi.Publisher{Kind: pypi.KindGitHub, Repository: "shared/workflows", Workflow: "pypi.yml"}, want: provenance.ReasonIdentityMismatch},
		{name: "no digest nor ref", att: ps.Attestation(name, content, noRef), expect: gh.Recorded, want: provenance.ReasonIdentityMismatch, text: "must contain either Source Repository Digest or Source Repository Ref"},
		{name: "build config other ref", att: ps.Attestation(name, content, odd), expect: gh.Recorded, want: provenance.ReasonIdentityMismatch, text: "Build Config URI"},
		{name: "gitlab without ref", att: ps.Attestation(name, content, glNoRef), expect: gl.Recorded, want: provenance.ReasonIdentityMismatch, text: "both Source Repository Digest and Source Repository Ref"},
		{name: "gitlab cert for github publisher", att: ps.Attestation(name, content, gl), expect: pypi.Publisher{Kind: pypi.KindGitHub, Repository: "group/sub/sample", Workflow: "ci/release.yml"}, want: provenance.ReasonIdentityMismatch, text: "Issuer"},
		{name: "google other email", att: ps.Attestation(name, content, provenancetest.Google("a@p.iam.gserviceaccount.com")), expect: pypi.Publisher{Kind: pypi.KindGoogle, Email: "b@p.iam.gserviceaccount.com"}, want: provenance.ReasonIdentityMismatch, text: "SANs do not match"},
		{name: "email identity other subject", att: ps.Attestation(name, content, provenancetest.Email("a@example.com", "https://issuer.example")), expect: pypi.Publisher{Kind: pypi.KindIdentity, Issuer: "https://issuer.example", Subject: "b@example.com"}, want: provenance.ReasonIdentityMismatch, text: "SANs do not match"},
		{name: "email identity other issuer", att: ps.Attestation(name, content, provenancetest.Email("a@example.com", "https://issuer.example")), expect: pypi.Publisher{Kind: pypi.KindIdentity, Issuer: "https://other.example", Subject: "a@example.com"}, want: provenance.ReasonIdentityMismatch, text: "Issuer"},
		{name: "email identity as google", att: ps.Attestation(name, content, provenancetest.Email("a@example.com", "https://issuer.example")), expect: pypi.Publisher{Kind: pypi.KindGoogle, Email: "a@example.com"}, want: provenance.ReasonIdentityMismatch, text: "Issuer"},

		{name: "version 2", att: mutate(t, good, func(m map[string]any) { m["version"] = 2 }), expect: gh.Recorded, want: provenance.ReasonFormat, text: "unsupported version 2"},
		{name: "certificate not base64", att: mutate(t, good, func(m map[string]any) { vm(m)["certificate"] = "%%%" }), expect: gh.Recorded, want: provenance.ReasonFormat, text: "invalid certificate"},
		{name: "statement with line breaks", att: mutate(t, good, func(m map[string]any) {
			s := env(m)["statement"].(string)
			env(m)["statement"] = s[:8] + "\n" + s[8:]
		}), expect: gh.Recorded, want: provenance.ReasonFormat, text: "line break"},
		{name: "no transparency entries", att: mutate(t, good, func(m map[string]any) { vm(m)["transparency_entries"] = []any{} }), expect: gh.Recorded, want: provenance.ReasonFormat, text: "no transparency_entries"},
		{name: "entry without inclusion proof", att: mutate(t, good, func(m map[string]any) { delete(entry(m), "inclusionProof") }), expect: gh.Recorded, want: provenance.ReasonFormat, text: "inclusionProof"},
		{name: "entry without checkpoint", att: mutate(t, good, func(m map[string]any) { delete(entry(m)["inclusionProof"].(map[string]any), "checkpoint") }), expect: gh.Recorded, want: provenance.ReasonFormat, text: "checkpoint"},
		{name: "missing envelope", att: mutate(t, good, func(m map[string]any) { delete(m, "envelope") }), expect: gh.Recorded, want: provenance.ReasonFormat, text: "missing envelope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vv, dd := v, d
			if c.v != nil {
				vv = c.v
			}
			if c.d.Filename != "" {
				dd = c.d
			}
			expect := c.expect
			res, err := vv.VerifyAttestation(c.att, dd, &expect)
			if c.want == "" {
				if err != nil {
					t.Fatalf("got %v; want verified", err)
				}
				if !expect.Matches(res.Identity) {
					t.Errorf("identity %s does not match %s", res.Identity, expect)
				}
				return
			}
			if err == nil {
				t.Fatalf("got verified (%s); want %s", res.Identity, c.want)
			}
			if got := provenance.ReasonOf(err); got != c.want {
				t.Errorf("got reason %q (%v); want %q", got, err, c.want)
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Errorf("got %q; want it to contain %q", err, c.text)
			}
			// The provenance path must agree, whenever PyPI could record the publisher.
			if _, perr := provenance.PublisherJSON(expect); perr == nil {
				f := vv.Facts(ps.Provenance(expect, c.att), dd)
				if f.Verdict == pypi.VerdictVerified || f.Reason != c.want {
					t.Errorf("Facts: got %q/%q; want not verified, reason %q", f.Verdict, f.Reason, c.want)
				}
			}
		})
	}
}

func TestProvenanceEveryAttestation(t *testing.T) {
	ps := provenancetest.New(t)
	v := ps.Verifier()
	const name = "multi-1.0.tar.gz"
	content := []byte("multi")
	d := provenancetest.DistFor(name, content)
	gh := provenancetest.GitHub("octo/multi", "release.yml")
	publish := ps.Attestation(name, content, gh)
	slsa := ps.Attestation(name, content, gh, provenancetest.WithPredicateType(provenance.PredicateSLSAV1))
	bad := mutate(t, slsa, func(m map[string]any) { flipB64(env(m), "signature", 5) })
	otherRepo := provenancetest.GitHub("octo/fork", "release.yml")

	res, err := v.VerifyProvenance(ps.Provenance(gh.Recorded, publish, slsa), d)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(res.PredicateTypes, " "), provenance.PredicatePublishV1+" "+provenance.PredicateSLSAV1; got != want {
		t.Errorf("got predicate types %q; want %q", got, want)
	}
	if _, err := v.VerifyProvenance(ps.Provenance(gh.Recorded, publish, bad), d); provenance.ReasonOf(err) != provenance.ReasonSignature {
		t.Errorf("one bad attestation: got %v; want a signature failure", err)
	}
	// Two bundles with different signers, each matching its own record.
	two := []byte(`{"version":1,"attestation_bundles":[` +
		string(bundleJSON(t, gh.Recorded, publish)) + `,` +
		string(bundleJSON(t, otherRepo.Recorded, ps.Attestation(name, content, otherRepo))) + `]}`)
	if _, err := v.VerifyProvenance(two, d); provenance.ReasonOf(err) != provenance.ReasonIdentityMismatch {
		t.Errorf("two signers: got %v; want identity-mismatch", err)
	}
}

func bundleJSON(t *testing.T, p pypi.Publisher, atts ...[]byte) []byte {
	pj, err := provenance.PublisherJSON(p)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]json.RawMessage, len(atts))
	for i := range atts {
		raw[i] = atts[i]
	}
	b, err := json.Marshal(map[string]any{"publisher": json.RawMessage(pj), "attestations": raw})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestFactsBadDist(t *testing.T) {
	ps := provenancetest.New(t)
	prov := ps.ProvenanceFor("a-1.0.tar.gz", []byte("a"), provenancetest.GitHub("o/r", "w.yml"))
	f := ps.Verifier().Facts(prov, provenance.Dist{Filename: "a-1.0.tar.gz", SHA256: "not-hex"})
	if f.Verdict != pypi.VerdictError {
		t.Errorf("got %q; want %q", f.Verdict, pypi.VerdictError)
	}
	f = ps.Verifier().Facts([]byte("{"), provenance.Dist{Filename: "a-1.0.tar.gz", SHA256: provenancetest.DistFor("a-1.0.tar.gz", []byte("a")).SHA256})
	if f.Verdict != pypi.VerdictInvalid || f.Reason != provenance.ReasonFormat || f.Recorded != nil {
		t.Errorf("got %+v; want invalid/format without a recorded publisher", f)
	}
}

// TestVerifierConcurrent runs one Verifier from several goroutines (run
// with -race).
func TestVerifierConcurrent(t *testing.T) {
	ps := provenancetest.New(t)
	v := ps.Verifier()
	content := []byte("c")
	good := ps.ProvenanceFor("c-1.0.tar.gz", content, provenancetest.GitHub("o/c", "release.yml"))
	d := provenancetest.DistFor("c-1.0.tar.gz", content)
	bad := provenancetest.DistFor("c-1.0.tar.gz", []byte("other"))
	errs := make(chan string, 8)
	for i := range 8 {
		go func() {
			dd, want := d, pypi.VerdictVerified
			if i%2 == 1 {
				dd, want = bad, pypi.VerdictInvalid
			}
			if f := v.Facts(good, dd); f.Verdict != want {
				errs <- "got " + string(f.Verdict) + "; want " + string(want)
				return
			}
			errs <- ""
		}()
	}
	for range 8 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
