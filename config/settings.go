package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Setting is one effective value of the config and where it came from.
type Setting struct {
	Path   string // YAML path: "upstream.url", "upstreams[1].name"
	Value  string // as it would be written in the file (quoted when empty)
	Source string // "--upstream", "$PIPGATE_UPSTREAM", "pipgate.yaml:4" or "default"
}

// Settings lists every effective value in file order, each with its source:
// the flag, the environment variable, the file's line, or the embedded
// default. Only the upstream form in use is listed ("upstream:" or
// "upstreams:"). Passwords are never values of the config (only the names
// of their files and variables), so nothing secret is listed.
func (c *Config) Settings() []Setting {
	var out []Setting
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch {
		case v.Type() == reflect.TypeOf(Duration(0)):
			out = append(out, c.setting(path, Duration(v.Int()).String()))
		case v.Type() == reflect.TypeOf(ByteSize(0)):
			out = append(out, c.setting(path, ByteSize(v.Int()).String()))
		case v.Kind() == reflect.Pointer && v.IsNil():
			out = append(out, c.setting(path, "(none)"))
		case v.Kind() == reflect.Pointer:
			walk(v.Elem(), path)
		case v.Kind() == reflect.Struct:
			t := v.Type()
			for i := range t.NumField() {
				f := t.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if !f.IsExported() || name == "" || name == "-" {
					continue
				}
				p := name
				if path != "" {
					p = path + "." + name
				}
				if (p == "upstream" && len(c.Upstreams) > 0) || (p == "upstreams" && len(c.Upstreams) == 0) {
					continue
				}
				walk(v.Field(i), p)
			}
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
			for i := range v.Len() {
				walk(v.Index(i), path+"["+strconv.Itoa(i)+"]")
			}
		case v.Kind() == reflect.Slice:
			items := make([]string, v.Len())
			for i := range items {
				items[i] = fmt.Sprint(v.Index(i).Interface())
			}
			out = append(out, c.setting(path, "["+strings.Join(items, ", ")+"]"))
		case v.Kind() == reflect.String:
			s := v.String()
			if s == "" {
				s = `""`
			}
			out = append(out, c.setting(path, s))
		default:
			out = append(out, c.setting(path, fmt.Sprint(v.Interface())))
		}
	}
	walk(reflect.ValueOf(*c), "")
	return out
}

func (c *Config) setting(path, value string) Setting {
	s := Setting{Path: path, Value: value, Source: "default"}
	if _, inFile := c.lines[path]; path == "memory_limit" && !inFile {
		// Derived: the value serve applies and how it was derived.
		m := c.memLimit
		s.Value, s.Source = ByteSize(m.Bytes).String(), m.Detail
		if m.Origin == MemoryLimitFromEnv {
			s.Value = "(the Go runtime's)"
		}
		return s
	}
	if o, ok := c.set[path]; ok {
		s.Source = o
	} else if l, ok := c.lines[path]; ok {
		s.Source = c.file + ":" + strconv.Itoa(l)
	}
	return s
}
