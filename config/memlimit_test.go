package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cgroupFixture writes a file system root with the given files (path
// relative to the root: contents).
func cgroupFixture(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCgroupMemoryMax(t *testing.T) {
	const nested = "sys/fs/cgroup/kubepods.slice/pod1/ctr"
	for _, c := range []struct {
		name     string
		files    map[string]string
		want     int64
		wantFile string // relative to the root; "" with want 0
		wantErr  string
	}{
		{name: "no cgroup v2", files: map[string]string{"proc/self/cgroup": "4:memory:/x\n0::/\n"}},
		{name: "max", files: map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"}},
		{name: "a number", files: map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "1073741824\n"},
			want: 1 << 30, wantFile: "sys/fs/cgroup/memory.max"},
		{name: "no proc file: the namespace root", files: map[string]string{"sys/fs/cgroup/memory.max": "536870912\n"},
			want: 512 << 20, wantFile: "sys/fs/cgroup/memory.max"},
		{name: "garbage", files: map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "lots\n"},
			wantErr: `sys/fs/cgroup/memory.max: want a number of bytes or "max", got "lots"`},
		{name: "zero is garbage", files: map[string]string{"sys/fs/cgroup/memory.max": "0\n"},
			wantErr: `got "0"`},
		{name: "too long", files: map[string]string{"sys/fs/cgroup/memory.max": strings.Repeat("9", 100)},
			wantErr: "larger than 64 bytes"},
		{name: "the smallest of the cgroup and its ancestors", files: map[string]string{
			"proc/self/cgroup":                             "0::/kubepods.slice/pod1/ctr\n",
			nested + "/memory.max":                         "max\n",
			"sys/fs/cgroup/kubepods.slice/pod1/memory.max": "805306368\n",
			"sys/fs/cgroup/kubepods.slice/memory.max":      "2147483648\n",
		}, want: 768 << 20, wantFile: "sys/fs/cgroup/kubepods.slice/pod1/memory.max"},
		{name: "own cgroup not mounted: the namespace root", files: map[string]string{
			"proc/self/cgroup":         "0::/system.slice/docker-1.scope\n",
			"sys/fs/cgroup/memory.max": "1073741824\n",
		}, want: 1 << 30, wantFile: "sys/fs/cgroup/memory.max"},
		{name: "dot-dot stays under the root", files: map[string]string{
			"proc/self/cgroup":         "0::/../../etc\n",
			"sys/fs/cgroup/memory.max": "max\n",
			"etc/memory.max":           "1\n",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := cgroupFixture(t, c.files)
			got, file, err := CgroupMemoryMax(root)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("CgroupMemoryMax = %d, %v; want an error containing %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantFile := ""
			if c.wantFile != "" {
				wantFile = filepath.Join(root, filepath.FromSlash(c.wantFile))
			}
			if got != c.want || file != wantFile {
				t.Errorf("CgroupMemoryMax = %d, %q; want %d, %q", got, file, c.want, wantFile)
			}
		})
	}
}

// TestMemoryLimitPrecedence: memory_limit in the file, else GOMEMLIMIT
// (left to the runtime), else 75% of the cgroup limit, else 224 MiB; each
// shown by Settings (--config.check) with its origin.
func TestMemoryLimitPrecedence(t *testing.T) {
	oneGiB := map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "1073741824\n"}
	for _, c := range []struct {
		name       string
		body       string // the config file
		env        string // GOMEMLIMIT
		cgroup     map[string]string
		want       MemoryLimit // Detail: a substring
		wantValue  string      // memory_limit in Settings
		wantSource string      // a substring of its source
		wantNote   string
		wantErr    string
	}{
		{name: "default", body: "listen: 127.0.0.1:8080\n",
			want: MemoryLimit{Bytes: 224 << 20, Origin: "default"}, wantValue: "224MiB", wantSource: "default: no cgroup v2 memory limit"},
		{name: "cgroup max", body: "listen: 127.0.0.1:8080\n", cgroup: map[string]string{"sys/fs/cgroup/memory.max": "max\n"},
			want: MemoryLimit{Bytes: 224 << 20, Origin: "default"}, wantValue: "224MiB"},
		{name: "cgroup", body: "listen: 127.0.0.1:8080\n", cgroup: oneGiB,
			want: MemoryLimit{Bytes: 768 << 20, Origin: "cgroup"}, wantValue: "768MiB", wantSource: "75% of the cgroup memory limit 1GiB ("},
		{name: "cgroup, rounded down to MiB", body: "listen: 127.0.0.1:8080\n", cgroup: map[string]string{"sys/fs/cgroup/memory.max": "1000000000\n"},
			want: MemoryLimit{Bytes: 715 << 20, Origin: "cgroup"}, wantValue: "715MiB"},
		{name: "GOMEMLIMIT over cgroup", body: "listen: 127.0.0.1:8080\n", env: "2GiB", cgroup: oneGiB,
			want: MemoryLimit{Bytes: 0, Origin: "GOMEMLIMIT"}, wantValue: "(the Go runtime's)", wantSource: "$GOMEMLIMIT=2GiB"},
		{name: "file over GOMEMLIMIT and cgroup", body: "listen: 127.0.0.1:8080\nmemory_limit: 300MiB\n", env: "2GiB", cgroup: oneGiB,
			want: MemoryLimit{Bytes: 300 << 20, Origin: "memory_limit"}, wantValue: "300MiB", wantSource: "F:2",
			wantNote: "memory_limit 300MiB overrides GOMEMLIMIT=2GiB"},
		{name: "garbage cgroup file: default and a note", body: "listen: 127.0.0.1:8080\n", cgroup: map[string]string{"sys/fs/cgroup/memory.max": "lots\n"},
			want: MemoryLimit{Bytes: 224 << 20, Origin: "default"}, wantValue: "224MiB",
			wantNote: `want a number of bytes or "max", got "lots"; using the default 224MiB`},
		{name: "small cgroup: a warning, not an error", body: "listen: 127.0.0.1:8080\n", cgroup: map[string]string{"sys/fs/cgroup/memory.max": "134217728\n"},
			want: MemoryLimit{Bytes: 96 << 20, Origin: "cgroup"}, wantValue: "96MiB",
			wantNote: "memory_limit: 96MiB (75% of the cgroup memory limit 128MiB"},
		{name: "tiny cgroup: 1MiB, never 0", body: "listen: 127.0.0.1:8080\n", cgroup: map[string]string{"sys/fs/cgroup/memory.max": "4096\n"},
			want: MemoryLimit{Bytes: 1 << 20, Origin: "cgroup"}, wantValue: "1MiB", wantNote: "the collector will run hard"},
		{name: "huge cgroup number: no overflow", body: "listen: 127.0.0.1:8080\n", cgroup: map[string]string{"sys/fs/cgroup/memory.max": "9223372036854771712\n"},
			want: MemoryLimit{Bytes: 6597069766655 << 20, Origin: "cgroup"}, wantValue: "6597069766655MiB"},
		{name: "small cgroup with a small page cache: fine", body: "cache:\n  page_memory: 16MiB\n", cgroup: map[string]string{"sys/fs/cgroup/memory.max": "134217728\n"},
			want: MemoryLimit{Bytes: 96 << 20, Origin: "cgroup"}, wantValue: "96MiB"},
		{name: "explicit limit too small", body: "memory_limit: 100MiB\n",
			wantErr: "F:1: memory_limit: 100MiB is below cache.page_memory (64MiB) plus 64MiB for the server's own heap and requests"},
		{name: "explicit limit fits a smaller page cache", body: "memory_limit: 100MiB\ncache:\n  page_memory: 16MiB\n",
			want: MemoryLimit{Bytes: 100 << 20, Origin: "memory_limit"}, wantValue: "100MiB"},
		{name: "zero", body: "memory_limit: 0\n", wantErr: "F:1: memory_limit: must be positive (leave it out for the derived default)"},
		{name: "bad size", body: "memory_limit: lots\n", wantErr: `F:1: memory_limit: want a size like "50GiB"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", c.env)
			old := cgroupRoot
			cgroupRoot = cgroupFixture(t, c.cgroup)
			t.Cleanup(func() { cgroupRoot = old })
			path := filepath.Join(t.TempDir(), "F")
			if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Chdir(filepath.Dir(path))
			cfg, err := Load("F", nil)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Load: %v; want an error containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.EffectiveMemoryLimit()
			if got.Bytes != c.want.Bytes || got.Origin != c.want.Origin {
				t.Errorf("EffectiveMemoryLimit = %+v; want %d bytes from %s", got, c.want.Bytes, c.want.Origin)
			}
			var s Setting
			for _, x := range cfg.Settings() {
				if x.Path == "memory_limit" {
					s = x
				}
			}
			if s.Value != c.wantValue || !strings.Contains(s.Source, c.wantSource) {
				t.Errorf("Settings: memory_limit %s (%s); want %s (…%s…)", s.Value, s.Source, c.wantValue, c.wantSource)
			}
			notes := strings.Join(cfg.Notes(), "\n")
			if c.wantNote == "" && notes != "" || !strings.Contains(notes, c.wantNote) {
				t.Errorf("notes %q; want %q", notes, c.wantNote)
			}
		})
	}
}
