package config

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/internal/yamlerr"
)

// schema describes Config for yaml.v3's messages.
var schema = yamlerr.Schema{
	Root: reflect.TypeOf(Config{}),
	Kinds: map[reflect.Type]string{
		reflect.TypeOf(Duration(0)): `a duration like "30s"`,
		reflect.TypeOf(ByteSize(0)): `a size like "50GiB"`,
	},
}

// decodeConfig decodes one strict YAML document over cfg and records the
// line of every key in cfg.lines. An empty document keeps the defaults.
// Problems come back as joined [*Error]s without File, worded as the policy
// check words its own (package yamlerr): unknown keys (with the nearest
// known one), values of the wrong kind, duplicate keys. decoded is false
// when nothing could be decoded (a syntax error, a second document); else
// cfg holds every value that did decode, defaults for the others.
func decodeConfig(data []byte, cfg *Config) (decoded bool, err error) {
	var doc yaml.Node
	nd := yaml.NewDecoder(bytes.NewReader(data))
	if err := nd.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		return false, syntaxError(err)
	}
	var extra yaml.Node
	if err := nd.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			line = 0
		}
		return false, &Error{Line: line, Msg: "a second YAML document; want exactly one"}
	}
	// A repeated key would keep yaml.v3 from decoding anything else of
	// its mapping: the repeat is reported and left out, and the rest
	// decoded, so one check reports every problem.
	var errs []error
	if clean, dups := yamlerr.DropDuplicates(data, &doc); len(dups) > 0 {
		var cdoc yaml.Node
		if err := yaml.Unmarshal(clean, &cdoc); err == nil {
			data, doc = clean, cdoc
			// The path goes in the message, not in Path: the problem is
			// the repeat, not the value at the path (the first one,
			// which is read and checked like any other).
			for _, pr := range dups {
				errs = append(errs, &Error{Line: pr.Line, Msg: pr.Path + ": " + pr.Msg})
			}
		}
	}
	idx := yamlerr.NewIndex(&doc)
	cfg.lines = idx.Lines()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return false, syntaxError(err)
		}
		for _, msg := range te.Errors {
			pr := idx.Rewrite(msg, schema)
			errs = append(errs, &Error{Line: pr.Line, Path: pr.Path, Msg: pr.Msg})
		}
	}
	return true, errors.Join(errs...)
}

var reYAMLLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into an Error.
func syntaxError(err error) *Error {
	msg := err.Error()
	if m := reYAMLLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{Line: n, Msg: "YAML: " + m[2]}
	}
	return &Error{Msg: "YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}
