// Package statusline makes reason phrases for HTTP/1.1 status lines: the
// index server's refusals and the egress proxy's say why in the line pip
// prints.
package statusline

import (
	"net/http"
	"strings"
)

// maxReason bounds the reason phrase, in bytes.
const maxReason = 300

// Reason makes s a valid HTTP/1.1 reason phrase (RFC 9112:
// HTAB / SP / VCHAR): one line of printable ASCII, other characters replaced
// by "?", runs of white space collapsed, at most 300 bytes (a cut is marked
// with "..."). An empty result becomes the status's standard text.
func Reason(code int, s string) string {
	var b strings.Builder
	b.Grow(min(len(s), maxReason))
	space := false
	for _, r := range s {
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r < 0x20 || r == 0x7f:
			space = b.Len() > 0
			continue
		case r > 0x7e:
			r = '?'
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		if b.Len() > maxReason {
			break
		}
	}
	out := b.String()
	if len(out) > maxReason {
		out = out[:maxReason-3] + "..."
	}
	if out == "" {
		out = http.StatusText(code)
	}
	return out
}
