package policy

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/pypi"
)

// SuggestOptions configure [Suggest].
type SuggestOptions struct {
	// MinCount: a publisher is listed only when the files it signed were
	// served at least this many times (downloads); below 1 means 1.
	MinCount int64
	// Merge: add the suggested rules to Current (the policy file p was
	// parsed from), keeping its comments, defaults and rules; a project
	// one of its rules already matches gets no new rule. Without Merge the
	// output is a new policy with p's defaults.
	Merge   bool
	Current []byte
	// Header lines are written as a comment at the top.
	Header []string
	// Path names the output in problems (policy check).
	Path string
}

// The first lines of the comments Suggest writes; a merge replaces those
// of an earlier suggestion rather than pile them up.
const (
	notesMarker  = "Projects without a suggested rule:"
	headerMarker = "Suggested by 'pipgate policy suggest'"
)

// dropParagraphs removes from comment the paragraphs (separated by blank
// lines) whose first line starts with "# "+marker.
func dropParagraphs(comment, marker string) string {
	if comment == "" {
		return ""
	}
	var keep []string
	for _, par := range strings.Split(comment, "\n\n") {
		if !strings.HasPrefix(strings.TrimLeft(par, "\n"), "# "+marker) {
			keep = append(keep, par)
		}
	}
	return strings.Join(keep, "\n\n")
}

// maxListed is how many versions or publishers a comment lists before
// "and N more".
const maxListed = 10

// Suggest writes a policy learned from the decision history obs, for
// review: for each project with files served under a verified
// attestation, a rule requiring a trusted publisher (action block) whose
// publishers are the signers of those files (exactly: repository and
// workflow), each with a comment (files, versions, first and last seen).
// Projects never attested get no rule, only a line in a comment saying so
// (with counts), and so do projects whose publishers all fall below
// MinCount. A rule keeps the continuity and accepted_versions the project
// has in p when they differ from the defaults. Rules are in name order.
// The output is checked as 'pipgate policy check' would before it is
// returned.
func Suggest(p *Policy, obs []Observation, o SuggestOptions) ([]byte, error) {
	if o.MinCount < 1 {
		o.MinCount = 1
	}
	var root *yaml.Node // the document's mapping
	doc := &yaml.Node{Kind: yaml.DocumentNode}
	if o.Merge && len(bytes.TrimSpace(o.Current)) > 0 {
		if err := yaml.Unmarshal(o.Current, doc); err != nil {
			return nil, fmt.Errorf("reading the current policy: %w", err)
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
			return nil, errors.New("reading the current policy: not a YAML mapping")
		}
		root = doc.Content[0]
	} else {
		o.Merge = false
		root = &yaml.Node{Kind: yaml.MappingNode}
		doc.Content = []*yaml.Node{root}
		addKey(root, "version", intNode(1))
		root.Content = append(root.Content, keyNode("defaults"), defaultsNode(p.Defaults()))
	}
	pkgs := mapValue(root, "packages")
	if pkgs == nil {
		pkgs = &yaml.Node{Kind: yaml.SequenceNode}
		addKey(root, "packages", pkgs)
	}
	if pkgs.Kind != yaml.SequenceNode {
		return nil, errors.New("reading the current policy: packages is not a list")
	}
	pkgs.Style = 0 // a block list, also when it was "[]"

	var notes []string
	added := 0
	for _, pf := range byProject(groupFiles(obs)) {
		if name := pf[0].project; !pypi.ValidProjectName(name) || pypi.NormalizeName(name) != name {
			notes = append(notes, fmt.Sprintf("%q: not a normalised project name; no rule", name))
			continue
		}
		s := summarize(pf, o.MinCount)
		cur := p.Lookup(s.project)
		switch {
		case len(s.listed) == 0:
			notes = append(notes, s.noRule())
			continue
		case o.Merge && cur.Line > 0:
			notes = append(notes, fmt.Sprintf("%s: kept rule %q (line %d); publishers seen: %s", s.project, cur.Name, cur.Line, s.listedNames()))
			continue
		}
		pkgs.Content = append(pkgs.Content, s.rule(p, cur))
		added++
	}
	if len(notes) > 0 {
		c := commentText(append([]string{notesMarker}, notes...)...)
		key := mapKey(root, "packages")
		if old := dropParagraphs(key.HeadComment, notesMarker); old != "" {
			c = old + "\n\n" + c
		}
		key.HeadComment = c
	}
	if len(o.Header) > 0 {
		h := commentText(o.Header...)
		if old := dropParagraphs(doc.HeadComment, headerMarker); old != "" {
			h += "\n\n" + old
		}
		doc.HeadComment = h
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("writing the policy: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing the policy: %w", err)
	}
	if b.Len() > MaxFileSize {
		return nil, fmt.Errorf("the suggested policy would be %d bytes, more than the %d a policy file may be (%d rules): raise --min-count", b.Len(), MaxFileSize, added)
	}
	if _, err := ParseFile(o.Path, b.Bytes()); err != nil {
		return nil, fmt.Errorf("the suggested policy does not pass the check: %w", err)
	}
	return b.Bytes(), nil
}

