package policy

import (
	"slices"
	"strings"
	"time"

	"github.com/pipgate/pipgate/pypi"
)

// File is one distribution file to decide with [Policy.DecideFile]: its
// verification facts plus what the checks across releases need.
type File struct {
	// Facts are the file's verification facts.
	Facts pypi.Facts
	// Filename is the file's name (for its place in the project's history).
	Filename string
	// Version is the file's release. Nil: unknown (continuity is not
	// checked; the cooldown still is).
	Version *pypi.Version
	// UploadTime is the PEP 700 upload-time. Zero: unknown, which counts as
	// too new for a cooldown.
	UploadTime time.Time
	// Now is the time the cooldown is measured at.
	Now time.Time
	// Record is the project's continuity record ([FindRecord]). Nil: not
	// established, and continuity is not checked.
	Record *Record
}

// upload is f's place in the project's history.
func (f *File) upload() Upload {
	return Upload{Filename: f.Filename, Version: *f.Version, UploadTime: f.UploadTime, Provenance: f.Facts.Verdict != pypi.VerdictUnattested}
}

// Upload is one file of a project's history, as the continuity record sees
// it: every file the index lists counts, of every release (pre-, post-,
// dev and local versions included), yanked or not, since a yank does not
// change who published a file.
type Upload struct {
	// Filename is the file's name; it breaks ties in the order.
	Filename string
	// Version is the file's release.
	Version pypi.Version
	// UploadTime is the PEP 700 upload-time; zero when unknown.
	UploadTime time.Time
	// Provenance is whether the index lists provenance for the file: only
	// such a file can be attested, so only such a file is checked.
	Provenance bool
}

// Attestation is what verification established about one [Upload] with
// provenance, for [FindRecord].
type Attestation struct {
	// Publisher is the verified signer; nil when the file did not verify
	// (no provenance after all, invalid, unsupported).
	Publisher *pypi.Identity
	// Unknown: whether the file verifies could not be established (an
	// upstream or verification error, or, from a cache, not known yet).
	Unknown bool
}

// MaxRecordChecks bounds the work of [FindRecord]: at most this many files
// with provenance are checked (verified) to find a project's first
// attested file, however long its history. Past it the record is
// [Record.Limited] and every decision that needs it fails closed.
const MaxRecordChecks = 32

// Record is a project's continuity record: its first attested file, whose
// signer is the publisher of record. A file is judged against it, never
// against another later release, so a flagged release never becomes what
// the next one is compared with.
type Record struct {
	// Timed is whether the history is ordered by upload time (every file
	// has one; ties by version); otherwise it is ordered by version alone.
	Timed bool
	// First is the project's first attested file in that order; nil when
	// no file is attested (as far as the walk got).
	First *Upload
	// Publisher is First's verified signer: the publisher of record.
	Publisher pypi.Identity
	// Stop is the file the walk stopped at without knowing whether it is
	// attested (Unknown) or without checking it (Limited); nil when the
	// walk finished. Every file before it is known not to be attested.
	Stop *Upload
	// Unknown: Stop could not be checked.
	Unknown bool
	// Limited: the walk checked [MaxRecordChecks] files before Stop.
	Limited bool
}

// SortUploads sorts a project's files in history order, in place: by
// upload time when every file has one (ties by version), else by version;
// then by filename. It reports whether the order is by upload time. Upload
// times are the index's (PyPI sets them; an uploader cannot backdate a
// file), so a file added to an old release later is late in history; by
// version alone it is not, so an index without upload times leaves an
// uploader that room (list the publishers in the rule to take it away).
func SortUploads(us []Upload) (timed bool) {
	timed = len(us) > 0
	for i := range us {
		if us[i].UploadTime.IsZero() {
			timed = false
			break
		}
	}
	slices.SortStableFunc(us, func(a, b Upload) int {
		if c := comparePlace(a, b, timed); c != 0 {
			return c
		}
		return strings.Compare(a.Filename, b.Filename)
	})
	return timed
}

// comparePlace orders two files by their place in history, ignoring the
// filename: upload time (when timed), then version.
func comparePlace(a, b Upload, timed bool) int {
	if timed && !a.UploadTime.IsZero() && !b.UploadTime.IsZero() {
		if c := a.UploadTime.Compare(b.UploadTime); c != 0 {
			return c
		}
	}
	return a.Version.Compare(b.Version)
}

