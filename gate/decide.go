package gate

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/policy"
	"github.com/pipgate/pipgate/pypi"
)

// Trust over time: the proxy's half of the continuity and cooldown checks.
// The policy decides (policy.DecideFile) against the project's continuity
// record (policy.FindRecord: its first attested file, whose signer is the
// publisher of record); the proxy establishes what that needs: the file's
// release and upload time, and the facts of the project's files in history
// order up to the first attested one. Those facts are the ordinary
// per-file facts (bbolt, keyed like any other), so the decision does not
// depend on which files were requested first, and a policy reload changes
// it without re-verifying anything. Every file on the page counts (yanked
// or not, of every release); the page holds only files whose names parse
// as the project's distributions (pypi.ProjectPage.KeepDistributions).

// DecideFile decides a download of f with facts already established. When
// the rule checks continuity it establishes the project's record, fetching
// and verifying (once each, cached) the files it needs: at most
// policy.MaxRecordChecks, usually one.
func (s *Gate) DecideFile(ctx context.Context, project string, f *pypi.File, facts pypi.Facts) policy.Decision {
	pol := s.policy.Current()
	in := policy.File{Facts: facts, Filename: f.Filename, Now: s.now(), UploadTime: s.hot.uploadTime(f.UploadTime),
		Version: s.hot.versionOf(f.Filename)}
	if in.Version != nil && pol.Lookup(project).Continuity != policy.ActionNone {
		// The page f came from (findFile just read it: an in-memory hit).
		page, _, err := s.Page(ctx, project, AnyAge)
		if err == nil {
			rec := s.record(ctx, project, s.pageHistory(page), true)
			in.Record = &rec
		} else {
			s.log.Warn("continuity not checked: no project page", "project", project, "filename", f.Filename, "err", err)
		}
	}
	return pol.DecideFile(project, in)
}

// fileInputVersion is what the policy needs about f besides the record,
// with f's version already parsed (nil: the filename does not parse).
func fileInputVersion(f *pypi.File, facts pypi.Facts, now time.Time, version *pypi.Version) policy.File {
	return policy.File{Facts: facts, Filename: f.Filename, Now: now, UploadTime: uploadTime(f), Version: version}
}

// uploadTime parses the PEP 700 upload-time; zero when absent or malformed
// (which the cooldown treats as too new).
func uploadTime(f *pypi.File) time.Time {
	if f.UploadTime == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, f.UploadTime)
	if err != nil {
		return time.Time{}
	}
	return t
}

// history is a page's files in history order (policy.SortUploads).
type history struct {
	uploads []policy.Upload
	files   []*pypi.File // files[i] is uploads[i]'s file
	timed   bool
}

// newHistory orders the files of p whose names parse (all of them, on a
// page pipgate keeps).
func newHistory(p *pypi.ProjectPage) *history {
	h := &history{uploads: make([]policy.Upload, 0, len(p.Files))}
	byName := make(map[string]*pypi.File, len(p.Files))
	for i := range p.Files {
		f := &p.Files[i]
		v, ok := pypi.PipFilenameVersion(f.Filename)
		if !ok {
			continue
		}
		if _, dup := byName[f.Filename]; dup {
			continue // the first of a name is the one served
		}
		byName[f.Filename] = f
		h.uploads = append(h.uploads, policy.Upload{Filename: f.Filename, Version: v, UploadTime: uploadTime(f), Provenance: f.Provenance != ""})
	}
	h.timed = policy.SortUploads(h.uploads)
	h.files = make([]*pypi.File, len(h.uploads))
	for i := range h.uploads {
		h.files[i] = byName[h.uploads[i].Filename]
	}
	return h
}

// record establishes project's continuity record: the one kept in bbolt
// when there is one (the first attested file as pipgate first found it, so
// a file deleted upstream later does not take the publisher of record
// with it), else from h. With verify, facts not cached yet are fetched and
// verified (once per file, cached; policy.FindRecord checks at most
// policy.MaxRecordChecks files); without it, only cached facts are used
// and the walk stops, Unknown, at the first file whose facts are not
// cached. A record found is kept.
func (s *Gate) record(ctx context.Context, project string, h *history, verify bool) policy.Record {
	if first, pub, ok := s.keptRecord(project); ok {
		return policy.Record{Timed: h.timed, First: &first, Publisher: pub}
	}
	rec := s.walk(ctx, project, h, verify)
	if rec.First != nil {
		s.keepRecord(project, rec)
	}
	return rec
}

