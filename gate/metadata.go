package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/proxy/upstream"
	"github.com/pipgate/pipgate/pypi"
)

// The metadata of a verified wheel is only ever the METADATA inside it
// (see proxy/metadata.go): extracted once per wheel blob into a
// content-addressed blob, with a ref from the wheel.

// ServesMetadata reports whether pipgate serves PEP 658 metadata for the file
// named filename (a wheel, as pip tells one: by its extension).
func ServesMetadata(filename string) bool { return strings.HasSuffix(filename, ".whl") }

// metadataRef is the name of the ref from a wheel (its sha256 and filename:
// the .dist-info folder is matched against the name) to the METADATA blob
// extracted from it.
func metadataRef(sha, filename string) string { return "metadata:" + sha + ":" + filename }

// MetadataError is a verified wheel whose METADATA cannot be read where pip
// reads it (pypi.ErrWheelMetadata).
type MetadataError struct{ err error }

func (e *MetadataError) Error() string { return e.err.Error() }
func (e *MetadataError) Unwrap() error { return e.err }

// WheelMetadata returns the sha256 of the METADATA blob of the wheel f, and
// the cache state: hit when it was extracted before (fresh skips that, for
// a blob gone since), miss when the wheel was read now (and filled first
// when not cached; the error of a failed fill is what fillFailed returns
// for it).
func (s *Gate) WheelMetadata(ctx context.Context, project string, f *pypi.File, fresh bool, fillFailed func(error) error) (string, CacheState, error) {
	sha := f.SHA256()
	ref := metadataRef(sha, f.Filename)
	if !fresh {
		if m, ok := s.hot.getMetadata(ref); ok {
			return m, CacheHit, nil
		}
		m, err := s.store.Ref(ref)
		if err == nil {
			s.hot.putMetadata(ref, m)
			return m, CacheHit, nil
		}
		if !errors.Is(err, cache.ErrNotFound) {
			s.log.Warn("reading metadata ref", "filename", f.Filename, "sha256", sha, "err", err)
		}
	}
	// The wheel, pinned while this request waits for the extraction
	// (which opens it itself: it may outlive this request).
	wheel, err := s.store.OpenBlob(sha)
	if err != nil {
		if !errors.Is(err, cache.ErrNotFound) {
			s.log.Warn("opening cached file", "filename", f.Filename, "sha256", sha, "err", err)
		}
		fl := s.JoinFill(s.FileFill(project, f))
		got, err := fl.Wait(ctx)
		fl.Leave()
		if err != nil {
			return "", "", fillFailed(err)
		}
		if wheel, err = s.store.OpenBlob(got); err != nil {
			return "", "", fmt.Errorf("opening committed blob: %w", err)
		}
	}
	defer wheel.Close()
	m, err := await(ctx, s, "metadata:"+ref, s.opts.FetchTimeout, func(context.Context) (string, error) {
		return s.extractMetadata(sha, f.Filename, ref)
	})
	if err != nil {
		return "", "", err
	}
	return m, CacheMiss, nil
}

// extractMetadata extracts the METADATA of the wheel blob sha (named
// filename) into a blob and points ref at it.
func (s *Gate) extractMetadata(sha, filename, ref string) (string, error) {
	b, err := s.store.OpenBlob(sha)
	if err != nil {
		return "", fmt.Errorf("opening wheel blob: %w", err)
	}
	defer b.Close()
	fi, err := b.Stat()
	if err != nil {
		return "", fmt.Errorf("wheel blob: %w", err)
	}
	bw, err := s.store.NewBlob()
	if err != nil {
		return "", err
	}
	defer func() { _ = bw.Abort() }()
	out := &errWriter{w: bw}
	if _, err := pypi.WheelMetadata(b, fi.Size(), filename, out); err != nil {
		if out.err != nil {
			return "", fmt.Errorf("writing metadata blob: %w", out.err)
		}
		return "", &MetadataError{err}
	}
	m, err := bw.Commit("")
	if err != nil {
		return "", err
	}
	if err := s.store.PutRef(ref, m); err != nil {
		s.log.Error("caching metadata ref", "filename", filename, "sha256", sha, "err", err)
	}
	s.hot.putMetadata(ref, m)
	return m, nil
}

// errWriter remembers the first error of w, so that a failed write to the
// blob store is not taken for an unreadable wheel.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// MetadataFill is the fill of the upstream's PEP 658 metadata of f (checked
// against the index's core-metadata sha256): for a file that is not a
// verified wheel, whose METADATA is read from the wheel instead.
func (s *Gate) MetadataFill(project string, f *pypi.File) FillRequest {
	return FillRequest{SHA: f.CoreMetadataHashes.Get("sha256"), Size: -1,
		Open: func(ctx context.Context) (io.ReadCloser, int64, error) {
			b, err := s.up.Open(ctx, project, f.URL+".metadata", upstream.KindMetadata)
			if err != nil {
				return nil, 0, err
			}
			return b, b.Size, nil
		}}
}
