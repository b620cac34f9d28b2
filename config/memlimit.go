package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultMemoryLimit is the Go runtime's soft memory limit serve sets when
// neither memory_limit, GOMEMLIMIT nor a cgroup memory limit gives one.
// Without a limit the collector lets the heap grow to twice what is live: a
// 56 MiB page of 390k files (about 140 MiB parsed) took the RSS 400 MiB up.
// With it the heap stays near 224 MiB while what is live fits
// (upstream.PageMemory keeps the largest pages to one at a time), and the
// collector works harder rather than let it grow (TestHugePageMemory).
const DefaultMemoryLimit = 224 << 20

// CgroupMemoryShare is the percentage of a cgroup v2 memory limit serve
// takes as the soft limit. The rest is what the Go heap limit does not
// count or cannot hold to: the binary's text and stacks outside the heap,
// the page cache of bbolt's mmap charged to the cgroup, and the heap's
// overshoot while the collector catches up with a burst of allocation. At
// the cgroup limit the kernel kills the process; below it the collector
// merely works harder.
const CgroupMemoryShare = 75

// memoryLimitMargin is what memory_limit must leave above cache.page_memory
// (which may all be live): the idle server's own heap (about 27 MiB of RSS
// measured by TestHugePageMemory) plus the buffers of the requests in
// flight. Below it the collector would run without pause.
const memoryLimitMargin = 64 << 20

// Origins of the memory limit ([MemoryLimit.Origin]).
const (
	MemoryLimitFromConfig  = "memory_limit"
	MemoryLimitFromEnv     = "GOMEMLIMIT"
	MemoryLimitFromCgroup  = "cgroup"
	MemoryLimitFromDefault = "default"
)

// MemoryLimit is the Go runtime's soft memory limit serve applies and
// where it comes from.
type MemoryLimit struct {
	// Bytes is the limit serve sets; 0 when Origin is GOMEMLIMIT (the
	// runtime applied it already; serve leaves it alone).
	Bytes int64
	// Origin is MemoryLimitFromConfig, ...FromEnv, ...FromCgroup or
	// ...FromDefault.
	Origin string
	// Detail says how it was derived, for the log and --config.check:
	// "$GOMEMLIMIT=1GiB", "75% of 1GiB (/sys/fs/cgroup/memory.max)".
	Detail string
}

// cgroupRoot is the file system root CgroupMemoryMax reads under; tests of
// this package point it at fixtures.
var cgroupRoot = "/"

// EffectiveMemoryLimit returns the soft memory limit serve applies
// (resolved by Load).
func (c *Config) EffectiveMemoryLimit() MemoryLimit { return c.memLimit }

// resolveMemoryLimit fills c.memLimit: memory_limit when the file sets it,
// else GOMEMLIMIT (left to the runtime), else CgroupMemoryShare percent of
// the process's cgroup v2 memory limit, else DefaultMemoryLimit. A cgroup
// file it cannot read or parse, or a derived limit too small for
// cache.page_memory, is a note (serve logs it as a warning); an explicit
// memory_limit too small is an error.
func (c *Config) resolveMemoryLimit(gomemlimit string, bad func(field, format string, args ...any)) {
	floor := int64(c.Cache.PageMemory) + memoryLimitMargin
	if _, set := c.lines["memory_limit"]; set {
		c.memLimit = MemoryLimit{Bytes: int64(c.MemoryLimit), Origin: MemoryLimitFromConfig, Detail: "memory_limit"}
		switch {
		case c.MemoryLimit <= 0:
			bad("memory_limit", "must be positive (leave it out for the derived default)")
		case int64(c.MemoryLimit) < floor:
			bad("memory_limit", "%s is below cache.page_memory (%s) plus %s for the server's own heap and requests: the collector would never rest; raise it or lower cache.page_memory",
				c.MemoryLimit, c.Cache.PageMemory, ByteSize(memoryLimitMargin))
		}
		if gomemlimit != "" {
			c.notes = append(c.notes, fmt.Sprintf("memory_limit %s overrides GOMEMLIMIT=%s", c.MemoryLimit, gomemlimit))
		}
		return
	}
	if gomemlimit != "" {
		c.memLimit = MemoryLimit{Origin: MemoryLimitFromEnv, Detail: "$GOMEMLIMIT=" + gomemlimit + ", left to the Go runtime"}
		return
	}
	c.memLimit = MemoryLimit{Bytes: DefaultMemoryLimit, Origin: MemoryLimitFromDefault, Detail: "default: no cgroup v2 memory limit"}
	limit, file, err := CgroupMemoryMax(cgroupRoot)
	if err != nil {
		c.notes = append(c.notes, fmt.Sprintf("memory_limit: %v; using the default %s", err, ByteSize(DefaultMemoryLimit)))
		c.memLimit.Detail = "default: cgroup memory limit unreadable"
		return
	}
	if limit <= 0 {
		return
	}
	share := CgroupShare(limit)
	c.memLimit = MemoryLimit{Bytes: share, Origin: MemoryLimitFromCgroup,
		Detail: fmt.Sprintf("%d%% of the cgroup memory limit %s (%s)", CgroupMemoryShare, ByteSize(limit), file)}
	if share < floor {
		c.notes = append(c.notes, fmt.Sprintf("memory_limit: %s (%s) is below cache.page_memory (%s) plus %s for the server's own heap and requests: the collector will run hard; give the container more memory or lower cache.page_memory",
			ByteSize(share), c.memLimit.Detail, c.Cache.PageMemory, ByteSize(memoryLimitMargin)))
	}
}

