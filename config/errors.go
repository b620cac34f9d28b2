package config

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in the server configuration or in a file it
// names. It renders as "FILE:LINE: path: message" (the policy check's
// format), or "--flag: message" for a value given on the command line, or
// "$PIPGATE_X: message" for one from the environment.
type Error struct {
	File string // the config file as given; "" for the embedded defaults
	Line int    // 1-based; 0 when unknown
	Flag string // the serve flag or environment variable that set the value ("--upstream", "$PIPGATE_UPSTREAM"); wins over File
	Path string // YAML path such as "upstream.url"; may be empty
	Msg  string
}

// Error renders the problem on one line.
func (e *Error) Error() string {
	var parts []string
	switch {
	case e.Flag != "":
		parts = append(parts, e.Flag)
	case e.File != "" && e.Line > 0:
		parts = append(parts, e.File+":"+strconv.Itoa(e.Line))
	case e.File != "":
		parts = append(parts, e.File)
	}
	if e.Path != "" && e.Flag == "" {
		parts = append(parts, e.Path)
	}
	parts = append(parts, e.Msg)
	return strings.Join(parts, ": ")
}

// withFile sets File on every Error in err.
func withFile(file string, err error) error {
	var out []error
	for _, e := range splitErrors(err) {
		var ce *Error
		if errors.As(e, &ce) {
			ce.File = file
			out = append(out, ce)
		} else {
			out = append(out, fmt.Errorf("%s: %w", file, e))
		}
	}
	return errors.Join(out...)
}

// splitErrors returns the errors of a top-level errors.Join, or err itself.
func splitErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// locate fills in where each problem is: the flag or environment variable
// that set the value, or the value's line in file; overrides first, then
// the file's problems in line order.
func (c *Config) locate(file string, errs []*Error) error {
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		e.File = file
		if e.Path != "" && e.Line == 0 { // decoding problems have their line
			if f, ok := c.set[e.Path]; ok {
				e.Flag = f
			} else {
				e.Line = c.lineOf(e.Path)
			}
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return sortLine(out[i]) < sortLine(out[j]) })
	return errors.Join(out...)
}

// lineOf returns the line of path in the file, or of its nearest ancestor
// there, or 0.
func (c *Config) lineOf(path string) int {
	for p := path; p != ""; {
		if l, ok := c.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// PathErrorText drops the "open FILE: " of an *fs.PathError: the caller
// names the file itself.
func PathErrorText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// sortLine orders problems: overrides first, then by line.
func sortLine(err error) int {
	var e *Error
	if errors.As(err, &e) && e.Flag == "" {
		return e.Line
	}
	return 0
}

// HasProblemAt reports whether err holds an [*Error] about the value at
// path (or inside it, or one of its sections).
func HasProblemAt(err error, path string) bool {
	for _, e := range splitErrors(err) {
		var ce *Error
		if errors.As(e, &ce) && ce.Path != "" && coveredBy(path, []*Error{ce}) {
			return true
		}
	}
	return false
}
