package pypi

// Verdict is what pipgate established about one distribution file.
type Verdict string

// The verdicts of the product contract.
const (
	// VerdictVerified: every attestation verified and names the publisher PyPI recorded.
	VerdictVerified Verdict = "verified"
	// VerdictUnattested: the index or the Integrity API says the file has no provenance.
	VerdictUnattested Verdict = "unattested"
	// VerdictUntrustedPublisher: a valid attestation from a publisher the policy does not allow.
	// Only the policy produces it; verification facts never carry it.
	VerdictUntrustedPublisher Verdict = "untrusted-publisher"
	// VerdictInvalid: provenance is present but fails a check; Facts.Reason says which.
	VerdictInvalid Verdict = "invalid"
	// VerdictUnsupported: a format the verifier cannot check (for example a Rekor v2 dsse 0.0.2 entry).
	VerdictUnsupported Verdict = "unsupported"
	// VerdictError: the provenance could not be fetched or checked. Never cached.
	VerdictError Verdict = "error"
)

// Reason is the class of a failed or unfinished verification: a small closed
// set a user can act on, stored in [Facts.Reason], shown in the
// X-Pipgate-Reason text and used as a metric label. Package provenance
// produces the first seven (with [VerdictInvalid] or [VerdictUnsupported]);
// the proxy produces the rest (with [VerdictError]).
type Reason string

// The reasons, the whole set.
const (
	// ReasonFormat: the provenance, an attestation or its statement is
	// malformed, or the index gives no sha256 to check the file against.
	ReasonFormat Reason = "format"
	// ReasonSignature: the signature, transparency log entry, certificate
	// chain, SCT or signed time does not verify.
	ReasonSignature Reason = "signature"
	// ReasonDigestMismatch: the attested sha256 is not the file's.
	ReasonDigestMismatch Reason = "digest-mismatch"
	// ReasonNameMismatch: the attested subject name is not the file's name.
	ReasonNameMismatch Reason = "name-mismatch"
	// ReasonPredicate: the predicate type is not one PyPI accepts.
	ReasonPredicate Reason = "predicate"
	// ReasonIdentityMismatch: the certificate's identity is not the expected publisher.
	ReasonIdentityMismatch Reason = "identity-mismatch"
	// ReasonUnsupported: a format the verifier cannot check (for example a
	// Rekor v2 dsse 0.0.2 log entry); never treated as verified.
	ReasonUnsupported Reason = "unsupported"
	// ReasonFetch: the provenance could not be fetched from the upstream.
	ReasonFetch Reason = "fetch"
	// ReasonCancelled: verification did not finish (its time budget ran out
	// or pipgate was shutting down).
	ReasonCancelled Reason = "cancelled"
)

// Reasons lists every [Reason], in the order above.
var Reasons = []Reason{
	ReasonFormat, ReasonSignature, ReasonDigestMismatch, ReasonNameMismatch, ReasonPredicate,
	ReasonIdentityMismatch, ReasonUnsupported, ReasonFetch, ReasonCancelled,
}

// PublisherKind is the kind of a signer ([Identity.Kind]) or of a trusted
// publisher ([Publisher.Kind]): lower-case, as the policy file spells it and
// as the cache and the decision history store it.
type PublisherKind string

// The publisher kinds.
const (
	KindGitHub   PublisherKind = "github"
	KindGitLab   PublisherKind = "gitlab"
	KindGoogle   PublisherKind = "google"
	KindIdentity PublisherKind = "identity" // any Sigstore identity: issuer + subject
)

// Identity is a signer identity read from a verified Sigstore certificate,
// never from the unsigned publisher object of the provenance JSON.
type Identity struct {
	// Kind is KindGitHub, KindGitLab, KindGoogle, or KindIdentity for any other signer.
	Kind PublisherKind `json:"kind"`
	// Issuer is the OIDC issuer (Fulcio extension .8, or .1 for older certificates).
	Issuer string `json:"issuer"`
	// Subject is the certificate's first subject alternative name (URI or e-mail).
	Subject string `json:"subject,omitempty"`
	// Repository is "owner/name" (GitHub) or "namespace/.../project" (GitLab),
	// taken from the Source Repository URI.
	Repository string `json:"repository,omitempty"`
	// Workflow is the top-level workflow taken from the Build Config URI: a bare
	// filename for GitHub ("release.yml"), a path for GitLab (".gitlab-ci.yml").
	// It is set only when the Build Config URI has exactly PyPI's expected form
	// for Repository with an "@" suffix equal to Commit or Ref.
	Workflow string `json:"workflow,omitempty"`
	// Ref is the Source Repository Ref (refs/tags/v1), if present.
	Ref string `json:"ref,omitempty"`
	// Commit is the Source Repository Digest, if present.
	Commit string `json:"commit,omitempty"`
	// BuildConfigURI is Fulcio extension .18, verbatim.
	BuildConfigURI string `json:"build_config_uri,omitempty"`
	// Email is the service-account e-mail for Google, or an e-mail SAN.
	Email string `json:"email,omitempty"`
}

