package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/policy"
)

// decodeConfig decodes one strict YAML document over cfg and records the
// line of every key in cfg.lines. An empty document keeps the defaults.
// Problems come back as joined [*Error]s without File: unknown keys
// (with the nearest known one), values of the wrong kind, a second document.
func decodeConfig(data []byte, cfg *Config) error {
	var doc yaml.Node
	nd := yaml.NewDecoder(bytes.NewReader(data))
	if err := nd.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return syntaxError(err)
	}
	var extra yaml.Node
	if err := nd.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			line = 0
		}
		return &Error{Line: line, Msg: "a second YAML document; want exactly one"}
	}
	idx := indexConfigNodes(&doc)
	cfg.lines = map[string]int{}
	for _, e := range idx {
		if e.key != nil {
			cfg.lines[e.path] = e.key.Line
		} else if strings.HasSuffix(e.path, "]") {
			cfg.lines[e.path] = e.val.Line // a list item ("upstreams[1]")
		}
	}
	if root := docRoot(&doc); root != nil && root.Kind != yaml.MappingNode {
		return &Error{Line: root.Line, Msg: "want a mapping of keys (listen: …, upstream: …), got " + describeNode(root)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return syntaxError(err)
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, idx.problem(msg))
	}
	return errors.Join(errs...)
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	return nil
}

var (
	reYAMLLine  = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	reUnknown   = regexp.MustCompile(`^field (.*) not found in type \S+$`)
	reDuplicate = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	reCannot    = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into \\S+$")
)

// syntaxError turns a yaml.v3 parse error into an Error.
func syntaxError(err error) *Error {
	msg := err.Error()
	if m := reYAMLLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{Line: n, Msg: "YAML: " + m[2]}
	}
	return &Error{Msg: "YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// configNode is one node of the file with its YAML path.
type configNode struct {
	path string
	key  *yaml.Node // nil for sequence items and the root
	val  *yaml.Node
}

type configNodes []configNode

func indexConfigNodes(doc *yaml.Node) configNodes {
	var out configNodes
	var walk func(n, key *yaml.Node, path string)
	walk = func(n, key *yaml.Node, path string) {
		out = append(out, configNode{path: path, key: key, val: n})
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, nil, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				walk(n.Content[i+1], n.Content[i], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, nil, path+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	walk(doc, nil, "")
	return out
}

// problem rewrites one of yaml.v3's messages ("line 3: field foo not found
// in type config.Upstream") in the file's own terms, without Go or YAML
// type names.
func (x configNodes) problem(msg string) *Error {
	m := reYAMLLine.FindStringSubmatch(msg)
	if m == nil {
		return &Error{Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	msg = m[2]
	ce := &Error{Line: line, Msg: msg}
	switch {
	case reUnknown.MatchString(msg):
		name := reUnknown.FindStringSubmatch(msg)[1]
		path := ""
		for _, e := range x {
			if e.key != nil && e.key.Line == line && e.key.Value == name {
				path = e.path
				break
			}
		}
		section, _ := splitPath(path)
		ce.Path = section
		ce.Msg = fmt.Sprintf("unknown key %q%s", name, suggestKey(section, name))
	case reDuplicate.MatchString(msg):
		sm := reDuplicate.FindStringSubmatch(msg)
		ce.Msg = fmt.Sprintf("duplicate key %q (first at line %s)", sm[1], sm[2])
	case reCannot.MatchString(msg):
		tag := reCannot.FindStringSubmatch(msg)[1]
		for _, e := range x {
			if e.val.Line == line && e.val.ShortTag() == tag && e.path != "" {
				ce.Path = e.path
				ce.Msg = "want " + wantKind(e.path) + ", got " + describeNode(e.val)
				break
			}
		}
		if ce.Path == "" {
			ce.Msg = "a value of the wrong kind"
		}
	default:
		// Our own unmarshalers' messages ("want a duration …"): name the key.
		for _, e := range x {
			if e.key != nil && e.val.Line == line && e.val.Kind == yaml.ScalarNode {
				ce.Path = e.path
				break
			}
		}
	}
	return ce
}

// splitPath splits "upstream.url" into "upstream" and "url".
func splitPath(p string) (section, key string) {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

// configField returns the field type at a YAML path of config, or nil.
func configField(path string) reflect.Type {
	t := reflect.TypeOf(Config{})
	if path == "" {
		return t
	}
	for _, part := range strings.Split(path, ".") {
		part, index, _ := strings.Cut(part, "[")
		if t.Kind() != reflect.Struct {
			return nil
		}
		found := false
		for i := range t.NumField() {
			f := t.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == part && f.IsExported() {
				t, found = f.Type, true
				break
			}
		}
		if !found {
			return nil
		}
		if index != "" && t.Kind() == reflect.Slice {
			t = t.Elem() // "upstreams[0]": one item of the list
		}
	}
	return t
}

// sectionKeys returns the known keys of a section ("" for the top level).
func sectionKeys(section string) []string {
	t := configField(section)
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" && f.IsExported() {
			keys = append(keys, name)
		}
	}
	return keys
}

// allKeyPaths lists every known key path ("upstream.index_ttl").
func allKeyPaths() []string {
	var out []string
	var walk func(section string)
	walk = func(section string) {
		for _, k := range sectionKeys(section) {
			p := k
			if section != "" {
				p = section + "." + k
			}
			out = append(out, p)
			if t := configField(p); t != nil && t.Kind() == reflect.Struct {
				walk(p)
			}
		}
	}
	walk("")
	return out
}

// suggestKey says which known key an unknown one probably meant:
// " (did you mean index_ttl?)", or where a key of that name belongs, or
// lists the section's keys.
func suggestKey(section, name string) string {
	keys := sectionKeys(section)
	if best := policy.NearestKey(name, keys); best != "" {
		return " (did you mean " + best + "?)"
	}
	for _, p := range allKeyPaths() {
		if _, k := splitPath(p); k == name {
			return " (did you mean " + p + "?)"
		}
	}
	sort.Strings(keys)
	return " (known keys: " + strings.Join(keys, ", ") + ")"
}

// wantKind describes the value a path takes, in the file's terms.
func wantKind(path string) string {
	t := configField(path)
	if t == nil {
		return "another kind of value"
	}
	switch t {
	case reflect.TypeOf(Duration(0)):
		return `a duration like "30s"`
	case reflect.TypeOf(ByteSize(0)):
		return `a size like "50GiB"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list of strings"
	case reflect.Struct:
		return "a section of keys (" + strings.Join(sectionKeys(path), ", ") + ")"
	}
	return "another kind of value"
}

// describeNode says what a YAML node holds, for "got …".
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section of keys"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.ShortTag() == "!!str" {
		return strconv.Quote(n.Value)
	}
	if n.ShortTag() == "!!null" {
		return "nothing"
	}
	return n.Value
}

// wrongValue is the error our unmarshalers return: a TypeError, so decoding
// goes on and every problem is reported.
func wrongValue(n *yaml.Node, want string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want %s, got %s", n.Line, want, describeNode(n))}}
}
