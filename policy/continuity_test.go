package policy_test

import (
	"slices"
	"strconv"
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
  - name: lenient
    continuity: block
    accepted_versions: ["1.2"]
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

// hf is one file of a project's history: its release, its facts (no
// Identity and verdict unattested: no provenance), an upload time in
// minutes after t0 (0: unknown), and an optional filename.
type hf struct {
	version string
	facts   pypi.Facts
	minute  int
	name    string
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (h hf) filename() string {
	if h.name != "" {
		return h.name
	}
	return "proj-" + h.version + "-py3-none-any.whl"
}

func (h hf) upload() policy.Upload {
	u := policy.Upload{Filename: h.filename(), Version: pypi.MustParseVersion(h.version), Provenance: h.facts.Verdict != pypi.VerdictUnattested}
	if h.minute != 0 {
		u.UploadTime = t0.Add(time.Duration(h.minute) * time.Minute)
	}
	return u
}

func attestation(f pypi.Facts) policy.Attestation {
	switch {
	case f.Verdict == pypi.VerdictError:
		return policy.Attestation{Unknown: true}
	case f.Verdict == pypi.VerdictVerified && f.Identity != nil:
		return policy.Attestation{Publisher: f.Identity}
	}
	return policy.Attestation{}
}

// record builds the continuity record of a history (which includes the
// file being decided) and counts the checks it took.
func record(t *testing.T, files []hf) (policy.Record, int) {
	t.Helper()
	us := make([]policy.Upload, len(files))
	facts := map[string]pypi.Facts{}
	for i, h := range files {
		us[i] = h.upload()
		facts[us[i].Filename] = h.facts
	}
	timed := policy.SortUploads(us)
	checks := 0
	rec := policy.FindRecord(us, timed, func(i int) policy.Attestation {
		checks++
		if !us[i].Provenance {
			t.Errorf("check(%s): a file without provenance is never checked", us[i].Filename)
		}
		return attestation(facts[us[i].Filename])
	})
	return rec, checks
}

// decideIn decides file f of project, whose history (f included) is files.
func decideIn(t *testing.T, p *policy.Policy, project string, f hf, history []hf) (policy.Decision, int) {
	t.Helper()
	rec, checks := record(t, append(slices.Clone(history), f))
	u := f.upload()
	return p.DecideFile(project, policy.File{Facts: f.facts, Filename: u.Filename, Version: &u.Version, UploadTime: u.UploadTime,
		Now: t0.Add(1000 * 24 * time.Hour), Record: &rec}), checks
}

func TestDecideFileContinuity(t *testing.T) {
	mintFacts(t)
	p, err := policy.Parse([]byte(continuityPolicy))
	if err != nil {
		t.Fatal(err)
	}
	good, goodOther, evil, gcp := signers.good, signers.goodOther, signers.evil, signers.gcp
	none := pypi.Facts{Verdict: pypi.VerdictUnattested}
	invalid := pypi.Facts{Verdict: pypi.VerdictInvalid, Reason: "signature", Detail: "bad"}
	failed := pypi.Facts{Verdict: pypi.VerdictError, Reason: pypi.ReasonFetch, Detail: "upstream down"}
	h := func(version string, f pypi.Facts) hf { return hf{version: version, facts: f} }
	at := func(version string, f pypi.Facts, minute int) hf {
		return hf{version: version, facts: f, minute: minute}
	}
	sdist := func(version string, f pypi.Facts) hf {
		return hf{version: version, facts: f, name: "proj-" + version + ".tar.gz"}
	}
	var manyBroken []hf
	for i := 1; i <= policy.MaxRecordChecks+8; i++ {
		manyBroken = append(manyBroken, h("0."+strconv.Itoa(i), invalid))
	}
	manyBroken = append(manyBroken, h("1.0", good))
	tests := []struct {
		name        string
		project     string
		file        hf
		history     []hf
		wantAction  policy.Action
		wantFinding policy.Finding
		wantReason  []string // substrings
	}{
		{"same publisher", "proj", h("1.2", good), []hf{h("1.0", good), h("1.1", good)}, "allow", "", nil},
		{"publisher changed", "proj", h("1.2", evil), []hf{h("1.0", good), h("1.1", good)}, "block", "publisher-changed",
			[]string{"pipgate: proj: publisher-changed: 1.2 is signed by github:evil/proj@release.yml (refs/tags/v1.0), but the publisher of record of this project is github:good/proj (the signer",
				"the signer of its first attested file, proj-1.0-py3-none-any.whl",
				`add {kind: github, repository: evil/proj} to the publishers of policy rule "proj" and reload the policy`}},
		{"second release by the new publisher", "proj", h("1.3", evil), []hf{h("1.0", good), h("1.1", good), h("1.2", evil)}, "block", "publisher-changed",
			[]string{"publisher of record of this project is github:good/proj"}},
		{"pre-release decoy, then the final", "proj", h("2.0", evil), []hf{h("1.0", good), h("2.0rc1", evil)}, "block", "publisher-changed", nil},
		{"the pre-release decoy itself", "proj", h("2.0rc1", evil), []hf{h("1.0", good), h("2.0", evil)}, "block", "publisher-changed", nil},
		{"returning original publisher", "proj", h("1.3", good), []hf{h("1.0", good), h("1.1", evil), h("1.2", evil)}, "allow", "", nil},
		{"returning original publisher, other workflow", "proj", h("2.0", goodOther), []hf{h("1.0", good), h("1.5", evil)}, "allow", "", nil},
		{"third publisher", "proj", h("1.3", gcp), []hf{h("1.0", good), h("1.1", evil)}, "block", "publisher-changed",
			[]string{"signed by google:builder@proj.iam.gserviceaccount.com", "publisher of record of this project is github:good/proj", "{kind: google, email: builder@proj.iam.gserviceaccount.com}"}},
		{"workflow-only change is not a change", "proj", h("1.2", goodOther), []hf{h("1.1", good)}, "allow", "", nil},
		{"first attested release", "proj", h("1.0", evil), []hf{h("0.9", none), h("0.8", none)}, "allow", "", nil},
		{"no history at all", "proj", h("1.0", evil), nil, "allow", "", nil},
		{"without upload times, the lowest version is first", "proj", h("1.0", evil), []hf{h("1.1", good), h("2.0", good)}, "allow", "", nil},
		{"with upload times, the first upload is first", "proj", at("0.0.1", evil, 30), []hf{at("1.0", good, 10), at("1.1", good, 20)}, "block", "publisher-changed",
			[]string{"0.0.1 is signed by github:evil/proj", "first attested file, proj-1.0-py3-none-any.whl"}},
		{"a file added to the first release later", "proj", at("2.0", evil, 40),
			[]hf{at("1.0", good, 10), {version: "1.0", facts: evil, minute: 30, name: "proj-1.0-cp27-none-any.whl"}}, "block", "publisher-changed", nil},
		{"backport by the original publisher", "proj", at("1.2.5", good, 30), []hf{at("1.2.4", good, 10), at("2.0.0", evil, 20)}, "allow", "", nil},
		{"backport by another publisher", "proj", at("1.2.5", evil, 30), []hf{at("1.2.4", good, 10), at("2.0.0", good, 20)}, "block", "publisher-changed", nil},
		{"post-release", "proj", h("1.0.post1", evil), []hf{h("1.0", good)}, "block", "publisher-changed", nil},
		{"local version", "proj", h("1.0+evil", evil), []hf{h("1.0", good)}, "block", "publisher-changed", nil},
		{"epoch version", "proj", h("1!0.1", evil), []hf{h("2.0", good)}, "block", "publisher-changed", nil},
		{"dev release", "proj", h("1.1.dev0", evil), []hf{h("1.0", good), h("1.1", evil)}, "block", "publisher-changed", nil},
		{"same release spelled differently", "proj", h("1.0.0", evil), []hf{h("1.0", good), h("0.9", evil)}, "allow", "", nil},
		{"any attested file counts, however many follow", "proj", h("9.0", evil), []hf{h("1.0", good), h("2.0", none), h("3.0", none), h("4.0", evil)}, "block", "publisher-changed", nil},
		{"listed publisher accepted", "accepted", h("1.2", evil), []hf{h("1.1", good)}, "allow", "", nil},
		{"original publisher under a rule listing another", "accepted", h("1.3", good), []hf{h("1.1", good), h("1.2", evil)}, "allow", "", nil},
		{"unlisted publisher under a listed rule", "accepted", h("1.2", gcp), []hf{h("1.1", good)}, "block", "publisher-changed",
			[]string{`policy rule "accepted" accepts github:evil/proj`, `to the publishers of policy rule "accepted"`}},
		{"trusted publisher listed", "tp", h("1.2", evil), []hf{h("1.1", good)}, "allow", "", nil},
		{"trusted publisher, workflow not listed", "tp", h("1.2", goodOther), []hf{h("1.1", good)}, "allow", "", nil},
		{"attestation lost", "proj", h("1.2", none), []hf{h("1.0", good), h("1.1", good)}, "block", "attestation-lost",
			[]string{"pipgate: proj: attestation-lost: 1.2 has no provenance, but this project has published attested files since proj-1.0-py3-none-any.whl (signed by github:good/proj",
				`add "1.2" to the accepted_versions of policy rule "proj" and reload the policy`}},
		{"two unattested releases", "proj", h("1.3", none), []hf{h("1.0", good), h("1.2", none)}, "block", "attestation-lost", nil},
		{"unattested pre-release decoy, then the final", "proj", h("2.0", none), []hf{h("1.0", good), h("2.0rc1", none)}, "block", "attestation-lost", nil},
		{"the unattested pre-release decoy itself", "proj", h("2.0rc1", none), []hf{h("1.0", good), h("2.0", none)}, "block", "attestation-lost", nil},
		{"unattested post-release", "proj", h("1.0.post1", none), []hf{h("1.0", good)}, "block", "attestation-lost", nil},
		{"invalid after attested", "proj", h("1.2", invalid), []hf{h("1.0", good)}, "block", "attestation-lost",
			[]string{"attestation failed verification", "1.2 has no verified attestation (invalid)"}},
		{"unattested file of an attested release", "proj", sdist("2.0", none), []hf{h("1.0", good), h("2.0", good)}, "block", "attestation-lost", nil},
		{"unattested file of the first attested release", "proj", sdist("1.0", none), []hf{h("1.0", good)}, "block", "attestation-lost", nil},
		{"attested file beside an unattested one", "proj", h("2.0", good), []hf{h("1.0", good), sdist("2.0", none)}, "allow", "", nil},
		{"older than the first attested release", "proj", h("0.8", none), []hf{h("0.9", none), h("1.0", good)}, "allow", "", nil},
		{"unattested backport, by version", "proj", h("1.2.5", none), []hf{h("1.2.4", none), h("2.0.0", good)}, "allow", "", nil},
		{"unattested backport uploaded after an attested release", "proj", at("1.2.5", none, 30), []hf{at("1.2.4", none, 10), at("2.0.0", good, 20)}, "block", "attestation-lost", nil},
		{"accepted version, unattested", "lenient", h("1.2", none), []hf{h("1.0", good)}, "allow", "", nil},
		{"accepted version spelled otherwise", "lenient", h("1.2.0", none), []hf{h("1.0", good)}, "allow", "", nil},
		{"accepted version, other publisher", "lenient", h("1.2", evil), []hf{h("1.0", good)}, "allow", "", nil},
		{"not an accepted version", "lenient", h("1.3", none), []hf{h("1.0", good), h("1.2", none)}, "block", "attestation-lost", nil},
		{"unknown first file: on_error", "unchecked", h("1.2", evil), []hf{h("1.0", failed), h("1.1", good)}, "warn", "",
			[]string{"continuity could not be checked: the provenance of proj-1.0-py3-none-any.whl could not be verified (on_error)"}},
		{"unattested before the unknown file", "unchecked", h("0.5", none), []hf{h("1.0", failed), h("1.1", good)}, "allow", "", nil},
		{"unknown file after the first attested one", "unchecked", h("1.2", evil), []hf{h("1.0", good), h("1.1", failed)}, "yank", "publisher-changed", nil},
		{"the file's own provenance unknown", "unchecked", h("1.2", failed), []hf{h("1.0", good)}, "warn", "", []string{"the provenance of this file could not be verified"}},
		{"past the bound: fail closed", "proj", h("2.0", evil), manyBroken, "block", "",
			[]string{"continuity could not be checked: 32 files with provenance before proj-0.33-py3-none-any.whl did not verify", "MaxRecordChecks"}},
		{"past the bound, unattested", "proj", h("2.0", none), manyBroken, "block", "", []string{"MaxRecordChecks"}},
		{"before the bound", "proj", h("0.0.1", none), manyBroken, "allow", "", nil},
		{"continuity off", "other", h("1.2", evil), []hf{h("1.1", good)}, "allow", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, checks := decideIn(t, p, tt.project, tt.file, tt.history)
			if d.Action != tt.wantAction || d.Finding != tt.wantFinding {
				t.Errorf("DecideFile = action %q finding %q; want %q %q\nreason: %s", d.Action, d.Finding, tt.wantAction, tt.wantFinding, d.Reason)
			}
			for _, want := range tt.wantReason {
				if !strings.Contains(d.Reason, want) {
					t.Errorf("reason %q lacks %q", d.Reason, want)
				}
			}
			if checks > policy.MaxRecordChecks {
				t.Errorf("%d checks; want at most MaxRecordChecks (%d)", checks, policy.MaxRecordChecks)
			}
			if tt.wantFinding == "" && tt.wantAction == policy.ActionAllow {
				if want := p.Decide(tt.project, tt.file.facts); d != want {
					t.Errorf("DecideFile = %+v; want the same as Decide: %+v", d, want)
				}
			}
			// Any order of the history gives the same decision.
			rev := slices.Clone(tt.history)
			slices.Reverse(rev)
			if d2, _ := decideIn(t, p, tt.project, tt.file, rev); d2 != d {
				t.Errorf("history reversed: %+v; want %+v", d2, d)
			}
		})
	}
}

// TestRecordBound: a long history costs one check when its first file with
// provenance verifies, and never more than MaxRecordChecks.
func TestRecordBound(t *testing.T) {
	mintFacts(t)
	var files []hf
	for i := range 5000 {
		files = append(files, hf{version: "1." + strconv.Itoa(i), facts: signers.good})
	}
	rec, checks := record(t, files)
	if checks != 1 || rec.First == nil || rec.First.Version.String() != "1.0" {
		t.Errorf("5000 attested releases: %d checks, first %+v; want 1 check, 1.0", checks, rec.First)
	}
	for i := range files {
		files[i].facts = pypi.Facts{Verdict: pypi.VerdictInvalid}
	}
	rec, checks = record(t, files)
	if checks != policy.MaxRecordChecks || !rec.Limited || rec.Stop == nil || rec.First != nil {
		t.Errorf("5000 invalid releases: %d checks, %+v; want MaxRecordChecks and Limited", checks, rec)
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
		history     []hf
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
		{"cooldown block beats continuity warn", "both", signers.evil, now.Add(-time.Hour), []hf{{version: "1.1", facts: signers.good}}, "block", "cooldown",
			[]string{"pipgate: both: cooldown: uploaded", "; publisher-changed: 1.2 is signed by github:evil/proj"}},
		{"continuity warn alone", "both", signers.evil, now.Add(-30 * 24 * time.Hour), []hf{{version: "1.1", facts: signers.good}}, "warn", "publisher-changed", nil},
		{"verdict block leads", "cool", invalid, now.Add(-time.Hour), nil, "block", "cooldown",
			[]string{"pipgate: cool: attestation failed verification (signature: bad); cooldown: uploaded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _ := record(t, append(slices.Clone(tt.history), hf{version: "1.2", facts: tt.facts}))
			d := p.DecideFile(tt.project, policy.File{Facts: tt.facts, Filename: "proj-1.2-py3-none-any.whl", Version: ver("1.2"), UploadTime: tt.uploaded, Now: now, Record: &rec})
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
	rec, _ := record(t, []hf{{version: "1.0", facts: signers.good}, {version: "2.0", facts: signers.evil}})
	f := policy.File{Facts: signers.evil, Filename: "proj-2.0-py3-none-any.whl", Version: ver("2.0"), Record: &rec}
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

// TestDecideFileKeptRecord: a record kept from before (its first file may
// be gone from the index) judges a file of another publisher placed
// before it as a change: that file was added later.
func TestDecideFileKeptRecord(t *testing.T) {
	mintFacts(t)
	p, err := policy.Parse([]byte(continuityPolicy))
	if err != nil {
		t.Fatal(err)
	}
	rec := policy.Record{First: &policy.Upload{Filename: "proj-1.0.tar.gz", Version: pypi.MustParseVersion("1.0"), Provenance: true},
		Publisher: *signers.good.Identity}
	for _, tt := range []struct {
		version string
		facts   pypi.Facts
		want    policy.Finding
	}{
		{"0.1", signers.evil, policy.FindingPublisherChanged},
		{"0.1", signers.goodOther, ""},
		{"0.1", pypi.Facts{Verdict: pypi.VerdictUnattested}, ""},
		{"2.0", pypi.Facts{Verdict: pypi.VerdictUnattested}, policy.FindingAttestationLost},
	} {
		d := p.DecideFile("proj", policy.File{Facts: tt.facts, Filename: "proj-" + tt.version + ".tar.gz", Version: ver(tt.version), Record: &rec})
		if d.Finding != tt.want {
			t.Errorf("%s %s: finding %q (%s); want %q", tt.version, tt.facts.Verdict, d.Finding, d.Reason, tt.want)
		}
	}
}
