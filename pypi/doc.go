// Package pypi holds the wire formats of the Python Package Index, pure and
// free of net/http: project names (PEP 503), distribution filenames and PEP 440
// versions, the simple repository API in HTML (PEP 503) and JSON (PEP 691,
// 700, 714, 592, 740), content negotiation, and the domain types that the
// verifier, the policy and the cache share ([Verdict], [Identity],
// [Publisher], [Facts]).
package pypi
