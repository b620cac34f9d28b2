package yamlerr_test

import (
	"bytes"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/internal/yamlerr"
)

// TestDropDuplicates: a repeated key is reported at its line and its whole
// entry blanked, every other line kept where it was, so the strict decoder
// then reports the file's other problems at their own lines; where entries
// share lines (flow style) nothing is blanked and nothing reported here.
func TestDropDuplicates(t *testing.T) {
	for _, c := range []struct {
		name, in, out string
		dups          []yamlerr.Problem
	}{
		{"none", "a: 1\nb: 2\n", "a: 1\nb: 2\n", nil},
		{"top-level section", "a:\n  x: 1\nb: 2\na:\n  y: [1,\n    2]\n  z: 3\nc: 4\n",
			"a:\n  x: 1\nb: 2\n  \n        \n      \n      \nc: 4\n",
			[]yamlerr.Problem{{Line: 4, Path: "a", Msg: "duplicate key (first at line 1)"}}},
		{"last entry, CRLF", "a: 1\r\nb:\r\n  k: 1\r\n  k: 2\r\n", "a: 1\r\nb:\r\n  k: 1\r\n      \r\n",
			[]yamlerr.Problem{{Line: 4, Path: "b.k", Msg: "duplicate key (first at line 3)"}}},
		{"in a list item, twice", "l:\n  - n: 1\n    n: 2\n    n: 3\n    m: 4\n  - n: 5\n",
			"l:\n  - n: 1\n        \n        \n    m: 4\n  - n: 5\n",
			[]yamlerr.Problem{{Line: 3, Path: "l[0].n", Msg: "duplicate key (first at line 2)"}, {Line: 4, Path: "l[0].n", Msg: "duplicate key (first at line 2)"}}},
		{"flow mapping", "a: {x: 1, x: 2}\nb: 2\n", "a: {x: 1, x: 2}\nb: 2\n", nil},
		{"flow mapping on lines", "a: {x: 1,\n  x: 2}\n", "a: {x: 1,\n  x: 2}\n", nil},
		{"bare CR", "a: 1\rb: 2\na: 3\n", "a: 1\rb: 2\na: 3\n", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(c.in), &doc); err != nil {
				t.Fatal(err)
			}
			out, dups := yamlerr.DropDuplicates([]byte(c.in), &doc)
			if string(out) != c.out || !reflect.DeepEqual(dups, c.dups) {
				t.Errorf("got %q %+v; want %q %+v", out, dups, c.out, c.dups)
			}
			if c.dups == nil {
				return
			}
			// The result is valid YAML with no repeat left: a strict
			// decoder accepts it.
			var v any
			dec := yaml.NewDecoder(bytes.NewReader(out))
			if err := dec.Decode(&v); err != nil {
				t.Errorf("decoding the result: %v", err)
			}
		})
	}
}
