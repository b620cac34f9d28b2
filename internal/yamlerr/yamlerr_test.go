package yamlerr_test

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/internal/yamlerr"
)

type span time.Duration

func (s *span) UnmarshalYAML(n *yaml.Node) error {
	if v, err := time.ParseDuration(n.Value); err == nil && n.ShortTag() == "!!str" {
		*s = span(v)
		return nil
	}
	return yamlerr.WrongValue(n, `a duration like "30s"`)
}

type item struct {
	Name string `yaml:"name"`
	Size int    `yaml:"size"`
}

type section struct {
	URL     string `yaml:"url"`
	Timeout span   `yaml:"timeout"`
}

type file struct {
	Listen   string  `yaml:"listen"`
	Server   section `yaml:"server"`
	Items    []item  `yaml:"items"`
	Disabled bool    `yaml:"disabled"`
}

var schema = yamlerr.Schema{
	Root:  reflect.TypeOf(file{}),
	Kinds: map[reflect.Type]string{reflect.TypeOf(span(0)): `a duration like "30s"`},
}

// problems decodes doc strictly into a file and rewrites every problem.
func problems(t *testing.T, doc string) string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatalf("parsing %q: %v", doc, err)
	}
	idx := yamlerr.NewIndex(&root)
	dec := yaml.NewDecoder(bytes.NewReader([]byte(doc)))
	dec.KnownFields(true)
	var f file
	err := dec.Decode(&f)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		t.Fatalf("decoding %q: %v; want a *yaml.TypeError", doc, err)
	}
	var out []string
	for _, msg := range te.Errors {
		pr := idx.Rewrite(msg, schema)
		out = append(out, strings.Join([]string{itoa(pr.Line), pr.Path, pr.Msg}, ": "))
	}
	return strings.Join(out, "\n")
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestRewrite(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"typo", "listen: x\nlistn: y\n", "2: listn: unknown field (did you mean listen?)"},
		{"nested typo", "server:\n  ulr: x\n", "2: server.ulr: unknown field (did you mean url?)"},
		{"typo in a list item", "items:\n  - name: a\n    sise: 1\n", "3: items[0].sise: unknown field (did you mean size?)"},
		{"key in the wrong section", "timeout: 5s\n", "1: timeout: unknown field (did you mean server.timeout?)"},
		{"nothing close", "server:\n  zzzzzzzz: 1\n", "2: server.zzzzzzzz: unknown field (want url or timeout)"},
		{"duplicate", "listen: a\nlisten: b\n", "2: listen: duplicate key (first at line 1)"},
		{"list for string", "listen: [a]\n", "1: listen: want a string, got a list"},
		{"string for int", "items:\n  - size: many\n", `2: items[0].size: want an integer, got "many"`},
		{"scalar for section", "server: https://x/\n", `1: server: want a mapping, got "https://x/"`},
		{"mapping for list", "items:\n  a: 1\n", "2: items: want a list, got a mapping"},
		{"not a bool", "disabled: maybe\n", `1: disabled: want true or false, got "maybe"`},
		{"custom kind", "server:\n  timeout: 30\n", `2: server.timeout: want a duration like "30s", got 30`},
		{"root list", "- a\n", "1: : want a mapping, got a list"},
		{"every problem", "listn: a\nserver:\n  timeout: x\n", "1: listn: unknown field (did you mean listen?)\n3: server.timeout: want a duration like \"30s\", got \"x\""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := problems(t, c.doc); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

func TestNearestKey(t *testing.T) {
	known := []string{"require", "action", "on_invalid"}
	for name, want := range map[string]string{"requre": "require", "ACTION": "action", "on-invalid": "on_invalid", "zzz": "", "act": ""} {
		if got := yamlerr.NearestKey(name, known); got != want {
			t.Errorf("NearestKey(%q) = %q; want %q", name, got, want)
		}
	}
}

func TestLookup(t *testing.T) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte("a:\n  b:\n    - x\n    - y\n"), &root); err != nil {
		t.Fatal(err)
	}
	idx := yamlerr.NewIndex(&root)
	if l, ok := idx.Lookup([]any{"a", "b", 1}); !ok || l != 4 {
		t.Errorf("Lookup(a.b[1]) = %d, %v; want 4, true", l, ok)
	}
	if l, ok := idx.Lookup([]any{"a", "c"}); ok || l != 1 {
		t.Errorf("Lookup(a.c) = %d, %v; want 1 (a), false", l, ok)
	}
	if got := idx.Lines()["a.b[1]"]; got != 4 {
		t.Errorf(`Lines()["a.b[1]"] = %d; want 4`, got)
	}
}