// walk is policy.FindRecord over h, with the facts record describes.
func (s *Gate) walk(ctx context.Context, project string, h *history, verify bool) policy.Record {
	return policy.FindRecord(h.uploads, h.timed, func(i int) policy.Attestation {
		f := h.files[i]
		facts, ok := s.CachedFacts(project, f)
		if !ok && verify {
			facts, _ = s.Facts(ctx, project, f)
			ok = true
		}
		switch {
		case !ok || facts.Verdict == pypi.VerdictError:
			return policy.Attestation{Unknown: true}
		case facts.Verdict == pypi.VerdictVerified && facts.Identity != nil:
			return policy.Attestation{Publisher: facts.Identity}
		}
		return policy.Attestation{}
	})
}

// release is one release on a project page.
type release struct {
	v     pypi.Version
	files []*pypi.File
}

// newestReleases groups the files of the k newest releases of p (1.0 and
// 1.0.0 are one: PEP 440 equal), newest first by PEP 440; files whose
// names do not parse are left out. It holds k releases at a time, never
// one per release of the page (a page may list 390k files of as many
// releases), and reads each file's version alone (pypi.PipFilenameVersion).
// The first j releases of newestReleases(p, k) are newestReleases(p, j).
func newestReleases(p *pypi.ProjectPage, k int) []release {
	if k <= 0 {
		return nil
	}
	var out []release // newest first, at most k
	for i := range p.Files {
		v, ok := pypi.PipFilenameVersion(p.Files[i].Filename)
		if !ok {
			continue
		}
		// The first release not newer than v: v's own, or v's place.
		j := sort.Search(len(out), func(j int) bool { return out[j].v.Compare(v) <= 0 })
		if j < len(out) && out[j].v.Equal(v) {
			out[j].files = append(out[j].files, &p.Files[i])
			continue
		}
		if j >= k {
			continue
		}
		out = slices.Insert(out, j, release{v: v, files: []*pypi.File{&p.Files[i]}})
		if len(out) > k {
			out = out[:k]
		}
	}
	return out
}

// PageDecider decides the files of one page for the index, from cached
// facts only: rendering never fetches or verifies. When the continuity
// record needs facts not cached yet, the index leaves continuity to the
// download (which establishes them) rather than guess; eager verification
// establishes them.
type PageDecider struct {
	s    *Gate
	pol  *policy.Policy
	page *pypi.ProjectPage
	now  time.Time
	// rec is the page's continuity record from cached facts, once looked
	// for (recDone); nil when it is not known yet.
	rec     *policy.Record
	recDone bool
	// until is the earliest time a decision made here changes by itself
	// (a cooldown ending); zero when none does.
	until time.Time
	// v is the version of the file being decided, one Version reused file
	// after file (the policy copies what it keeps): a render of 390k files
	// does not allocate one each.
	v pypi.Version
}

// Decide returns the decision for f, and false when nothing is known that
// could change how f is listed (no cached facts and no cooldown).
func (pd *PageDecider) Decide(f *pypi.File) (policy.Decision, bool) {
	facts, ok := pd.s.CachedFacts(pd.page.Name, f)
	var version *pypi.Version
	if v, ok := pypi.PipFilenameVersion(f.Filename); ok {
		pd.v = v
		version = &pd.v
	}
	in := fileInputVersion(f, facts, pd.now, version)
	var d policy.Decision
	if ok {
		if in.Version != nil && pd.pol.Lookup(pd.page.Name).Continuity != policy.ActionNone {
			if !pd.recDone {
				pd.recDone = true
				if rec := pd.s.record(context.Background(), pd.page.Name, pd.s.pageHistory(pd.page), false); !rec.Unknown {
					pd.rec = &rec
				}
			}
			in.Record = pd.rec
		}
		d = pd.pol.DecideFile(pd.page.Name, in)
	} else if d, ok = pd.pol.DecidePending(pd.page.Name, in); !ok {
		return d, false
	}
	if !d.Until.IsZero() && (pd.until.IsZero() || d.Until.Before(pd.until)) {
		pd.until = d.Until
	}
	return d, true
}

