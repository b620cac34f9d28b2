package pypitest

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// WheelOptions are the optional parts of a wheel built by [MakeWheel].
type WheelOptions struct {
	// Requires are Requires-Dist lines (PEP 508 requirements), in order.
	Requires []string
	// RequiresPython is the Requires-Python specifier; "" for none.
	RequiresPython string
	// Summary is the one-line summary; "" writes a generic one.
	Summary string
	// Files are extra files to add to the wheel (path inside the wheel to
	// content), written after the package module and recorded in RECORD.
	Files map[string][]byte
	// Stored writes every member uncompressed (zip method 0, as `zip -0`
	// does), for a wheel made large by incompressible Files: deflating
	// 3 MiB of them costs over a CPU-second under -race.
	Stored bool
}

// zipEpoch is the modification time of every member, so builds are reproducible.
var zipEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

var nameRun = regexp.MustCompile(`[-_.]+`)

// normalize is PEP 503 normalisation, written here independently of package
// pypi so that the fake index does not share code with what it tests.
func normalize(name string) string {
	return strings.ToLower(nameRun.ReplaceAllString(name, "-"))
}

// escapeName is the wheel/sdist filename form of a project name.
func escapeName(name string) string {
	return strings.ReplaceAll(normalize(name), "-", "_")
}

// WheelFilename returns the filename of the pure-Python wheel [MakeWheel]
// builds: "<escaped_name>-<version>-py3-none-any.whl".
func WheelFilename(name, version string) string {
	return escapeName(name) + "-" + version + "-py3-none-any.whl"
}

// SdistFilename returns the PEP 625 filename of the sdist [MakeSdist] builds:
// "<escaped_name>-<version>.tar.gz".
func SdistFilename(name, version string) string {
	return escapeName(name) + "-" + version + ".tar.gz"
}

// Metadata returns the core metadata (the METADATA file) [MakeWheel] writes
// for name, version and o.
func Metadata(name, version string, o WheelOptions) []byte {
	var b strings.Builder
	b.WriteString("Metadata-Version: 2.1\n")
	fmt.Fprintf(&b, "Name: %s\n", name)
	fmt.Fprintf(&b, "Version: %s\n", version)
	summary := o.Summary
	if summary == "" {
		summary = "A test distribution built by pipgate's pypitest."
	}
	fmt.Fprintf(&b, "Summary: %s\n", summary)
	if o.RequiresPython != "" {
		fmt.Fprintf(&b, "Requires-Python: %s\n", o.RequiresPython)
	}
	for _, r := range o.Requires {
		fmt.Fprintf(&b, "Requires-Dist: %s\n", r)
	}
	return []byte(b.String())
}

// MakeWheel builds a pure-Python py3-none-any wheel that pip installs
// offline: a module <name>/__init__.py holding __version__, and a dist-info
// folder with METADATA (see [Metadata]), WHEEL and a RECORD whose sha256
// hashes are correct. The bytes are reproducible: the same arguments give
// the same wheel.
func MakeWheel(name, version string, o WheelOptions) []byte {
	module := escapeName(name)
	distInfo := escapeName(name) + "-" + version + ".dist-info"
	type member struct {
		path string
		data []byte
	}
	members := []member{
		{module + "/__init__.py", fmt.Appendf(nil, "__version__ = %q\n", version)},
	}
	for _, p := range slices.Sorted(maps.Keys(o.Files)) {
		members = append(members, member{p, o.Files[p]})
	}
	members = append(members,
		member{distInfo + "/METADATA", Metadata(name, version, o)},
		member{distInfo + "/WHEEL", []byte("Wheel-Version: 1.0\nGenerator: pipgate-pypitest\nRoot-Is-Purelib: true\nTag: py3-none-any\n")},
	)
	var record strings.Builder
	for _, m := range members {
		sum := sha256.Sum256(m.data)
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", m.path, base64.RawURLEncoding.EncodeToString(sum[:]), len(m.data))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", distInfo)
	members = append(members, member{distInfo + "/RECORD", []byte(record.String())})

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	wheelFlate.Lock()
	defer wheelFlate.Unlock()
	zw.RegisterCompressor(zip.Deflate, wheelFlate.writer)
	method := zip.Deflate
	if o.Stored {
		method = zip.Store
	}
	for _, m := range members {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: m.path, Method: method, Modified: zipEpoch})
		if err != nil {
			panic(fmt.Sprintf("pypitest: zip header: %v", err)) // cannot happen with a bytes.Buffer
		}
		if _, err := w.Write(m.data); err != nil {
			panic(fmt.Sprintf("pypitest: zip write: %v", err))
		}
	}
	if err := zw.Close(); err != nil {
		panic(fmt.Sprintf("pypitest: zip close: %v", err))
	}
	return buf.Bytes()
}

// wheelFlate is the one deflate compressor of every wheel MakeWheel builds,
// reset for each member. archive/zip's own pool allocates a new compressor
// (over 600 KiB) for most members under -race, which drops pooled items on
// purpose: a page of 300 wheels spent half its test's CPU there. It
// compresses at archive/zip's level (5), so the wheels' bytes are the same.
var wheelFlate reusedFlate