// FindRecord walks a project's files, sorted by [SortUploads] (timed is
// its result), to the first attested one. check establishes whether the
// file at index i (one with provenance) is attested; it is called in
// order, at most [MaxRecordChecks] times, and the walk stops at the first
// attested file or at the first whose attestation is unknown.
func FindRecord(sorted []Upload, timed bool, check func(i int) Attestation) Record {
	rec := Record{Timed: timed}
	checks := 0
	for i := range sorted {
		u := &sorted[i]
		if !u.Provenance {
			continue
		}
		if checks == MaxRecordChecks {
			rec.Stop, rec.Limited = u, true
			return rec
		}
		checks++
		a := check(i)
		switch {
		case a.Unknown:
			rec.Stop, rec.Unknown = u, true
			return rec
		case a.Publisher != nil:
			rec.First, rec.Publisher = u, *a.Publisher
			return rec
		}
	}
	return rec
}

// attestedBy returns the project's first attested file when it comes no
// later than u (before it, or at the same place: same release, same upload
// time), nil when none does, and ok false when that is not known: the walk
// stopped (unknown or limited) at or before u's place.
func (r *Record) attestedBy(u Upload) (first *Upload, ok bool) {
	if r.First != nil && comparePlace(*r.First, u, r.Timed) <= 0 {
		return r.First, true
	}
	if r.Stop != nil && comparePlace(*r.Stop, u, r.Timed) <= 0 {
		return nil, false
	}
	return nil, true
}

// SamePublisher reports whether a and b are the same publisher at the level
// of trust: kind and repository for GitHub and GitLab (a workflow,
// environment or ref change alone is not a change), the e-mail for Google,
// issuer and subject for any other identity.
func SamePublisher(a, b pypi.Identity) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case pypi.KindGitHub, pypi.KindGitLab:
		return a.Repository != "" && a.Repository == b.Repository
	case pypi.KindGoogle:
		return a.Email != "" && a.Email == b.Email
	}
	return a.Issuer == b.Issuer && a.Subject == b.Subject
}

// trustPublisher is the policy entry that accepts id at the level of trust
// (no workflow): what an operator adds to a rule to accept a change.
func trustPublisher(id pypi.Identity) pypi.Publisher {
	switch id.Kind {
	case pypi.KindGitHub, pypi.KindGitLab:
		return pypi.Publisher{Kind: id.Kind, Repository: id.Repository}
	case pypi.KindGoogle:
		return pypi.Publisher{Kind: id.Kind, Email: id.Email}
	}
	return pypi.Publisher{Kind: pypi.KindIdentity, Issuer: id.Issuer, Subject: id.Subject}
}

// acceptsPublisher reports whether one of r's publishers accepts id for
// continuity: at the level of trust, so a listed workflow does not matter
// here (require: trusted-publisher checks it).
func (r *rule) acceptsPublisher(id pypi.Identity) bool {
	for _, pub := range r.Publishers {
		pub.Workflow = ""
		if pub.Matches(id) {
			return true
		}
	}
	return false
}

// acceptsVersion reports whether v is one of r's accepted_versions.
func (r *rule) acceptsVersion(v pypi.Version) bool {
	for _, a := range r.accepted {
		if a.Equal(v) {
			return true
		}
	}
	return false
}

// DecideFile is [Policy.Decide] plus the checks across releases of the
// product contract ("Trust over time"), each applied when its rule turns it
// on. Continuity judges a file against the project's record ([Record]):
//   - publisher-changed (continuity): the file verifies, and its signer is
//     neither the publisher of record (the signer of the project's first
//     attested file: [SamePublisher]) nor accepted by one of the rule's
//     publishers (at the level of trust; the workflow is not compared).
//     The original publisher signing again is never a change, whatever
//     was published in between;
//   - attestation-lost (continuity): the file has no verified attestation
//     (no provenance, invalid, unsupported), and the project's first
//     attested file came no later (files before it are never affected);
//   - cooldown (min_release_age): the file was uploaded less than
//     min_release_age before Now, or its upload time is unknown.
//
// A file whose version is in the rule's accepted_versions has no
// continuity finding. When continuity needs a file that could not be
// checked ([Record.Unknown]), or the file's own provenance could not be
// (verdict error), the rule's on_error applies; past the walk's bound
// ([Record.Limited]) the continuity action does (fail closed).
//
// The action is the strongest of the verdict's and the findings' (block,
// yank, warn, allow). [Decision.Finding] names the strongest finding (the
// first when they tie), and the reason leads with it and says what to do.
func (p *Policy) DecideFile(project string, f File) Decision {
	return p.decideFile(project, f, true)
}

