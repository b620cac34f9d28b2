// Package yamlerr words yaml.v3's decoding problems in a file's own terms,
// for every YAML file pipgate reads (the server config and the policy), so
// both report a typo, a duplicate key or a value of the wrong kind alike:
//
//	line 4: defaults.acton: unknown field (did you mean action?)
//	line 2: upstream.timeout: want a duration like "30s" or "10m", got 30
//	line 2: listen: duplicate key (first at line 1)
//
// Messages name YAML paths ("packages[0].publishers[1].kind") and never Go
// or YAML type names. The package is pure: it imports only yaml.v3 and the
// standard library, so policy stays free of net/http.
package yamlerr

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one problem in a YAML file.
type Problem struct {
	Line int    // 1-based; 0 when unknown
	Path string // YAML path such as "upstream.url" or "packages[0].name"; may be empty
	Msg  string
}

// Node is one node of a document with its YAML path.
type Node struct {
	Path string
	Key  *yaml.Node // the mapping key; nil for sequence items and the root
	Val  *yaml.Node
}

// Index records every node under a root with its path. Aliases are not
// followed, so a document built to expand exponentially stays linear here.
type Index struct {
	Root  *yaml.Node
	Nodes []Node // in document order
}

// NewIndex indexes the nodes under root (a document node or its content).
func NewIndex(root *yaml.Node) *Index {
	x := &Index{Root: root}
	var walk func(n, key *yaml.Node, path string)
	walk = func(n, key *yaml.Node, path string) {
		x.Nodes = append(x.Nodes, Node{Path: path, Key: key, Val: n})
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, nil, path)
			}
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
	return x
}

// Lines maps each key's path ("upstream.url") and each list item's path
// ("upstreams[1]") to its line.
func (x *Index) Lines() map[string]int {
	lines := make(map[string]int, len(x.Nodes))
	for _, n := range x.Nodes {
		switch {
		case n.Key != nil:
			lines[n.Path] = n.Key.Line
		case strings.HasSuffix(n.Path, "]"):
			lines[n.Path] = n.Val.Line
		}
	}
	return lines
}

