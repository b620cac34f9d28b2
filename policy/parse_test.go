package policy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// TestLoadBadPolicies pairs each testdata/bad-*.yaml with its exact error.
func TestLoadBadPolicies(t *testing.T) {
	tests := map[string]string{
		"bad-defaults-trusted-publisher.yaml": `line 3: defaults.require: trusted-publisher needs publishers, which only package rules have; require it per package`,
		"bad-accepted-versions.yaml": `line 5: packages[0].accepted_versions[1]: invalid version "not a version" (want a PEP 440 version such as "1.2" or "2.0rc1")
line 7: packages[1].accepted_versions: only allowed with continuity checks on (continuity is none)`,
		"bad-duplicate-key.yaml": `line 2: version: duplicate key (first at line 1)`,
		"bad-duplicate-section.yaml": `line 4: defaults: duplicate key (first at line 2)
line 8: packages[0].requre: unknown field (did you mean require?)`,
		"bad-duplicates.yaml": `line 5: packages[2].name: duplicate of packages[0] (line 3); the first match wins, so this rule never applies
line 6: packages[3].name: "internal-tools" is already matched by packages[1] "internal-*" (line 4); the first match wins, so this rule never applies
line 7: packages[4].name: duplicate of packages[1] (line 4); the first match wins, so this rule never applies`,
		"bad-empty.yaml": `empty document`,
		"bad-names.yaml": `line 3: packages[0].name: invalid project name "not a name" (want a PEP 508 name or a glob like "internal-*")
line 4: packages[1].name: invalid glob "internal-[a" (use *, ? and [...] around letters, digits, -, _ and .)
line 5: packages[2].name: invalid project name "-leading" (want a PEP 508 name or a glob like "internal-*")
line 6: packages[3].name: required
line 7: packages[4].name: invalid glob "foo/*" (use *, ? and [...] around letters, digits, -, _ and .)
line 8: packages[5].name: glob "pypi[_]attestations" can never match: names are compared PEP 503-normalised (lower case, a single - between words, no _ or ., a letter or digit first and last), so write it that way, e.g. "pypi-*"`,
		"bad-trust-over-time.yaml": `line 3: defaults.continuity: unknown continuity "sometimes" (want none, warn, yank or block)
line 4: defaults.min_release_age: want a duration like "7d", "36h" or "0s", got "7days"
line 5: defaults.cooldown_action: unknown cooldown_action "none" (want block, yank or warn)
line 8: packages[0].min_release_age: want a duration like "7d", "36h" or "0s", got "-1d"
line 16: packages[2].publishers: only allowed with require: trusted-publisher, or with continuity checks on (require is "none", continuity none)`,
		"bad-publishers-without-trusted-publisher.yaml": `line 6: packages[0].publishers: only allowed with require: trusted-publisher, or with continuity checks on (require is "attestation", continuity none)`,
		"bad-publishers.yaml": `line 6: packages[0].publishers[0].repository: required for kind github
line 7: packages[0].publishers[0].workflow: want a bare file name like "release.yml", not a path: ".github/workflows/release.yml"
line 9: packages[0].publishers[1].repository: want "owner/name", got "https://github.com/good/repo"
line 10: packages[0].publishers[1].workflow: want a workflow file name ending in .yml or .yaml, got "release"
line 12: packages[0].publishers[2].repository: want "namespace/project" (subgroups allowed), got "project"
line 13: packages[0].publishers[2].workflow: want a relative file path like ".gitlab-ci.yml", got "/.gitlab-ci.yml"
line 15: packages[0].publishers[3].email: want an e-mail address, got "not-an-email"
line 16: packages[0].publishers[3].repository: not used by kind google (it takes email)
line 17: packages[0].publishers[4].subject: required for kind identity
line 18: packages[0].publishers[4].issuer: want an https:// OIDC issuer URL, got "github.com/login/oauth"
line 19: packages[0].publishers[5].kind: unknown kind "bitbucket" (want github, gitlab, google or identity)
line 21: packages[0].publishers[6].kind: required (want github, gitlab, google or identity)`,
		"bad-second-document.yaml": `line 3: defaults.action: unknown action "deny" (want block, yank or warn)
line 4: a second document is not allowed`,
		"bad-root-list.yaml": `line 1: want a mapping, got a list`,
		"bad-syntax.yaml":    `line 2: did not find expected ',' or ']'`,
		"bad-trusted-publisher-without-publishers.yaml": `line 4: packages[0].require: trusted-publisher needs publishers; add a publishers list
line 7: packages[1].publishers: at least one publisher is required with require: trusted-publisher`,
		"bad-types.yaml": "line 3: defaults: want a mapping, got a list\n" +
			"line 6: packages[0].require: want a string, got a list\n" +
			"line 8: packages[0].publishers: want a list, got a mapping",
		"bad-unknown-field.yaml": `line 4: defaults.acton: unknown field (did you mean action?)
line 7: packages[0].requre: unknown field (did you mean require?)`,
		"bad-values.yaml": `line 3: defaults.require: unknown require "signed" (want none, attestation or trusted-publisher)
line 4: defaults.action: unknown action "deny" (want block, yank or warn)
line 5: defaults.on_invalid: unknown action "allow" (want block, yank or warn)
line 6: defaults.on_error: unknown action "ignore" (want block, yank or warn)
line 9: packages[0].require: unknown require "trusted_publisher" (want none, attestation or trusted-publisher)
line 10: packages[0].action: unknown action "Block" (want block, yank or warn)`,
		"bad-version-2.yaml":       `line 1: version: unsupported version 2 (want 1)`,
		"bad-version-missing.yaml": `line 1: version: required (version: 1)`,
		"bad-version-type.yaml": "line 1: version: want an integer, got \"one\"\n" +
			"line 2: packages: want a list, got \"requests\"",
	}
	files, err := filepath.Glob("testdata/bad-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := tests[filepath.Base(f)]; !ok {
			t.Errorf("%s has no expected error in this table", f)
		}
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := policy.Load(filepath.Join("testdata", name))
			if err == nil {
				t.Fatalf("Load succeeded with %d rules; want error %q", len(p.Rules()), want)
			}
			if got := err.Error(); got != want {
				t.Errorf("Load error:\ngot  %q\nwant %q", got, want)
			}
			if !errors.Is(err, policy.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			probs := policy.Problems(err)
			if got, want := len(probs), strings.Count(want, "\n")+1; got != want {
				t.Errorf("Problems: got %d; want %d", got, want)
			}
		})
	}
}

