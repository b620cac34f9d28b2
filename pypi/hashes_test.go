package pypi_test

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/pypi"
)

// TestHashesRoundTrip: every set of digests reads back as it was made,
// whatever its encoding (a lone sha256 as 32 bytes, a general set whose
// encoding happens to be 32 bytes long, an empty set, none).
func TestHashesRoundTrip(t *testing.T) {
	sha := strings.Repeat("0f", 32)
	sets := []map[string]string{
		nil,
		{},
		{"sha256": sha},
		{"sha256": strings.ToUpper(sha)},
		{"x": strings.Repeat("ab", 14)}, // the general encoding is 32 bytes: padded
		{"sha256": sha, "md5": strings.Repeat("1", 32)},
		{"sha512": strings.Repeat("2", 128), "Z\n": "00", "": "x"},
		{"sha256": "abc"},
	}
	for _, m := range sets {
		h := pypi.MakeHashes(m)
		if got := h.Map(); !maps.Equal(got, m) || (got == nil) != (m == nil) {
			t.Errorf("MakeHashes(%v).Map() = %v", m, got)
		}
		if h.IsNil() != (m == nil) || h.Len() != len(m) {
			t.Errorf("MakeHashes(%v): IsNil %v, Len %d", m, h.IsNil(), h.Len())
		}
		for k, v := range m {
			if got := h.Get(k); got != v {
				t.Errorf("MakeHashes(%v).Get(%q) = %q", m, k, got)
			}
		}
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var back pypi.Hashes
		if err := json.Unmarshal(b, &back); err != nil || !maps.Equal(back.Map(), m) {
			t.Errorf("JSON round trip of %v: %s → %v, %v", m, b, back.Map(), err)
		}
	}
	var h pypi.Hashes
	h.Set("sha256", sha)
	h.Set("md5", strings.Repeat("1", 32))
	h.Set("sha256", strings.Repeat("2", 64))
	if h.Get("sha256") != strings.Repeat("2", 64) || h.Get("md5") != strings.Repeat("1", 32) || h.Len() != 2 {
		t.Errorf("after Set: %v", h.Map())
	}
}

// FuzzHashesUnmarshalJSON: Hashes read from JSON are what MakeHashes makes
// of the object encoding/json reads (the usual lone sha256 is read without
// the map), and what it refuses is refused.
func FuzzHashesUnmarshalJSON(f *testing.F) {
	sha := strings.Repeat("0f", 32)
	for _, s := range []string{
		`{"sha256":"` + sha + `"}`, `{"sha256":"` + strings.ToUpper(sha) + `"}`, `{"SHA256":"` + sha + `"}`,
		`{"sha256": "` + sha + `"}`, `{"sha256":"` + sha[:63] + `g"}`, `{"sha256":"` + sha[:62] + `\u0030"}`,
		`{"sha256":"` + sha + `","md5":"00"}`, `{"sha256":"` + sha + `"}}`, `{"sha256":"` + sha + `0"}`,
		`{"sha256":"` + sha[:63] + `"}`, `{}`, `null`, `[]`, `{"sha256":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m map[string]string
		merr := json.Unmarshal(b, &m)
		var h pypi.Hashes
		herr := json.Unmarshal(b, &h)
		if (merr == nil) != (herr == nil) {
			t.Fatalf("%q: Hashes error %v; as a map: %v", b, herr, merr)
		}
		if merr == nil && m != nil && h != pypi.MakeHashes(m) {
			t.Fatalf("%q: Hashes %q; MakeHashes of the map: %q", b, h.Encoded(), pypi.MakeHashes(m).Encoded())
		}
	})
}
