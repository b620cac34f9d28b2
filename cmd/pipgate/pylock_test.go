package main

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// readLockSeeds are locks whose pieces are easy to get wrong: "[[packages]]"
// inside multi-line strings, sub-tables of an entry after another table,
// packages written inline, and the conflicts TOML forbids across pieces.
var readLockSeeds = []string{
	testLock,
	"lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\ndescription = \"\"\"\n[[packages]]\nname = \"evil\"\n\"\"\"\n",
	"lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\nd = '''\n[[packages]]\n'''\n[[packages]]\nname = \"b\"\n",
	"lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\n[tool.x]\nk = 1\n[[packages.attestation-identities]]\nkind = \"GitHub\"\nrepository = \"o/a\"\n[[packages]]\nname = \"b\"\n",
	"lock-version = \"1.0\"\npackages = [{name = \"a\"}, {name = \"b\", attestation-identities = [{kind = \"GitHub\", repository = \"o/b\"}]}]\n",
	"lock-version = \"1.0\"\npackages = []\n[[packages]]\nname = \"a\"\n",
	"lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\n[packages]\nname = \"b\"\n",
	"lock-version = \"1.0\"\n[packages.x]\n[[packages]]\nname = \"a\"\n",
	"lock-version = \"1.0\"\n[tool.x]\n[[packages]]\nname = \"a\"\n[tool.x]\n",
	"lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\nname = \"b\"\n",
	"lock-version = \"1.0\"\r\n[[ packages ]]\r\nname = \"a\"\r\n[[\"packages\"]]\r\nname = \"b\"\r\n",
	"lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\n[packages.sdist]\nurl = \"u\"\n[[packages]]\nname = \"b\"\n[packages.sdist]\nurl = \"v\"\n",
	"lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\nsdist.url = \"u\"\n[packages.sdist]\nurl = \"v\"\n",
	"[[packages]]\nname = \"a\"\n[x]\nlock-version = \"1.0\"\n",
	"lock-version = \"1.0\"\n  [[packages]]  # indented, with a comment\nname = \"a\"\n",
	"lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\n[[packages]]\nname = 1\n",
}

// readPieces runs readLockPieces and collects what it reads.
func readPieces(lock []byte) (pylock, error) {
	var l pylock
	h, err := readLockPieces(context.Background(), lock, func(p lockPackage) error {
		l.Packages = append(l.Packages, p)
		return nil
	})
	l.lockHeader = h
	return l, err
}

// readAll runs readLock and collects what it reads.
func readAll(lock []byte) (pylock, error) {
	var l pylock
	h, err := readLock(context.Background(), lock, func(p lockPackage) error {
		l.Packages = append(l.Packages, p)
		return nil
	}, func() { l.Packages = nil })
	l.lockHeader = h
	return l, err
}

// FuzzReadLock holds readLock to go-toml's decoding of the whole document:
// the same packages and header, or an error for both. The piecewise
// decoding underneath may only give up (errLockSplit, then readLock decodes
// the whole): when it answers, it answers as the whole does.
func FuzzReadLock(f *testing.F) {
	for _, s := range readLockSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, lock []byte) {
		var whole pylock
		werr := toml.Unmarshal(lock, &whole)
		got, err := readAll(lock)
		switch {
		case (werr == nil) != (err == nil):
			t.Fatalf("whole: %v; readLock: %v", werr, err)
		case werr == nil && !reflect.DeepEqual(normalLock(got), normalLock(whole)):
			t.Fatalf("readLock read %+v; the whole %+v", got, whole)
		}
		pieces, err := readPieces(lock)
		switch {
		case errors.Is(err, errLockSplit):
		case werr != nil && err == nil:
			t.Fatalf("the whole lock does not decode (%v), but its pieces do: %+v", werr, pieces)
		case werr == nil && err != nil:
			t.Fatalf("the whole lock decodes, but its pieces fail with %v", err)
		case werr == nil && !reflect.DeepEqual(normalLock(pieces), normalLock(whole)):
			t.Fatalf("pieces read %+v; the whole %+v", pieces, whole)
		}
	})
}

