package policy_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/provenance/provenancetest"
	"github.com/pipgate/pipgate/pypi"
)

const continuityPolicy = `version: 1
defaults:
  require: none
packages:
  - name: proj
    continuity: block
  - name: accepted
    continuity: block
    publishers:
      - kind: github
        repository: evil/proj
  - name: tp
    require: trusted-publisher
    action: block
    continuity: block
    publishers:
      - kind: github
        repository: good/proj
      - kind: github
        repository: evil/proj
        workflow: release.yml
  - name: cool
    min_release_age: 7d
  - name: cool-warn
    min_release_age: 36h
    cooldown_action: warn
  - name: both
    continuity: warn
    min_release_age: 7d
  - name: unchecked
    continuity: yank
    on_error: warn
`

// signers mints real verification facts with the fake Sigstore: the same
// project signed by two publishers, plus a workflow-only change.
var signers struct {
	once                       sync.Once
	good, goodOther, evil, gcp pypi.Facts
}

func mintFacts(t *testing.T) {
	t.Helper()
	signers.once.Do(func() {
		s := provenancetest.New(t)
		v := s.Verifier()
		mint := func(id provenancetest.Signer) pypi.Facts {
			fn, content := "proj-1.0-py3-none-any.whl", []byte("the wheel")
			f := v.Facts(s.ProvenanceFor(fn, content, id), provenancetest.DistFor(fn, content))
			if f.Verdict != pypi.VerdictVerified || f.Identity == nil {
				t.Fatalf("minted facts for %+v: %+v; want verified with an identity", id, f)
			}
			return f
		}
		signers.good = mint(provenancetest.GitHub("good/proj", "release.yml"))
		signers.goodOther = mint(provenancetest.GitHub("good/proj", "publish.yml"))
		signers.evil = mint(provenancetest.GitHub("evil/proj", "release.yml"))
		signers.gcp = mint(provenancetest.Google("builder@proj.iam.gserviceaccount.com"))
	})
	if signers.good.Identity == nil {
		t.Fatal("minting facts failed in an earlier test")
	}
}

func ver(s string) *pypi.Version { v := pypi.MustParseVersion(s); return &v }

// rel is a release signed by the identities of facts (none: unattested).
func rel(version string, facts ...pypi.Facts) policy.Release {
	r := policy.Release{Version: pypi.MustParseVersion(version)}
	for _, f := range facts {
		r.Publishers = append(r.Publishers, *f.Identity)
	}
	return r
}

func yanked(r policy.Release) policy.Release     { r.Yanked = true; return r }
func unknownRel(r policy.Release) policy.Release { r.Unknown = true; return r }