// decideFile is DecideFile; without withCooldown the cooldown is not
// checked (a replay of a file whose upload time was not recorded).
func (p *Policy) decideFile(project string, f File, withCooldown bool) Decision {
	r := p.lookup(pypi.NormalizeName(project))
	d := p.decide(r, project, f.Facts)
	var found []finding
	if r.Continuity != ActionNone && f.Version != nil && f.Record != nil && !r.acceptsVersion(*f.Version) {
		if x, ok := continuity(r, &f); ok {
			found = append(found, x)
		}
	}
	if r.MinReleaseAge > 0 && withCooldown {
		if x, ok := cooldown(r, f); ok {
			found = append(found, x)
		}
	}
	if len(found) == 0 {
		return d
	}
	best := 0
	for i, x := range found {
		if stronger(x.action, found[best].action) {
			best = i
		}
	}
	found[0], found[best] = found[best], found[0]
	d.Finding = found[0].finding
	for _, x := range found {
		if x.finding == FindingCooldown {
			d.Until = x.until
		}
	}
	var b reasonBuilder
	b.start(project)
	for i, x := range found {
		if i > 0 {
			b.add("; ")
		}
		b.add(x.text)
	}
	was := d.Reason[min(len(d.Reason), len(b.prefix())):]
	if stronger(found[0].action, d.Action) {
		if d.Action != ActionAllow {
			// The verdict asked for something too: say what.
			b.add("; verdict: ", was)
		}
		d.Action = found[0].action
		d.Reason = b.String()
		return d
	}
	// The verdict already asks for as much; it leads, the findings follow.
	d.Reason += "; " + b.String()[len(b.prefix()):]
	return d
}

// finding is one trust-over-time finding: its action and its reason text.
type finding struct {
	finding Finding // "" for a check that could not be made
	action  Action
	text    string
	until   time.Time // a cooldown's end
}

// stronger reports whether action a does more than b (block > yank > warn > allow).
func stronger(a, b Action) bool { return rank(a) > rank(b) }

func rank(a Action) int {
	switch a {
	case ActionBlock:
		return 3
	case ActionYank:
		return 2
	case ActionWarn:
		return 1
	}
	return 0
}

// continuity makes the continuity checks for f against f.Record.
func continuity(r *rule, f *File) (finding, bool) {
	v := *f.Version
	rec := f.Record
	var b reasonBuilder
	switch f.Facts.Verdict {
	case pypi.VerdictVerified:
		id := f.Facts.Identity
		if id == nil || r.acceptsPublisher(*id) {
			return finding{}, false
		}
		first := rec.First
		if first == nil {
			if _, ok := rec.attestedBy(f.upload()); !ok {
				return unchecked(r, rec)
			}
			return finding{}, false // the first attested file
		}
		if SamePublisher(rec.Publisher, *id) {
			return finding{}, false // the publisher of record again
		}
		// Anyone else, wherever the file sits in the history: one placed
		// before the first attested file was added later (a record kept
		// from before, or an index without upload times).
		b.add(string(FindingPublisherChanged), ": ", oneLine(v.String(), 64), " is signed by ")
		b.identity(id)
		b.add(", but the publisher of record of this project is ")
		b.publisher(trustPublisher(rec.Publisher))
		b.add(" (the signer of its first attested file, ", oneLine(first.Filename, 200), ")")
		if len(r.Publishers) > 0 {
			b.add(", and ")
			b.rule(r)
			b.add(" accepts ")
			for i, pub := range r.Publishers {
				if i > 0 {
					b.add(", ")
				}
				pub.Workflow = ""
				b.publisher(pub)
			}
		}
		b.add("; if the new publisher is expected, add ")
		b.yamlPublisher(trustPublisher(*id))
		b.add(" to the publishers of ")
		b.acceptIn(r)
		b.add(" and reload the policy")
		return finding{finding: FindingPublisherChanged, action: r.Continuity, text: b.String()}, true
	case pypi.VerdictError:
		// Whether the file itself is attested is not known.
		return finding{action: r.OnError, text: "continuity could not be checked: the provenance of this file could not be verified (on_error)"}, true
	}
	// No verified attestation: unattested, invalid, unsupported.
	first, ok := rec.attestedBy(f.upload())
	if !ok {
		return unchecked(r, rec)
	}
	if first == nil {
		return finding{}, false // before the project's first attested file
	}
	b.add(string(FindingAttestationLost), ": ", oneLine(v.String(), 64))
	switch f.Facts.Verdict {
	case pypi.VerdictUnattested:
		b.add(" has no provenance")
	default:
		b.add(" has no verified attestation (", oneLine(string(f.Facts.Verdict), 40), ")")
	}
	b.add(", but this project has published attested files since ", oneLine(first.Filename, 200), " (signed by ")
	b.publisher(trustPublisher(rec.Publisher))
	b.add("); check with the maintainers that it was published as usual; to accept it, add ")
	b.add(quote(oneLine(v.String(), 64)), " to the accepted_versions of ")
	b.acceptIn(r)
	b.add(" and reload the policy (continuity: none stops these checks)")
	return finding{finding: FindingAttestationLost, action: r.Continuity, text: b.String()}, true
}

