package pypi

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Bounds on the METADATA member [WheelMetadata] reads: a real one is a few
// kilobytes (a long description included, rarely over a megabyte).
const (
	// MaxWheelMetadataBytes is the largest METADATA accepted (uncompressed).
	MaxWheelMetadataBytes = 16 << 20
	// maxMetadataRatio bounds the compression ratio of a METADATA member
	// over ratioFreeBytes: text deflates about 3-10 to 1, a zip bomb 1000.
	maxMetadataRatio = 100
	ratioFreeBytes   = 1 << 20
)

// ErrWheelMetadata matches every error of [WheelMetadata]: the wheel has no
// single, readable METADATA where pip would read it.
var ErrWheelMetadata = errors.New("wheel has no usable METADATA")

func wheelError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrWheelMetadata}, args...)...)
}

// WheelMetadata copies the core metadata of the wheel named filename (its
// bytes are r, size long) to w and returns how many bytes it wrote. It reads
// only the zip's central directory and the one member, as pip does after a
// download: the wheel must have exactly one top-level "*.dist-info"
// directory, named for the wheel's project and version (PEP 503 name, PEP
// 440 version, as in the filename), holding exactly one "METADATA". The
// member is bounded by [MaxWheelMetadataBytes] and, above 1 MiB, a
// compression ratio of 100; its CRC-32 and size are checked. An error
// matches [ErrWheelMetadata]; w may then hold part of the member.
func WheelMetadata(r io.ReaderAt, size int64, filename string, w io.Writer) (int64, error) {
	fn, err := ParseFilename(filename)
	if err != nil {
		return 0, wheelError("%v", err)
	}
	if fn.Kind != Wheel {
		return 0, wheelError("%s is not a wheel", filename)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are compared, never used as paths
		return 0, wheelError("%s: not a readable zip: %v", filename, err)
	}
	// Names are compared as an installer on any platform may read them:
	// "\" as "/" (Python's zipfile does so on Windows), and a case variant
	// of a .dist-info folder or of METADATA as the same file (a
	// case-insensitive file system extracts them into one). A wheel whose
	// METADATA is ambiguous that way is refused, not read one way here and
	// installed another way there.
	dirs := map[string]bool{}
	for _, f := range zr.File {
		top, _, _ := strings.Cut(zipName(f.Name), "/")
		if strings.HasSuffix(strings.ToLower(top), ".dist-info") {
			dirs[top] = true
		}
	}
	if len(dirs) != 1 {
		return 0, wheelError("%s: %d .dist-info directories, want exactly one (%s)", filename, len(dirs), listKeys(dirs))
	}
	var dir string
	for d := range dirs {
		dir = d
	}
	if err := checkDistInfoName(dir, fn); err != nil {
		return 0, wheelError("%s: %v", filename, err)
	}
	var member *zip.File
	for _, f := range zr.File {
		if !strings.EqualFold(zipName(f.Name), dir+"/METADATA") {
			continue
		}
		if member != nil {
			return 0, wheelError("%s: two %s/METADATA members (%q, %q)", filename, dir, member.Name, f.Name)
		}
		member = f
	}
	if member == nil || member.Name != dir+"/METADATA" {
		return 0, wheelError("%s: no %s/METADATA", filename, dir)
	}
	if member.UncompressedSize64 > MaxWheelMetadataBytes {
		return 0, wheelError("%s: METADATA of %d bytes (limit %d)", filename, member.UncompressedSize64, MaxWheelMetadataBytes)
	}
	if member.UncompressedSize64 > ratioFreeBytes && member.UncompressedSize64 > maxMetadataRatio*member.CompressedSize64 {
		return 0, wheelError("%s: METADATA compressed %d to 1 (limit %d)", filename,
			member.UncompressedSize64/max(member.CompressedSize64, 1), maxMetadataRatio)
	}
	rc, err := member.Open()
	if err != nil {
		return 0, wheelError("%s: opening METADATA: %v", filename, err)
	}
	defer rc.Close()
	// archive/zip fails a member that inflates past its recorded size or
	// whose CRC-32 differs; the limit holds even if it did not.
	n, err := io.Copy(w, io.LimitReader(rc, int64(member.UncompressedSize64)+1))
	switch {
	case err != nil:
		return n, wheelError("%s: reading METADATA: %v", filename, err)
	case n != int64(member.UncompressedSize64):
		return n, wheelError("%s: METADATA is %d bytes, its zip entry says %d", filename, n, member.UncompressedSize64)
	}
	return n, nil
}

// zipName is a zip member's name with "\\" read as "/".
func zipName(name string) string { return strings.ReplaceAll(name, "\\", "/") }

// checkDistInfoName checks that a "<name>-<version>.dist-info" directory
// belongs to the wheel fn.
func checkDistInfoName(dir string, fn Filename) error {
	stem := strings.TrimSuffix(dir, ".dist-info")
	i := strings.LastIndexByte(stem, '-')
	if i <= 0 {
		return fmt.Errorf("%s is not named <name>-<version>.dist-info", dir)
	}
	name, version := stem[:i], stem[i+1:]
	if !ValidProjectName(name) || NormalizeName(name) != fn.Name {
		return fmt.Errorf("%s is not the project %s", dir, fn.Name)
	}
	v, err := ParseVersion(version)
	if err != nil || !v.Equal(fn.Version) {
		return fmt.Errorf("%s is not version %s", dir, fn.Version)
	}
	return nil
}

func listKeys(m map[string]bool) string {
	const most = 4
	keys := slices.Sorted(maps.Keys(m))
	switch {
	case len(keys) == 0:
		return "none"
	case len(keys) > most:
		return fmt.Sprintf("%s, and %d more", strings.Join(keys[:most], ", "), len(keys)-most)
	}
	return strings.Join(keys, ", ")
}
