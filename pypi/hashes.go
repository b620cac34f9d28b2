package pypi

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"iter"
	"maps"
	"slices"
	"strings"
)

// Hashes are a file's digests: hash name ("sha256") to lower-case hex. A
// project page may list hundreds of thousands of files, so Hashes is one
// string, not a map or a slice of pairs: the usual case, a sha256 digest
// alone, is just its 32 bytes (no name, no hex, no header, no second
// allocation); any other set is encoded with its names (see encodeHashes).
// Names are kept sorted. The zero value is no hashes object at all (JSON
// null), as a nil map would be; MakeHashes of an empty map is an empty,
// non-nil set (JSON {}). Use MakeHashes, Get, Lookup, Set, All, Len, Map.
type Hashes struct {
	enc string
}

// Hash is one named digest.
type Hash struct {
	Name, Digest string
}

// hashesEmpty is the encoding of an empty, non-nil set; hashesTagged
// starts the general encoding (name length, name, digest length, digest,
// lengths as uvarints). A lone lower-case sha256 digest is stored bare, as
// its 32 bytes: the only encoding of that length (a general one that would
// be 32 bytes long gets a zero byte more, which the reader ignores).
const (
	hashesEmpty  = "{}"
	hashesTagged = '='
	sha256Len    = sha256.Size
)

// MakeHashes returns m as Hashes; nil for a nil map, empty (not nil) for an
// empty one.
func MakeHashes(m map[string]string) Hashes {
	if m == nil {
		return Hashes{}
	}
	h := make([]Hash, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		h = append(h, Hash{k, m[k]})
	}
	return encodeHashes(h)
}

// HashesOf returns one named digest as Hashes.
func HashesOf(name, digest string) Hashes { return encodeHashes([]Hash{{name, digest}}) }

// encodeHashes encodes h, sorted by name and without duplicate names.
func encodeHashes(h []Hash) Hashes {
	if len(h) == 0 {
		return Hashes{hashesEmpty}
	}
	if len(h) == 1 && h[0].Name == "sha256" && len(h[0].Digest) == 2*sha256Len && isLowerHex(h[0].Digest) {
		raw, _ := hex.DecodeString(h[0].Digest)
		return Hashes{string(raw)}
	}
	n := 1
	for _, e := range h {
		n += 2*binary.MaxVarintLen64 + len(e.Name) + len(e.Digest)
	}
	b := make([]byte, 0, n)
	b = append(b, hashesTagged)
	for _, e := range h {
		b = binary.AppendUvarint(b, uint64(len(e.Name)))
		b = append(b, e.Name...)
		b = binary.AppendUvarint(b, uint64(len(e.Digest)))
		b = append(b, e.Digest...)
	}
	if len(b) == sha256Len {
		b = append(b, 0)
	}
	return Hashes{string(b)}
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// IsNil reports whether h is no hashes object at all (the zero value).
func (h Hashes) IsNil() bool { return h.enc == "" }

// All yields the digests in name order.
func (h Hashes) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		switch {
		case h.enc == "" || h.enc == hashesEmpty:
			return
		case len(h.enc) == sha256Len:
			yield("sha256", hex.EncodeToString([]byte(h.enc)))
			return
		}
		s := h.enc[1:] // h.enc[0] is hashesTagged
		for len(s) > 0 {
			name, rest, ok := cutUvarint(s)
			if !ok {
				return
			}
			digest, rest, ok := cutUvarint(rest)
			if !ok {
				return
			}
			if !yield(name, digest) {
				return
			}
			s = rest
		}
	}
}

// cutUvarint reads a uvarint length n from s and returns the n bytes after
// it and the rest.
func cutUvarint(s string) (string, string, bool) {
	var n uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			s = s[i+1:]
			if n > uint64(len(s)) {
				return "", "", false
			}
			return s[:n], s[n:], true
		}
		shift += 7
	}
	return "", "", false
}

