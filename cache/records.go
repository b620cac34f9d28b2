package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pipgate/pipgate/pypi"
)

// recordVersion is the version written into every record's "v" field. A
// reader accepts 1..recordVersion and upgrades older records as it decodes.
const recordVersion = 1

// Key limits (bbolt allows 32 KiB keys; ours are far shorter).
const (
	maxURLKey  = 8 << 10
	maxNameKey = 1 << 10
)

// record is a versioned JSON value.
type record interface{ version() int }

// header is the part every record starts with.
type header struct {
	V int `json:"v"`
}

func (h header) version() int { return h.V }

type factsRecord struct {
	header
	RecordedAt time.Time  `json:"recorded_at"`
	Facts      pypi.Facts `json:"facts"`
}

type provenanceRecord struct {
	header
	Body      []byte    `json:"body,omitempty"`
	SHA256    string    `json:"sha256,omitempty"`
	FetchedAt time.Time `json:"fetched_at"`
	Absent    bool      `json:"absent,omitempty"`
}

// pageRecord stores pypi.ProjectPage with its Go field names: pages are a
// cache of the upstream, refreshed on their TTL, so a renamed field costs a
// refetch, not data.
type pageRecord struct {
	header
	FetchedAt time.Time         `json:"fetched_at"`
	Page      *pypi.ProjectPage `json:"page"`
}

type listRecord struct {
	header
	FetchedAt time.Time         `json:"fetched_at"`
	List      *pypi.ProjectList `json:"list"`
}

type refRecord struct {
	header
	SHA256 string    `json:"sha256"`
	At     time.Time `json:"at"`
}

type historyRecord struct {
	header
	History History `json:"history"`
}

func encode(r any) ([]byte, error) { return json.Marshal(r) }

// decode unmarshals raw into r and checks its version.
func decode(raw []byte, r record) error {
	if err := json.Unmarshal(raw, r); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if v := r.version(); v < 1 || v > recordVersion {
		return fmt.Errorf("%w: record version %d", ErrBadRecord, v)
	}
	return nil
}

// get copies the value under key out of a read transaction, then decodes it
// outside the transaction (a long decode would hold up bbolt's remapping).
func (s *Store) get(bucket string, key []byte, r record) error {
	var raw []byte
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			if v := b.Get(key); v != nil {
				raw = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: reading %s: %w", bucket, err)
	}
	if raw == nil {
		return ErrNotFound
	}
	return decode(raw, r)
}

// put encodes r and stores it under key through db.Batch, which coalesces
// concurrent writers into one transaction and one fsync.
func (s *Store) put(bucket string, key []byte, r any) error {
	val, err := encode(r)
	if err != nil {
		return fmt.Errorf("cache: encoding %s record: %w", bucket, err)
	}
	err = s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put(key, val)
	})
	if err != nil {
		return fmt.Errorf("cache: writing %s: %w", bucket, err)
	}
	return nil
}

// update runs fn in a write transaction. A lone writer commits at once; when
// others are writing too, fn joins a db.Batch, so that a burst of writers
// shares one transaction and one fsync instead of queueing for one each. fn
// may therefore run more than once and must be idempotent.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	n := s.writers.Add(1)
	defer s.writers.Add(-1)
	return s.guard(func(db *bolt.DB) error {
		if n == 1 {
			return db.Update(fn)
		}
		return db.Batch(onFault(fn))
	})
}

// isHex64 reports whether s is a lower-case hex sha256 digest.
func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isNormalized reports whether name is a valid, PEP 503-normalised project
// name (lower-case ASCII letters and digits, single dashes inside).
func isNormalized(name string) bool {
	return len(name) <= maxNameKey && pypi.ValidProjectName(name) && pypi.NormalizeName(name) == name
}

func checkProject(project string) error {
	if !isNormalized(project) {
		return fmt.Errorf("%w: project %q is not a PEP 503-normalised name", ErrInvalidKey, project)
	}
	return nil
}

