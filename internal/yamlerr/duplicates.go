package yamlerr

import (
	"bytes"
	"strconv"

	"gopkg.in/yaml.v3"
)

// DropDuplicates finds the keys that a block mapping repeats and returns data
// with each repeat's whole entry blanked, and one Problem per repeat
// ("duplicate key (first at line N)"). yaml.v3 refuses a mapping that repeats
// a key as a whole: none of its other keys is decoded, so one run of a check
// would report only the repeat, and the next run everything else. Decoding
// the returned data instead reports every other problem in the same run (the
// first occurrence of a key is the one read).
//
// An entry is blanked from its key's line to the line before the next entry
// (or the end of its enclosing entry): every byte but the line breaks
// becomes a space, so every other line keeps its number and column. A repeat
// inside a flow mapping or sequence ({a: 1, a: 2}), where entries share
// lines, or in a file with bare CR line breaks, is not blanked: DropDuplicates
// then returns data itself and no Problem, and the caller's decoder reports
// the repeat as before. root is data's parsed document.
func DropDuplicates(data []byte, root *yaml.Node) (out []byte, dups []Problem) {
	type span struct{ from, to int }
	var blank []span
	flowRepeat := false
	var walk func(n *yaml.Node, path string, end int, flow bool)
	walk = func(n *yaml.Node, path string, end int, flow bool) {
		flow = flow || n.Style&yaml.FlowStyle != 0
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, end, flow)
			}
		case yaml.MappingNode:
			first := map[string]int{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				next := end
				if i+2 < len(n.Content) {
					next = n.Content[i+2].Line - 1
				}
				p := k.Value
				if path != "" {
					p = path + "." + p
				}
				if k.Kind == yaml.ScalarNode {
					if line, seen := first[k.Value]; seen {
						dups = append(dups, Problem{Line: k.Line, Path: p, Msg: "duplicate key (first at line " + strconv.Itoa(line) + ")"})
						if flow || next < k.Line {
							flowRepeat = true
						} else {
							blank = append(blank, span{k.Line, next})
						}
						continue
					}
					first[k.Value] = k.Line
				}
				walk(v, p, next, flow)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				next := end
				if i+1 < len(n.Content) {
					next = n.Content[i+1].Line - 1
				}
				walk(c, path+"["+strconv.Itoa(i)+"]", next, flow)
			}
		}
	}
	walk(root, "", bytes.Count(data, []byte("\n"))+1, false)
	if len(dups) == 0 || flowRepeat || bytes.Contains(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\r")) {
		return data, nil
	}
	out = bytes.Clone(data)
	line := 1
	for i, c := range out {
		for _, s := range blank {
			if line >= s.from && line <= s.to && c != '\n' && c != '\r' {
				out[i] = ' '
				break
			}
		}
		if c == '\n' {
			line++
		}
	}
	return out, dups
}