func TestLoadIOError(t *testing.T) {
	_, err := policy.Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("Load(missing) = %v; want a not-exist error that is not ErrInvalid", err)
	}
	if got := policy.Problems(err); got != nil {
		t.Errorf("Problems(%v) = %v; want none", err, got)
	}
}

func TestLoadTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	body := "version: 1\n" + strings.Repeat("# padding\n", policy.MaxFileSize/10+1)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := policy.Load(path)
	if want := "file larger than 1048576 bytes"; err == nil || err.Error() != want {
		t.Fatalf("Load(big) = %v; want %q", err, want)
	}
}

// TestParseAllFields pins how each field is resolved: names normalised,
// unset fields taken from the defaults, publishers converted, lines kept.
func TestParseAllFields(t *testing.T) {
	src := `version: 1
defaults:
  require: attestation
  action: yank
  on_error: warn
packages:
  - name: Pypi_Attestations
    require: trusted-publisher
    action: block
    publishers:
      - kind: github
        repository: trailofbits/pypi-attestations
        workflow: release.yml
      - kind: gitlab
        repository: group/sub/project
        workflow: ci/release.yaml
      - kind: google
        email: builder@project.iam.gserviceaccount.com
      - kind: identity
        issuer: https://github.com/login/oauth
        subject: someone@example.com
  - name: "INTERNAL.*"
    require: none
    on_invalid: warn
  - name: zope.interface
`
	p := mustParse(t, src)
	wantDefaults := policy.Rule{Name: "defaults", Require: "attestation", Action: "yank", OnInvalid: "block", OnError: "warn", Continuity: "none", CooldownAction: "block"}
	if got := p.Defaults(); !reflect.DeepEqual(got, wantDefaults) {
		t.Errorf("Defaults() = %+v; want %+v", got, wantDefaults)
	}
	want := []policy.Rule{
		{Name: "pypi-attestations", Require: "trusted-publisher", Action: "block", OnInvalid: "block", OnError: "warn", Continuity: "none", CooldownAction: "block", Line: 7,
			Publishers: []pypi.Publisher{
				{Kind: "github", Repository: "trailofbits/pypi-attestations", Workflow: "release.yml"},
				{Kind: "gitlab", Repository: "group/sub/project", Workflow: "ci/release.yaml"},
				{Kind: "google", Email: "builder@project.iam.gserviceaccount.com"},
				{Kind: "identity", Issuer: "https://github.com/login/oauth", Subject: "someone@example.com"},
			}},
		{Name: "internal-*", Require: "none", Action: "yank", OnInvalid: "warn", OnError: "warn", Continuity: "none", CooldownAction: "block", Line: 22},
		{Name: "zope-interface", Require: "attestation", Action: "yank", OnInvalid: "block", OnError: "warn", Continuity: "none", CooldownAction: "block", Line: 25},
	}
	got := p.Rules()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Rules() =\n%+v\nwant\n%+v", got, want)
	}
	// Rules returns a copy.
	got[0].Publishers[0].Repository = "evil/fork"
	got[1].Name = "x"
	if again := p.Rules(); !reflect.DeepEqual(again, want) {
		t.Errorf("Rules() after mutating a copy = %+v; want %+v", again, want)
	}

	sum := sha256.Sum256([]byte(src))
	if got, want := p.Digest(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Digest() = %q; want %q", got, want)
	}
	if got := p.Source(); got != "" {
		t.Errorf("Source() = %q; want empty for Parse", got)
	}
}

