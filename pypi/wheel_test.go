package pypi_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/pypi"
	"github.com/pipgate/pipgate/pypi/pypitest"
)

type zipMember struct {
	name   string
	data   []byte
	method uint16
}

func makeZip(t testing.TB, members ...zipMember) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range members {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: m.method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func wheelMetadata(content []byte, filename string) ([]byte, error) {
	var out bytes.Buffer
	n, err := pypi.WheelMetadata(bytes.NewReader(content), int64(len(content)), filename, &out)
	if err == nil && n != int64(out.Len()) {
		return nil, errors.New("count differs from bytes written")
	}
	return out.Bytes(), err
}

func TestWheelMetadata(t *testing.T) {
	meta := pypitest.Metadata("Foo.Bar", "1.0", pypitest.WheelOptions{Requires: []string{"six"}})
	got, err := wheelMetadata(pypitest.MakeWheel("Foo.Bar", "1.0", pypitest.WheelOptions{Requires: []string{"six"}}),
		pypitest.WheelFilename("Foo.Bar", "1.0"))
	if err != nil || !bytes.Equal(got, meta) {
		t.Fatalf("WheelMetadata = %q, %v; want %q", got, err, meta)
	}
	// The dist-info folder is matched by PEP 503 name and PEP 440 version,
	// as the filename parses: Foo_Bar-1.0.0 is foo-bar 1.0.
	other := makeZip(t, zipMember{"foo/__init__.py", nil, zip.Deflate},
		zipMember{"Foo_Bar-1.0.0.dist-info/METADATA", meta, zip.Deflate},
		zipMember{"Foo_Bar-1.0.0.dist-info/RECORD", nil, zip.Store})
	if got, err := wheelMetadata(other, "foo_bar-1.0-py3-none-any.whl"); err != nil || !bytes.Equal(got, meta) {
		t.Errorf("Foo_Bar-1.0.0.dist-info in foo_bar-1.0: %q, %v", got, err)
	}
}

func TestWheelMetadataRefused(t *testing.T) {
	const fn = "demo-1.0-py3-none-any.whl"
	meta := []byte("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
	good := zipMember{"demo-1.0.dist-info/METADATA", meta, zip.Deflate}
	big := pypitest.FillZip("demo-1.0.dist-info/METADATA", nil, 0, pypi.MaxWheelMetadataBytes+1)
	bomb := pypitest.FillZip("demo-1.0.dist-info/METADATA", nil, 0, 8<<20)
	wheel := makeZip(t, good)
	for _, tt := range []struct {
		name, filename string
		content        []byte
		want           string
	}{
		{"two dist-info folders", fn, makeZip(t, good, zipMember{"evil-1.0.dist-info/METADATA", meta, zip.Deflate}), "2 .dist-info directories"},
		{"two dist-info folders, one without METADATA", fn, makeZip(t, good, zipMember{"demo-2.0.dist-info/RECORD", nil, zip.Deflate}), "2 .dist-info directories"},
		{"no dist-info", fn, makeZip(t, zipMember{"demo/__init__.py", nil, zip.Deflate}), "0 .dist-info directories"},
		{"another project's dist-info", fn, makeZip(t, zipMember{"evil-1.0.dist-info/METADATA", meta, zip.Deflate}), "not the project demo"},
		{"another version's dist-info", fn, makeZip(t, zipMember{"demo-2.0.dist-info/METADATA", meta, zip.Deflate}), "not version 1.0"},
		{"a prefix of the name", "demo_x-1.0-py3-none-any.whl", wheel, "not the project demo-x"},
		{"dist-info without a version", fn, makeZip(t, zipMember{"demo.dist-info/METADATA", meta, zip.Deflate}), "not named"},
		{"no METADATA", fn, makeZip(t, zipMember{"demo-1.0.dist-info/RECORD", nil, zip.Deflate}), "no demo-1.0.dist-info/METADATA"},
		{"METADATA in a subfolder only", fn, makeZip(t, zipMember{"demo-1.0.dist-info/x/METADATA", meta, zip.Deflate}), "no demo-1.0.dist-info/METADATA"},
		{"two METADATA members", fn, makeZip(t, good, zipMember{"demo-1.0.dist-info/METADATA", []byte("Name: evil\n"), zip.Deflate}), "two demo-1.0.dist-info/METADATA"},
		{"a METADATA twin with a backslash", fn, makeZip(t, good, zipMember{"demo-1.0.dist-info\\METADATA", []byte("Name: evil\n"), zip.Deflate}), "two demo-1.0.dist-info/METADATA"},
		{"a METADATA twin in another case", fn, makeZip(t, good, zipMember{"demo-1.0.dist-info/metadata", []byte("Name: evil\n"), zip.Deflate}), "two demo-1.0.dist-info/METADATA"},
		{"only a lower-case metadata", fn, makeZip(t, zipMember{"demo-1.0.dist-info/Metadata", meta, zip.Deflate}), "no demo-1.0.dist-info/METADATA"},
		{"a dist-info twin in another case", fn, makeZip(t, good, zipMember{"demo-1.0.DIST-INFO/METADATA", []byte("Name: evil\n"), zip.Deflate}), "2 .dist-info directories"},
		{"a dist-info twin with a backslash", fn, makeZip(t, good, zipMember{"demo-1.0.dist-info\\RECORD", nil, zip.Deflate}, zipMember{"Demo-1.0.dist-info\\METADATA", nil, zip.Deflate}), "2 .dist-info directories"},
		{"huge METADATA", fn, big, "limit 16777216"},
		{"zip bomb", fn, bomb, "compressed"},
		{"truncated zip", fn, wheel[:len(wheel)-10], "not a readable zip"},
		{"not a zip", fn, []byte("PK\x03\x04 hello"), "not a readable zip"},
		{"empty", fn, nil, "not a readable zip"},
		{"an sdist name", "demo-1.0.tar.gz", wheel, "not a wheel"},
		{"a bad filename", "demo.whl", wheel, "Invalid wheel filename"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wheelMetadata(tt.content, tt.filename)
			if !errors.Is(err, pypi.ErrWheelMetadata) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("WheelMetadata = %d bytes, %v; want ErrWheelMetadata saying %q", len(got), err, tt.want)
			}
		})
	}
}