func TestDecideFileContinuity(t *testing.T) {
	mintFacts(t)
	p, err := policy.Parse([]byte(continuityPolicy))
	if err != nil {
		t.Fatal(err)
	}
	good, goodOther, evil, gcp := signers.good, signers.goodOther, signers.evil, signers.gcp
	unattested := pypi.Facts{Verdict: pypi.VerdictUnattested}
	tests := []struct {
		name        string
		project     string
		facts       pypi.Facts
		version     string
		history     []policy.Release
		wantAction  policy.Action
		wantFinding policy.Finding
		wantReason  []string // substrings
	}{
		{"same publisher", "proj", good, "1.2", []policy.Release{rel("1.0", good), rel("1.1", good)}, "allow", "", nil},
		{"publisher changed", "proj", evil, "1.2", []policy.Release{rel("1.0", good), rel("1.1", good)}, "block", "publisher-changed",
			[]string{"pipgate: proj: publisher-changed: 1.2 is signed by github:evil/proj@release.yml", "previous attested release 1.1 was signed by github:good/proj@release.yml",
				`add {kind: github, repository: evil/proj} to the publishers of policy rule "proj"`}},
		{"order of the history does not matter", "proj", evil, "1.2", []policy.Release{rel("1.1", good), rel("1.0", good)}, "block", "publisher-changed", []string{"release 1.1 was"}},
		{"workflow-only change is not a change", "proj", goodOther, "1.2", []policy.Release{rel("1.1", good)}, "allow", "", nil},
		{"kind change", "proj", gcp, "1.2", []policy.Release{rel("1.1", good)}, "block", "publisher-changed", []string{"signed by google:builder@proj.iam.gserviceaccount.com", "{kind: google, email: builder@proj.iam.gserviceaccount.com}"}},
		{"first attested release", "proj", evil, "1.0", []policy.Release{rel("0.9"), rel("0.8")}, "allow", "", nil},
		{"no history at all", "proj", evil, "1.0", nil, "allow", "", nil},
		{"higher releases are not compared", "proj", evil, "1.0", []policy.Release{rel("1.1", good), rel("2.0", good)}, "allow", "", nil},
		{"backport compares with 1.2.4", "proj", good, "1.2.5", []policy.Release{rel("1.2.4", good), rel("2.0.0", evil)}, "allow", "", nil},
		{"backport changed against 1.2.4", "proj", evil, "1.2.5", []policy.Release{rel("1.2.4", good), rel("2.0.0", evil)}, "block", "publisher-changed", []string{"previous attested release 1.2.4 was"}},
		{"pre-release sorts below its final", "proj", good, "2.0.0", []policy.Release{rel("1.9", good), rel("2.0.0rc1", evil)}, "block", "publisher-changed", []string{"release 2.0.0rc1 was signed by github:evil/proj"}},
		{"pre-release compares with the lower final", "proj", good, "2.0.0rc1", []policy.Release{rel("1.9", good), rel("2.0.0", evil)}, "allow", "", nil},
		{"dev release", "proj", evil, "1.1.dev0", []policy.Release{rel("1.0", good), rel("1.1", evil)}, "block", "publisher-changed", []string{"release 1.0 was"}},
		{"same release spelled differently", "proj", evil, "1.0.0", []policy.Release{rel("1.0", good), rel("0.9", evil)}, "allow", "", nil},
		{"yanked release is skipped", "proj", good, "1.2", []policy.Release{rel("1.0", good), yanked(rel("1.1", evil))}, "allow", "", nil},
		{"yanked release is skipped (change)", "proj", evil, "1.2", []policy.Release{rel("1.0", good), yanked(rel("1.1", evil))}, "block", "publisher-changed", []string{"release 1.0 was"}},
		{"unattested releases between are skipped", "proj", evil, "1.3", []policy.Release{rel("1.1", good), rel("1.2")}, "block", "publisher-changed", []string{"release 1.1 was"}},
		{"any publisher of the previous release", "proj", evil, "1.3", []policy.Release{rel("1.2", good, evil)}, "allow", "", nil},
		{"both publishers named", "proj", gcp, "1.3", []policy.Release{rel("1.2", good, goodOther, evil)}, "block", "publisher-changed",
			[]string{"was signed by github:good/proj@release.yml (refs/tags/v1.0) and github:evil/proj@release.yml"}},
		{"listed publisher accepted", "accepted", evil, "1.2", []policy.Release{rel("1.1", good)}, "allow", "", nil},
		{"unlisted publisher under a listed rule", "accepted", gcp, "1.2", []policy.Release{rel("1.1", good)}, "block", "publisher-changed", []string{`policy rule "accepted"`}},
		{"trusted publisher listed", "tp", evil, "1.2", []policy.Release{rel("1.1", good)}, "allow", "", nil},
		{"trusted publisher, workflow not listed", "tp", signers.goodOther, "1.2", []policy.Release{rel("1.1", good)}, "allow", "", nil},
		{"attestation lost", "proj", unattested, "1.2", []policy.Release{rel("1.0", good), rel("1.1", good)}, "block", "attestation-lost",
			[]string{"pipgate: proj: attestation-lost: 1.2 has no provenance, but the previous release 1.1 was attested (signed by github:good/proj", `continuity: none in policy rule "proj"`}},
		{"attestation lost after a yanked release", "proj", unattested, "1.2", []policy.Release{rel("1.0", good), yanked(rel("1.1"))}, "block", "attestation-lost", []string{"previous release 1.0"}},
		{"older than the first attested release", "proj", unattested, "0.8", []policy.Release{rel("0.9"), rel("1.0", good)}, "allow", "", nil},
		{"nearest lower release unattested", "proj", unattested, "1.3", []policy.Release{rel("1.1", good), rel("1.2")}, "allow", "", nil},
		{"unattested backport after attested major", "proj", unattested, "1.2.5", []policy.Release{rel("1.2.4"), rel("2.0.0", good)}, "allow", "", nil},
		{"unknown previous release: on_error", "unchecked", evil, "1.2", []policy.Release{rel("1.0", good), unknownRel(rel("1.1"))}, "warn", "",
			[]string{"continuity could not be checked: the provenance of release 1.1 could not be verified"}},
		{"unknown release below the attested one", "unchecked", evil, "1.2", []policy.Release{unknownRel(rel("1.0")), rel("1.1", good)}, "yank", "publisher-changed", nil},
		{"continuity off", "other", evil, "1.2", []policy.Release{rel("1.1", good)}, "allow", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.DecideFile(tt.project, policy.File{Facts: tt.facts, Version: ver(tt.version), History: tt.history,
				UploadTime: time.Unix(0, 0), Now: time.Unix(0, 0)})
			if d.Action != tt.wantAction || d.Finding != tt.wantFinding {
				t.Errorf("DecideFile = action %q finding %q; want %q %q\nreason: %s", d.Action, d.Finding, tt.wantAction, tt.wantFinding, d.Reason)
			}
			for _, want := range tt.wantReason {
				if !strings.Contains(d.Reason, want) {
					t.Errorf("reason %q lacks %q", d.Reason, want)
				}
			}
			if tt.wantFinding == "" && tt.wantAction == policy.ActionAllow {
				if want := p.Decide(tt.project, tt.facts); d != want {
					t.Errorf("DecideFile = %+v; want the same as Decide: %+v", d, want)
				}
			}
		})
	}
}