// maxUpstreamName bounds an upstream name in a key.
const maxUpstreamName = 64

// checkUpstream checks the name of the upstream a record came from: the
// first part of page and provenance keys, so that two upstreams never share
// (and never overwrite) each other's records.
func checkUpstream(name string) error {
	if name == "" || len(name) > maxUpstreamName {
		return fmt.Errorf("%w: upstream name %q", ErrInvalidKey, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && (c != '-' && c != '_' || i == 0) {
			return fmt.Errorf("%w: upstream name %q (want lower-case letters, digits, '-' and '_')", ErrInvalidKey, name)
		}
	}
	return nil
}

// scopedKey is "<upstream>/<rest>": the upstream name holds no "/", so the
// first "/" splits the key.
func scopedKey(upstream, rest string) []byte { return []byte(upstream + "/" + rest) }

// splitScopedKey undoes scopedKey.
func splitScopedKey(k []byte) (upstream, rest string, ok bool) {
	upstream, rest, ok = strings.Cut(string(k), "/")
	return upstream, rest, ok && checkUpstream(upstream) == nil
}

// FactKey identifies verification facts: the exact filename the file is
// listed under, the file's sha256, the sha256 of the provenance body they
// were computed from ("" when the file has none), and the sha256 of the
// Sigstore trust root used. Digests are lower-case hex. The filename is part
// of the key because the PEP 740 subject-name check is part of verification:
// the same bytes and provenance listed under another name are another
// verdict (schema 2; schema 1 keyed facts by digests alone).
type FactKey struct {
	Filename         string
	FileSHA256       string
	ProvenanceSHA256 string
	TrustRootSHA256  string
}

// validFactFilename reports whether name can be the filename of a facts key:
// non-empty, at most maxNameKey bytes, no '/' and no control character (a
// distribution filename is a single path element).
func validFactFilename(name string) bool {
	if name == "" || len(name) > maxNameKey {
		return false
	}
	for i := range len(name) {
		if c := name[i]; c == '/' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// key returns "<file>/<provenance or ->/<trust root or ->/<filename>", so
// that every entry of one file's bytes is adjacent in the bucket.
func (k FactKey) key() ([]byte, error) {
	if !isHex64(k.FileSHA256) {
		return nil, fmt.Errorf("%w: file sha256 %q", ErrInvalidKey, k.FileSHA256)
	}
	if !validFactFilename(k.Filename) {
		return nil, fmt.Errorf("%w: filename %q", ErrInvalidKey, k.Filename)
	}
	part := func(name, d string) (string, error) {
		switch {
		case d == "":
			return "-", nil
		case isHex64(d):
			return d, nil
		}
		return "", fmt.Errorf("%w: %s sha256 %q", ErrInvalidKey, name, d)
	}
	p, err := part("provenance", k.ProvenanceSHA256)
	if err != nil {
		return nil, err
	}
	r, err := part("trust root", k.TrustRootSHA256)
	if err != nil {
		return nil, err
	}
	return []byte(k.FileSHA256 + "/" + p + "/" + r + "/" + k.Filename), nil
}

// parseFactKey inverts FactKey.key.
func parseFactKey(b []byte) (FactKey, bool) {
	s := string(b)
	parts := strings.SplitN(s, "/", 4)
	if len(parts) != 4 {
		return FactKey{}, false
	}
	k := FactKey{FileSHA256: parts[0], Filename: parts[3]}
	if parts[1] != "-" {
		k.ProvenanceSHA256 = parts[1]
	}
	if parts[2] != "-" {
		k.TrustRootSHA256 = parts[2]
	}
	kb, err := k.key()
	return k, err == nil && string(kb) == s
}

// Facts returns the verification facts cached under k and when they were
// recorded, or [ErrNotFound].
func (s *Store) Facts(k FactKey) (pypi.Facts, time.Time, error) {
	key, err := k.key()
	if err != nil {
		return pypi.Facts{}, time.Time{}, err
	}
	var r factsRecord
	if err := s.get(bucketFacts, key, &r); err != nil {
		return pypi.Facts{}, time.Time{}, err
	}
	return r.Facts, r.RecordedAt, nil
}

// cacheableVerdict reports whether facts with verdict v may be cached:
// verified, unattested, invalid and unsupported. An error is transient and
// never cached; untrusted-publisher is a policy outcome, not a fact.
func cacheableVerdict(v pypi.Verdict) bool {
	switch v {
	case pypi.VerdictVerified, pypi.VerdictUnattested, pypi.VerdictInvalid, pypi.VerdictUnsupported:
		return true
	}
	return false
}

// PutFacts records f under k, stamped with the current time. It refuses
// (with [ErrNotCacheable]) facts whose verdict is [pypi.VerdictError], or not
// a verification verdict at all. Safe for many concurrent callers.
func (s *Store) PutFacts(k FactKey, f pypi.Facts) error {
	key, err := k.key()
	if err != nil {
		return err
	}
	if !cacheableVerdict(f.Verdict) {
		return fmt.Errorf("%w: verdict %q", ErrNotCacheable, f.Verdict)
	}
	return s.put(bucketFacts, key, factsRecord{header{recordVersion}, time.Now().UTC(), f})
}

// ProvenanceEntry is a cached answer of the Integrity API for one file.
type ProvenanceEntry struct {
	// Body is the provenance JSON exactly as fetched; nil when Absent.
	Body []byte
	// SHA256 is the lower-case hex sha256 of Body. PutProvenance fills it in
	// when empty and rejects a mismatch.
	SHA256 string
	// FetchedAt is when the body (or the absence) was fetched.
	FetchedAt time.Time
	// Absent records that the API said the file has no provenance (a 404),
	// as opposed to an unreachable API, which must not be cached.
	Absent bool
}

// Provenance returns the entry cached for the provenance URL of the named
// upstream, or [ErrNotFound].
func (s *Store) Provenance(upstream, url string) (ProvenanceEntry, error) {
	if url == "" || len(url) > maxURLKey {
		return ProvenanceEntry{}, fmt.Errorf("%w: provenance URL of %d bytes", ErrInvalidKey, len(url))
	}
	if err := checkUpstream(upstream); err != nil {
		return ProvenanceEntry{}, err
	}
	var r provenanceRecord
	if err := s.get(bucketProvenance, scopedKey(upstream, url), &r); err != nil {
		return ProvenanceEntry{}, err
	}
	return ProvenanceEntry{Body: r.Body, SHA256: r.SHA256, FetchedAt: r.FetchedAt, Absent: r.Absent}, nil
}

// PutProvenance caches e for the provenance URL of the named upstream. An
// Absent entry must have no body; otherwise e.SHA256, when set, must match
// the body (a [*DigestError] if not). Safe for many concurrent callers.
func (s *Store) PutProvenance(upstream, url string, e ProvenanceEntry) error {
	if url == "" || len(url) > maxURLKey {
		return fmt.Errorf("%w: provenance URL of %d bytes", ErrInvalidKey, len(url))
	}
	if err := checkUpstream(upstream); err != nil {
		return err
	}
	r := provenanceRecord{header: header{recordVersion}, FetchedAt: e.FetchedAt.UTC(), Absent: e.Absent}
	if e.Absent {
		if len(e.Body) > 0 || e.SHA256 != "" {
			return errors.New("cache: an absent provenance entry has no body")
		}
	} else {
		sum := sha256.Sum256(e.Body)
		got := hex.EncodeToString(sum[:])
		if e.SHA256 != "" && e.SHA256 != got {
			return &DigestError{Want: e.SHA256, Got: got}
		}
		r.Body, r.SHA256 = e.Body, got
	}
	return s.put(bucketProvenance, scopedKey(upstream, url), r)
}

// Page returns the snapshot of the page of project (PEP 503 normalised)
// fetched from the named upstream and when it was fetched, or
// [ErrNotFound].
func (s *Store) Page(upstream, project string) (*pypi.ProjectPage, time.Time, error) {
	if err := checkProject(project); err != nil {
		return nil, time.Time{}, err
	}
	if err := checkUpstream(upstream); err != nil {
		return nil, time.Time{}, err
	}
	var r pageRecord
	if err := s.get(bucketPages, scopedKey(upstream, project), &r); err != nil {
		return nil, time.Time{}, err
	}
	if r.Page == nil {
		return nil, time.Time{}, fmt.Errorf("%w: page %s has no body", ErrBadRecord, project)
	}
	return r.Page, r.FetchedAt, nil
}

// PutPage stores p as the snapshot of project's page from the named
// upstream, fetched at fetchedAt. project must be PEP 503-normalised.
func (s *Store) PutPage(upstream, project string, p *pypi.ProjectPage, fetchedAt time.Time) error {
	if err := checkProject(project); err != nil {
		return err
	}
	if err := checkUpstream(upstream); err != nil {
		return err
	}
	if p == nil {
		return errors.New("cache: PutPage with a nil page")
	}
	return s.put(bucketPages, scopedKey(upstream, project), pageRecord{header{recordVersion}, fetchedAt.UTC(), p})
}

// ProjectList returns the snapshot of the upstream project list and when it
// was fetched, or [ErrNotFound].
func (s *Store) ProjectList() (*pypi.ProjectList, time.Time, error) {
	var r listRecord
	if err := s.get(bucketLists, []byte(keyList), &r); err != nil {
		return nil, time.Time{}, err
	}
	if r.List == nil {
		return nil, time.Time{}, fmt.Errorf("%w: project list has no body", ErrBadRecord)
	}
	return r.List, r.FetchedAt, nil
}

// PutProjectList stores l as the snapshot of the upstream project list.
func (s *Store) PutProjectList(l *pypi.ProjectList, fetchedAt time.Time) error {
	if l == nil {
		return errors.New("cache: PutProjectList with a nil list")
	}
	return s.put(bucketLists, []byte(keyList), listRecord{header{recordVersion}, fetchedAt.UTC(), l})
}

// Ref returns the blob sha256 that the reference name points at, or
// [ErrNotFound]. Names are free-form, e.g. "metadata:<file sha256>".
func (s *Store) Ref(name string) (string, error) {
	if name == "" || len(name) > maxNameKey {
		return "", fmt.Errorf("%w: ref name of %d bytes", ErrInvalidKey, len(name))
	}
	var r refRecord
	if err := s.get(bucketRefs, []byte(name), &r); err != nil {
		return "", err
	}
	return r.SHA256, nil
}

// PutRef points the reference name at the blob sha256 (lower-case hex; the
// blob need not exist yet). Safe for many concurrent callers.
func (s *Store) PutRef(name, sha256 string) error {
	if name == "" || len(name) > maxNameKey {
		return fmt.Errorf("%w: ref name of %d bytes", ErrInvalidKey, len(name))
	}
	if !isHex64(sha256) {
		return fmt.Errorf("%w: sha256 %q", ErrInvalidKey, sha256)
	}
	return s.put(bucketRefs, []byte(name), refRecord{header{recordVersion}, sha256, time.Now().UTC()})
}

// History is what pipgate has seen of one project over time, kept for
// checks across releases (a publisher change, attestations that stop).
type History struct {
	// FirstSeen is when the project was first recorded.
	FirstSeen time.Time `json:"first_seen"`
	// Publishers are the verified signer identities seen, in first-seen order.
	Publishers []HistoryPublisher `json:"publishers,omitempty"`
	// LastAttestedVersion is the version of the latest verified file seen
	// (by observation time); "" when none.
	LastAttestedVersion string `json:"last_attested_version,omitempty"`
	// LastAttestedAt is when LastAttestedVersion was recorded.
	LastAttestedAt time.Time `json:"last_attested_at,omitzero"`
	// Record is the project's continuity record as first established: its
	// first attested file and that file's signer, the publisher of record.
	// Once set it is never changed, so a file deleted upstream later does
	// not take the publisher of record with it. Nil: not established yet.
	Record *HistoryRecord `json:"record,omitempty"`
}

// HistoryRecord is the first attested file of a project and its signer.
type HistoryRecord struct {
	Filename   string        `json:"filename"`
	Version    string        `json:"version"`
	UploadTime time.Time     `json:"upload_time,omitzero"`
	Publisher  pypi.Identity `json:"publisher"`
	// RecordedAt is when pipgate established it.
	RecordedAt time.Time `json:"recorded_at"`
}

// HistoryPublisher is one signer identity seen for a project.
type HistoryPublisher struct {
	// Identity is the identity string, [pypi.Identity.String].
	Identity string `json:"identity"`
	// FirstSeen and LastSeen bound the observations of this identity.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Versions are the versions signed by this identity, in first-seen order,
	// without duplicates.
	Versions []string `json:"versions,omitempty"`
}

// ObserveVerified records that version was verified as signed by identity
// at time at. It returns true when identity is new for a project that
// already had another publisher: a publisher change.
func (h *History) ObserveVerified(identity, version string, at time.Time) (changed bool) {
	if h.FirstSeen.IsZero() || at.Before(h.FirstSeen) {
		h.FirstSeen = at
	}
	if !at.Before(h.LastAttestedAt) {
		h.LastAttestedVersion, h.LastAttestedAt = version, at
	}
	for i := range h.Publishers {
		p := &h.Publishers[i]
		if p.Identity != identity {
			continue
		}
		if at.After(p.LastSeen) {
			p.LastSeen = at
		}
		if at.Before(p.FirstSeen) {
			p.FirstSeen = at
		}
		for _, v := range p.Versions {
			if v == version {
				return false
			}
		}
		p.Versions = append(p.Versions, version)
		return false
	}
	h.Publishers = append(h.Publishers, HistoryPublisher{Identity: identity, FirstSeen: at, LastSeen: at, Versions: []string{version}})
	return len(h.Publishers) > 1
}

// History returns the history of project (PEP 503 normalised), or
// [ErrNotFound].
func (s *Store) History(project string) (History, error) {
	if err := checkProject(project); err != nil {
		return History{}, err
	}
	var r historyRecord
	if err := s.get(bucketHistory, []byte(project), &r); err != nil {
		return History{}, err
	}
	return r.History, nil
}

// UpdateHistory reads project's history (the zero History when there is
// none), lets fn change it, and writes it back, atomically. FirstSeen is set
// to now when fn leaves it zero. fn runs inside a write transaction: it must
// be quick, must not call the Store, and may run more than once (bbolt
// retries a failed batch one call at a time), so it must only change h.
func (s *Store) UpdateHistory(project string, fn func(*History)) error {
	if err := checkProject(project); err != nil {
		return err
	}
	key := []byte(project)
	err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucketHistory))
		if err != nil {
			return err
		}
		var r historyRecord
		if raw := b.Get(key); raw != nil {
			if err := decode(raw, &r); err != nil {
				return err
			}
		}
		fn(&r.History)
		if r.History.FirstSeen.IsZero() {
			r.History.FirstSeen = time.Now().UTC()
		}
		r.V = recordVersion
		val, err := encode(r)
		if err != nil {
			return err
		}
		return b.Put(key, val)
	})
	if err != nil {
		return fmt.Errorf("cache: updating history of %s: %w", project, err)
	}
	return nil
}

// Records returns the continuity record kept for each project that has one
// ([History.Record]), by project: what a replay of the policy judges
// continuity against. Undecodable histories are skipped.
func (s *Store) Records() (map[string]HistoryRecord, error) {
	out := map[string]HistoryRecord{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketHistory))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r historyRecord
			if decode(v, &r) == nil && r.History.Record != nil {
				out[string(k)] = *r.History.Record
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cache: reading continuity records: %w", err)
	}
	return out, nil
}
