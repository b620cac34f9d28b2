package cache

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// oldDecisionRows are two decision history rows exactly as pipgate wrote
// them when Decision's Verdict, Action and Finding were plain strings
// (captured from that code's AddDecisions): key and value bytes.
var oldDecisionRows = []struct{ key, value string }{
	{
		"sampleproject\x00sampleproject-3.0.0.tar.gz\x00\x00\x00unattested\x00allow\x00\x00\x00",
		`{"v":1,"decision":{"project":"sampleproject","version":"3.0.0","filename":"sampleproject-3.0.0.tar.gz","verdict":"unattested","action":"allow","count":1,"first_seen":"2026-03-01T12:00:00Z","last_seen":"2026-03-01T12:00:00Z"}}`,
	},
	{
		"sampleproject\x00sampleproject-4.0.0-py3-none-any.whl\x00ab12\x00pypi\x00untrusted-publisher\x00block\x00sampleproject\x00publisher-changed\x00github:evil/fork@release.yml (refs/tags/v4)",
		`{"v":1,"decision":{"project":"sampleproject","version":"4.0.0","filename":"sampleproject-4.0.0-py3-none-any.whl","sha256":"ab12","upstream":"pypi","verdict":"untrusted-publisher","action":"block","rule":"sampleproject","finding":"publisher-changed","identity":"github:evil/fork@release.yml (refs/tags/v4)","reason":"publisher changed","signer":{"kind":"github","issuer":"https://token.actions.githubusercontent.com","repository":"evil/fork","workflow":"release.yml","ref":"refs/tags/v4"},"upload_time":"2026-03-01T11:00:00Z","count":3,"first_seen":"2026-03-01T12:00:00Z","last_seen":"2026-03-01T12:01:00Z"}}`,
	},
}

// oldDecisionValues are the rows above as typed values, most recently seen
// first (the order Decisions returns).
func oldDecisionValues() []Decision {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return []Decision{
		{Project: "sampleproject", Version: "4.0.0", Filename: "sampleproject-4.0.0-py3-none-any.whl", SHA256: "ab12", Upstream: "pypi",
			Verdict: pypi.VerdictUntrustedPublisher, Action: policy.ActionBlock, Rule: "sampleproject", Finding: policy.FindingPublisherChanged,
			Identity: "github:evil/fork@release.yml (refs/tags/v4)", Reason: "publisher changed",
			Signer: &pypi.Identity{Kind: pypi.KindGitHub, Issuer: "https://token.actions.githubusercontent.com",
				Repository: "evil/fork", Workflow: "release.yml", Ref: "refs/tags/v4"},
			UploadTime: t0.Add(-time.Hour), Count: 3, FirstSeen: t0, LastSeen: t0.Add(time.Minute)},
		{Project: "sampleproject", Version: "3.0.0", Filename: "sampleproject-3.0.0.tar.gz",
			Verdict: pypi.VerdictUnattested, Action: policy.ActionAllow, Count: 1, FirstSeen: t0, LastSeen: t0},
	}
}

// A decision history written before the row's verdict, action and finding
// were typed reads back as the same typed values (an upgrade keeps the
// history 'pipgate status', 'report' and 'policy suggest' read), a merge
// into such a row finds it by the same key, and rows written now are the
// same bytes under the same keys.
func TestDecisionRowsOfOldCodeRead(t *testing.T) {
	dir := t.TempDir()
	old := map[string]string{}
	for _, r := range oldDecisionRows {
		old[r.key] = r.value
	}
	writeDB(t, dir, map[string]map[string]string{
		bucketMeta:      {keySchema: strconv.Itoa(SchemaVersion)},
		bucketDecisions: old,
	})
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	got, err := s.Decisions("sampleproject")
	if err != nil {
		t.Fatal(err)
	}
	want := oldDecisionValues()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Decisions of the old rows:\n got %+v\nwant %+v", got, want)
	}
	obs := Observations(got)
	if o := obs[0]; o.Verdict != pypi.VerdictUntrustedPublisher || o.Action != policy.ActionBlock ||
		o.Finding != policy.FindingPublisherChanged || o.Facts.Verdict != pypi.VerdictVerified {
		t.Errorf("Observation of the blocked row: %+v; want untrusted-publisher, block, publisher-changed, verified facts", o)
	}
	rep, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("Verify of the old rows: %v", p)
	}

	// The same decision again merges into the old row (same key): no third row.
	again := want[1]
	again.Count, again.FirstSeen, again.LastSeen = 1, want[1].LastSeen.Add(time.Hour), want[1].LastSeen.Add(time.Hour)
	if err := s.AddDecisions([]Decision{again}, 0); err != nil {
		t.Fatal(err)
	}
	if rows, _ := s.Decisions("sampleproject"); len(rows) != 2 || rows[0].Count != 2 {
		t.Errorf("after one more unattested download: %+v; want 2 rows, the merged one counted twice", rows)
	}

	// Written by this code, the rows are the old bytes under the old keys.
	fresh, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.AddDecisions(want, 0); err != nil {
		t.Fatal(err)
	}
	written := map[string]string{}
	err = fresh.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketDecisions)).ForEach(func(k, v []byte) error {
			written[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(written, old) {
		t.Errorf("rows written now differ from the old code's:\n got %q\nwant %q", written, old)
	}
}