func TestParseMinimal(t *testing.T) {
	p := mustParse(t, "version: 1\n")
	if got, want := p.Defaults(), policy.Default().Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("Defaults() = %+v; want the built-in %+v", got, want)
	}
	if got := len(p.Rules()); got != 0 {
		t.Errorf("len(Rules()) = %d; want 0", got)
	}
}

func TestParseNullDocument(t *testing.T) {
	for _, src := range []string{"", "\n\n", "# c\n", "---\n", "~\n", "null\n"} {
		_, err := policy.Parse([]byte(src))
		if err == nil || !strings.HasSuffix(err.Error(), "empty document") {
			t.Errorf("Parse(%q) = %v; want empty document", src, err)
		}
	}
}

func TestDefault(t *testing.T) {
	p := policy.Default()
	want := policy.Rule{Name: "defaults", Require: "none", Action: "warn", OnInvalid: "block", OnError: "block", Continuity: "none", CooldownAction: "block"}
	if got := p.Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default().Defaults() = %+v; want %+v", got, want)
	}
	if got := p.Source(); got != "built-in" {
		t.Errorf("Default().Source() = %q; want %q", got, "built-in")
	}
	if got := p.Digest(); got != "" {
		t.Errorf("Default().Digest() = %q; want empty", got)
	}
}

