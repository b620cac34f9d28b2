package audit

import "github.com/pipgate/pipgate/internal/jsonstr"

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
	b = jsonstr.AppendEncoding(b, r.Event)
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
			b = jsonstr.AppendEncoding(b, f.v)
		}
	}
	return append(b, "}\n"...), true
}
