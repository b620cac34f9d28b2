package policy_test

import (
	"errors"
	"testing"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

const decideYAML = `version: 1
defaults:
  require: attestation
  action: yank
  on_invalid: block
  on_error: warn
packages:
  - name: example-pkg
    require: trusted-publisher
    action: block
    publishers:
      - kind: github
        repository: good/repo
        workflow: release.yml
  - name: open-*
    require: none
    on_invalid: warn
  - name: tp-warn
    require: trusted-publisher
    action: warn
    on_error: yank
    publishers:
      - kind: google
        email: builder@p.iam.gserviceaccount.com
      - kind: gitlab
        repository: group/sub/project
`

func mustParse(t testing.TB, s string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

var (
	goodID   = &pypi.Identity{Kind: pypi.KindGitHub, Issuer: "https://token.actions.githubusercontent.com", Repository: "good/repo", Workflow: "release.yml", Ref: "refs/tags/v1"}
	forkID   = &pypi.Identity{Kind: pypi.KindGitHub, Issuer: "https://token.actions.githubusercontent.com", Repository: "evil/fork", Workflow: "release.yml"}
	googleID = &pypi.Identity{Kind: pypi.KindGoogle, Issuer: "https://accounts.google.com", Email: "builder@p.iam.gserviceaccount.com"}
	otherGID = &pypi.Identity{Kind: pypi.KindGoogle, Issuer: "https://accounts.google.com", Email: "other@p.iam.gserviceaccount.com"}
)

func verified(id *pypi.Identity) pypi.Facts {
	return pypi.Facts{Verdict: pypi.VerdictVerified, Identity: id}
}

var (
	unattested  = pypi.Facts{Verdict: pypi.VerdictUnattested}
	invalid     = pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: "digest-mismatch", Detail: "the attestation names\nanother file"}
	unsupported = pypi.Facts{Verdict: pypi.VerdictUnsupported, Reason: "rekor-v2"}
	errored     = pypi.Facts{Verdict: pypi.VerdictError, Detail: "upstream timeout"}
)

func TestDecide(t *testing.T) {
	p := mustParse(t, decideYAML)
	tests := []struct {
		name, project string
		facts         pypi.Facts
		want          policy.Decision
	}{
		// trusted-publisher, action block, on_invalid block, on_error warn (from defaults).
		{"tp match", "example-pkg", verified(goodID), policy.Decision{Action: "allow", Verdict: "verified", Rule: "example-pkg", Require: "trusted-publisher",
			Reason: `pipgate: example-pkg: signed by github:good/repo@release.yml (refs/tags/v1), a trusted publisher of policy rule "example-pkg"`}},
		{"tp fork", "example-pkg", verified(forkID), policy.Decision{Action: "block", Verdict: "untrusted-publisher", Rule: "example-pkg", Require: "trusted-publisher",
			Reason: `pipgate: example-pkg: signed by github:evil/fork@release.yml; policy rule "example-pkg" trusts github:good/repo@release.yml; if this signer is expected, add {kind: github, repository: evil/fork} to the publishers of policy rule "example-pkg" and reload the policy`}},
		{"tp other spelling", "Example_PKG", verified(forkID), policy.Decision{Action: "block", Verdict: "untrusted-publisher", Rule: "example-pkg", Require: "trusted-publisher",
			Reason: `pipgate: Example_PKG: signed by github:evil/fork@release.yml; policy rule "example-pkg" trusts github:good/repo@release.yml; if this signer is expected, add {kind: github, repository: evil/fork} to the publishers of policy rule "example-pkg" and reload the policy`}},
		{"tp no identity", "example-pkg", verified(nil), policy.Decision{Action: "block", Verdict: "untrusted-publisher", Rule: "example-pkg", Require: "trusted-publisher",
			Reason: `pipgate: example-pkg: verified, but the signer identity is unknown; policy rule "example-pkg" trusts github:good/repo@release.yml`}},
		{"tp unattested", "example-pkg", unattested, policy.Decision{Action: "block", Verdict: "unattested", Rule: "example-pkg", Require: "trusted-publisher",
			Reason: `pipgate: example-pkg: no provenance (unattested); policy rule "example-pkg" requires an attestation from a trusted publisher`}},
		{"tp invalid", "example-pkg", invalid, policy.Decision{Action: "block", Verdict: "invalid", Rule: "example-pkg", Require: "trusted-publisher",
			Reason: `pipgate: example-pkg: attestation failed verification (digest-mismatch: the attestation names another file)`}},
		{"tp unsupported", "example-pkg", unsupported, policy.Decision{Action: "block", Verdict: "unsupported", Rule: "example-pkg", Require: "trusted-publisher",
			Reason: `pipgate: example-pkg: attestation cannot be checked: unsupported format (rekor-v2); policy rule "example-pkg" requires an attestation from a trusted publisher`}},
		{"tp error", "example-pkg", errored, policy.Decision{Action: "warn", Verdict: "error", Rule: "example-pkg", Require: "trusted-publisher",
			Reason: `pipgate: example-pkg: provenance could not be checked (upstream timeout); policy rule "example-pkg" requires an attestation from a trusted publisher`}},

		// defaults: attestation, yank, block, warn.
		{"defaults verified", "requests", verified(forkID), policy.Decision{Action: "allow", Verdict: "verified", Rule: "defaults", Require: "attestation",
			Reason: `pipgate: requests: verified, signed by github:evil/fork@release.yml`}},
		{"defaults verified no identity", "requests", verified(nil), policy.Decision{Action: "allow", Verdict: "verified", Rule: "defaults", Require: "attestation",
			Reason: `pipgate: requests: verified`}},
		{"defaults unattested", "requests", unattested, policy.Decision{Action: "yank", Verdict: "unattested", Rule: "defaults", Require: "attestation",
			Reason: `pipgate: requests: no provenance (unattested); policy defaults require a verified attestation`}},
		{"defaults invalid", "requests", invalid, policy.Decision{Action: "block", Verdict: "invalid", Rule: "defaults", Require: "attestation",
			Reason: `pipgate: requests: attestation failed verification (digest-mismatch: the attestation names another file)`}},
		{"defaults unsupported", "requests", unsupported, policy.Decision{Action: "yank", Verdict: "unsupported", Rule: "defaults", Require: "attestation",
			Reason: `pipgate: requests: attestation cannot be checked: unsupported format (rekor-v2); policy defaults require a verified attestation`}},
		{"defaults error", "requests", errored, policy.Decision{Action: "warn", Verdict: "error", Rule: "defaults", Require: "attestation",
			Reason: `pipgate: requests: provenance could not be checked (upstream timeout); policy defaults require a verified attestation`}},
		{"defaults unknown verdict", "requests", pypi.Facts{Verdict: "maybe"}, policy.Decision{Action: "warn", Verdict: "error", Rule: "defaults", Require: "attestation",
			Reason: `pipgate: requests: unknown verdict "maybe"; policy defaults require a verified attestation`}},
		{"defaults facts carry untrusted-publisher", "requests", pypi.Facts{Verdict: pypi.VerdictUntrustedPublisher}, policy.Decision{Action: "warn", Verdict: "error", Rule: "defaults", Require: "attestation",
			Reason: `pipgate: requests: unknown verdict "untrusted-publisher"; policy defaults require a verified attestation`}},

		// glob, require none, on_invalid warn.
		{"none verified", "Open_Thing", verified(goodID), policy.Decision{Action: "allow", Verdict: "verified", Rule: "open-*", Require: "none",
			Reason: `pipgate: Open_Thing: verified, signed by github:good/repo@release.yml (refs/tags/v1)`}},
		{"none unattested", "open.thing", unattested, policy.Decision{Action: "allow", Verdict: "unattested", Rule: "open-*", Require: "none",
			Reason: `pipgate: open.thing: no provenance (unattested)`}},
		{"none invalid", "open-thing", invalid, policy.Decision{Action: "warn", Verdict: "invalid", Rule: "open-*", Require: "none",
			Reason: `pipgate: open-thing: attestation failed verification (digest-mismatch: the attestation names another file)`}},
		{"none unsupported", "open-thing", unsupported, policy.Decision{Action: "allow", Verdict: "unsupported", Rule: "open-*", Require: "none",
			Reason: `pipgate: open-thing: attestation cannot be checked: unsupported format (rekor-v2)`}},
		{"none error", "open-thing", errored, policy.Decision{Action: "allow", Verdict: "error", Rule: "open-*", Require: "none",
			Reason: `pipgate: open-thing: provenance could not be checked (upstream timeout)`}},
		{"glob needs the dash", "opener", unattested, policy.Decision{Action: "yank", Verdict: "unattested", Rule: "defaults", Require: "attestation",
			Reason: `pipgate: opener: no provenance (unattested); policy defaults require a verified attestation`}},

		// trusted-publisher with action warn and several publishers.
		{"tp-warn google", "tp-warn", verified(googleID), policy.Decision{Action: "allow", Verdict: "verified", Rule: "tp-warn", Require: "trusted-publisher",
			Reason: `pipgate: tp-warn: signed by google:builder@p.iam.gserviceaccount.com, a trusted publisher of policy rule "tp-warn"`}},
		{"tp-warn other google", "tp-warn", verified(otherGID), policy.Decision{Action: "warn", Verdict: "untrusted-publisher", Rule: "tp-warn", Require: "trusted-publisher",
			Reason: `pipgate: tp-warn: signed by google:other@p.iam.gserviceaccount.com; policy rule "tp-warn" trusts google:builder@p.iam.gserviceaccount.com, gitlab:group/sub/project; if this signer is expected, add {kind: google, email: other@p.iam.gserviceaccount.com} to the publishers of policy rule "tp-warn" and reload the policy`}},
		{"tp-warn error", "tp-warn", errored, policy.Decision{Action: "yank", Verdict: "error", Rule: "tp-warn", Require: "trusted-publisher",
			Reason: `pipgate: tp-warn: provenance could not be checked (upstream timeout); policy rule "tp-warn" requires an attestation from a trusted publisher`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Decide(tt.project, tt.facts)
			if got != tt.want {
				t.Errorf("Decide(%q, %s) =\n%+v\nwant\n%+v", tt.project, tt.facts.Verdict, got, tt.want)
			}
		})
	}
}

func TestDecideDefault(t *testing.T) {
	p := policy.Default()
	tests := []struct {
		facts       pypi.Facts
		wantAction  policy.Action
		wantVerdict pypi.Verdict
	}{
		{verified(goodID), "allow", "verified"},
		{unattested, "allow", "unattested"},
		{invalid, "block", "invalid"}, // a tampered file is refused even when nothing is required
		{unsupported, "allow", "unsupported"},
		{errored, "allow", "error"},
	}
	for _, tt := range tests {
		t.Run(string(tt.facts.Verdict), func(t *testing.T) {
			d := p.Decide("anything", tt.facts)
			if d.Action != tt.wantAction || d.Verdict != tt.wantVerdict || d.Rule != "defaults" || d.Require != "none" {
				t.Errorf("Decide = %+v; want action %q verdict %q rule defaults require none", d, tt.wantAction, tt.wantVerdict)
			}
		})
	}
}

func TestDecisionBlocksYanks(t *testing.T) {
	tests := []struct {
		action             policy.Action
		wantBlock, wantYnk bool
	}{
		{policy.ActionAllow, false, false},
		{policy.ActionWarn, false, false},
		{policy.ActionYank, false, true},
		{policy.ActionBlock, true, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.action), func(t *testing.T) {
			d := policy.Decision{Action: tt.action, Verdict: pypi.VerdictUnattested, Rule: "r", Reason: "pipgate: x: no"}
			if got := d.Blocks(); got != tt.wantBlock {
				t.Errorf("Blocks() = %v; want %v", got, tt.wantBlock)
			}
			if got := d.Yanks(); got != tt.wantYnk {
				t.Errorf("Yanks() = %v; want %v", got, tt.wantYnk)
			}
			err := d.Err()
			if (err != nil) != tt.wantBlock {
				t.Fatalf("Err() = %v; want an error: %v", err, tt.wantBlock)
			}
			if err == nil {
				return
			}
			var de *policy.DeniedError
			if !errors.As(err, &de) || !errors.Is(err, policy.ErrDenied) {
				t.Fatalf("Err() = %#v; want a *DeniedError matching ErrDenied", err)
			}
			if de.Rule != "r" || de.Verdict != pypi.VerdictUnattested || err.Error() != "pipgate: x: no" {
				t.Errorf("DeniedError = %+v, %q; want rule r, verdict unattested, text %q", de, err.Error(), "pipgate: x: no")
			}
		})
	}
}

func TestLookupFirstMatchWins(t *testing.T) {
	p := mustParse(t, `version: 1
packages:
  - name: "*-dev"
    action: block
  - name: Internal_*
    action: yank
  - name: "py[0-9]*"
  - name: "lib?"
  - name: "[^a-m]*-x"
  - name: "*"
    require: attestation
`)
	tests := []struct{ project, want string }{
		{"internal-tools-dev", "*-dev"}, // the glob comes first
		{"INTERNAL.TOOLS", "internal-*"},
		{"internal-tools-prod", "internal-*"},
		{"py3k", "py[0-9]*"},
		{"pyx", "*"},
		{"libx", "lib?"},
		{"libxy", "*"},
		{"zed-x", "[^a-m]*-x"},
		{"abc-x", "*"},
		{"requests", "*"},
	}
	for _, tt := range tests {
		t.Run(tt.project, func(t *testing.T) {
			if got := p.Lookup(tt.project).Name; got != tt.want {
				t.Errorf("Lookup(%q).Name = %q; want %q", tt.project, got, tt.want)
			}
			if got := p.Decide(tt.project, unattested).Rule; got != tt.want {
				t.Errorf("Decide(%q).Rule = %q; want %q", tt.project, got, tt.want)
			}
		})
	}
}