type reusedFlate struct {
	sync.Mutex // held by MakeWheel while its zip.Writer uses w
	w          *flate.Writer
}

// writer is the zip.Compressor.
func (f *reusedFlate) writer(w io.Writer) (io.WriteCloser, error) {
	if f.w == nil {
		fw, err := flate.NewWriter(w, 5)
		f.w = fw
		return fw, err
	}
	f.w.Reset(w)
	return f.w, nil
}

// FillZip returns a zip whose one member, name, holds prefix and then n
// bytes fill, deflated: a valid stream with its CRC-32 and sizes, as
// archive/zip would write it, but built without compressing the n bytes
// (16 MiB cost seconds under -race): for members too large or too
// compressible to be accepted. Each part is deflated alone and
// sync-flushed, which ends it on a byte boundary with no reference
// outside it: the prefix, a 64 KiB block of fill repeated, then the rest
// and the final block.
func FillZip(name string, prefix []byte, fill byte, n int) []byte {
	const chunk = 64 << 10
	block := bytes.Repeat([]byte{fill}, chunk)
	deflate := func(b []byte, final bool) []byte {
		var buf bytes.Buffer
		fw, err := flate.NewWriter(&buf, flate.DefaultCompression)
		if err == nil {
			_, err = fw.Write(b)
		}
		if err == nil && final {
			err = fw.Close()
		} else if err == nil {
			err = fw.Flush()
		}
		if err != nil {
			panic(fmt.Sprintf("pypitest: deflate: %v", err)) // cannot happen with a bytes.Buffer
		}
		return buf.Bytes()
	}
	stream := deflate(prefix, false)
	stream = append(stream, bytes.Repeat(deflate(block, false), n/chunk)...)
	stream = append(stream, deflate(block[:n%chunk], true)...)
	crc := crc32.ChecksumIEEE(prefix)
	for range n / chunk {
		crc = crc32.Update(crc, crc32.IEEETable, block)
	}
	crc = crc32.Update(crc, crc32.IEEETable, block[:n%chunk])
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crc,
		CompressedSize64: uint64(len(stream)), UncompressedSize64: uint64(len(prefix) + n)})
	if err == nil {
		_, err = w.Write(stream)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		panic(fmt.Sprintf("pypitest: zip: %v", err))
	}
	return buf.Bytes()
}

// MakeSdist builds a source distribution (.tar.gz) holding
// <escaped_name>-<version>/PKG-INFO and the package module. It is meant for
// download tests: it has no build backend configuration.
func MakeSdist(name, version string) []byte {
	root := escapeName(name) + "-" + version
	files := []struct {
		path string
		data []byte
	}{
		{root + "/PKG-INFO", Metadata(name, version, WheelOptions{})},
		{root + "/" + escapeName(name) + "/__init__.py", fmt.Appendf(nil, "__version__ = %q\n", version)},
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.ModTime = zipEpoch
	tw := tar.NewWriter(gz)
	for _, f := range files {
		hdr := &tar.Header{Name: f.path, Mode: 0o644, Size: int64(len(f.data)), ModTime: zipEpoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			panic(fmt.Sprintf("pypitest: tar header: %v", err))
		}
		if _, err := tw.Write(f.data); err != nil {
			panic(fmt.Sprintf("pypitest: tar write: %v", err))
		}
	}
	if err := tw.Close(); err != nil {
		panic(fmt.Sprintf("pypitest: tar close: %v", err))
	}
	if err := gz.Close(); err != nil {
		panic(fmt.Sprintf("pypitest: gzip close: %v", err))
	}
	return buf.Bytes()
}

// wheelMetadata returns the METADATA member of a wheel, or nil when content
// is not a zip or has none.
func wheelMetadata(content []byte) []byte {
	zr, err := zip.NewReader(bytes.NewReader(content), int64(len(content)))
	if err != nil {
		return nil
	}
	for _, f := range zr.File {
		dir, base, ok := strings.Cut(f.Name, "/")
		if !ok || base != "METADATA" || !strings.HasSuffix(dir, ".dist-info") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil
		}
		data, err := io.ReadAll(io.LimitReader(rc, 16<<20))
		_ = rc.Close()
		if err != nil {
			return nil
		}
		return data
	}
	return nil
}

// splitFilename returns the version written in a wheel or sdist filename,
// and whether the file is a wheel. It returns "" for names it cannot read.
func splitFilename(filename string) (version string, wheel bool) {
	if stem, ok := strings.CutSuffix(filename, ".whl"); ok {
		parts := strings.Split(stem, "-")
		if len(parts) < 5 {
			return "", true
		}
		return parts[1], true
	}
	stem := filename
	for _, ext := range []string{".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar"} {
		if s, ok := strings.CutSuffix(stem, ext); ok {
			stem = s
			break
		}
	}
	i := strings.LastIndexByte(stem, '-')
	if i < 0 {
		return "", false
	}
	return stem[i+1:], false
}
