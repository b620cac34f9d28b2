package cache_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipgate/pipgate/cache"
)

// gaugeValue returns the value of the gauge name in reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// The blob bytes are one figure: the gauge the dashboard compares with
// max_size, Stats (what 'pipgate cache stats' prints), and the files on
// disk agree, and stay within the limit; the database is counted apart.
func TestBlobBytesIsTheFigureMaxSizeBounds(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s, err := cache.Open(cache.Options{Dir: dir, MaxBlobBytes: 8 * mib, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 4 { // 12 MiB committed, 8 MiB allowed: two are evicted
		putBlob(t, s, blobContent(i, 3*mib))
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	blob := gaugeValue(t, reg, "pipgate_cache_blob_bytes")
	if onDisk := blobDirBytes(t, dir); blob != float64(onDisk) || st.BlobBytes != onDisk || s.BlobBytes() != onDisk {
		t.Errorf("pipgate_cache_blob_bytes %v, Stats %d, BlobBytes %d; want the %d bytes on disk", blob, st.BlobBytes, s.BlobBytes(), onDisk)
	}
	if limit := gaugeValue(t, reg, "pipgate_cache_max_size_bytes"); blob > limit || limit != 8*mib || s.MaxBlobBytes() != 8*mib {
		t.Errorf("blob bytes %v over the limit %v (MaxBlobBytes %d)", blob, limit, s.MaxBlobBytes())
	}
	db := gaugeValue(t, reg, "pipgate_cache_db_bytes")
	if db <= 0 || db != float64(st.DBBytes) {
		t.Errorf("pipgate_cache_db_bytes %v; want Stats' %d", db, st.DBBytes)
	}
	if total := gaugeValue(t, reg, "pipgate_cache_size_bytes"); total != blob+db {
		t.Errorf("deprecated pipgate_cache_size_bytes %v; want blobs + database %v", total, blob+db)
	}
}
