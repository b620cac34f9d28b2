package provenance

import (
	_ "embed" // the embedded trusted root
	"time"
)

// Refresh the embedded root through TUF (network needed), or copy one:
//   go generate ./provenance/
//   go run ./provenance/internal/gentrustroot -out provenance -from FILE -date RFC3339 -source TEXT
//go:generate go run ./internal/gentrustroot -out .

//go:embed embedded_trusted_root.json
var embeddedRoot []byte

// RootSnapshot is a trusted_root.json with the date it was taken, for
// [TrustSourceOptions.Fallback].
type RootSnapshot struct {
	// JSON is the trusted_root.json.
	JSON []byte
	// Date is when the snapshot was taken; it is reported as the root's
	// last refresh while the snapshot is in use.
	Date time.Time
	// Source says where it comes from (logs and the status page).
	Source string
}

// EmbeddedRoot returns the snapshot of Sigstore public-good's
// trusted_root.json built into pipgate (refreshed by go generate), the
// trusted root of last resort when TUF is unreachable and nothing is cached.
func EmbeddedRoot() RootSnapshot {
	d, err := time.Parse(time.RFC3339, embeddedRootDate)
	if err != nil {
		panic("provenance: embedded root date: " + err.Error()) // generated; TestEmbeddedRoot parses it
	}
	return RootSnapshot{JSON: append([]byte(nil), embeddedRoot...), Date: d, Source: embeddedRootSource}
}
