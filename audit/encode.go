package audit

import "unicode/utf8"

// appendRecord appends r as one line of JSON, byte for byte what
// encoding/json's Encoder with SetEscapeHTML(false) writes (FuzzAppendRecord
// holds it to that), without reflection or allocation: it runs once per
// download.
// It returns ok false, and b unchanged, for a record encoding/json refuses
// too (a time RFC 3339 cannot spell).
func appendRecord(b []byte, r *Record) (_ []byte, ok bool) {
	orig := b
	b, err := r.Time.AppendText(append(b, `{"time":"`...)) // Time.MarshalJSON's text, and its checks
	if err != nil {
		return orig, false
	}
	b = append(b, `","event":`...)
	b = appendString(b, r.Event)
	for _, f := range [...]struct {
		key string
		v   string
	}{
		{`,"request_id":`, r.RequestID},
		{`,"client":`, r.Client},
		{`,"project":`, r.Project},
		{`,"version":`, r.Version},
		{`,"filename":`, r.Filename},
		{`,"sha256":`, r.SHA256},
		{`,"verdict":`, string(r.Verdict)},
		{`,"reason":`, r.Reason},
		{`,"identity":`, r.Identity},
		{`,"rule":`, r.Rule},
		{`,"action":`, string(r.Action)},
		{`,"finding":`, string(r.Finding)},
		{`,"host":`, r.Host},
		{`,"upstream":`, r.Upstream},
	} {
		if f.v != "" {
			b = append(b, f.key...)
			b = appendString(b, f.v)
		}
	}
	return append(b, "}\n"...), true
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does without
// HTML escaping: quote, backslash and control characters escaped, invalid
// UTF-8 replaced with U+FFFD, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
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
