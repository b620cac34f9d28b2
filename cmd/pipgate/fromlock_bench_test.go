package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/pipgate/pipgate/policy"
)

// genLock writes a PEP 751 lock of n entries of one shape:
//
//	plain     n projects without attestation identities
//	attested  n projects with one GitHub identity each
//	versions  one project locked at n versions, one identity
//	ids       one project with n distinct GitHub identities
//	bad       one project with n identities of kinds pipgate cannot check
func genLock(shape string, n int) []byte {
	var b bytes.Buffer
	b.WriteString("lock-version = \"1.0\"\n")
	if shape == "ids" || shape == "bad" {
		b.WriteString("[[packages]]\nname=\"x\"\n")
	}
	for i := range n {
		s := strconv.Itoa(i)
		switch shape {
		case "plain":
			b.WriteString("[[packages]]\nname=\"p" + s + "\"\n")
		case "attested":
			b.WriteString("[[packages]]\nname=\"p" + s + "\"\n[[packages.attestation-identities]]\nkind=\"GitHub\"\nrepository=\"o/p" + s + "\"\n")
		case "versions":
			b.WriteString("[[packages]]\nname=\"x\"\nversion=\"" + s + "\"\n[[packages.attestation-identities]]\nkind=\"GitHub\"\nrepository=\"o/x\"\n")
		case "ids":
			b.WriteString("[[packages.attestation-identities]]\nkind=\"GitHub\"\nrepository=\"o/" + s + "\"\n")
		case "bad":
			b.WriteString("[[packages.attestation-identities]]\nkind=\"X" + s + "\"\n")
		default:
			panic("genLock: unknown shape " + shape)
		}
	}
	return b.Bytes()
}

// BenchmarkPolicyFromLock runs from-lock on generated locks of 5k, 40k and
// 1M entries of each shape (those under maxLockSize). It reports the lock's
// size and the output's; a policy over policy.MaxFileSize is refused, which
// is also measured.
//
//	go test ./cmd/pipgate -run '^$' -bench PolicyFromLock -benchtime 1x
func BenchmarkPolicyFromLock(b *testing.B) {
	for _, shape := range []string{"plain", "attested", "versions", "ids", "bad"} {
		for _, n := range []int{5_000, 40_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/%d", shape, n), func(b *testing.B) {
				lock := genLock(shape, n)
				if len(lock) > maxLockSize {
					b.Skipf("%d bytes: over maxLockSize", len(lock))
				}
				b.ReportAllocs()
				var out []byte
				var err error
				for b.Loop() {
					out, _, err = policyFromLock(context.Background(), lock, fromLockOptions{Require: policy.RequireTrustedPublisher, Action: policy.ActionBlock, Source: "pylock.toml", Now: time.Unix(0, 0)})
					if err != nil && !errors.Is(err, errPolicyTooLarge) {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(lock)), "lock_bytes")
				b.ReportMetric(float64(len(out)), "out_bytes")
				if err != nil {
					b.ReportMetric(1, "too_large")
				}
			})
		}
	}
}
