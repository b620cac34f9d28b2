package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/cache/shared"
	"github.com/pipgate/pipgate/config"
	"github.com/pipgate/pipgate/gate"
)

// openSharedStore builds the shared blob store of cache.shared.s3, or
// returns nil without one. The bucket is not required to answer at start
// (a replica serves from local disk and the upstream while it is down):
// a probe in the background logs whether it does.
func openSharedStore(ctx context.Context, cfg *config.Config, store *cache.Store, log *slog.Logger, reg prometheus.Registerer) (*shared.Store, error) {
	s3 := cfg.Cache.Shared.S3
	if s3 == nil {
		return nil, nil
	}
	st, err := shared.New(ctx, shared.Options{
		Endpoint: s3.Endpoint, Bucket: s3.Bucket, Prefix: s3.Prefix, Region: s3.Region, PathStyle: *s3.PathStyle,
		Timeout:    s3.Timeout.D(),
		Wait:       s3.FillWait.D(),
		Open:       openLocalBlob(store),
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return nil, cfg.At("cache.shared.s3", "%v", err)
	}
	go func() {
		if err := st.Probe(context.WithoutCancel(ctx)); err != nil {
			log.Warn("the shared store does not answer; serving from local disk and the upstream until it does",
				"store", st.Describe(), "err", err)
			return
		}
		log.Info("shared store answers", "store", st.Describe())
	}()
	return st, nil
}

// openLocalBlob gives the uploader a committed blob, pinned in the local
// store until the upload is done.
func openLocalBlob(store *cache.Store) func(sha string) (io.ReaderAt, int64, func(), error) {
	return func(sha string) (io.ReaderAt, int64, func(), error) {
		b, err := store.OpenBlob(sha)
		if err != nil {
			return nil, 0, nil, err
		}
		fi, err := b.Stat()
		if err != nil {
			b.Close()
			return nil, 0, nil, err
		}
		return b, fi.Size(), func() { b.Close() }, nil
	}
}

// sharedOption is the gate's option: a nil interface without a store (a
// nil *shared.Store in an interface would not be nil).
func sharedOption(st *shared.Store) gate.SharedStore {
	if st == nil {
		return nil
	}
	return st
}