// TestExampleConfigs loads configs/*.yaml: the observe-only example makes
// exactly the built-in policy's decisions; the strict one loads.
func TestExampleConfigs(t *testing.T) {
	obs, err := policy.Load("../configs/policy.yaml")
	if err != nil {
		t.Fatalf("configs/policy.yaml: %v", err)
	}
	if got, want := obs.Defaults(), policy.Default().Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("configs/policy.yaml defaults = %+v; want Default()'s %+v", got, want)
	}
	if got := len(obs.Rules()); got != 0 {
		t.Errorf("configs/policy.yaml has %d active rules; want 0 (observe only)", got)
	}
	if got := obs.Source(); got != "../configs/policy.yaml" {
		t.Errorf("Source() = %q; want the path", got)
	}

	strict, err := policy.Load("../configs/policy-strict.yaml")
	if err != nil {
		t.Fatalf("configs/policy-strict.yaml: %v", err)
	}
	if got, want := strict.Defaults().Require, policy.RequireAttestation; got != want {
		t.Errorf("strict defaults require %q; want %q", got, want)
	}
	kinds := map[pypi.PublisherKind]bool{}
	for _, r := range strict.Rules() {
		for _, pub := range r.Publishers {
			kinds[pub.Kind] = true
		}
	}
	for _, k := range []pypi.PublisherKind{pypi.KindGitHub, pypi.KindGitLab, pypi.KindGoogle, pypi.KindIdentity} {
		if !kinds[k] {
			t.Errorf("configs/policy-strict.yaml has no %s publisher; want one of each kind", k)
		}
	}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		e    policy.ProblemError
		want string
	}{
		{policy.ProblemError{Line: 7, Path: "packages[2].publishers[0].repository", Msg: "required for kind github"}, "line 7: packages[2].publishers[0].repository: required for kind github"},
		{policy.ProblemError{Line: 2, Msg: "a second document is not allowed"}, "line 2: a second document is not allowed"},
		{policy.ProblemError{Path: "version", Msg: "required"}, "version: required"},
		{policy.ProblemError{Msg: "empty document"}, "empty document"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q; want %q", got, tt.want)
		}
	}
}

// TestCheckPublisher: CheckPublisher says what Parse says about the same
// publisher in a rule, with the path relative to the entry.
func TestCheckPublisher(t *testing.T) {
	tests := []struct {
		pub      pypi.Publisher
		wantPath string // "" when valid
	}{
		{pypi.Publisher{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: "release.yml"}, ""},
		{pypi.Publisher{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: ".github/workflows/r.yml"}, "workflow"},
		{pypi.Publisher{Kind: pypi.KindGitHub, Repository: "o"}, "repository"},
		{pypi.Publisher{Kind: pypi.KindGitLab, Repository: "g/s/p", Workflow: "ci/release.yml"}, ""},
		{pypi.Publisher{Kind: pypi.KindGitLab, Repository: "g/s/p", Workflow: "/abs.yml"}, "workflow"},
		{pypi.Publisher{Kind: pypi.KindGoogle, Email: "a@b.example"}, ""},
		{pypi.Publisher{Kind: pypi.KindGoogle, Email: "not-an-address"}, "email"},
		{pypi.Publisher{Kind: pypi.KindGoogle, Email: "a@b.example", Repository: "o/r"}, "repository"},
		{pypi.Publisher{Kind: "activestate"}, "kind"},
		{pypi.Publisher{}, "kind"},
	}
	for _, tt := range tests {
		err := policy.CheckPublisher(tt.pub)
		var b strings.Builder
		b.WriteString("version: 1\npackages:\n  - name: x\n    require: trusted-publisher\n    publishers:\n      - kind: \"" + string(tt.pub.Kind) + "\"\n")
		for _, kv := range [][2]string{{"repository", tt.pub.Repository}, {"workflow", tt.pub.Workflow}, {"email", tt.pub.Email}} {
			if kv[1] != "" {
				b.WriteString("        " + kv[0] + ": \"" + kv[1] + "\"\n")
			}
		}
		_, perr := policy.Parse([]byte(b.String()))
		if (err == nil) != (perr == nil) {
			t.Errorf("%+v: CheckPublisher %v, Parse %v", tt.pub, err, perr)
			continue
		}
		if tt.wantPath == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.pub, err)
			}
			continue
		}
		probs, pprobs := policy.Problems(err), policy.Problems(perr)
		if len(probs) == 0 || probs[0].Path != tt.wantPath || probs[0].Line != 0 || !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("%+v: problems %v; want path %q first, no line", tt.pub, probs, tt.wantPath)
			continue
		}
		if want := "packages[0].publishers[0]." + tt.wantPath; len(pprobs) == 0 || pprobs[0].Path != want || pprobs[0].Msg != probs[0].Msg {
			t.Errorf("%+v: Parse says %v; CheckPublisher %v", tt.pub, pprobs, probs)
		}
	}
}
