package pypi

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
)

// Hashes are a file's digests: hash name ("sha256") to lower-case hex. It is
// a small slice sorted by name, not a map: a project page may list hundreds
// of thousands of files, and a map per file costs ten times the one entry it
// holds. In JSON it is an object, as a map[string]string would be.
type Hashes []Hash

// Hash is one named digest.
type Hash struct {
	Name, Digest string
}

// MakeHashes returns m as Hashes; nil for a nil map, empty (not nil) for an
// empty one.
func MakeHashes(m map[string]string) Hashes {
	if m == nil {
		return nil
	}
	h := make(Hashes, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		h = append(h, Hash{internHashName(k), m[k]})
	}
	return h
}

// Map returns h as a map (nil for nil).
func (h Hashes) Map() map[string]string {
	if h == nil {
		return nil
	}
	m := make(map[string]string, len(h))
	for _, e := range h {
		m[e.Name] = e.Digest
	}
	return m
}

// Get returns the digest named name, or "".
func (h Hashes) Get(name string) string {
	d, _ := h.Lookup(name)
	return d
}

// Lookup returns the digest named name and whether there is one.
func (h Hashes) Lookup(name string) (string, bool) {
	for _, e := range h {
		if e.Name == name {
			return e.Digest, true
		}
	}
	return "", false
}

// Set sets the digest named name, keeping h sorted.
func (h *Hashes) Set(name, digest string) {
	i, found := slices.BinarySearchFunc(*h, name, func(e Hash, n string) int { return strings.Compare(e.Name, n) })
	if found {
		(*h)[i].Digest = digest
		return
	}
	*h = slices.Insert(*h, i, Hash{internHashName(name), digest})
}

// MarshalJSON writes h as an object, keys sorted.
func (h Hashes) MarshalJSON() ([]byte, error) {
	if h == nil {
		return []byte("null"), nil
	}
	return appendJSONHashes(nil, h), nil
}

// UnmarshalJSON reads an object of strings (null leaves h nil).
func (h *Hashes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
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

// internHashName returns the shared copy of a common hash name, so that
// the names of a page's hashes take no memory of their own.
func internHashName(n string) string {
	for _, k := range hashPreference {
		if n == k {
			return k
		}
	}
	return n
}
