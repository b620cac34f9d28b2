package pypitest_test

import (
	"archive/zip"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/pypi/pypitest"
)

// TestFillZip: archive/zip reads a FillZip member back whole, the prefix
// and n fill bytes, with a matching CRC-32 and size (checked at EOF).
func TestFillZip(t *testing.T) {
	for _, prefix := range []string{"", "Name: demo\n"} {
		for _, n := range []int{0, 1, 64 << 10, 3<<16 + 5} {
			for _, fill := range []byte{0, ' '} {
				b := pypitest.FillZip("m", []byte(prefix), fill, n)
				zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					t.Fatal(err)
				}
				rc, err := zr.File[0].Open()
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if want := prefix + strings.Repeat(string(fill), n); err != nil || string(got) != want {
					t.Errorf("prefix %q, %d × %q: read %d bytes, %v; want %d", prefix, n, fill, len(got), err, len(want))
				}
			}
		}
	}
}