// normalLock makes nil and empty slices equal.
func normalLock(l pylock) pylock {
	if len(l.Packages) == 0 {
		l.Packages = nil
	}
	for i := range l.Packages {
		if len(l.Packages[i].AttestationIdentites) == 0 {
			l.Packages[i].AttestationIdentites = nil
		}
	}
	return l
}

func TestReadLockSeeds(t *testing.T) {
	for _, s := range readLockSeeds {
		var whole pylock
		werr := toml.Unmarshal([]byte(s), &whole)
		got, err := readAll([]byte(s))
		if (werr == nil) != (err == nil) || werr == nil && !reflect.DeepEqual(normalLock(got), normalLock(whole)) {
			t.Errorf("%q:\npieces %+v, %v\nwhole  %+v, %v", s, got, err, whole, werr)
		}
	}
	// A large lock is read in several batches, in order.
	lock := genLock("attested", 3000)
	if len(lock) < 3*lockBatchBytes {
		t.Fatalf("test lock of %d bytes is too small for several batches", len(lock))
	}
	got, err := readPieces(lock)
	if err != nil || len(got.Packages) != 3000 || got.Packages[2999].Name != "p2999" || got.Packages[1234].AttestationIdentites[0].Repository != "o/p1234" {
		t.Fatalf("read %d packages, %v", len(got.Packages), err)
	}
}

// TestReadLockFallback: a lock its pieces cannot decode is decoded whole,
// after reset, and a TOML error names its line in the whole lock.
func TestReadLockFallback(t *testing.T) {
	var names []string
	each := func(p lockPackage) error { names = append(names, p.Name); return nil }
	reset := func() { names = nil }
	// Valid, but "packages" is both inline and [[packages]]: invalid TOML.
	_, err := readLock(context.Background(), []byte("lock-version = \"1.0\"\npackages = []\n[[packages]]\nname = \"a\"\n"), each, reset)
	var se *lockSyntaxError
	if !errors.As(err, &se) || se.Line != 3 {
		t.Errorf("inline and [[packages]]: %v; want a syntax error on line 3", err)
	}
	// A bad value in the third entry: the line is the document's.
	lock := "lock-version = \"1.0\"\n[[packages]]\nname = \"a\"\n[[packages]]\nname = \"b\"\n[[packages]]\nname = 1\n"
	names = nil
	if _, err := readLock(context.Background(), []byte(lock), each, reset); !errors.As(err, &se) || se.Line != 7 {
		t.Errorf("bad third entry: %v; want a syntax error on line 7", err)
	}
}

// countdownCtx is a context whose Err reports cancellation after n calls:
// it proves a loop checks ctx while it runs, without timing.
type countdownCtx struct {
	context.Context
	n int
}

func (c *countdownCtx) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

// TestPolicyFromLockStops: from-lock checks its context while it reads a
// large lock (SIGINT and SIGTERM cancel it in main), and writes nothing.
func TestPolicyFromLockStops(t *testing.T) {
	t.Parallel()
	for _, shape := range []string{"plain", "attested"} {
		lock := genLock(shape, 30_000)
		ctx := &countdownCtx{Context: context.Background(), n: 3}
		out, _, err := policyFromLock(ctx, lock, fromLockOptions{Require: "trusted-publisher", Action: "block"})
		if !errors.Is(err, context.Canceled) || out != nil {
			t.Errorf("%s: err %v, %d bytes out; want context.Canceled and nothing", shape, err, len(out))
		}
		if ctx.n > 0 {
			t.Errorf("%s: ctx checked %d times; want more", shape, 3-ctx.n)
		}
	}

	path := writeFile(t, t.TempDir(), "pylock.toml", genLock("plain", 1_000))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr strings.Builder
	code := runPolicy(ctx, []string{"from-lock", path}, &stdout, &stderr)
	if code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "interrupted; nothing written") {
		t.Errorf("cancelled: exit %d, stdout %d bytes, stderr %q; want 2, nothing, interrupted", code, stdout.Len(), stderr.String())
	}
}