// Publisher is a trusted publisher to match: one entry of a policy rule, or
// the publisher PyPI recorded for a file (converted from its PEP 740 JSON).
type Publisher struct {
	Kind       PublisherKind `json:"kind"`                 // KindGitHub, KindGitLab, KindGoogle or KindIdentity
	Repository string        `json:"repository,omitempty"` // github, gitlab
	Workflow   string        `json:"workflow,omitempty"`   // github: file name; gitlab: file path; optional in policy
	Email      string        `json:"email,omitempty"`      // google
	Issuer     string        `json:"issuer,omitempty"`     // identity
	Subject    string        `json:"subject,omitempty"`    // identity
}

// Facts is what verification established about one file (a sha256 plus a
// provenance body), independent of any policy. The cache stores Facts; the
// policy turns Facts into a decision.
type Facts struct {
	// Verdict is verified, unattested, invalid, unsupported or error.
	Verdict Verdict `json:"verdict"`
	// Reason is the failure class, empty when verified or unattested.
	Reason Reason `json:"reason,omitempty"`
	// Detail is the human-readable detail of a failure.
	Detail string `json:"detail,omitempty"`
	// Identity is the verified signer when Verdict is verified.
	Identity *Identity `json:"identity,omitempty"`
	// Recorded is the (unsigned) publisher PyPI recorded for the file, when known.
	Recorded *Publisher `json:"recorded,omitempty"`
}

// Matches reports whether the verified identity id satisfies publisher p,
// following PyPI's rules: exact, case-sensitive comparisons; GitHub and GitLab
// match on the repository and (when p names one) the workflow derived from the
// Build Config URI, never on the SAN; Google on the e-mail; a generic identity
// on issuer and subject.
func (p Publisher) Matches(id Identity) bool {
	switch p.Kind {
	case KindGitHub, KindGitLab:
		if id.Kind != p.Kind || p.Repository == "" || id.Repository != p.Repository {
			return false
		}
		return p.Workflow == "" || (id.Workflow != "" && id.Workflow == p.Workflow)
	case KindGoogle:
		return id.Kind == KindGoogle && p.Email != "" && id.Email == p.Email
	case KindIdentity:
		return p.Issuer != "" && p.Subject != "" && id.Issuer == p.Issuer && id.Subject == p.Subject
	}
	return false
}

// String renders p for messages: "github:owner/repo@release.yml".
func (p Publisher) String() string {
	switch p.Kind {
	case KindGitHub, KindGitLab:
		s := string(p.Kind) + ":" + p.Repository
		if p.Workflow != "" {
			s += "@" + p.Workflow
		}
		return s
	case KindGoogle:
		return "google:" + p.Email
	case KindIdentity:
		return "identity:" + p.Subject + " (" + p.Issuer + ")"
	}
	return string(p.Kind)
}

// SameSigner reports whether id and other name the same signer: the same
// kind, issuer, repository, workflow and email (and subject, for a bare
// identity); the ref and commit of a build may differ.
func (id Identity) SameSigner(other Identity) bool {
	return id.Kind == other.Kind && id.Issuer == other.Issuer && id.Repository == other.Repository &&
		id.Workflow == other.Workflow && id.Email == other.Email && (id.Kind != KindIdentity || id.Subject == other.Subject)
}

// String renders id for messages and logs.
func (id Identity) String() string {
	switch id.Kind {
	case KindGitHub, KindGitLab:
		s := string(id.Kind) + ":" + id.Repository
		if id.Workflow != "" {
			s += "@" + id.Workflow
		}
		if id.Ref != "" {
			s += " (" + id.Ref + ")"
		}
		return s
	case KindGoogle:
		return "google:" + id.Email
	}
	return "identity:" + id.Subject + " (" + id.Issuer + ")"
}
