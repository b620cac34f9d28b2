package cache_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pipgate/pipgate/cache"
	"github.com/pipgate/pipgate/pypi"
)

func benchFacts() pypi.Facts {
	return pypi.Facts{
		Verdict:  pypi.VerdictVerified,
		Identity: &pypi.Identity{Kind: pypi.KindGitHub, Issuer: "https://token.actions.githubusercontent.com", Subject: "https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1", Repository: "o/r", Workflow: "release.yml", Ref: "refs/tags/v1", Commit: sumB[:40]},
		Recorded: &pypi.Publisher{Kind: pypi.KindGitHub, Repository: "o/r", Workflow: "release.yml"},
	}
}

// BenchmarkFactsHit measures a cached verdict lookup among 10,000 entries.
func BenchmarkFactsHit(b *testing.B) {
	s := openStore(b, "")
	keys := make([]cache.FactKey, 10000)
	for i := range keys {
		keys[i] = cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sha([]byte(fmt.Sprint(i))), ProvenanceSHA256: sumB, TrustRootSHA256: sumC}
	}
	// Fill through concurrent writers, which batch.
	next := atomic.Int64{}
	done := make(chan error)
	for range 8 {
		go func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(keys)) {
					done <- nil
					return
				}
				if err := s.PutFacts(keys[i], benchFacts()); err != nil {
					done <- err
					return
				}
			}
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		f, _, err := s.Facts(keys[i%len(keys)])
		if err != nil || f.Verdict != pypi.VerdictVerified {
			b.Fatalf("Facts: %v, %v", f.Verdict, err)
		}
		i++
	}
}

// BenchmarkPutFacts measures recording a verdict: one writer at a time
// (each write its own fsync), and many at once (bbolt batches them).
func BenchmarkPutFacts(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		s := openStore(b, "")
		f := benchFacts()
		i := 0
		for b.Loop() {
			if err := s.PutFacts(cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sha([]byte(fmt.Sprint(i)))}, f); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := openStore(b, "")
		f := benchFacts()
		var n atomic.Int64
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.PutFacts(cache.FactKey{Filename: "demo-1.0.tar.gz", FileSHA256: sha(fmt.Append(nil, n.Add(1)))}, f); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
