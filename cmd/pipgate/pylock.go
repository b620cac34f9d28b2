package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// lockHeader is what from-lock reads of a PEP 751 lock outside its packages.
type lockHeader struct {
	LockVersion string `toml:"lock-version"`
	CreatedBy   string `toml:"created-by"`
}

// pylock is the part of a PEP 751 lock file from-lock reads.
type pylock struct {
	lockHeader
	Packages []lockPackage `toml:"packages"`
}

type lockPackage struct {
	Name                 string             `toml:"name"`
	Version              string             `toml:"version"`
	AttestationIdentites []lockIdentityTOML `toml:"attestation-identities"`
}

// lockIdentityTOML is one PEP 751 attestation identity: kind plus the
// fields of that kind's PEP 740 publisher object.
type lockIdentityTOML struct {
	Kind             string `toml:"kind"`
	Repository       string `toml:"repository"`
	Workflow         string `toml:"workflow"`
	WorkflowFilepath string `toml:"workflow_filepath"`
	Email            string `toml:"email"`
	Environment      string `toml:"environment"`
}

// lockBatchBytes is how many bytes of [[packages]] entries readLock decodes
// at once.
const lockBatchBytes = 64 << 10

// errLockSplit says the lock could not be decoded entry by entry: readLock
// then decodes it whole, which gives the authoritative answer.
var errLockSplit = errors.New("lock not decodable entry by entry")

// readLock decodes a PEP 751 lock and calls each for every package, in
// order, then returns the header. On a TOML error it returns a
// [lockSyntaxError] with the line and column in the whole document.
//
// Decoding a large lock whole holds a tree of every entry (a 30 MB lock of
// a million entries took 1.3 GB and 17 s with BurntSushi/toml), so readLock
// decodes it in pieces with go-toml's validating decoder: one streaming
// pass of go-toml's syntax parser finds where each top-level table starts;
// every [[packages]] entry (its header up to the next table that is not
// one of its sub-tables, plus any packages.* sub-tables that come later, as
// TOML assigns them to the last entry) is decoded in batches and handed to
// each; the rest of the document (the header keys and any other tables) is
// decoded as one document of its own. In valid TOML no key or table of one
// entry can conflict with another entry's or with the rest, so the pieces
// decode as the whole would. The one cross-piece conflict, "packages"
// defined both outside the entries and as [[packages]] (or a [packages]
// table), is caught in the pass. Any piece that does not decode makes
// readLock decode the whole document instead (so errors carry the
// document's line numbers); reset is then called before each is called
// again from the start. The fuzz test FuzzReadLock holds the two ways to
// the same result. (go-toml matches keys to fields in any case, so a
// top-level "Packages" also sends readLock to the whole document.)
func readLock(ctx context.Context, lock []byte, each func(lockPackage) error, reset func()) (lockHeader, error) {
	h, err := readLockPieces(ctx, lock, each)
	if !errors.Is(err, errLockSplit) {
		return h, err
	}
	var l pylock
	if err := toml.Unmarshal(lock, &l); err != nil {
		return lockHeader{}, lockTOMLError(err)
	}
	reset()
	for i, pkg := range l.Packages {
		if i%1024 == 0 && ctx.Err() != nil {
			return lockHeader{}, ctx.Err()
		}
		if err := each(pkg); err != nil {
			return lockHeader{}, err
		}
	}
	return l.lockHeader, nil
}

// lockSyntaxError is a TOML error at a place in the whole lock.
type lockSyntaxError struct {
	Line, Column int
	Msg          string
}

func (e *lockSyntaxError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// lockTOMLError converts go-toml's error.
func lockTOMLError(err error) error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return &lockSyntaxError{Line: row, Column: col, Msg: strings.TrimPrefix(de.Error(), "toml: ")}
	}
	return err
}

// readLockPieces is readLock's piecewise decoding; errLockSplit when a
// piece does not decode or "packages" is defined in two ways.
func readLockPieces(ctx context.Context, lock []byte, each func(lockPackage) error) (lockHeader, error) {
	var (
		p          unstable.Parser
		rest       []byte // the document outside the [[packages]] entries
		batch      []byte // whole entries not yet decoded
		start      int    // where the current table starts
		inEntry    bool   // the current table belongs to the last entry
		entries    bool   // a [[packages]] entry has been seen
		atRoot     = true // no table header yet
		restHasPkg bool   // "packages" defined outside the entries
		n          int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var l struct {
			Packages []lockPackage `toml:"packages"`
		}
		if err := toml.Unmarshal(batch, &l); err != nil {
			return errLockSplit
		}
		batch = batch[:0]
		for _, pkg := range l.Packages {
			if err := each(pkg); err != nil {
				return err
			}
		}
		return nil
	}
	// closeTable files lock[start:end] with the entry or with the rest.
	closeTable := func(end int) {
		if inEntry {
			batch = append(batch, lock[start:end]...)
		} else {
			rest = append(rest, lock[start:end]...)
		}
		start = end
	}
	p.Reset(lock)
	for p.NextExpression() {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return lockHeader{}, ctx.Err()
		}
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			if k := e.Key(); atRoot && k.Next() {
				switch key := string(k.Node().Data); {
				case key == "packages":
					restHasPkg = true
				case strings.EqualFold(key, "packages"):
					return lockHeader{}, errLockSplit // go-toml matches field names in any case
				}
			}
			continue
		case unstable.Table, unstable.ArrayTable:
		default:
			continue
		}
		var key []string
		for k := e.Key(); k.Next(); {
			key = append(key, string(k.Node().Data))
		}
		// A header is alone on its line: its table starts at that line.
		off := int(e.Child().Raw.Offset)
		for off > 0 && lock[off-1] != '\n' {
			off--
		}
		closeTable(off)
		atRoot = false
		if key[0] != "packages" && strings.EqualFold(key[0], "packages") {
			return lockHeader{}, errLockSplit // go-toml matches field names in any case
		}
		switch {
		case key[0] != "packages":
			inEntry = false
		case len(key) == 1 && e.Kind == unstable.ArrayTable:
			if len(batch) >= lockBatchBytes {
				if err := flush(); err != nil {
					return lockHeader{}, err
				}
			}
			entries, inEntry = true, true
		case len(key) > 1 && entries:
			inEntry = true // a sub-table of the last entry
		default:
			restHasPkg, inEntry = true, false // [packages], or packages.x before any entry
		}
	}
	if p.Error() != nil {
		return lockHeader{}, errLockSplit
	}
	closeTable(len(lock))
	if restHasPkg && entries {
		return lockHeader{}, errLockSplit
	}
	if err := flush(); err != nil {
		return lockHeader{}, err
	}
	var l pylock
	if err := toml.Unmarshal(rest, &l); err != nil {
		return lockHeader{}, errLockSplit
	}
	for _, pkg := range l.Packages { // packages = [...] written inline
		if err := each(pkg); err != nil {
			return lockHeader{}, err
		}
	}
	return l.lockHeader, nil
}
