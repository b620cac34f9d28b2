package policy

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// nodeIndex maps YAML paths to lines, for problem messages.
type nodeIndex struct {
	root    *yaml.Node
	entries []nodeEntry // every node, in document order
}

type nodeEntry struct {
	path string
	key  *yaml.Node // the mapping key; nil for sequence items and the root
	val  *yaml.Node
}

// indexNodes records every node under root with its path. Aliases are not
// followed, so a document built to expand exponentially stays linear here.
func indexNodes(root *yaml.Node) nodeIndex {
	idx := nodeIndex{root: root}
	var walk func(n, key *yaml.Node, path string)
	walk = func(n, key *yaml.Node, path string) {
		idx.entries = append(idx.entries, nodeEntry{path: path, key: key, val: n})
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := k.Value
				if path != "" {
					p = path + "." + p
				}
				walk(n.Content[i+1], k, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, nil, path+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	walk(root, nil, "")
	return idx
}

// lookup follows path (string keys, int indices) as far as it exists and
// returns the line of the deepest node reached (a key's line for a mapping
// entry) and whether the whole path exists.
func (x nodeIndex) lookup(path []any) (line int, ok bool) {
	n := x.root
	line = n.Line
	for _, p := range path {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		switch p := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line, false
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line, false
			}
		case int:
			if n.Kind != yaml.SequenceNode || p < 0 || p >= len(n.Content) {
				return line, false
			}
			n = n.Content[p]
			line = n.Line
		}
	}
	return line, true
}

func (x nodeIndex) line(path []any) int { l, _ := x.lookup(path); return l }

func (x nodeIndex) has(path []any) bool { _, ok := x.lookup(path); return ok }

var (
	reLine      = regexp.MustCompile(`^line (\d+): (.*)$`)
	reUnknown   = regexp.MustCompile(`^field (.*) not found in type (\S+)$`)
	reDuplicate = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	reType      = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (\\S+)$")
)

// typeProblem rewrites one of yaml.v3's decoding messages ("line 3: field
// foo not found in type policy.rawRule") in the file's own terms, with the
// YAML path ("line 3: packages[0].foo: unknown field").
func (x nodeIndex) typeProblem(msg string) *ProblemError {
	m := reLine.FindStringSubmatch(msg)
	if m == nil {
		return &ProblemError{Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	pr := &ProblemError{Line: line, Msg: m[2]}
	keyPath := func(name string) string {
		for _, e := range x.entries {
			if e.key != nil && e.key.Line == line && e.key.Value == name {
				return e.path
			}
		}
		return ""
	}
	switch {
	case reUnknown.MatchString(m[2]):
		sm := reUnknown.FindStringSubmatch(m[2])
		pr.Path, pr.Msg = keyPath(sm[1]), "unknown field"
		if pr.Path == "" {
			pr.Msg = "unknown field " + strconv.Quote(sm[1])
		}
		if known := knownFields(sm[2]); len(known) > 0 {
			if near := NearestKey(sm[1], known); near != "" {
				pr.Msg += " (did you mean " + near + "?)"
			} else {
				pr.Msg += " (want " + orList(known) + ")"
			}
		}
	case reDuplicate.MatchString(m[2]):
		sm := reDuplicate.FindStringSubmatch(m[2])
		pr.Path, pr.Msg = keyPath(sm[1]), "duplicate key (first at line "+sm[2]+")"
		if pr.Path == "" {
			pr.Msg = "duplicate key " + strconv.Quote(sm[1]) + " (first at line " + sm[2] + ")"
		}
	case reType.MatchString(m[2]):
		sm := reType.FindStringSubmatch(m[2])
		for _, e := range x.entries {
			if e.val.Line == line && e.val.ShortTag() == sm[1] {
				pr.Path = e.path
				break
			}
		}
		got := "a " + strings.TrimPrefix(sm[1], "!!") + " value"
		switch {
		case sm[1] == "!!seq":
			got = "a list"
		case sm[1] == "!!map":
			got = "a mapping"
		case sm[2] != "":
			got = "`" + sm[2] + "`"
		}
		pr.Msg = "want " + goTypeWord(sm[3]) + ", got " + got
	}
	return pr
}

// goTypeWord names the decoder's target Go type as a YAML user knows it.
func goTypeWord(t string) string {
	switch {
	case t == "int":
		return "an integer"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "policy."):
		return "a mapping"
	}
	return t
}

// knownFields lists the YAML fields of the decoder's target type, named as
// yaml.v3 names it ("policy.rawRule").
func knownFields(goType string) []string {
	for _, v := range []any{rawFile{}, rawDefaults{}, rawRule{}, rawPublisher{}} {
		t := reflect.TypeOf(v)
		if t.String() != goType {
			continue
		}
		names := make([]string, 0, t.NumField())
		for i := range t.NumField() {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			names = append(names, tag)
		}
		return names
	}
	return nil
}

// NearestKey returns the known key an unknown one is probably a typo of
// (edit distance at most 2, or a third of its length), or "". The policy
// check and the server config check both suggest keys with it, so the two
// files report typos alike.
func NearestKey(name string, known []string) string {
	best, bestD := "", len(name)+1
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" && bestD <= max(2, len(name)/3) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