// recordPending reports whether p's rule checks continuity and its record
// needs facts that are not cached yet (eager verification then
// establishes them, so the index can list findings as yanked).
func (s *Gate) recordPending(p *pypi.ProjectPage) bool {
	if s.policy.Current().Lookup(p.Name).Continuity == policy.ActionNone {
		return false
	}
	return s.record(context.Background(), p.Name, s.pageHistory(p), false).Unknown
}

// histCache keeps the history order of recently decided pages, so a
// download of a project with thousands of files does not parse and sort
// them all each time. An entry is valid for the very page snapshot it was
// made from.
type histCache struct {
	mu sync.Mutex
	m  map[string]histEntry // by project
}

type histEntry struct {
	page *pypi.ProjectPage
	h    *history
}

// histCacheMax bounds histCache; past it the map starts over.
const histCacheMax = 1024

// pageHistory is newHistory(p), cached per page snapshot. The result is
// shared: callers must not change it.
func (s *Gate) pageHistory(p *pypi.ProjectPage) *history {
	c := &s.hist
	c.mu.Lock()
	e, ok := c.m[p.Name]
	c.mu.Unlock()
	if ok && e.page == p {
		return e.h
	}
	h := newHistory(p)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= histCacheMax {
		c.m = map[string]histEntry{}
	}
	c.m[p.Name] = histEntry{page: p, h: h}
	c.mu.Unlock()
	return h
}

// keptRecords caches the continuity records kept in bbolt (each is written
// once and never changed, so a copy read once stays right).
type keptRecords struct {
	mu sync.Mutex
	m  map[string]keptRecord // by project
}

type keptRecord struct {
	first policy.Upload
	pub   pypi.Identity
}

// keptRecordsMax bounds keptRecords; past it the map starts over.
const keptRecordsMax = 1 << 16

// keptRecord returns project's kept continuity record: its first attested
// file and that file's signer.
func (s *Gate) keptRecord(project string) (policy.Upload, pypi.Identity, bool) {
	c := &s.kept
	c.mu.Lock()
	k, ok := c.m[project]
	c.mu.Unlock()
	if ok {
		return k.first, k.pub, true
	}
	h, err := s.store.History(project)
	if err != nil {
		if !errors.Is(err, cache.ErrNotFound) {
			s.log.Warn("reading the continuity record", "project", project, "err", err)
		}
		return policy.Upload{}, pypi.Identity{}, false
	}
	if h.Record == nil {
		return policy.Upload{}, pypi.Identity{}, false
	}
	v, err := pypi.ParseVersion(h.Record.Version)
	if err != nil {
		s.log.Warn("unusable continuity record", "project", project, "version", h.Record.Version, "err", err)
		return policy.Upload{}, pypi.Identity{}, false
	}
	k = keptRecord{first: policy.Upload{Filename: h.Record.Filename, Version: v, UploadTime: h.Record.UploadTime, Provenance: true}, pub: h.Record.Publisher}
	c.put(project, k)
	return k.first, k.pub, true
}

func (c *keptRecords) put(project string, k keptRecord) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= keptRecordsMax {
		c.m = map[string]keptRecord{}
	}
	c.m[project] = k
	c.mu.Unlock()
}

// keepRecord writes rec (which has a First) to project's history in bbolt,
// unless a record is kept there already.
func (s *Gate) keepRecord(project string, rec policy.Record) {
	err := s.store.UpdateHistory(project, func(h *cache.History) {
		if h.Record == nil {
			h.Record = &cache.HistoryRecord{Filename: rec.First.Filename, Version: rec.First.Version.String(),
				UploadTime: rec.First.UploadTime, Publisher: rec.Publisher, RecordedAt: s.now()}
		}
	})
	if err != nil {
		s.log.Warn("keeping the continuity record", "project", project, "err", err)
		return
	}
	s.log.Info("continuity record kept", "project", project, "first_attested", rec.First.Filename,
		"publisher_of_record", publisherKey(rec.Publisher))
}