// TestWheelMetadataLyingEntry: a member whose zip entry understates its
// size, or whose CRC-32 is wrong, fails (the caller drops what was
// written), and no more than the recorded size (plus one byte) is written.
func TestWheelMetadataLyingEntry(t *testing.T) {
	const fn = "demo-1.0-py3-none-any.whl"
	meta := []byte("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: evil\n")
	raw := func(size uint64, crc uint32, data []byte) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "demo-1.0.dist-info/METADATA", Method: zip.Store,
			CompressedSize64: uint64(len(data)), UncompressedSize64: size, CRC32: crc})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, tt := range []struct {
		name    string
		content []byte
		maxOut  int
	}{
		{"size understated", raw(10, crc32.ChecksumIEEE(meta), meta), 11},
		{"wrong CRC-32", raw(uint64(len(meta)), crc32.ChecksumIEEE(meta)^1, meta), len(meta)},
	} {
		got, err := wheelMetadata(tt.content, fn)
		if !errors.Is(err, pypi.ErrWheelMetadata) {
			t.Errorf("%s: %q, %v; want ErrWheelMetadata", tt.name, got, err)
		}
		if len(got) > tt.maxOut {
			t.Errorf("%s: wrote %d bytes", tt.name, len(got))
		}
	}
}

func FuzzWheelMetadata(f *testing.F) {
	f.Add(pypitest.MakeWheel("demo", "1.0", pypitest.WheelOptions{}), "demo-1.0-py3-none-any.whl")
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), "demo-1.0-py3-none-any.whl")
	f.Fuzz(func(t *testing.T, content []byte, filename string) {
		var out bytes.Buffer
		n, err := pypi.WheelMetadata(bytes.NewReader(content), int64(len(content)), filename, &out)
		if err != nil && !errors.Is(err, pypi.ErrWheelMetadata) {
			t.Fatalf("error %v does not match ErrWheelMetadata", err)
		}
		if n != int64(out.Len()) || n > pypi.MaxWheelMetadataBytes+1 {
			t.Fatalf("reported %d bytes, wrote %d", n, out.Len())
		}
	})
}
