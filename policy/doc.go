// Package policy decides what pipgate does with a distribution file, given
// what verification established about it ([pypi.Facts]) and a trusted-publisher
// policy read from YAML. It is pure: no network, no net/http.
//
// A policy file looks like this (see configs/policy.yaml for every field):
//
//	version: 1
//	defaults:
//	  require: none            # none | attestation | trusted-publisher
//	  action: warn             # requirement not met: block | yank | warn
//	  on_invalid: block        # attestation present but fails verification
//	  on_error: block          # provenance could not be fetched or checked
//	packages:                  # first match wins; names are PEP 503-normalised; globs allowed
//	  - name: pypi-attestations
//	    require: trusted-publisher
//	    action: block
//	    publishers:
//	      - kind: github
//	        repository: trailofbits/pypi-attestations
//	        workflow: release.yml
//
// Decoding is strict: an unknown field, a missing or unsupported version, an
// unknown value, an empty file or a second YAML document is an error, and so
// is any rule that cannot work as written (see [Parse]). Duplicate rule names
// are errors rather than warnings: the first match wins, so the second rule
// would silently never apply; the same holds for a literal name that an
// earlier glob already covers. Every problem is reported at once, each with
// its line and YAML path ([ProblemError]).
//
// [Policy.Decide] turns facts into a [Decision]: allow, block (yanked in the
// index, 403 on download), yank (yanked in the index, served), or warn
// (served; the requirement was not met). [Policy.DecideFile] adds the checks
// across a project's releases ("trust over time"): the keys continuity
// (publisher-changed, attestation-lost: against the project's publisher of
// record, the signer of its first attested file), accepted_versions,
// min_release_age and cooldown_action, given the continuity record the
// caller established with [SortUploads] and [FindRecord] (see [File] and
// [Record]). A [Reloader] swaps policies atomically, adopts only
// complete and valid files, and keeps the old policy when a new file is bad.
package policy