// Lookup follows path (string keys, int indices) from the root as far as it
// exists and returns the line of the deepest node reached (a key's line for
// a mapping entry) and whether the whole path exists.
func (x *Index) Lookup(path []any) (line int, ok bool) {
	n := x.Root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
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

// Schema describes the Go type a document decodes into, for messages.
type Schema struct {
	// Root is the type the whole document decodes into.
	Root reflect.Type
	// Kinds names the values of custom types ("a duration like \"30s\"").
	Kinds map[reflect.Type]string
}

var (
	reLine      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	reUnknown   = regexp.MustCompile(`^field (.*) not found in type (\S+)$`)
	reDuplicate = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	reType      = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (\\S+)$")
)

// Rewrite words one message of a *yaml.TypeError ("line 3: field foo not
// found in type policy.rawRule") in the file's own terms: "line 3:
// packages[0].foo: unknown field (did you mean name?)". A message of the
// schema's own unmarshalers ("line 2: want a duration …", see [WrongValue])
// gets the path of the value it is about.
func (x *Index) Rewrite(msg string, s Schema) Problem {
	m := reLine.FindStringSubmatch(msg)
	if m == nil {
		return Problem{Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	pr := Problem{Line: line, Msg: m[2]}
	keyPath := func(name string) string {
		for _, n := range x.Nodes {
			if n.Key != nil && n.Key.Line == line && n.Key.Value == name {
				return n.Path
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
		pr.Msg += s.suggest(sm[1], sm[2])
	case reDuplicate.MatchString(m[2]):
		sm := reDuplicate.FindStringSubmatch(m[2])
		pr.Path, pr.Msg = keyPath(sm[1]), "duplicate key (first at line "+sm[2]+")"
		if pr.Path == "" {
			pr.Msg = "duplicate key " + strconv.Quote(sm[1]) + " (first at line " + sm[2] + ")"
		}
	case reType.MatchString(m[2]):
		sm := reType.FindStringSubmatch(m[2])
		var node *yaml.Node
		for _, n := range x.Nodes {
			if n.Val.Line == line && n.Val.ShortTag() == sm[1] {
				pr.Path, node = n.Path, n.Val
				break
			}
		}
		want := s.want(pr.Path, node != nil)
		if want == "" {
			want = goTypeWord(sm[3])
		}
		got := "a " + strings.TrimPrefix(sm[1], "!!") + " value"
		switch {
		case node != nil:
			got = Describe(node)
		case sm[1] == "!!seq":
			got = "a list"
		case sm[1] == "!!map":
			got = "a mapping"
		case sm[2] != "":
			got = strconv.Quote(sm[2])
		}
		pr.Msg = "want " + want + ", got " + got
	default:
		// The schema's own unmarshalers' messages: name the value's key.
		for _, n := range x.Nodes {
			if n.Key != nil && n.Val.Line == line && n.Val.Kind == yaml.ScalarNode {
				pr.Path = n.Path
				break
			}
		}
	}
	return pr
}

// suggest says which known field an unknown one in Go type goType probably
// meant: " (did you mean action?)", or where a field of that name belongs
// (" (did you mean upstream.index_ttl?)"), or which fields there are.
func (s Schema) suggest(name, goType string) string {
	t := s.typeNamed(goType)
	if t == nil {
		return ""
	}
	known := fields(t)
	if near := NearestKey(name, known); near != "" {
		return " (did you mean " + near + "?)"
	}
	for _, p := range s.keyPaths() {
		if p == name || strings.HasSuffix(p, "."+name) {
			return " (did you mean " + p + "?)"
		}
	}
	return " (want " + OrList(known) + ")"
}

// typeNamed finds the struct type reachable from Root that yaml.v3 names
// goType ("policy.rawRule").
func (s Schema) typeNamed(goType string) reflect.Type {
	var found reflect.Type
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		t = deref(t)
		if found != nil || seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
			walk(t.Elem())
			return
		case reflect.Struct:
		default:
			return
		}
		if t.String() == goType {
			found = t
			return
		}
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() {
				walk(f.Type)
			}
		}
	}
	if s.Root != nil {
		walk(s.Root)
	}
	return found
}

// keyPaths lists every field path of the schema ("upstream.index_ttl"),
// list items left out ("upstreams.name").
func (s Schema) keyPaths() []string {
	var out []string
	var walk func(t reflect.Type, prefix string, depth int)
	walk = func(t reflect.Type, prefix string, depth int) {
		t = deref(t)
		if t.Kind() != reflect.Struct || depth > 8 {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name := tagName(f)
			if name == "" {
				continue
			}
			p := prefix + name
			out = append(out, p)
			if _, custom := s.Kinds[f.Type]; !custom && deref(f.Type).Kind() == reflect.Struct {
				walk(f.Type, p+".", depth+1)
			}
		}
	}
	if s.Root != nil {
		walk(s.Root, "", 0)
	}
	return out
}

// fieldType returns the Go type at a YAML path ("upstreams[0].url"), or
// nil.
func (s Schema) fieldType(path string) reflect.Type {
	t := s.Root
	if t == nil {
		return nil
	}
	if path == "" {
		return t
	}
	for _, part := range strings.Split(path, ".") {
		name, index, _ := strings.Cut(part, "[")
		t = deref(t)
		if t.Kind() != reflect.Struct {
			return nil
		}
		var next reflect.Type
		for i := range t.NumField() {
			if f := t.Field(i); tagName(f) == name {
				next = f.Type
				break
			}
		}
		if next == nil {
			return nil
		}
		t = next
		for ; index != ""; _, index, _ = strings.Cut(index, "[") {
			if deref(t).Kind() != reflect.Slice {
				return nil
			}
			t = deref(t).Elem() // one item of the list
		}
	}
	return t
}

// want describes the value at path in the file's terms; "" when unknown.
func (s Schema) want(path string, located bool) string {
	if !located {
		return ""
	}
	t := s.fieldType(path)
	if t == nil {
		return ""
	}
	if k, ok := s.Kinds[t]; ok {
		return k
	}
	t = deref(t)
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	return ""
}

// goTypeWord names a Go type from a yaml.v3 message as a YAML user knows it.
func goTypeWord(t string) string {
	switch {
	case t == "int" || t == "int64" || t == "uint":
		return "an integer"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a mapping"
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// tagName is the YAML key of a struct field; "" for none.
func tagName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// fields lists the YAML keys of struct type t, in declaration order.
func fields(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if n := tagName(t.Field(i)); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// Describe says what a YAML node holds, for "got …": a quoted string, a
// number as written, "a list", "a mapping", "nothing".
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!str":
		return strconv.Quote(n.Value)
	case "!!null":
		return "nothing"
	}
	return n.Value
}

// WrongValue is the error a custom UnmarshalYAML returns for a value it does
// not take: a *yaml.TypeError, so decoding goes on and every problem is
// reported, worded "want <want>, got <value>" and located by [Index.Rewrite].
func WrongValue(n *yaml.Node, want string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want %s, got %s", n.Line, want, Describe(n))}}
}

// NearestKey returns the known key an unknown one is probably a typo of
// (edit distance at most 2, or a third of its length), or "".
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

// OrList renders "a, b or c".
func OrList(ss []string) string {
	switch len(ss) {
	case 0:
		return ""
	case 1:
		return ss[0]
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " or " + ss[len(ss)-1]
}
