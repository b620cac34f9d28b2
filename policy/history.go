package policy

import (
	"sort"
	"time"

	"github.com/pipgate/pipgate/pypi"
)

// Observation is one row of pipgate's decision history: one decision about
// one file, how often it was made and when, and the verification facts it
// was made from. [Suggest], [Replay] and [CoverageOf] learn from them.
type Observation struct {
	Project  string // PEP 503-normalised
	Version  string
	Filename string
	SHA256   string
	// Facts are the file's verification facts as the row recorded them: the
	// verdict (verified for a file refused as untrusted-publisher) and the
	// verified signer. Verdict error: the facts were never established.
	Facts pypi.Facts
	// UploadTime is the file's PEP 700 upload-time; zero when unknown.
	UploadTime time.Time
	// The decision made: its final verdict, action, rule, finding and reason.
	Verdict  pypi.Verdict
	Action   Action
	Rule     string
	Finding  Finding
	Identity string // the verified signer, pypi.Identity.String()
	Reason   string
	// Count is how many times the decision was made, between FirstSeen and LastSeen.
	Count     int64
	FirstSeen time.Time
	LastSeen  time.Time
}

// served reports whether the decision let the download through.
func (o *Observation) served() bool { return o.Action != ActionBlock }

// observedFile is every observation of one file (project, filename, sha256).
type observedFile struct {
	project, filename, sha256, version string
	// facts are those of the latest observation with established facts
	// (verdict not error); factsKnown says whether there is one.
	facts      pypi.Facts
	factsKnown bool
	factsAt    time.Time
	uploadTime time.Time
	// served and refused count downloads let through and refused (403).
	served, refused int64
	// last is the latest observation (by LastSeen).
	last        *Observation
	first, seen time.Time // first and last seen
}

// groupFiles gathers observations by file, sorted by project, filename and
// sha256.
func groupFiles(obs []Observation) []*observedFile {
	by := map[[3]string]*observedFile{}
	var out []*observedFile
	for i := range obs {
		o := &obs[i]
		k := [3]string{o.Project, o.Filename, o.SHA256}
		f := by[k]
		if f == nil {
			f = &observedFile{project: o.Project, filename: o.Filename, sha256: o.SHA256, first: o.FirstSeen}
			by[k] = f
			out = append(out, f)
		}
		n := max(o.Count, 1)
		if o.served() {
			f.served += n
		} else {
			f.refused += n
		}
		if o.FirstSeen.Before(f.first) {
			f.first = o.FirstSeen
		}
		if f.last == nil || o.LastSeen.After(f.last.LastSeen) {
			f.last, f.seen = o, o.LastSeen
		}
		if o.Version != "" && (f.version == "" || o.LastSeen.Equal(f.seen)) {
			f.version = o.Version
		}
		if !o.UploadTime.IsZero() && (f.uploadTime.IsZero() || o.LastSeen.Equal(f.seen)) {
			f.uploadTime = o.UploadTime
		}
		if o.Facts.Verdict != pypi.VerdictError && o.Facts.Verdict != "" && (!f.factsKnown || o.LastSeen.After(f.factsAt)) {
			f.facts, f.factsKnown, f.factsAt = o.Facts, true, o.LastSeen
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.project != b.project {
			return a.project < b.project
		}
		if a.filename != b.filename {
			return a.filename < b.filename
		}
		return a.sha256 < b.sha256
	})
	return out
}

// parsedVersion is the file's release: the recorded version, else the one
// in its filename; nil when neither parses.
func (f *observedFile) parsedVersion() *pypi.Version {
	if f.version != "" {
		if v, err := pypi.ParseVersion(f.version); err == nil {
			return &v
		}
	}
	if fn, err := pypi.ParsePipFilename(f.filename); err == nil {
		return &fn.Version
	}
	return nil
}

// byProject splits files (sorted by project) into runs of one project.
func byProject(files []*observedFile) [][]*observedFile {
	var out [][]*observedFile
	for i := 0; i < len(files); {
		j := i + 1
		for j < len(files) && files[j].project == files[i].project {
			j++
		}
		out = append(out, files[i:j])
		i = j
	}
	return out
}
