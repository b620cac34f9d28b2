package policy

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pipgate/pipgate/pypi"
)

// Action is what pipgate does with a file. [ActionAllow] is the result when
// the requirement is met; the others are what a rule may configure for when
// it is not.
type Action string

// The actions.
const (
	// ActionAllow: the requirement is met; the file is listed and served.
	ActionAllow Action = "allow"
	// ActionBlock: listed as yanked with the reason, and every download answers 403.
	ActionBlock Action = "block"
	// ActionYank: listed as yanked with the reason; the download is served and recorded.
	ActionYank Action = "yank"
	// ActionWarn: the requirement is not met, but the file is listed and served as
	// usual; the decision is recorded in metrics and the audit log.
	ActionWarn Action = "warn"
	// ActionNone is only a value of continuity: the continuity checks are off.
	// A Decision never carries it.
	ActionNone Action = "none"
)

// Require is what a rule asks of a file's provenance.
type Require string

// The requirements.
const (
	// RequireNone: nothing; only a tampered (invalid) file meets on_invalid.
	RequireNone Require = "none"
	// RequireAttestation: an attestation that verifies against the publisher PyPI recorded.
	RequireAttestation Require = "attestation"
	// RequireTrustedPublisher: such an attestation whose verified signer also matches
	// one of the rule's publishers.
	RequireTrustedPublisher Require = "trusted-publisher"
)

// Finding names what a check across a project's releases found about a
// file (product contract, "Trust over time"). The empty Finding is none.
type Finding string

// The findings.
const (
	// FindingPublisherChanged: the file verifies, but its publisher is neither
	// the project's publisher of record (the signer of its first attested
	// file) nor one the rule accepts.
	FindingPublisherChanged Finding = "publisher-changed"
	// FindingAttestationLost: the file has no verified attestation, but the
	// project's first attested file came before it.
	FindingAttestationLost Finding = "attestation-lost"
	// FindingCooldown: the file was uploaded less than min_release_age ago, or
	// its upload time is unknown.
	FindingCooldown Finding = "cooldown"
)

// Findings lists every finding, for metric labels and documentation.
var Findings = []Finding{FindingPublisherChanged, FindingAttestationLost, FindingCooldown}

// DefaultsRule is the [Decision.Rule] of a decision made by the defaults,
// when no package rule matched.
const DefaultsRule = "defaults"

// Built-in defaults for fields a policy file leaves out (product contract).
const (
	defaultRequire   = RequireNone
	defaultAction    = ActionWarn
	defaultOnInvalid = ActionBlock
	defaultOnError   = ActionBlock
	// Trust over time: off unless asked for; a cooldown, once set, blocks.
	defaultContinuity     = ActionNone
	defaultCooldownAction = ActionBlock
)

// ErrDenied is matched by every [DeniedError].
var ErrDenied = errors.New("denied by policy")

// DeniedError is the error of a [Decision] that blocks a download.
type DeniedError struct {
	Rule    string       // the matched rule's pattern, or "defaults"
	Verdict pypi.Verdict // the final verdict
	Reason  string       // the human reason, as in [Decision.Reason]
}

