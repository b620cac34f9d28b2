package policy

import (
	"fmt"
	"time"

	"github.com/pipgate/pipgate/pypi"
)

// Replaying the decision history under another policy ('pipgate policy
// test'): each file the history holds is decided again by the code the
// server decides downloads with ([Policy.DecideFile]), from the facts the
// history recorded: the verification verdict and the verified signer. It
// verifies nothing and fetches nothing, so it is exact for what depends on
// those facts alone (require, publishers, action, on_invalid, and on_error
// under require none), and approximate where the server would know more:
//   - continuity is judged against the continuity record the server kept
//     for the project (its first attested file and publisher of record)
//     when there is one, else against a record derived from the files in
//     the history alone: files never downloaded are not seen;
//   - the cooldown is measured at the time of the replay, from the upload
//     time the history recorded; a file without one is replayed without
//     the cooldown (and says so);
//   - a file whose facts were never established (its provenance could not
//     be checked whenever it was decided) is not replayed;
//   - the history is bounded (rows last seen longest ago are dropped
//     first), so a file decided long ago may be missing.

// ReplayOptions configure [Replay].
type ReplayOptions struct {
	// Now is the time cooldowns are measured at.
	Now time.Time
	// Records are the continuity records the server kept, by project
	// ([Record.First] and [Record.Publisher] set).
	Records map[string]Record
}

// ReplayedDecision is a decision recorded in the history: the latest one
// about a file.
type ReplayedDecision struct {
	Action  Action       `json:"action"`
	Verdict pypi.Verdict `json:"verdict"`
	Rule    string       `json:"rule,omitempty"`
	Finding Finding      `json:"finding,omitempty"`
	Reason  string       `json:"reason,omitempty"`
}

// ReplayFile is one file of the history, replayed.
type ReplayFile struct {
	Project  string `json:"project"`
	Version  string `json:"version,omitempty"`
	Filename string `json:"filename"`
	SHA256   string `json:"sha256,omitempty"`
	// Served and Refused count the downloads let through and refused (403).
	Served   int64     `json:"served"`
	Refused  int64     `json:"refused"`
	LastSeen time.Time `json:"last_seen"`
	// Signer is the verified signer the replay used; empty when none.
	Signer string `json:"signer,omitempty"`
	// Before is the latest decision recorded; After the replayed one.
	Before ReplayedDecision `json:"before"`
	After  *Decision        `json:"after,omitempty"`
	// Note says what the replay could not check for this file.
	Note string `json:"note,omitempty"`
}

// ReplayRecord is the continuity record a project was replayed against.
type ReplayRecord struct {
	Project string `json:"project"`
	// Source is "kept" (the record the server kept), "history" (derived
	// from the files in the decision history) or "none" (no attested file
	// in the history).
	Source    string `json:"source"`
	First     string `json:"first,omitempty"`     // the first attested file
	Publisher string `json:"publisher,omitempty"` // its signer, the publisher of record
	Note      string `json:"note,omitempty"`
}

// ReplayResult is what [Replay] found.
type ReplayResult struct {
	// Files is how many distinct files the history holds.
	Files int `json:"files"`
	// Refuse: the latest decision served the file; the policy refuses it (403).
	Refuse []ReplayFile `json:"refuse"`
	// Allow: the latest decision refused the file; the policy serves it.
	Allow []ReplayFile `json:"allow"`
	// Yank: served and not listed as yanked by the latest decision; the
	// policy lists it as yanked (pip installs it only when pinned).
	Yank []ReplayFile `json:"yank"`
	// Unchanged counts files replayed to no change of the above kinds.
	Unchanged int `json:"unchanged"`
	// Skipped are the files not replayed, each with its note.
	Skipped []ReplayFile `json:"skipped"`
	// Records are the continuity records used, one per project whose rule
	// checks continuity.
	Records []ReplayRecord `json:"records,omitempty"`
}

