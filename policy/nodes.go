package policy

import (
	"reflect"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/internal/yamlerr"
)

// nodeIndex maps YAML paths to lines, for problem messages. The wording of
// yaml.v3's own problems is package yamlerr's, shared with the server
// config, so both files report a typo alike.
type nodeIndex struct{ *yamlerr.Index }

// indexNodes records every node under root with its path.
func indexNodes(root *yaml.Node) nodeIndex { return nodeIndex{yamlerr.NewIndex(root)} }

// lookup follows path (string keys, int indices) as far as it exists and
// returns the line of the deepest node reached (a key's line for a mapping
// entry) and whether the whole path exists.
func (x nodeIndex) lookup(path []any) (line int, ok bool) {
	if x.Index == nil {
		return 0, false // no document (CheckPublisher)
	}
	return x.Lookup(path)
}

func (x nodeIndex) line(path []any) int { l, _ := x.lookup(path); return l }

func (x nodeIndex) has(path []any) bool { _, ok := x.lookup(path); return ok }

// schema describes the file format for yaml.v3's messages.
var schema = yamlerr.Schema{Root: reflect.TypeOf(rawFile{})}

// typeProblem rewrites one of yaml.v3's decoding messages ("line 3: field
// foo not found in type policy.rawRule") in the file's own terms, with the
// YAML path ("line 3: packages[0].foo: unknown field").
func (x nodeIndex) typeProblem(msg string) *ProblemError {
	pr := x.Rewrite(msg, schema)
	return &ProblemError{Line: pr.Line, Path: pr.Path, Msg: pr.Msg}
}
