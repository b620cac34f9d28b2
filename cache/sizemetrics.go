package cache

import (
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// BlobBytes returns the bytes of the file blobs (blobs/sha256): the figure
// cache.max_size bounds, shown by the status page, 'pipgate cache stats'
// and pipgate_cache_blob_bytes. It is counted at Open and kept up to date
// by commits, eviction, quarantine and purge.
func (s *Store) BlobBytes() int64 { return s.blobBytes.Load() }

// DBBytes returns the size of the bbolt file on disk (bbolt grows it ahead
// of need and never shrinks it); 0 when it cannot be read.
func (s *Store) DBBytes() int64 {
	if fi, err := os.Stat(s.dbPath); err == nil {
		return fi.Size()
	}
	return 0
}

// MaxBlobBytes returns the blob limit in force ([Options.MaxBlobBytes]);
// 0: no limit.
func (s *Store) MaxBlobBytes() int64 { return s.maxBlobBytes }

// registerSizeMetrics registers pipgate_cache_blob_bytes (compare it with
// pipgate_cache_max_size_bytes) and pipgate_cache_db_bytes, read at each
// scrape.
func (s *Store) registerSizeMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pipgate_cache_blob_bytes",
			Help: "Bytes of the cached file blobs (distributions and .metadata): what cache.max_size (pipgate_cache_max_size_bytes) bounds.",
		}, func() float64 { return float64(s.BlobBytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pipgate_cache_db_bytes",
			Help: "Size of the bbolt database file (verdicts, provenance, page snapshots); not bounded by cache.max_size.",
		}, func() float64 { return float64(s.DBBytes()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("cache: registering metrics: %w", err)
		}
	}
	return nil
}
