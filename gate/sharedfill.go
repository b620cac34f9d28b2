package gate

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pipgate/pipgate/cache"
)

// fillFromShared tries to fill fl from the shared blob store before the
// upstream is asked. The object is read whole into a new blob before any
// reader attaches (fl is not started meanwhile), hashed as it streams, and
// committed by the same CommitPinned as an upstream body: only when its
// sha256 is the index's (and its size the index's). It reports whether the
// blob is committed. Anything else (no object, the store down or slow, an
// object that does not match) leaves nothing behind and the fill goes on
// from the upstream; an object that does not match is reported, so that
// the upload after the upstream fill replaces it. A client therefore never
// receives a byte of an object that did not match.
func (s *Gate) fillFromShared(ctx context.Context, fl *Fill) bool {
	body, size, err := s.opts.Shared.Get(ctx, fl.want)
	if err != nil {
		return false // a miss, the breaker open, or a failure: counted by the store
	}
	defer body.Close()
	switch {
	case size < 0: // no Content-Length: bounded like an upstream body
	case fl.indexSize >= 0 && size != fl.indexSize:
		s.opts.Shared.Rejected(fl.want, "size", fmt.Sprintf("the object is %d bytes, the index size %d", size, fl.indexSize))
		return false
	case size > fl.limit:
		s.opts.Shared.Rejected(fl.want, "size", fmt.Sprintf("the object is %d bytes, more than the limit %d", size, fl.limit))
		return false
	}
	bw, err := s.store.NewBlob()
	if err != nil {
		s.log.Warn("shared store: creating a blob", "err", err)
		return false
	}
	defer bw.Abort() // no-op after a successful commit
	bound := size
	if size < 0 {
		bound = fl.limit
	}
	n, err := io.Copy(bw, io.LimitReader(body, bound+1))
	if err != nil {
		// A body that broke off is counted by the store (and towards its
		// breaker); the upstream is asked.
		s.log.Info("reading a blob from the shared store failed; fetching it from the upstream", "sha256", fl.want, "err", err)
		return false
	}
	switch {
	case size >= 0 && n != size:
		s.opts.Shared.Rejected(fl.want, "size", fmt.Sprintf("the object body is %d bytes, its Content-Length %d", n, size))
		return false
	case n > fl.limit || (fl.indexSize >= 0 && n != fl.indexSize):
		s.opts.Shared.Rejected(fl.want, "size", fmt.Sprintf("the object body is %d bytes, the index size %d", n, fl.indexSize))
		return false
	}
	sha, unpin, err := bw.CommitPinned(fl.want)
	if err != nil {
		var de *cache.DigestError
		if errors.As(err, &de) {
			s.opts.Shared.Rejected(fl.want, "digest", fmt.Sprintf("the object's sha256 is %s", de.Got))
		} else {
			s.log.Warn("shared store: committing a blob", "sha256", fl.want, "err", err)
		}
		return false
	}
	fl.mu.Lock()
	fl.sha, fl.unpin, fl.written = sha, unpin, n
	fl.mu.Unlock()
	s.metrics.served(SourceShared, n)
	return true
}