func TestDecideFileCooldown(t *testing.T) {
	mintFacts(t)
	p, err := policy.Parse([]byte(continuityPolicy))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	invalid := pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: "signature", Detail: "bad"}
	tests := []struct {
		name        string
		project     string
		facts       pypi.Facts
		uploaded    time.Time
		history     []policy.Release
		wantAction  policy.Action
		wantFinding policy.Finding
		wantReason  []string
	}{
		{"two hours old", "cool", signers.good, now.Add(-2 * time.Hour), nil, "block", "cooldown",
			[]string{"pipgate: cool: cooldown: uploaded 2026-12-01T13:00:00Z, less than min_release_age 7d ago; available from 2026-12-08T13:00:00Z"}},
		{"just old enough", "cool", signers.good, now.Add(-7 * 24 * time.Hour), nil, "allow", "", nil},
		{"a second too new", "cool", signers.good, now.Add(-7*24*time.Hour + time.Second), nil, "block", "cooldown", []string{"available from 2026-12-01T15:00:01Z"}},
		{"unknown upload time", "cool", signers.good, time.Time{}, nil, "block", "cooldown", []string{"the upload time is unknown", `min_release_age in policy rule "cool"`}},
		{"uploaded in the future", "cool", signers.good, now.Add(time.Hour), nil, "block", "cooldown", nil},
		{"warn action", "cool-warn", signers.good, now.Add(-35 * time.Hour), nil, "warn", "cooldown", []string{"less than min_release_age 1d12h0m0s ago"}},
		{"warn action, old enough", "cool-warn", signers.good, now.Add(-37 * time.Hour), nil, "allow", "", nil},
		{"no cooldown configured", "proj", signers.good, now, nil, "allow", "", nil},
		{"cooldown block beats continuity warn", "both", signers.evil, now.Add(-time.Hour), []policy.Release{rel("1.1", signers.good)}, "block", "cooldown",
			[]string{"pipgate: both: cooldown: uploaded", "; publisher-changed: 1.2 is signed by github:evil/proj"}},
		{"continuity warn alone", "both", signers.evil, now.Add(-30 * 24 * time.Hour), []policy.Release{rel("1.1", signers.good)}, "warn", "publisher-changed", nil},
		{"verdict block leads", "cool", invalid, now.Add(-time.Hour), nil, "block", "cooldown",
			[]string{"pipgate: cool: attestation failed verification (signature: bad); cooldown: uploaded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.DecideFile(tt.project, policy.File{Facts: tt.facts, Version: ver("1.2"), UploadTime: tt.uploaded, Now: now, History: tt.history})
			if d.Action != tt.wantAction || d.Finding != tt.wantFinding {
				t.Errorf("DecideFile = action %q finding %q; want %q %q\nreason: %s", d.Action, d.Finding, tt.wantAction, tt.wantFinding, d.Reason)
			}
			for _, want := range tt.wantReason {
				if !strings.Contains(d.Reason, want) {
					t.Errorf("reason %q lacks %q", d.Reason, want)
				}
			}
			wantUntil := time.Time{}
			if d.Finding == policy.FindingCooldown && !tt.uploaded.IsZero() {
				wantUntil = tt.uploaded.Add(p.Lookup(tt.project).MinReleaseAge)
			}
			if !d.Until.Equal(wantUntil) {
				t.Errorf("Until = %v; want %v", d.Until, wantUntil)
			}
			// Without facts, only the cooldown applies.
			pd, ok := p.DecidePending(tt.project, policy.File{Version: ver("1.2"), UploadTime: tt.uploaded, Now: now})
			if inCooldown := d.Finding == policy.FindingCooldown; ok != inCooldown || ok && (pd.Finding != policy.FindingCooldown || pd.Action != p.Lookup(tt.project).CooldownAction || !pd.Until.Equal(wantUntil)) {
				t.Errorf("DecidePending = %+v, %v; want the cooldown alone (%v)", pd, ok, inCooldown)
			}
		})
	}
}

