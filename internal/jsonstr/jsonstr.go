// Package jsonstr appends a Go string as a quoted JSON string, byte for byte
// as the standard library writes it: encoding/json without HTML escaping
// (the audit record, audit.FuzzAppendRecord) or log/slog's JSON handler (the
// log line, logbuf.FuzzAppendJSON). The two write the same bytes but for
// one thing: encoding/json has short escapes for backspace and form feed
// (\b, \f), slog writes them as \u0008 and \u000c. Both escape quote,
// backslash and the other control characters, write invalid UTF-8 as
// \ufffd and escape U+2028 and U+2029.
package jsonstr

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// AppendEncoding appends s quoted as encoding/json does with SetEscapeHTML(false).
func AppendEncoding(b []byte, s string) []byte { return appendQuoted(b, s, true) }

// AppendSlog appends s quoted as log/slog's JSONHandler does.
func AppendSlog(b []byte, s string) []byte { return appendQuoted(b, s, false) }

func appendQuoted(b []byte, s string, shortBF bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '\\' || c == '"':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b' && shortBF:
				b = append(b, '\\', 'b')
			case c == '\f' && shortBF:
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