// unchecked is a continuity check that needs a file the walk did not
// establish: on_error decides when its attestation could not be checked,
// the continuity action when the walk reached its bound (fail closed);
// neither is a finding.
func unchecked(r *rule, rec *Record) (finding, bool) {
	name := oneLine(rec.Stop.Filename, 200)
	if rec.Limited {
		return finding{action: r.Continuity, text: "continuity could not be checked: " + itoa(MaxRecordChecks) +
			" files with provenance before " + name + " did not verify, and pipgate checks at most " + itoa(MaxRecordChecks) +
			" to find a project's first attested file (MaxRecordChecks); list its publishers in the policy rule or set continuity: none"}, true
	}
	return finding{action: r.OnError, text: "continuity could not be checked: the provenance of " + name + " could not be verified (on_error)"}, true
}

// cooldown makes the cooldown check for f.
func cooldown(r *rule, f File) (finding, bool) {
	var b reasonBuilder
	age := FormatAge(r.MinReleaseAge)
	if f.UploadTime.IsZero() {
		b.add(string(FindingCooldown), ": the upload time is unknown (the index gives none), so it counts as newer than min_release_age ", age,
			"; install an older version, or lower min_release_age in ")
		b.acceptIn(r)
		return finding{finding: FindingCooldown, action: r.CooldownAction, text: b.String()}, true
	}
	ends := f.UploadTime.Add(r.MinReleaseAge)
	if !f.Now.Before(ends) {
		return finding{}, false
	}
	b.add(string(FindingCooldown), ": uploaded ", f.UploadTime.UTC().Format(time.RFC3339), ", less than min_release_age ", age,
		" ago; available from ", ends.UTC().Format(time.RFC3339), " (install an older version until then)")
	return finding{finding: FindingCooldown, action: r.CooldownAction, text: b.String(), until: ends}, true
}

// DecidePending is the decision for a file whose verification facts are
// not known yet (an index page listing files nobody fetched): only the
// check that needs no facts, the cooldown, applies. ok is false when the
// file is not in a cooldown; the Decision's Verdict is then empty.
func (p *Policy) DecidePending(project string, f File) (d Decision, ok bool) {
	r := p.lookup(pypi.NormalizeName(project))
	if r.MinReleaseAge <= 0 {
		return Decision{}, false
	}
	x, in := cooldown(r, f)
	if !in {
		return Decision{}, false
	}
	var b reasonBuilder
	b.start(project)
	b.add(x.text)
	return Decision{Action: x.action, Rule: r.Name, Require: r.Require, Reason: b.String(), Finding: FindingCooldown, Until: x.until}, true
}

// FormatAge renders a min_release_age as the policy file would: "7d",
// "1d12h0m0s", "36h0m0s".
func FormatAge(d time.Duration) string {
	days := d / (24 * time.Hour)
	rest := d - days*24*time.Hour
	switch {
	case days == 0:
		return rest.String()
	case rest == 0:
		return itoa(int64(days)) + "d"
	}
	return itoa(int64(days)) + "d" + rest.String()
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return string(buf[i:])
}

// acceptIn names where an operator changes the policy for this project.
func (b *reasonBuilder) acceptIn(r *rule) {
	if r.Line == 0 {
		b.add("a policy rule for this project")
		return
	}
	b.add("policy rule ", quote(r.Name))
}

// yamlPublisher writes p as a policy publishers entry: {kind: github, repository: o/r}.
func (b *reasonBuilder) yamlPublisher(p pypi.Publisher) {
	b.add("{kind: ", string(p.Kind))
	switch p.Kind {
	case pypi.KindGitHub, pypi.KindGitLab:
		b.add(", repository: ", p.Repository)
	case pypi.KindGoogle:
		b.add(", email: ", p.Email)
	default:
		b.add(", issuer: ", p.Issuer, ", subject: ", p.Subject)
	}
	b.add("}")
}