// Len returns the number of digests.
func (h Hashes) Len() int {
	n := 0
	for range h.All() {
		n++
	}
	return n
}

// Pairs returns the digests in name order (nil for none).
func (h Hashes) Pairs() []Hash {
	var out []Hash
	for n, d := range h.All() {
		out = append(out, Hash{n, d})
	}
	return out
}

// Map returns h as a map (nil for nil).
func (h Hashes) Map() map[string]string {
	if h.IsNil() {
		return nil
	}
	m := make(map[string]string, 1)
	for n, d := range h.All() {
		m[n] = d
	}
	return m
}

// isLoneSHA256 reports whether h is a sha256 digest alone, stored as its
// 32 bytes: encodeHashes stores one so only when its hex is valid and
// lower-case, so it needs no normalizing.
func (h Hashes) isLoneSHA256() bool { return len(h.enc) == sha256Len }

// appendSHA256 appends the lone sha256 digest of h in hex and reports
// whether h is one (the usual case, written without an allocation).
func (h Hashes) appendSHA256(b []byte) ([]byte, bool) {
	if len(h.enc) != sha256Len {
		return b, false
	}
	return hex.AppendEncode(b, []byte(h.enc)), true
}

// Get returns the digest named name, or "".
func (h Hashes) Get(name string) string {
	d, _ := h.Lookup(name)
	return d
}

// Lookup returns the digest named name and whether there is one.
func (h Hashes) Lookup(name string) (string, bool) {
	if len(h.enc) == sha256Len {
		if name != "sha256" {
			return "", false
		}
		return hex.EncodeToString([]byte(h.enc)), true
	}
	for n, d := range h.All() {
		if n == name {
			return d, true
		}
	}
	return "", false
}

// Set sets the digest named name, keeping h sorted.
func (h *Hashes) Set(name, digest string) {
	pairs := h.Pairs()
	i, found := slices.BinarySearchFunc(pairs, name, func(e Hash, n string) int { return strings.Compare(e.Name, n) })
	if found {
		pairs[i].Digest = digest
	} else {
		pairs = slices.Insert(pairs, i, Hash{name, digest})
	}
	*h = encodeHashes(pairs)
}

// size is the memory h holds beyond its header.
func (h Hashes) size() int {
	if h.enc == hashesEmpty {
		return 0 // a constant
	}
	return len(h.enc)
}

// MarshalJSON writes h as an object, keys sorted (null for nil).
func (h Hashes) MarshalJSON() ([]byte, error) {
	if h.IsNil() {
		return []byte("null"), nil
	}
	return appendJSONHashes(nil, h), nil
}

// UnmarshalJSON reads an object of strings (null leaves h nil).
func (h *Hashes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = Hashes{}
		return nil
	}
	if raw, ok := cutLoneSHA256(b); ok {
		*h = Hashes{string(raw[:])}
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("hashes: not an object")
	}
	*h = MakeHashes(m)
	return nil
}

// cutLoneSHA256 reads the usual hashes object, exactly
// {"sha256":"<64 lower-case hex digits>"}, without a map: what MakeHashes
// makes of it, a lone sha256 (a page may hold 390k of them). Anything else
// (another spelling, space, escapes, upper case) is not read here.
func cutLoneSHA256(b []byte) (raw [sha256Len]byte, ok bool) {
	const pre, post = `{"sha256":"`, `"}`
	if len(b) != len(pre)+2*sha256Len+len(post) || string(b[:len(pre)]) != pre || string(b[len(b)-len(post):]) != post {
		return raw, false
	}
	d := b[len(pre) : len(b)-len(post)]
	for _, c := range d {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return raw, false
		}
	}
	_, err := hex.Decode(raw[:], d)
	return raw, err == nil
}

// Encoded returns h's encoding, for a caller that accounts for the memory
// it holds (its length is that memory, give or take a constant).
func (h Hashes) Encoded() string { return h.enc }