// TestDecideFileReload: a new policy changes the outcome for the same
// facts and history (decisions are live).
func TestDecideFileReload(t *testing.T) {
	mintFacts(t)
	f := policy.File{Facts: signers.evil, Version: ver("2.0"), History: []policy.Release{rel("1.0", signers.good)}}
	before, err := policy.Parse([]byte("version: 1\npackages:\n  - name: proj\n    continuity: block\n"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := policy.Parse([]byte("version: 1\npackages:\n  - name: proj\n    continuity: block\n    publishers:\n      - {kind: github, repository: evil/proj}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := before.DecideFile("proj", f); d.Action != policy.ActionBlock || d.Finding != policy.FindingPublisherChanged {
		t.Errorf("before: %+v; want block publisher-changed", d)
	}
	if d := after.DecideFile("proj", f); d.Action != policy.ActionAllow || d.Finding != "" {
		t.Errorf("after accepting the publisher: %+v; want allow", d)
	}
}

func TestParseAge(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"0s", 0, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"36h", 36 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"0d", 0, false},
		{"", 0, true},
		{"7", 0, true},
		{"d", 0, true},
		{"-1d", 0, true},
		{"-5h", 0, true},
		{"1d-5h", 0, true},
		{"7days", 0, true},
		{"1.5d", 0, true},
		{"99999999d", 0, true},
	}
	for _, tt := range tests {
		got, err := policy.ParseAge(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	for _, d := range []time.Duration{0, time.Hour, 7 * 24 * time.Hour, 36 * time.Hour} {
		if back, err := policy.ParseAge(policy.FormatAge(d)); err != nil || back != d {
			t.Errorf("ParseAge(FormatAge(%v) = %q) = %v, %v", d, policy.FormatAge(d), back, err)
		}
	}
}
