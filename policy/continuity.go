package policy

import (
	"slices"
	"time"

	"github.com/pipgate/pipgate/pypi"
)

// File is one distribution file to decide with [Policy.DecideFile]: its
// verification facts plus what the checks across releases need.
type File struct {
	// Facts are the file's verification facts.
	Facts pypi.Facts
	// Version is the file's release. Nil: unknown (continuity is not
	// checked; the cooldown still is).
	Version *pypi.Version
	// UploadTime is the PEP 700 upload-time. Zero: unknown, which counts as
	// too new for a cooldown.
	UploadTime time.Time
	// Now is the time the cooldown is measured at.
	Now time.Time
	// History is the project's releases, in any order. The file's own
	// release may be present; only releases below it are looked at.
	// Continuity needs the releases below Version down to (and including)
	// the previous attested one; a caller may omit the rest.
	History []Release
}

// Release is what is known about one release of a project, for continuity.
type Release struct {
	// Version is the release's PEP 440 version.
	Version pypi.Version
	// Publishers are the verified signers of its files (duplicates allowed).
	// Empty: no file of the release verified.
	Publishers []pypi.Identity
	// Yanked marks a release whose every file the upstream yanked: the
	// maintainers withdrew it, so it is never the release a later one is
	// compared with.
	Yanked bool
	// Unknown marks a release whose files with provenance could not all be
	// checked (an upstream or verification error) and none of which
	// verified: whether it is attested is not known.
	Unknown bool
}

// Attested reports whether a file of the release verified.
func (r Release) Attested() bool { return len(r.Publishers) > 0 }

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

// DecideFile is [Policy.Decide] plus the checks across releases of the
// product contract ("Trust over time"), each applied when its rule turns it
// on:
//   - publisher-changed (continuity): the file verifies, its signer is not
//     in the rule's publishers, and it is not the same publisher
//     ([SamePublisher]) as any signer of the previous attested release: the
//     highest version below the file's with a verified file (upstream-yanked
//     releases skipped), so a backport 1.2.5 published after 2.0.0 is
//     compared with 1.2.4;
//   - attestation-lost (continuity): the file has no provenance and the
//     nearest lower release has a verified file (releases older than the
//     first attested one are therefore never affected);
//   - cooldown (min_release_age): the file was uploaded less than
//     min_release_age before Now, or its upload time is unknown.
//
// The action is the strongest of the verdict's and the findings' (block,
// yank, warn, allow). [Decision.Finding] names the strongest finding (the
// first when they tie), and the reason leads with it and says what to do.
// When a check needs a release that could not be checked ([Release.Unknown])
// the rule's on_error applies, as for the file's own provenance.
func (p *Policy) DecideFile(project string, f File) Decision {
	r := p.lookup(pypi.NormalizeName(project))
	d := p.decide(r, project, f.Facts)
	var found []finding
	if r.Continuity != ActionNone && f.Version != nil {
		if x, ok := continuity(r, f); ok {
			found = append(found, x)
		}
	}
	if r.MinReleaseAge > 0 {
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

// continuity makes the continuity checks for f.
func continuity(r *rule, f File) (finding, bool) {
	v := *f.Version
	var b reasonBuilder
	switch f.Facts.Verdict {
	case pypi.VerdictVerified:
		id := f.Facts.Identity
		if id == nil {
			return finding{}, false
		}
		for _, pub := range r.Publishers {
			if pub.Matches(*id) {
				return finding{}, false // accepted by the operator
			}
		}
		prev, unknown := previous(f.History, v, true)
		if unknown != nil {
			return unchecked(r, unknown)
		}
		if prev == nil {
			return finding{}, false // the first attested release
		}
		for _, p := range prev.Publishers {
			if SamePublisher(p, *id) {
				return finding{}, false
			}
		}
		b.add(string(FindingPublisherChanged), ": ", oneLine(v.String(), 64), " is signed by ")
		b.identity(id)
		b.add(", but the previous attested release ", oneLine(prev.Version.String(), 64), " was signed by ")
		var seen []pypi.Publisher
		for _, p := range prev.Publishers {
			tp := trustPublisher(p)
			if slices.Contains(seen, tp) {
				continue
			}
			if len(seen) > 0 {
				b.add(" and ")
			}
			seen = append(seen, tp)
			b.identity(&p)
		}
		b.add("; if the new publisher is expected, add ")
		b.yamlPublisher(trustPublisher(*id))
		b.add(" to the publishers of ")
		b.acceptIn(r)
		b.add(" and reload the policy")
		return finding{finding: FindingPublisherChanged, action: r.Continuity, text: b.String()}, true
	case pypi.VerdictUnattested:
		prev, unknown := previous(f.History, v, false)
		if unknown != nil {
			return unchecked(r, unknown)
		}
		if prev == nil || !prev.Attested() {
			return finding{}, false
		}
		b.add(string(FindingAttestationLost), ": ", oneLine(v.String(), 64), " has no provenance, but the previous release ",
			oneLine(prev.Version.String(), 64), " was attested (signed by ")
		b.identity(&prev.Publishers[0])
		b.add("); check with the maintainers that it was published as usual; to accept it, set continuity: none in ")
		b.acceptIn(r)
		return finding{finding: FindingAttestationLost, action: r.Continuity, text: b.String()}, true
	}
	return finding{}, false
}

// unchecked is a continuity check that needs a release that could not be
// checked: on_error decides, without a finding.
func unchecked(r *rule, u *Release) (finding, bool) {
	return finding{action: r.OnError, text: "continuity could not be checked: the provenance of release " +
		oneLine(u.Version.String(), 64) + " could not be verified (on_error)"}, true
}

// previous returns the release a file of version v is compared with: the
// highest non-yanked release below v that is attested (attested true), or
// the highest non-yanked release below v (attested false). When an Unknown
// release stands in the way (it might be the one), it is returned as
// unknown instead.
func previous(history []Release, v pypi.Version, attested bool) (prev, unknown *Release) {
	for i := range history {
		h := &history[i]
		if h.Yanked || h.Version.Compare(v) >= 0 {
			continue
		}
		if attested && !h.Attested() && !h.Unknown {
			continue
		}
		if prev == nil || h.Version.Compare(prev.Version) > 0 {
			prev = h
		}
	}
	if prev != nil && prev.Unknown && !prev.Attested() {
		return nil, prev
	}
	return prev, nil
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
	b.add("{kind: ", p.Kind)
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