// Replay decides every file of the history under p (see the package notes
// on what a replay can and cannot know) and sorts the outcomes against each
// file's latest recorded decision. Files are in project and filename order.
func Replay(p *Policy, obs []Observation, o ReplayOptions) ReplayResult {
	res := ReplayResult{Refuse: []ReplayFile{}, Allow: []ReplayFile{}, Yank: []ReplayFile{}, Skipped: []ReplayFile{}}
	for _, pf := range byProject(groupFiles(obs)) {
		project := pf[0].project
		r := p.lookup(project)
		var rec *Record
		if r.Continuity != ActionNone {
			var rr ReplayRecord
			rec, rr = replayRecord(project, pf, o.Records)
			res.Records = append(res.Records, rr)
		}
		for _, f := range pf {
			res.Files++
			last := f.last
			rf := ReplayFile{
				Project: project, Version: f.version, Filename: f.filename, SHA256: f.sha256,
				Served: f.served, Refused: f.refused, LastSeen: f.seen,
				Before: ReplayedDecision{Action: last.Action, Verdict: last.Verdict, Rule: last.Rule, Finding: last.Finding, Reason: last.Reason},
			}
			if !f.factsKnown {
				rf.Note = "not replayed: its provenance could not be checked whenever it was decided (verdict error), so no verification facts were recorded"
				res.Skipped = append(res.Skipped, rf)
				continue
			}
			if f.facts.Identity != nil {
				rf.Signer = f.facts.Identity.String()
			}
			withCooldown := !f.uploadTime.IsZero()
			if r.MinReleaseAge > 0 && !withCooldown {
				rf.Note = "cooldown not replayed: the history has no upload time for this file"
			}
			in := File{Facts: f.facts, Filename: f.filename, Version: f.parsedVersion(), UploadTime: f.uploadTime, Now: o.Now, Record: rec}
			d := p.decideFile(project, in, withCooldown)
			rf.After = &d
			switch {
			case last.Action != ActionBlock && d.Blocks():
				res.Refuse = append(res.Refuse, rf)
			case last.Action == ActionBlock && !d.Blocks():
				res.Allow = append(res.Allow, rf)
			case last.Action != ActionYank && d.Action == ActionYank:
				res.Yank = append(res.Yank, rf)
			default:
				res.Unchanged++
			}
		}
	}
	return res
}

// replayRecord is project's continuity record for a replay: the one the
// server kept, else one derived from the files of the history (pf).
func replayRecord(project string, pf []*observedFile, kept map[string]Record) (*Record, ReplayRecord) {
	timed := true
	for _, f := range pf {
		if f.uploadTime.IsZero() {
			timed = false
		}
	}
	if k, ok := kept[project]; ok && k.First != nil {
		rec := k
		rec.Timed = timed && !k.First.UploadTime.IsZero()
		return &rec, ReplayRecord{Project: project, Source: "kept", First: k.First.Filename,
			Publisher: trustPublisher(k.Publisher).String()}
	}
	var ups []Upload
	var fs []*observedFile
	for _, f := range pf {
		v := f.parsedVersion()
		if v == nil {
			continue
		}
		ups = append(ups, Upload{Filename: f.filename, Version: *v, UploadTime: f.uploadTime,
			Provenance: !f.factsKnown || f.facts.Verdict != pypi.VerdictUnattested})
		fs = append(fs, f)
	}
	byName := make(map[string]*observedFile, len(fs))
	for _, f := range fs {
		byName[f.filename] = f
	}
	timed = SortUploads(ups)
	rec := FindRecord(ups, timed, func(i int) Attestation {
		f := byName[ups[i].Filename]
		switch {
		case !f.factsKnown:
			return Attestation{Unknown: true}
		case f.facts.Verdict == pypi.VerdictVerified && f.facts.Identity != nil:
			return Attestation{Publisher: f.facts.Identity}
		}
		return Attestation{}
	})
	rr := ReplayRecord{Project: project, Source: "history"}
	switch {
	case rec.First != nil:
		rr.First, rr.Publisher = rec.First.Filename, trustPublisher(rec.Publisher).String()
		rr.Note = fmt.Sprintf("derived from the %d files of the decision history: the server derives it from every file on the project page, downloaded or not, and keeps it once found", len(pf))
	case rec.Stop != nil:
		rr.Note = fmt.Sprintf("derived from the decision history up to %s, whose facts were never established: continuity decisions after it take on_error", rec.Stop.Filename)
	default:
		rr.Source = "none"
		rr.Note = "no attested file in the decision history: no publisher of record to replay against"
	}
	return &rec, rr
}
