package cache

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// The decision history: what the proxy served or refused, one row per
// distinct decision about one file (see [DecisionKey]) with a count and the
// first and last time it was made. It survives restarts (it lives in the
// decisions bucket of pipgate.db) and is bounded: past the row limit given to
// [Store.AddDecisions], the rows last seen longest ago are dropped first.
// It is what 'pipgate status' and 'pipgate report' read, and what a policy
// suggestion or a policy replay learns from: every verified publisher of each
// file, and every decision with its rule.

// DefaultMaxDecisions is the row limit of the decision history callers use
// unless they have a reason for another. A row holds about 650 bytes of
// data, and bbolt's pages are about half full after random inserts and
// trims, so a full history takes 84-130 MB of pipgate.db (measured with
// 50,000 rows). A project with 50 files, each decided one way, is 50 rows:
// room for a thousand such projects.
const DefaultMaxDecisions = 50_000

// maxDecisionKey bounds a row's key; longer keys are refused (ErrInvalidKey).
const maxDecisionKey = 4 << 10

// Decision is one row of the decision history.
type Decision struct {
	Project  string         `json:"project"`
	Version  string         `json:"version,omitempty"`
	Filename string         `json:"filename"`
	SHA256   string         `json:"sha256,omitempty"`
	Upstream string         `json:"upstream,omitempty"`
	Verdict  pypi.Verdict   `json:"verdict"`
	Action   policy.Action  `json:"action"` // allow, warn, yank, block
	Rule     string         `json:"rule,omitempty"`
	Finding  policy.Finding `json:"finding,omitempty"`
	Identity string         `json:"identity,omitempty"` // the verified publisher, pypi.Identity.String()
	Reason   string         `json:"reason,omitempty"`   // the latest reason given (not part of the key)
	// Signer is the verified signer in full (Identity is its string form),
	// for a replay of the policy: publishers are matched on its fields. Not
	// part of the key; nil in rows of unverified files (and in rows written
	// before it was recorded, where [Decision.Facts] reads Identity).
	Signer *pypi.Identity `json:"signer,omitempty"`
	// UploadTime is the file's PEP 700 upload-time when the index gave one
	// (for a replay of continuity and cooldown); not part of the key.
	UploadTime time.Time `json:"upload_time,omitzero"`
	// Count is how many times this decision was made.
	Count     int64     `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// DecisionKey is the key of d's row: the project, the filename, the digest
// and everything decided about the file (verdict, action, rule, finding,
// publisher). The project comes first, so one project's rows are adjacent.
func DecisionKey(d Decision) string {
	return strings.Join([]string{d.Project, d.Filename, d.SHA256, d.Upstream,
		string(d.Verdict), string(d.Action), d.Rule, string(d.Finding), d.Identity}, "\x00")
}

type decisionRecord struct {
	header
	Decision Decision `json:"decision"`
}

// AddDecisions merges ds into the history in one write transaction: a row
// already there gets the counts added, the earlier first and later last
// seen, and the newer version and reason; a new row is inserted. Then, when
// the bucket holds more than maxRows rows (maxRows <= 0: [DefaultMaxDecisions]), the
// rows last seen longest ago are deleted down to nine tenths of maxRows, so the
// scan this takes happens once per maxRows/10 new rows. A decision without a
// project or filename, or with an oversized key, is skipped and counted in
// the returned error (ErrInvalidKey); the others are written all the same.
func (s *Store) AddDecisions(ds []Decision, maxRows int) error {
	if maxRows <= 0 {
		maxRows = DefaultMaxDecisions
	}
	var bad int
	err := s.update(func(tx *bolt.Tx) error {
		bad = 0
		b, err := tx.CreateBucketIfNotExists([]byte(bucketDecisions))
		if err != nil {
			return err
		}
		for _, d := range ds {
			k := DecisionKey(d)
			if d.Project == "" || d.Filename == "" || len(k) > maxDecisionKey {
				bad++
				continue
			}
			var r decisionRecord
			if raw := b.Get([]byte(k)); raw != nil && decode(raw, &r) == nil {
				d = mergeDecision(r.Decision, d)
			}
			if d.Count < 1 {
				d.Count = 1
			}
			val, err := encode(decisionRecord{header{recordVersion}, d})
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), val); err != nil {
				return err
			}
		}
		return trimDecisions(b, maxRows)
	})
	if err != nil {
		return fmt.Errorf("cache: adding decisions: %w", err)
	}
	if bad > 0 {
		return fmt.Errorf("cache: %d decisions skipped: %w", bad, ErrInvalidKey)
	}
	return nil
}

// mergeDecision adds the newer row n into the stored row old.
func mergeDecision(old, n Decision) Decision {
	if n.Count < 1 {
		n.Count = 1
	}
	n.Count += old.Count
	if !old.FirstSeen.IsZero() && (n.FirstSeen.IsZero() || old.FirstSeen.Before(n.FirstSeen)) {
		n.FirstSeen = old.FirstSeen
	}
	if old.LastSeen.After(n.LastSeen) {
		n.LastSeen, n.Version, n.Reason = old.LastSeen, old.Version, old.Reason
		if old.Signer != nil {
			n.Signer = old.Signer
		}
		if !old.UploadTime.IsZero() {
			n.UploadTime = old.UploadTime
		}
	}
	if n.Version == "" {
		n.Version = old.Version
	}
	if n.Signer == nil {
		n.Signer = old.Signer
	}
	if n.UploadTime.IsZero() {
		n.UploadTime = old.UploadTime
	}
	return n
}

// trimDecisions deletes the rows last seen longest ago (ties: by key) until
// b holds 9/10 of maxRows, once it holds more than maxRows. Undecodable rows go
// first.
func trimDecisions(b *bolt.Bucket, maxRows int) error {
	// Counted with a cursor: Bucket.Stats does not see this transaction's
	// own writes. Keys only, no decoding: cheap next to the batch's fsync.
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	if n <= maxRows {
		return nil
	}
	type row struct {
		k    []byte
		last time.Time
	}
	rows := make([]row, 0, n)
	err := b.ForEach(func(k, v []byte) error {
		var r decisionRecord
		if decode(v, &r) != nil {
			r.Decision.LastSeen = time.Time{}
		}
		rows = append(rows, row{append([]byte(nil), k...), r.Decision.LastSeen})
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].last.Equal(rows[j].last) {
			return rows[i].last.Before(rows[j].last)
		}
		return bytes.Compare(rows[i].k, rows[j].k) < 0
	})
	keep := maxRows - maxRows/10
	for _, r := range rows[:len(rows)-keep] {
		if err := b.Delete(r.k); err != nil {
			return err
		}
	}
	return nil
}

// Decisions returns the decision history of project (PEP 503 normalised),
// most recently seen first, or of every project when project is "" (then by
// project, and most recently seen first within one). Undecodable rows are
// skipped. No rows is not an error.
func (s *Store) Decisions(project string) ([]Decision, error) {
	if project != "" {
		if err := checkProject(project); err != nil {
			return nil, err
		}
	}
	var raws [][]byte
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketDecisions))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		prefix := []byte(nil)
		if project != "" {
			prefix = []byte(project + "\x00")
		}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			raws = append(raws, append([]byte(nil), v...))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache: reading decisions: %w", err)
	}
	out := make([]Decision, 0, len(raws))
	for _, raw := range raws {
		var r decisionRecord
		if err := decode(raw, &r); err != nil {
			continue
		}
		out = append(out, r.Decision)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Project != out[j].Project {
			return out[i].Project < out[j].Project
		}
		if !out[i].LastSeen.Equal(out[j].LastSeen) {
			return out[i].LastSeen.After(out[j].LastSeen)
		}
		return out[i].Filename < out[j].Filename
	})
	return out, nil
}

// checkDecisionRecord is Verify's check of one decisions row.
func checkDecisionRecord(k, v []byte) error {
	var r decisionRecord
	if err := decode(v, &r); err != nil {
		return err
	}
	if DecisionKey(r.Decision) != string(k) {
		return errors.New("key does not match the decision")
	}
	return nil
}

// Facts returns the verification facts d was decided from, as far as the
// row tells them: the verdict (a verified file refused as
// untrusted-publisher was verified), and the signer (Signer, else parsed
// from Identity). Failure details are not kept: Reason and Detail are empty.
func (d Decision) Facts() pypi.Facts {
	f := pypi.Facts{Verdict: d.Verdict}
	if f.Verdict == pypi.VerdictUntrustedPublisher {
		f.Verdict = pypi.VerdictVerified
	}
	if f.Verdict != pypi.VerdictVerified {
		return f
	}
	if d.Signer != nil {
		id := *d.Signer
		f.Identity = &id
	} else if d.Identity != "" {
		f.Identity = parseIdentity(d.Identity)
	}
	return f
}

// parseIdentity inverts [pypi.Identity.String] as far as it can: kind,
// repository, workflow and ref of GitHub and GitLab signers, the e-mail of
// Google ones, subject and issuer of any other. It returns nil for a string
// it cannot read.
func parseIdentity(s string) *pypi.Identity {
	k, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return nil
	}
	switch kind := pypi.PublisherKind(k); kind {
	case pypi.KindGitHub, pypi.KindGitLab:
		id := &pypi.Identity{Kind: kind}
		if i := strings.Index(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
			rest, id.Ref = rest[:i], rest[i+2:len(rest)-1]
		}
		id.Repository, id.Workflow, _ = strings.Cut(rest, "@")
		if id.Repository == "" {
			return nil
		}
		return id
	case pypi.KindGoogle:
		return &pypi.Identity{Kind: kind, Email: rest}
	case pypi.KindIdentity:
		i := strings.LastIndex(rest, " (")
		if i < 0 || !strings.HasSuffix(rest, ")") {
			return nil
		}
		return &pypi.Identity{Kind: kind, Subject: rest[:i], Issuer: rest[i+2 : len(rest)-1]}
	}
	return nil
}

// Observations turns decision history rows into what the policy's
// suggestion, replay and coverage read ([policy.Observation]).
func Observations(rows []Decision) []policy.Observation {
	out := make([]policy.Observation, len(rows))
	for i, d := range rows {
		out[i] = policy.Observation{
			Project: d.Project, Version: d.Version, Filename: d.Filename, SHA256: d.SHA256,
			Facts: d.Facts(), UploadTime: d.UploadTime,
			Verdict: d.Verdict, Action: d.Action, Rule: d.Rule,
			Finding: d.Finding, Identity: d.Identity, Reason: d.Reason,
			Count: d.Count, FirstSeen: d.FirstSeen, LastSeen: d.LastSeen,
		}
	}
	return out
}
