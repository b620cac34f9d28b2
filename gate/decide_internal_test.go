package gate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pipgate/pipgate/pypi"
)

// refNewestReleases is newestReleases the long way: every file whose name
// parses, grouped by canonical version (1.0 and 1.0.0 are one), the groups
// sorted newest first, the first k kept, each with its files in page order.
func refNewestReleases(p *pypi.ProjectPage, k int) []release {
	var out []release
	var keys []string
	for i := range p.Files {
		fn, err := pypi.ParsePipFilename(p.Files[i].Filename)
		if err != nil {
			continue
		}
		key := pypi.CanonicalizeVersion(fn.Version.String())
		if j := slices.Index(keys, key); j >= 0 {
			out[j].files = append(out[j].files, &p.Files[i])
			continue
		}
		keys = append(keys, key)
		out = append(out, release{v: fn.Version, files: []*pypi.File{&p.Files[i]}})
	}
	slices.SortStableFunc(out, func(a, b release) int { return b.v.Compare(a.v) })
	return out[:min(k, len(out))]
}

// TestNewestReleases holds newestReleases (which keeps k releases as it
// goes, and tells one release from another by PEP 440 equality) to the
// long way round, on pages of versions spelled many ways, and each of its
// prefixes to the call with a smaller k (EagerVerify reads the newest
// EagerReleases off the list it gives fallbackTodo).
func TestNewestReleases(t *testing.T) {
	versions := []string{"1", "1.0", "1.0.0", "01.0", "2", "2.0.0.0", "1.1", "1.10", "1.9", "1.0a1", "1.0a01", "1.0.alpha1",
		"1.0rc1", "1.0c1", "1.0.post1", "1.0-1", "1.0.dev0", "1.0+local", "1.0+LOCAL", "1.0+local.1", "1!0.1", "1!0.1.0",
		"0.9", "v1.0", "1.0.0+0", "1.0+0", "1.0+00", "2.0.post0.dev1"}
	names := []func(v string) string{
		func(v string) string { return "p-" + v + "-py3-none-any.whl" },
		func(v string) string { return "p-" + v + ".tar.gz" },
		func(v string) string { return "P-" + v + "-1-cp312-cp312-linux_x86_64.whl" },
		func(v string) string { return "p-" + v + ".tar.bz2" },
		func(v string) string { return "p-" + v + ".exe" }, // does not parse
		func(v string) string { return "p-" + v + "-py3-none.whl" },
	}
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // reproducible pages, not a secret
	for round := range 300 {
		p := &pypi.ProjectPage{Name: "p"}
		for range rng.IntN(40) {
			v := versions[rng.IntN(len(versions))]
			p.Files = append(p.Files, pypi.File{Filename: names[rng.IntN(len(names))](v)})
		}
		k := rng.IntN(12)
		got, want := newestReleases(p, k), refNewestReleases(p, k)
		if describe(got) != describe(want) {
			t.Fatalf("round %d, k %d: newestReleases = %s; want %s", round, k, describe(got), describe(want))
		}
		for j := range k {
			if d := describe(newestReleases(p, j)); d != describe(got[:min(j, len(got))]) {
				t.Fatalf("round %d: newestReleases(p, %d) = %s; the first %d of k=%d: %s", round, j, d, j, k, describe(got[:min(j, len(got))]))
			}
		}
	}
}

// describe renders releases as their versions and files.
func describe(rs []release) string {
	s := ""
	for _, r := range rs {
		s += r.v.String() + ":"
		for _, f := range r.files {
			s += fmt.Sprintf(" %s", f.Filename)
		}
		s += "; "
	}
	return s
}
