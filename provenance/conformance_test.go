package provenance_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/provenance"
	"github.com/pipgate/pipgate/pypi"
)

const (
	att019     = "pypi-attestations/pypi_attestations-0.0.19.tar.gz"
	sha019     = "9bb1add04b1b4e182be6b0b80931593f7a291eb49d69b4fd728a5d4cbcdc4bd3"
	models     = "pypi-attestations/pypi_attestation_models-0.0.4a2.tar.gz"
	gitlabDist = "pypi-attestations/gitlab_oidc_project-0.0.3.tar.gz"
	rfcDist    = "pypi-attestations/rfc8785-0.1.2-py3-none-any.whl"
	spt3gAtt   = "pypi-attestations/spt3g-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl.publish.attestation"
	gcbProv    = "pypi-attestations-upstream/gcb_attestation_test-0.0.0.tar.gz.provenance"
)

var (
	ghAttestations = pypi.Publisher{Kind: pypi.KindGitHub, Repository: "trailofbits/pypi-attestations", Workflow: "release.yml"}
	ghModels       = pypi.Publisher{Kind: pypi.KindGitHub, Repository: "trailofbits/pypi-attestation-models", Workflow: "release.yml"}
	glProject      = pypi.Publisher{Kind: pypi.KindGitLab, Repository: "facutuesca/gitlab-oidc-project", Workflow: ".gitlab-ci.yml"}
	jku            = pypi.Publisher{Kind: pypi.KindIdentity, Issuer: "https://github.com/login/oauth", Subject: "jku@goto.fi"}
	william        = pypi.Publisher{Kind: pypi.KindIdentity, Issuer: "https://github.com/login/oauth", Subject: "william@yossarian.net"}
)

func with(p pypi.Publisher, f func(*pypi.Publisher)) *pypi.Publisher {
	f(&p)
	return &p
}

// conformanceCase is one row of the fixtures README or protocol.md §e.
type conformanceCase struct {
	name     string
	root     string // production or staging
	att      string // attestation fixture (single attestation mode)
	prov     string // provenance fixture (provenance mode)
	provData []byte // provenance bytes built by the test
	filename string
	dist     string // fixture path of the file, or "" to use sha
	sha      string
	expect   *pypi.Publisher
	reason   provenance.Reason // "" means verified
	text     string            // substring of the detail
	identity string            // Identity.String() when verified
}

func (c conformanceCase) run(t *testing.T) {
	v := realVerifier(t, c.root)
	d := provenance.Dist{Filename: c.filename, SHA256: c.sha}
	if c.dist != "" {
		d.SHA256 = sha256Hex(readFixture(t, c.dist))
	}
	var res *provenance.Result
	var err error
	switch {
	case c.att != "":
		res, err = v.VerifyAttestation(readFixture(t, c.att), d, c.expect)
	case c.prov != "":
		res, err = v.VerifyProvenance(readFixture(t, c.prov), d)
	default:
		res, err = v.VerifyProvenance(c.provData, d)
	}
	if c.reason == "" {
		if err != nil {
			t.Fatalf("got error %v; want verified", err)
		}
		if got := res.Identity.String(); got != c.identity {
			t.Errorf("got identity %q; want %q", got, c.identity)
		}
		return
	}
	if err == nil {
		t.Fatalf("got verified (%s); want %s", res.Identity, c.reason)
	}
	if got := provenance.ReasonOf(err); got != c.reason {
		t.Errorf("got reason %q (%v); want %q", got, err, c.reason)
	}
	if !strings.Contains(err.Error(), c.text) {
		t.Errorf("got error %q; want it to contain %q", err, c.text)
	}
	if !errors.Is(err, provenance.ErrVerification) {
		t.Errorf("errors.Is(%v, ErrVerification) = false", err)
	}
}

