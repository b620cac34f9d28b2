package cache

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzBlobPath checks that no name, whatever a request carries, yields a
// path outside Dir/blobs/sha256/<ab>/.
func FuzzBlobPath(f *testing.F) {
	for _, seed := range []string{
		strings.Repeat("a", 64), "../../etc/passwd", strings.Repeat("A", 64),
		"aa/../../" + strings.Repeat("a", 55), strings.Repeat("0", 63) + "/", "",
	} {
		f.Add(seed)
	}
	s := &Store{dir: "/data", blobDir: blobDirOf("/data")}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := s.blobPath(name)
		if err != nil {
			if p != "" {
				t.Errorf("blobPath(%q): got %q with error %v", name, p, err)
			}
			return
		}
		want := filepath.Join("/data", "blobs", "sha256", name[:2], name)
		if p != want || filepath.Base(p) != name || filepath.Clean(p) != p {
			t.Errorf("blobPath(%q): got %q; want %q", name, p, want)
		}
	})
}

// FuzzParseFactKey checks that parsing a stored key and rendering it again
// gives the same bytes, and that whatever parses is a valid key.
func FuzzParseFactKey(f *testing.F) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, seed := range []string{a + "/-/-/d-1.0.tar.gz", a + "/" + b + "/-/d-1.0.tar.gz", a + "/-/" + b + "/d.whl",
		a + "/" + b + "/" + a + "/x", a + "/-/-", a + "///", a + "/-/-/a/b", "x"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		k, ok := parseFactKey(raw)
		if !ok {
			return
		}
		got, err := k.key()
		if err != nil || string(got) != string(raw) {
			t.Errorf("parseFactKey(%q) = %+v; key() = %q, %v", raw, k, got, err)
		}
	})
}

// FuzzDecodeRecord feeds arbitrary bytes (a damaged database) to every
// record decoder: no panic, and what decodes survives a re-encode.
func FuzzDecodeRecord(f *testing.F) {
	seeds := []string{
		`{"v":1,"recorded_at":"2026-01-01T00:00:00Z","facts":{"verdict":"verified","identity":{"kind":"github","issuer":"i"}}}`,
		`{"v":1,"body":"e30=","sha256":"x","fetched_at":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"fetched_at":"2026-01-01T00:00:00Z","page":{"Name":"demo","Files":[{"Filename":"a.whl","Hashes":{"sha256":"ab"},"Size":-1}]}}`,
		`{"v":1,"list":{"Projects":[{"Name":"Demo"}]}}`,
		`{"v":1,"sha256":"` + strings.Repeat("a", 64) + `"}`,
		`{"v":1,"history":{"publishers":[{"identity":"github:o/r","versions":["1.0"]}]}}`,
		`{"v":2}`, `{"v":1,"page":`, `null`, ``,
	}
	for _, s := range seeds {
		for _, b := range dataBuckets() {
			f.Add(b, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, bucket string, raw []byte) {
		var r, again record
		switch bucket {
		case bucketFacts:
			r, again = &factsRecord{}, &factsRecord{}
		case bucketProvenance:
			r, again = &provenanceRecord{}, &provenanceRecord{}
		case bucketPages:
			r, again = &pageRecord{}, &pageRecord{}
		case bucketLists:
			r, again = &listRecord{}, &listRecord{}
		case bucketRefs:
			r, again = &refRecord{}, &refRecord{}
		case bucketHistory:
			r, again = &historyRecord{}, &historyRecord{}
		default:
			return
		}
		_, _ = checkRecord(bucket, []byte("demo"), raw)
		if decode(raw, r) != nil {
			return
		}
		enc, err := encode(r)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", raw, err)
		}
		if err := decode(enc, again); err != nil {
			t.Fatalf("decoding the re-encoded %q: %v", enc, err)
		}
		enc2, _ := encode(again)
		if string(enc2) != string(enc) {
			t.Errorf("round trip not stable:\n%s\n%s", enc, enc2)
		}
	})
}