// projectSummary is what Suggest learned about one project.
type projectSummary struct {
	project     string
	files       int
	versions    []string
	downloads   int64 // served
	first, last time.Time
	listed      []*pubStat // the publishers to list, in order
	below       []*pubStat // served below MinCount
	refused     []*pubStat // seen on refused files only
	unsigned    int        // verified files without a known signer
	unverified  []*observedFile
	minCount    int64
}

// pubStat is one exact publisher of a project and what it signed.
type pubStat struct {
	pub         pypi.Publisher
	files       int
	versions    []string
	downloads   int64 // served
	first, last time.Time
	bad         string // why it cannot be a policy entry
}

func summarize(pf []*observedFile, minCount int64) *projectSummary {
	s := &projectSummary{project: pf[0].project, first: pf[0].first, minCount: minCount}
	pubs := map[pypi.Publisher]*pubStat{}
	var order []*pubStat
	for _, f := range pf {
		s.files++
		s.downloads += f.served
		if f.version != "" && !containsString(s.versions, f.version) {
			s.versions = append(s.versions, f.version)
		}
		if f.first.Before(s.first) {
			s.first = f.first
		}
		if f.seen.After(s.last) {
			s.last = f.seen
		}
		if !f.factsKnown || f.facts.Verdict != pypi.VerdictVerified {
			if f.served > 0 {
				s.unverified = append(s.unverified, f)
			}
			continue
		}
		if f.facts.Identity == nil {
			s.unsigned++
			continue
		}
		pub := publisherOf(*f.facts.Identity)
		ps := pubs[pub]
		if ps == nil {
			ps = &pubStat{pub: pub, first: f.first}
			if err := CheckPublisher(pub); err != nil {
				ps.bad = err.Error()
			}
			pubs[pub] = ps
			order = append(order, ps)
		}
		ps.files++
		ps.downloads += f.served
		if f.version != "" && !containsString(ps.versions, f.version) {
			ps.versions = append(ps.versions, f.version)
		}
		if f.first.Before(ps.first) {
			ps.first = f.first
		}
		if f.seen.After(ps.last) {
			ps.last = f.seen
		}
	}
	sortVersions(s.versions)
	sort.SliceStable(order, func(i, j int) bool { return order[i].pub.String() < order[j].pub.String() })
	for _, ps := range order {
		sortVersions(ps.versions)
		switch {
		case ps.downloads == 0:
			s.refused = append(s.refused, ps)
		case ps.downloads < minCount || ps.bad != "":
			s.below = append(s.below, ps)
		default:
			s.listed = append(s.listed, ps)
		}
	}
	return s
}

func (s *projectSummary) listedNames() string {
	names := make([]string, len(s.listed))
	for i, ps := range s.listed {
		names[i] = ps.pub.String()
	}
	return strings.Join(names, ", ")
}

// noRule is the comment line of a project that gets no rule.
func (s *projectSummary) noRule() string {
	line := fmt.Sprintf("%s: %s of %s, %s", s.project, plural(s.files, "file"), plural(len(s.versions), "version"), plural64(s.downloads, "download"))
	verified := 0
	for _, ps := range append(append(append([]*pubStat{}, s.listed...), s.below...), s.refused...) {
		verified += ps.files
	}
	verified += s.unsigned
	if verified == 0 {
		return line + ", never attested: unenforced (the defaults apply)"
	}
	var why []string
	for _, ps := range s.below {
		if ps.bad != "" {
			why = append(why, fmt.Sprintf("%s cannot be a policy entry (%s)", ps.pub, ps.bad))
		} else {
			why = append(why, fmt.Sprintf("%s served %s, below --min-count %d", ps.pub, plural64(ps.downloads, "time"), s.minCount))
		}
	}
	for _, ps := range s.refused {
		why = append(why, fmt.Sprintf("%s signed only refused files", ps.pub))
	}
	if s.unsigned > 0 {
		why = append(why, fmt.Sprintf("%s verified without a recorded signer", plural(s.unsigned, "file")))
	}
	return line + ", no publisher to list: " + strings.Join(why, "; ") + "; unenforced (the defaults apply)"
}