func editProvenance(t *testing.T, rel string, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFixture(t, rel), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func firstBundle(m map[string]any) map[string]any {
	return m["attestation_bundles"].([]any)[0].(map[string]any)
}

func TestConformance(t *testing.T) {
	fixturesDir(t)
	ghID := "github:trailofbits/pypi-attestations@release.yml (refs/tags/v0.0.19)"
	cases := []conformanceCase{
		// pypi_attestations-0.0.19: provenance object and both attestations.
		{name: "0.0.19 provenance", root: "production", prov: att019 + ".provenance", filename: "pypi_attestations-0.0.19.tar.gz", dist: att019, identity: ghID},
		{name: "0.0.19 publish", root: "production", att: att019 + ".publish.attestation", filename: "pypi_attestations-0.0.19.tar.gz", dist: att019, expect: &ghAttestations, identity: ghID},
		{name: "0.0.19 slsa", root: "production", att: att019 + ".slsa.attestation", filename: "pypi_attestations-0.0.19.tar.gz", dist: att019, expect: &ghAttestations, identity: ghID},
		{name: "0.0.19 parsed-equal sdist name", root: "production", prov: att019 + ".provenance", filename: "Pypi-Attestations-0.0.19.tar.gz", dist: att019, identity: ghID},
		{name: "0.0.19 no publisher check", root: "production", att: att019 + ".publish.attestation", filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, identity: ghID},
		{name: "0.0.19 workflow publish.yml", root: "production", att: att019 + ".publish.attestation", filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019,
			expect: with(ghAttestations, func(p *pypi.Publisher) { p.Workflow = "publish.yml" }), reason: provenance.ReasonIdentityMismatch,
			text: "Certificate's Build Config URI (https://github.com/trailofbits/pypi-attestations/.github/workflows/release.yml@refs/tags/v0.0.19) does not match expected Trusted Publisher (publish.yml @ trailofbits/pypi-attestations)"},
		{name: "0.0.19 other repository", root: "production", att: att019 + ".publish.attestation", filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019,
			expect: with(ghAttestations, func(p *pypi.Publisher) { p.Repository = "other/repo" }), reason: provenance.ReasonIdentityMismatch, text: "SourceRepositoryURI does not match"},
		{name: "0.0.19 repository in other case", root: "production", att: att019 + ".publish.attestation", filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019,
			expect: with(ghAttestations, func(p *pypi.Publisher) { p.Repository = "TrailOfBits/pypi-attestations" }), reason: provenance.ReasonIdentityMismatch, text: "SourceRepositoryURI does not match"},
		{name: "0.0.19 publisher kind gitlab", root: "production", att: att019 + ".publish.attestation", filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019,
			expect: with(ghAttestations, func(p *pypi.Publisher) { p.Kind = pypi.KindGitLab }), reason: provenance.ReasonIdentityMismatch, text: "Issuer does not match"},
		{name: "0.0.19 staging root", root: "staging", prov: att019 + ".provenance", filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, reason: provenance.ReasonSignature, text: "verif"},
		{name: "0.0.19 other bytes", root: "production", prov: att019 + ".provenance", filename: "pypi_attestations-0.0.19.tar.gz", dist: models, reason: provenance.ReasonDigestMismatch, text: "subject does not match distribution digest"},
		{name: "0.0.19 other filename", root: "production", prov: att019 + ".provenance", filename: "pypi_attestations-0.0.20.tar.gz", sha: sha019, reason: provenance.ReasonNameMismatch, text: "subject does not match distribution name"},
		{name: "0.0.19 nothing bytes", root: "production", att: att019 + ".publish.attestation", filename: "pypi_attestations-0.0.19.tar.gz", sha: sha256Hex([]byte("nothing")), reason: provenance.ReasonDigestMismatch, text: "subject does not match distribution digest"},
		{name: "0.0.19 provenance version 2", root: "production", provData: editProvenance(t, att019+".provenance", func(m map[string]any) { m["version"] = 2 }),
			filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, reason: provenance.ReasonFormat, text: "unsupported version 2"},
		{name: "0.0.19 recorded publisher kind swapped", root: "production", provData: editProvenance(t, att019+".provenance", func(m map[string]any) {
			firstBundle(m)["publisher"] = map[string]any{"kind": "GitLab", "repository": "trailofbits/pypi-attestations", "workflow_filepath": "release.yml"}
		}), filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, reason: provenance.ReasonIdentityMismatch, text: "Issuer does not match"},
		{name: "0.0.19 recorded workflow wrong", root: "production", provData: editProvenance(t, att019+".provenance", func(m map[string]any) {
			firstBundle(m)["publisher"].(map[string]any)["workflow"] = "publish.yml"
		}), filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, reason: provenance.ReasonIdentityMismatch, text: "does not match expected Trusted Publisher"},
		{name: "0.0.19 recorded publisher ActiveState", root: "production", provData: editProvenance(t, att019+".provenance", func(m map[string]any) {
			firstBundle(m)["publisher"] = map[string]any{"kind": "ActiveState"}
		}), filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, reason: provenance.ReasonFormat, text: "unknown kind"},
		{name: "0.0.19 attestation version 2", root: "production", provData: editProvenance(t, att019+".provenance", func(m map[string]any) {
			firstBundle(m)["attestations"].([]any)[0].(map[string]any)["version"] = 2
		}), filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, reason: provenance.ReasonFormat, text: "unsupported version 2"},
		{name: "0.0.19 invalid certificate", root: "production", provData: editProvenance(t, att019+".provenance", func(m map[string]any) {
			firstBundle(m)["attestations"].([]any)[0].(map[string]any)["verification_material"].(map[string]any)["certificate"] = "Zm9v"
		}), filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, reason: provenance.ReasonFormat, text: "invalid X.509 certificate"},
		{name: "0.0.19 empty tlog entry", root: "production", provData: editProvenance(t, att019+".provenance", func(m map[string]any) {
			firstBundle(m)["attestations"].([]any)[0].(map[string]any)["verification_material"].(map[string]any)["transparency_entries"] = []any{map[string]any{}}
		}), filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, reason: provenance.ReasonFormat, text: "invalid transparency log entry"},

		// Rekor v1 + RFC 3161 timestamp, and Rekor v2 dsse 0.0.2 (deprecated: unsupported).
		{name: "with_timestamp generic identity", root: "production", att: "pypi-attestations-upstream/pypi_attestations-0.0.19.tar.gz.publish.attestation.with_timestamp",
			filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, expect: &jku, identity: "identity:jku@goto.fi (https://github.com/login/oauth)"},
		{name: "with_timestamp trusted publisher", root: "production", att: "pypi-attestations-upstream/pypi_attestations-0.0.19.tar.gz.publish.attestation.with_timestamp",
			filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, expect: &ghAttestations, reason: provenance.ReasonIdentityMismatch, text: "Issuer does not match"},
		{name: "with_rekor2_timestamp", root: "staging", att: "pypi-attestations-upstream/pypi_attestations-0.0.19.tar.gz.publish.attestation.with_rekor2_timestamp",
			filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, expect: &jku, reason: provenance.ReasonUnsupported, text: "Rekor v2"},
		{name: "with_rekor2_timestamp production root", root: "production", att: "pypi-attestations-upstream/pypi_attestations-0.0.19.tar.gz.publish.attestation.with_rekor2_timestamp",
			filename: "pypi_attestations-0.0.19.tar.gz", sha: sha019, reason: provenance.ReasonUnsupported, text: "Rekor v2"},

		// pypi_attestation_models-0.0.4a2.
		{name: "models github publisher", root: "production", att: models + ".attestation", filename: "pypi_attestation_models-0.0.4a2.tar.gz", dist: models, expect: &ghModels,
			identity: "github:trailofbits/pypi-attestation-models@release.yml (refs/tags/v0.0.4a2)"},
		{name: "models workflow wrong.yml", root: "production", att: models + ".attestation", filename: "pypi_attestation_models-0.0.4a2.tar.gz", dist: models,
			expect: with(ghModels, func(p *pypi.Publisher) { p.Workflow = "wrong.yml" }), reason: provenance.ReasonIdentityMismatch, text: "Build Config URI"},

		// gitlab_oidc_project-0.0.3.
		{name: "gitlab publisher", root: "production", att: gitlabDist + ".publish.attestation", filename: "gitlab_oidc_project-0.0.3.tar.gz", dist: gitlabDist, expect: &glProject,
			identity: "gitlab:facutuesca/gitlab-oidc-project@.gitlab-ci.yml (refs/heads/main)"},
		{name: "gitlab workflow wrong.yml", root: "production", att: gitlabDist + ".publish.attestation", filename: "gitlab_oidc_project-0.0.3.tar.gz", dist: gitlabDist,
			expect: with(glProject, func(p *pypi.Publisher) { p.Workflow = "wrong.yml" }), reason: provenance.ReasonIdentityMismatch, text: "Build Config URI"},

		// rfc8785-0.1.2 (staging).
		{name: "rfc8785 staging identity", root: "staging", att: rfcDist + ".attestation", filename: "rfc8785-0.1.2-py3-none-any.whl", dist: rfcDist, expect: &william,
			identity: "identity:william@yossarian.net (https://github.com/login/oauth)"},
		{name: "rfc8785 publish form", root: "staging", att: rfcDist + ".publish.attestation", filename: "rfc8785-0.1.2-py3-none-any.whl", dist: rfcDist, expect: &william,
			identity: "identity:william@yossarian.net (https://github.com/login/oauth)"},
		{name: "rfc8785 production root", root: "production", att: rfcDist + ".attestation", filename: "rfc8785-0.1.2-py3-none-any.whl", dist: rfcDist, expect: &william,
			reason: provenance.ReasonSignature, text: "verif"},
		{name: "rfc8785 policy mismatch", root: "staging", att: rfcDist + ".attestation", filename: "rfc8785-0.1.2-py3-none-any.whl", dist: rfcDist,
			expect: with(william, func(p *pypi.Publisher) { p.Subject = "fake@example.com" }), reason: provenance.ReasonIdentityMismatch, text: "Certificate's SANs do not match"},
		{name: "rfc8785 filename mismatch", root: "staging", att: rfcDist + ".attestation", filename: "wrong_name-0.1.2-py3-none-any.whl", dist: rfcDist, expect: &william,
			reason: provenance.ReasonNameMismatch, text: "subject does not match distribution name"},
		{name: "rfc8785 changed bytes", root: "staging", att: rfcDist + ".attestation", filename: "rfc8785-0.1.2-py3-none-any.whl", sha: sha256Hex([]byte("nothing")), expect: &william,
			reason: provenance.ReasonDigestMismatch, text: "subject does not match distribution digest"},

		// spt3g: compressed tags in the other order.
		{name: "spt3g tag order", root: "staging", att: spt3gAtt, filename: "spt3g-1.0-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
			sha: "d2772f9a5199f05ed1be8d9aa78b879e51772e3ead9d73fe8057257b1aec7cf8", expect: &william, identity: "identity:william@yossarian.net (https://github.com/login/oauth)"},

		// gcb_attestation_test-0.0.0 (Google).
		{name: "google provenance", root: "production", prov: gcbProv, filename: "gcb_attestation_test-0.0.0.tar.gz",
			sha: "461317362419124b6012e855423a9078d6de8aed3e74fa78cc74d669b23dc6cf", identity: "google:919436158236-compute@developer.gserviceaccount.com"},
		{name: "google another email", root: "production", provData: editProvenance(t, gcbProv, func(m map[string]any) {
			firstBundle(m)["publisher"].(map[string]any)["email"] = "other@developer.gserviceaccount.com"
		}), filename: "gcb_attestation_test-0.0.0.tar.gz", sha: "461317362419124b6012e855423a9078d6de8aed3e74fa78cc74d669b23dc6cf",
			reason: provenance.ReasonIdentityMismatch, text: "SANs do not match other@developer.gserviceaccount.com"},
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
}

// TestConformanceTampered covers protocol.md §e's extra negative cases on real data.
func TestConformanceTampered(t *testing.T) {
	fixturesDir(t)
	edit := func(f func(att map[string]any)) []byte {
		return editProvenance(t, att019+".provenance", func(m map[string]any) {
			f(firstBundle(m)["attestations"].([]any)[0].(map[string]any))
		})
	}
	other := func(field string) any {
		var m map[string]any
		if err := json.Unmarshal(readFixture(t, models+".attestation"), &m); err != nil {
			t.Fatal(err)
		}
		return m["verification_material"].(map[string]any)[field]
	}
	flip := func(m map[string]any, key string, at int) {
		b := []byte(m[key].(string))
		raw, _ := base64Std.DecodeString(string(b))
		raw[at%len(raw)] ^= 0x01
		m[key] = base64Std.EncodeToString(raw)
	}
	cases := []struct {
		name string
		prov []byte
		want provenance.Reason
	}{
		{"statement byte", edit(func(a map[string]any) { flip(a["envelope"].(map[string]any), "statement", 40) }), provenance.ReasonSignature},
		{"signature byte", edit(func(a map[string]any) { flip(a["envelope"].(map[string]any), "signature", 20) }), provenance.ReasonSignature},
		{"certificate signature byte", edit(func(a map[string]any) {
			m := a["verification_material"].(map[string]any)
			raw, _ := base64Std.DecodeString(m["certificate"].(string))
			raw[len(raw)-10] ^= 0x01
			m["certificate"] = base64Std.EncodeToString(raw)
		}), provenance.ReasonSignature},
		{"certificate swapped", edit(func(a map[string]any) {
			a["verification_material"].(map[string]any)["certificate"] = other("certificate")
		}), provenance.ReasonSignature},
		{"tlog entry swapped", edit(func(a map[string]any) {
			a["verification_material"].(map[string]any)["transparency_entries"] = other("transparency_entries")
		}), provenance.ReasonSignature},
		{"integratedTime +1", edit(func(a map[string]any) {
			e := a["verification_material"].(map[string]any)["transparency_entries"].([]any)[0].(map[string]any)
			e["integratedTime"] = "1733354042"
		}), provenance.ReasonSignature},
		{"canonicalizedBody byte", edit(func(a map[string]any) {
			flip(a["verification_material"].(map[string]any)["transparency_entries"].([]any)[0].(map[string]any), "canonicalizedBody", 100)
		}), provenance.ReasonSignature},
		{"statement with newline base64", edit(func(a map[string]any) {
			env := a["envelope"].(map[string]any)
			s := env["statement"].(string)
			env["statement"] = s[:76] + "\n" + s[76:]
		}), provenance.ReasonFormat},
	}
	v := realVerifier(t, "production")
	d := provenance.Dist{Filename: "pypi_attestations-0.0.19.tar.gz", SHA256: sha019}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := v.VerifyProvenance(c.prov, d)
			if err == nil {
				t.Fatalf("got verified (%s); want %s", res.Identity, c.want)
			}
			if got := provenance.ReasonOf(err); got != c.want {
				t.Errorf("got reason %q (%v); want %q", got, err, c.want)
			}
			f := v.Facts(c.prov, d)
			if f.Verdict != pypi.VerdictInvalid || f.Reason != c.want {
				t.Errorf("got facts %q/%q; want invalid/%q", f.Verdict, f.Reason, c.want)
			}
		})
	}
}

