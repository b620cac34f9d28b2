package policy

import (
	"sort"
	"time"

	"github.com/pipgate/pipgate/pypi"
)

// Coverage is how far the files pipgate decided carry attestations
// ('pipgate report', /-/report): per project, and in total.
type Coverage struct {
	Projects []ProjectCoverage `json:"projects"`
	Totals   CoverageCounts    `json:"totals"`
	// Enforceable lists the projects a trusted-publisher rule could
	// enforce today (state enforceable).
	Enforceable []string `json:"enforceable"`
}

// CoverageCounts count distinct files (project, filename, sha256) by what
// the history recorded. A file counts once in Verified, Unattested,
// Invalid, Unsupported or Unknown, by its latest established facts.
type CoverageCounts struct {
	Files     int   `json:"files"`     // files decided
	Served    int   `json:"served"`    // files served at least once
	Downloads int64 `json:"downloads"` // downloads served
	Verified  int   `json:"verified"`  // a verified attestation
	// Unattested: no provenance.
	Unattested int `json:"unattested"`
	// Invalid: an attestation that failed verification.
	Invalid int `json:"invalid"`
	// Unsupported: an attestation pipgate cannot check.
	Unsupported int `json:"unsupported"`
	// Unknown: never established (verification errors only).
	Unknown int `json:"unknown"`
	// Blocked: files refused (403) at least once.
	Blocked int `json:"blocked"`
}

// PublisherCount is one verified publisher of a project and what it signed.
type PublisherCount struct {
	Publisher string   `json:"publisher"` // as a policy entry renders it: github:owner/repo@workflow
	Files     int      `json:"files"`
	Versions  []string `json:"versions"`
}

// ProjectCoverage is one project's line of a [Coverage].
type ProjectCoverage struct {
	Project string `json:"project"`
	CoverageCounts
	Publishers []PublisherCount `json:"publishers"`
	// Rule and Require are the current policy's rule for the project.
	Rule    string  `json:"rule"`
	Require Require `json:"require"`
	// State is one of:
	//   - enforced: the rule requires a trusted publisher;
	//   - enforceable: every file served has a verified attestation, so a
	//     trusted-publisher rule listing Publishers refuses none of them;
	//   - partial: some files served have one, some do not;
	//   - unattested: no file has a verified attestation.
	State     string    `json:"state"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// The coverage states.
const (
	StateEnforced    = "enforced"
	StateEnforceable = "enforceable"
	StatePartial     = "partial"
	StateUnattested  = "unattested"
)

// CoverageOf counts the attestation coverage of the history obs, judging
// the state of each project against p (the policy in force).
func CoverageOf(p *Policy, obs []Observation) Coverage {
	c := Coverage{Projects: []ProjectCoverage{}, Enforceable: []string{}}
	for _, pf := range byProject(groupFiles(obs)) {
		pc := ProjectCoverage{Project: pf[0].project, Publishers: []PublisherCount{}, FirstSeen: pf[0].first}
		r := p.lookup(pc.Project)
		pc.Rule, pc.Require = r.Name, r.Require
		pubs := map[string]*PublisherCount{}
		servedUnverified := 0
		for _, f := range pf {
			pc.Files++
			if f.served > 0 {
				pc.Served++
				pc.Downloads += f.served
			}
			if f.refused > 0 {
				pc.Blocked++
			}
			if f.first.Before(pc.FirstSeen) {
				pc.FirstSeen = f.first
			}
			if f.seen.After(pc.LastSeen) {
				pc.LastSeen = f.seen
			}
			verdict := pypi.VerdictError
			if f.factsKnown {
				verdict = f.facts.Verdict
			}
			switch verdict {
			case pypi.VerdictVerified:
				pc.Verified++
				name := "unknown signer"
				if f.facts.Identity != nil {
					name = publisherOf(*f.facts.Identity).String()
				}
				pcnt := pubs[name]
				if pcnt == nil {
					pcnt = &PublisherCount{Publisher: name}
					pubs[name] = pcnt
				}
				pcnt.Files++
				if f.version != "" && !containsString(pcnt.Versions, f.version) {
					pcnt.Versions = append(pcnt.Versions, f.version)
				}
			case pypi.VerdictUnattested:
				pc.Unattested++
			case pypi.VerdictInvalid:
				pc.Invalid++
			case pypi.VerdictUnsupported:
				pc.Unsupported++
			default:
				pc.Unknown++
			}
			if verdict != pypi.VerdictVerified && f.served > 0 {
				servedUnverified++
			}
		}
		for _, pcnt := range pubs {
			sortVersions(pcnt.Versions)
			pc.Publishers = append(pc.Publishers, *pcnt)
		}
		sort.Slice(pc.Publishers, func(i, j int) bool { return pc.Publishers[i].Publisher < pc.Publishers[j].Publisher })
		switch {
		case pc.Require == RequireTrustedPublisher:
			pc.State = StateEnforced
		case pc.Verified == 0:
			pc.State = StateUnattested
		case servedUnverified == 0:
			pc.State = StateEnforceable
			c.Enforceable = append(c.Enforceable, pc.Project)
		default:
			pc.State = StatePartial
		}
		t := &c.Totals
		t.Files += pc.Files
		t.Served += pc.Served
		t.Downloads += pc.Downloads
		t.Verified += pc.Verified
		t.Unattested += pc.Unattested
		t.Invalid += pc.Invalid
		t.Unsupported += pc.Unsupported
		t.Unknown += pc.Unknown
		t.Blocked += pc.Blocked
		c.Projects = append(c.Projects, pc)
	}
	return c
}

// publisherOf is the policy entry that matches exactly the signer id: kind
// and repository with its workflow when known (GitHub, GitLab), the e-mail
// (Google), issuer and subject (any other).
func publisherOf(id pypi.Identity) pypi.Publisher {
	p := trustPublisher(id)
	if p.Kind == pypi.KindGitHub || p.Kind == pypi.KindGitLab {
		p.Workflow = id.Workflow
	}
	return p
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// sortVersions sorts versions by PEP 440 (unparsable ones last, as
// strings), parsing each once.
func sortVersions(vs []string) {
	type pv struct {
		s  string
		v  pypi.Version
		ok bool
	}
	ps := make([]pv, len(vs))
	for i, s := range vs {
		v, err := pypi.ParseVersion(s)
		ps[i] = pv{s, v, err == nil}
	}
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := &ps[i], &ps[j]
		switch {
		case a.ok && b.ok:
			if c := a.v.Compare(b.v); c != 0 {
				return c < 0
			}
		case a.ok != b.ok:
			return a.ok
		}
		return a.s < b.s
	})
	for i := range ps {
		vs[i] = ps[i].s
	}
}