// rule builds the project's rule node. cur is the rule that governs the
// project in the current policy.
func (s *projectSummary) rule(p *Policy, cur Rule) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	addKey(n, "name", strNode(s.project))
	addKey(n, "require", strNode(string(RequireTrustedPublisher)))
	addKey(n, "action", strNode(string(ActionBlock)))
	if cur.Continuity != p.Defaults().Continuity {
		addKey(n, "continuity", strNode(string(cur.Continuity)))
	}
	pubs := &yaml.Node{Kind: yaml.SequenceNode}
	for _, ps := range s.listed {
		e := publisherNode(ps.pub)
		e.HeadComment = commentText(fmt.Sprintf("%s of %s (%s), served %s; first seen %s, last seen %s",
			plural(ps.files, "file"), plural(len(ps.versions), "version"), listMore(ps.versions), plural64(ps.downloads, "time"),
			stamp(ps.first), stamp(ps.last)))
		pubs.Content = append(pubs.Content, e)
	}
	addKey(n, "publishers", pubs)
	if len(cur.AcceptedVersions) > 0 && cur.Line > 0 {
		av := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, v := range cur.AcceptedVersions {
			av.Content = append(av.Content, strNode(v))
		}
		addKey(n, "accepted_versions", av)
	}
	lines := []string{fmt.Sprintf("%s: %s of %s (%s), served %s; first seen %s, last seen %s",
		s.project, plural(s.files, "file"), plural(len(s.versions), "version"), listMore(s.versions), plural64(s.downloads, "time"),
		stamp(s.first), stamp(s.last))}
	if len(s.listed) > 1 {
		lines = append(lines, fmt.Sprintf("CHECK: %d publishers signed files of this project: make sure each is expected", len(s.listed)))
	}
	if len(s.unverified) > 0 {
		var vs []string
		for _, f := range s.unverified {
			v := f.version
			if v == "" {
				v = f.filename
			}
			if !containsString(vs, v) {
				vs = append(vs, v)
			}
		}
		sortVersions(vs)
		lines = append(lines, fmt.Sprintf("CHECK: %s served without a verified attestation (%s): this rule refuses them ('pipgate policy test' lists them)",
			plural(len(s.unverified), "file"), listMore(vs)))
	}
	for _, ps := range s.below {
		if ps.bad != "" {
			lines = append(lines, fmt.Sprintf("left out: %s cannot be a policy entry (%s)", ps.pub, ps.bad))
		} else {
			lines = append(lines, fmt.Sprintf("left out: %s, served %s, below --min-count %d", ps.pub, plural64(ps.downloads, "time"), s.minCount))
		}
	}
	for _, ps := range s.refused {
		lines = append(lines, fmt.Sprintf("left out: %s signed only refused files (%s)", ps.pub, listMore(ps.versions)))
	}
	n.HeadComment = commentText(lines...)
	return n
}

// defaultsNode writes the resolved defaults d.
func defaultsNode(d Rule) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	addKey(n, "require", strNode(string(d.Require)))
	addKey(n, "action", strNode(string(d.Action)))
	addKey(n, "on_invalid", strNode(string(d.OnInvalid)))
	addKey(n, "on_error", strNode(string(d.OnError)))
	addKey(n, "continuity", strNode(string(d.Continuity)))
	if d.MinReleaseAge > 0 {
		addKey(n, "min_release_age", strNode(FormatAge(d.MinReleaseAge)))
	}
	addKey(n, "cooldown_action", strNode(string(d.CooldownAction)))
	return n
}

// publisherNode writes p as a publishers entry.
func publisherNode(p pypi.Publisher) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	addKey(n, "kind", strNode(string(p.Kind)))
	for _, kv := range [][2]string{{"repository", p.Repository}, {"workflow", p.Workflow}, {"email", p.Email}, {"issuer", p.Issuer}, {"subject", p.Subject}} {
		if kv[1] != "" {
			addKey(n, kv[0], strNode(kv[1]))
		}
	}
	return n
}

func keyNode(k string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k} }

func strNode(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

func intNode(v int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
}

func addKey(m *yaml.Node, k string, v *yaml.Node) { m.Content = append(m.Content, keyNode(k), v) }

// mapKey and mapValue find key k of mapping m; nil when absent.
func mapKey(m *yaml.Node, k string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i]
		}
	}
	return nil
}

func mapValue(m *yaml.Node, k string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	return nil
}

// commentText makes lines a comment yaml.v3 writes as such: every line
// prefixed "# ", control characters replaced (a newline in a signer's name
// cannot end the comment).
func commentText(lines ...string) string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = "# " + oneLine(l, 4096)
	}
	return strings.Join(out, "\n")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format(time.RFC3339)
}

func plural(n int, noun string) string { return plural64(int64(n), noun) }

func plural64(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}

// listMore renders the first maxListed items, "and N more".
func listMore(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(items)-maxListed)
}