func TestFactsReal(t *testing.T) {
	fixturesDir(t)
	v := realVerifier(t, "production")
	f := v.Facts(readFixture(t, att019+".provenance"), provenance.Dist{Filename: "pypi_attestations-0.0.19.tar.gz", SHA256: sha019})
	if f.Verdict != pypi.VerdictVerified || f.Identity == nil || f.Recorded == nil {
		t.Fatalf("got %+v; want verified with identity and recorded publisher", f)
	}
	if got, want := *f.Recorded, ghAttestations; got != want {
		t.Errorf("got recorded %+v; want %+v", got, want)
	}
	if !f.Recorded.Matches(*f.Identity) {
		t.Errorf("recorded %s does not match identity %s", f.Recorded, f.Identity)
	}
	if got, want := f.Identity.Commit, "08802efe1f8e5fec4ad842d6b8ce97656092ee72"; got != want {
		t.Errorf("got commit %q; want %q", got, want)
	}
	// Rekor v2 dsse 0.0.2 inside a provenance object: unsupported, never verified.
	att := readFixture(t, "pypi-attestations-upstream/pypi_attestations-0.0.19.tar.gz.publish.attestation.with_rekor2_timestamp")
	prov := []byte(`{"version":1,"attestation_bundles":[{"publisher":{"kind":"GitHub","repository":"trailofbits/pypi-attestations","workflow":"release.yml","environment":null},"attestations":[` + string(bytes.TrimSpace(att)) + `]}]}`)
	f = realVerifier(t, "staging").Facts(prov, provenance.Dist{Filename: "pypi_attestations-0.0.19.tar.gz", SHA256: sha019})
	if f.Verdict != pypi.VerdictUnsupported || f.Reason != provenance.ReasonUnsupported {
		t.Errorf("got %q/%q; want unsupported/unsupported", f.Verdict, f.Reason)
	}
}