// Error returns the reason, which names the project, the verdict and the rule.
func (e *DeniedError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrDenied) hold.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Rule is one package rule with every field resolved (unset fields filled
// from the defaults). The defaults themselves are a Rule named "defaults".
type Rule struct {
	// Name is the PEP 503-normalised project name or glob, or "defaults".
	Name string `json:"name"`
	// Require is RequireNone, RequireAttestation or RequireTrustedPublisher.
	Require Require `json:"require"`
	// Action applies when the requirement is not met: ActionBlock, ActionYank or ActionWarn.
	Action Action `json:"action"`
	// OnInvalid applies to a file whose attestation fails verification, at every Require level.
	OnInvalid Action `json:"on_invalid"`
	// OnError applies when provenance could not be fetched or checked and something is required.
	OnError Action `json:"on_error"`
	// Continuity is the action on a publisher-changed or attestation-lost
	// finding: ActionWarn, ActionYank, ActionBlock, or ActionNone (not checked).
	Continuity Action `json:"continuity"`
	// MinReleaseAge is the cooldown: a file uploaded less than this long ago
	// meets CooldownAction. Zero: no cooldown.
	MinReleaseAge time.Duration `json:"min_release_age"`
	// CooldownAction applies to a file in its cooldown: ActionBlock, ActionYank or ActionWarn.
	CooldownAction Action `json:"cooldown_action"`
	// Publishers are the trusted publishers (with RequireTrustedPublisher),
	// and the publishers continuity accepts besides the publisher of record:
	// a file signed by one of them (workflow aside) is never publisher-changed.
	Publishers []pypi.Publisher `json:"publishers,omitempty"`
	// AcceptedVersions are releases (PEP 440, compared as versions) that
	// continuity accepts as they are: no publisher-changed or
	// attestation-lost finding for their files.
	AcceptedVersions []string `json:"accepted_versions,omitempty"`
	// Line is the rule's line in the policy file; 0 for the built-in defaults.
	Line int `json:"line,omitempty"`
}

// rule is a compiled Rule.
type rule struct {
	Rule
	m        pypi.NamePattern
	accepted []pypi.Version // AcceptedVersions, parsed
}

// Policy is a parsed, validated policy. It is immutable and safe for
// concurrent use.
type Policy struct {
	defaults rule
	rules    []rule
	exact    map[string]int // normalised literal name → index of its rule
	globs    []int          // indices of glob rules, in file order
	digest   string
	source   string
}

// Default returns the built-in policy: observe only. Nothing is required,
// so files are served and their verdicts recorded, but a file whose
// attestation fails verification (tampered) is still blocked.
func Default() *Policy {
	p := &Policy{
		defaults: rule{Rule: Rule{
			Name:      DefaultsRule,
			Require:   defaultRequire,
			Action:    defaultAction,
			OnInvalid: defaultOnInvalid,
			OnError:   defaultOnError,

			Continuity:     defaultContinuity,
			CooldownAction: defaultCooldownAction,
		}},
		exact:  map[string]int{},
		source: "built-in",
	}
	return p
}

// Digest returns the hex sha256 of the policy file's bytes; empty for the
// built-in policy.
func (p *Policy) Digest() string { return p.digest }

// Source returns where the policy came from: the path given to [Load],
// "built-in" for [Default], or "" for [Parse].
func (p *Policy) Source() string { return p.source }

// Rules returns a copy of the package rules in file order (first match wins).
func (p *Policy) Rules() []Rule {
	out := make([]Rule, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.Rule
		out[i].Publishers = slices.Clone(r.Publishers)
		out[i].AcceptedVersions = slices.Clone(r.AcceptedVersions)
	}
	return out
}

// Defaults returns the resolved defaults, as a Rule named "defaults".
func (p *Policy) Defaults() Rule { return p.defaults.Rule }

// Lookup returns the rule that governs project (any spelling; it is
// normalised): the first matching package rule, or the defaults.
func (p *Policy) Lookup(project string) Rule { return p.lookup(pypi.NormalizeName(project)).Rule }

func (p *Policy) lookup(name string) *rule {
	best := len(p.rules)
	if i, ok := p.exact[name]; ok {
		best = i
	}
	for _, gi := range p.globs {
		if gi >= best {
			break
		}
		if p.rules[gi].m.Match(name) {
			best = gi
			break
		}
	}
	if best == len(p.rules) {
		return &p.defaults
	}
	return &p.rules[best]
}

// Decision is what the policy does with one file.
type Decision struct {
	// Action is ActionAllow, ActionBlock, ActionYank or ActionWarn.
	Action Action `json:"action"`
	// Verdict is the final verdict: the verification verdict, except
	// VerdictUntrustedPublisher when a verified signer matches none of the
	// rule's publishers.
	Verdict pypi.Verdict `json:"verdict"`
	// Rule is the matched rule's (normalised) name pattern, or "defaults".
	Rule string `json:"rule"`
	// Require is the matched rule's requirement.
	Require Require `json:"require"`
	// Reason is one line for pip users, naming the project, what was found
	// and, when it matters, what the rule asks for.
	Reason string `json:"reason"`
	// Finding is the strongest trust-over-time finding about the file
	// (see [Policy.DecideFile]), or "" when there is none.
	Finding Finding `json:"finding,omitempty"`
	// Until is when a cooldown finding ends (the file's upload time plus
	// min_release_age); zero for any other decision.
	Until time.Time `json:"until,omitzero"`
}

// Blocks reports whether downloads of the file are refused (403).
func (d Decision) Blocks() bool { return d.Action == ActionBlock }

// Yanks reports whether the file is listed as yanked in the index, with
// Reason as the yank reason. Blocked files are yanked too.
func (d Decision) Yanks() bool { return d.Action == ActionBlock || d.Action == ActionYank }

// Err returns a [*DeniedError] when the decision blocks, and nil otherwise.
func (d Decision) Err() error {
	if !d.Blocks() {
		return nil
	}
	return &DeniedError{Rule: d.Rule, Verdict: d.Verdict, Reason: d.Reason}
}

// Decide applies the policy to the verification facts of one file of
// project (any spelling). The first matching rule decides:
//   - verified: allowed, unless the rule requires a trusted publisher and
//     the verified signer matches none of its publishers; then the verdict
//     becomes untrusted-publisher and the rule's action applies;
//   - unattested and unsupported: allowed under require none, else the
//     rule's action;
//   - invalid: on_invalid, at every require level;
//   - error, and any verdict Decide does not know (reported as error):
//     allowed and recorded under require none, else on_error.
//
// Decide makes no check across releases (continuity, cooldown): that is
// [Policy.DecideFile].
func (p *Policy) Decide(project string, f pypi.Facts) Decision {
	return p.decide(p.lookup(pypi.NormalizeName(project)), project, f)
}

func (p *Policy) decide(r *rule, project string, f pypi.Facts) Decision {
	d := Decision{Action: ActionAllow, Verdict: f.Verdict, Rule: r.Name, Require: r.Require}
	required := r.Require != RequireNone
	var b reasonBuilder
	b.start(project)
	switch f.Verdict {
	case pypi.VerdictVerified:
		if r.Require != RequireTrustedPublisher {
			b.add("verified")
			if f.Identity != nil {
				b.add(", signed by ")
				b.identity(f.Identity)
			}
			break
		}
		if f.Identity != nil {
			for _, pub := range r.Publishers {
				if pub.Matches(*f.Identity) {
					b.add("signed by ")
					b.identity(f.Identity)
					b.add(", a trusted publisher of ")
					b.rule(r)
					d.Reason = b.String()
					return d
				}
			}
			b.add("signed by ")
			b.identity(f.Identity)
		} else {
			b.add("verified, but the signer identity is unknown")
		}
		d.Verdict = pypi.VerdictUntrustedPublisher
		d.Action = r.Action
		b.add("; ")
		b.rule(r)
		b.add(" trusts ")
		for i, pub := range r.Publishers {
			if i > 0 {
				b.add(", ")
			}
			b.publisher(pub)
		}
		if f.Identity != nil {
			// The fix, as for publisher-changed: the policy key to edit.
			b.add("; if this signer is expected, add ")
			b.yamlPublisher(trustPublisher(*f.Identity))
			b.add(" to the publishers of ")
			b.acceptIn(r)
			b.add(" and reload the policy")
		}
	case pypi.VerdictUnattested:
		b.add("no provenance (unattested)")
		if required {
			d.Action = r.Action
			b.requires(r)
		}
	case pypi.VerdictInvalid:
		b.add("attestation failed verification")
		b.detail(f)
		d.Action = r.OnInvalid
	case pypi.VerdictUnsupported:
		b.add("attestation cannot be checked: unsupported format")
		b.detail(f)
		if required {
			d.Action = r.Action
			b.requires(r)
		}
	default:
		if f.Verdict != pypi.VerdictError {
			d.Verdict = pypi.VerdictError
			b.add("unknown verdict ", strconv.Quote(oneLine(string(f.Verdict), 40)))
		} else {
			b.add("provenance could not be checked")
			b.detail(f)
		}
		if required {
			d.Action = r.OnError
			b.requires(r)
		}
	}
	d.Reason = b.String()
	return d
}

// reasonBuilder writes a decision's reason: "pipgate: <project>: <what>".
type reasonBuilder struct {
	strings.Builder
	project string
}

func (b *reasonBuilder) start(project string) {
	b.Grow(192)
	b.project = oneLine(project, 200)
	b.add(b.prefix())
}

// prefix is what start wrote.
func (b *reasonBuilder) prefix() string { return "pipgate: " + b.project + ": " }

func (b *reasonBuilder) add(ss ...string) {
	for _, s := range ss {
		b.WriteString(s)
	}
}

// identity writes id as [pypi.Identity.String] renders it, without
// allocating: "github:owner/repo@release.yml (refs/tags/v1)".
func (b *reasonBuilder) identity(id *pypi.Identity) {
	switch id.Kind {
	case pypi.KindGitHub, pypi.KindGitLab:
		b.add(string(id.Kind), ":", id.Repository)
		if id.Workflow != "" {
			b.add("@", id.Workflow)
		}
		if id.Ref != "" {
			b.add(" (", id.Ref, ")")
		}
	case pypi.KindGoogle:
		b.add("google:", id.Email)
	default:
		b.add("identity:", id.Subject, " (", id.Issuer, ")")
	}
}

// publisher writes p as [pypi.Publisher.String] renders it, without allocating.
func (b *reasonBuilder) publisher(p pypi.Publisher) {
	switch p.Kind {
	case pypi.KindGitHub, pypi.KindGitLab:
		b.add(string(p.Kind), ":", p.Repository)
		if p.Workflow != "" {
			b.add("@", p.Workflow)
		}
	case pypi.KindGoogle:
		b.add("google:", p.Email)
	case pypi.KindIdentity:
		b.add("identity:", p.Subject, " (", p.Issuer, ")")
	default:
		b.add(string(p.Kind))
	}
}

// rule names the rule: `policy rule "name"`, or `policy defaults` (the
// defaults are the only rule without a line).
func (b *reasonBuilder) rule(r *rule) {
	if r.Line == 0 {
		b.add("policy defaults")
		return
	}
	b.add("policy rule ", quote(r.Name))
}

// requires explains an unmet requirement.
func (b *reasonBuilder) requires(r *rule) {
	b.add("; ")
	b.rule(r)
	if r.Line == 0 {
		b.add(" require ")
	} else {
		b.add(" requires ")
	}
	switch r.Require {
	case RequireAttestation:
		b.add("a verified attestation")
	case RequireTrustedPublisher:
		b.add("an attestation from a trusted publisher")
	}
}

// detail appends the failure class and detail, made safe for one line.
func (b *reasonBuilder) detail(f pypi.Facts) {
	if f.Reason == "" && f.Detail == "" {
		return
	}
	b.add(" (")
	b.add(oneLine(string(f.Reason), 64))
	if f.Detail != "" {
		if f.Reason != "" {
			b.add(": ")
		}
		b.add(oneLine(f.Detail, 300))
	}
	b.add(")")
}

// oneLine replaces control characters with spaces and cuts s to at most
// limit bytes (on a rune boundary, marking the cut with "...").
func oneLine(s string, limit int) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, s)
	}
	if len(s) > limit {
		cut := limit - 3
		for cut > 0 && s[cut]&0xc0 == 0x80 {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// quote wraps s in double quotes (names and verdicts have no quotes to escape).
func quote(s string) string { return `"` + s + `"` }