// CgroupShare is the soft limit derived from a cgroup memory limit:
// CgroupMemoryShare percent of it in whole MiB, rounded down (readable in
// logs, never above the share), at least 1 MiB (0 would be no limit to
// the runtime's API but a collector that never rests).
func CgroupShare(limit int64) int64 {
	share := (limit/100*CgroupMemoryShare + limit%100*CgroupMemoryShare/100) &^ (1<<20 - 1) // no overflow
	return max(share, 1<<20)
}

// maxCgroupDepth bounds the walk from the process's cgroup to the root.
const maxCgroupDepth = 64

// CgroupMemoryMax returns the cgroup v2 memory limit of this process, in
// bytes, and the memory.max file that sets it, reading under root ("/" in
// production). It reads the process's cgroup from proc/self/cgroup (the
// "0::" line) and takes the smallest number among the memory.max files of
// that cgroup and its ancestors under sys/fs/cgroup; when the process's
// cgroup is not there (a container without its own cgroup namespace), the
// file at sys/fs/cgroup/memory.max. 0 and no error: no limit ("max"
// everywhere, no cgroup v2, or no memory controller). A memory.max that is
// neither "max" nor a number is an error.
func CgroupMemoryMax(root string) (int64, string, error) {
	base := filepath.Join(root, "sys", "fs", "cgroup")
	dirs := []string{"/"}
	if cg, ok := ownCgroup(filepath.Join(root, "proc", "self", "cgroup")); ok && cg != "/" {
		if _, err := os.Stat(filepath.Join(base, filepath.FromSlash(cg))); err == nil {
			dirs = dirs[:0]
			for d := cg; len(dirs) < maxCgroupDepth; d = path.Dir(d) {
				dirs = append(dirs, d)
				if d == "/" {
					break
				}
			}
		}
	}
	var best int64
	var bestFile string
	for _, d := range dirs {
		file := filepath.Join(base, filepath.FromSlash(d), "memory.max")
		data, err := readLimited(file, 64)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, "", fmt.Errorf("cannot read %s: %s", file, PathErrorText(err))
		}
		v := string(bytes.TrimSpace(data))
		if v == "max" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, "", fmt.Errorf("%s: want a number of bytes or \"max\", got %q", file, v)
		}
		if best == 0 || n < best {
			best, bestFile = n, file
		}
	}
	return best, bestFile, nil
}

// ownCgroup returns the cgroup v2 path of the "0::" line of a
// /proc/self/cgroup file.
func ownCgroup(file string) (string, bool) {
	data, err := readLimited(file, 64<<10)
	if err != nil {
		return "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok && strings.HasPrefix(p, "/") {
			return path.Clean(p), true
		}
	}
	return "", false
}
