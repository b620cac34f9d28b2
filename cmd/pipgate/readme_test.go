package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's YAML blocks are checked as a user would paste them. Each
// ```yaml block follows a marker comment (invisible on GitHub) that says
// what it is:
//
//	<!-- check: config -->           a whole server config: serve --config.check passes
//	<!-- check: policy -->           a whole policy file: policy check passes
//	<!-- check: policy packages -->  items of a policy's packages: list (checked under version: 1)
//	<!-- check: none REASON -->      not a file of its own, said explicitly
//
// A block without a marker fails the test, so a new example is checked or
// says why not.

// readmeBlock is one ```yaml block of a Markdown file.
type readmeBlock struct {
	line int    // of the opening fence
	kind string // the marker: "config", "policy", "policy packages", "none …"
	body string
}

var reCheckMarker = regexp.MustCompile(`^<!-- check: (.+?) -->$`)

// readmeBlocks extracts the YAML blocks of md with their markers; a block
// without a marker on the line before it (blank lines allowed) is an error.
func readmeBlocks(md string) ([]readmeBlock, error) {
	var out []readmeBlock
	var errs []string
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(fence, "```") {
			continue
		}
		lang := strings.TrimPrefix(fence, "```")
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if lang != "yaml" && lang != "yml" {
			continue
		}
		kind := ""
		for j := start - 1; j >= 0; j-- {
			if l := strings.TrimSpace(lines[j]); l != "" {
				if m := reCheckMarker.FindStringSubmatch(l); m != nil {
					kind = m[1]
				}
				break
			}
		}
		if kind == "" {
			errs = append(errs, fmt.Sprintf("line %d: a yaml block without a <!-- check: config|policy|policy packages|none REASON --> marker before it", start+1))
			continue
		}
		out = append(out, readmeBlock{line: start + 1, kind: kind, body: strings.Join(body, "\n") + "\n"})
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return out, nil
}

// checkReadmeBlock runs one block through the command a user would run on
// it, in dir; the error carries that command's output.
func checkReadmeBlock(t *testing.T, dir string, b readmeBlock) error {
	t.Helper()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var code int
	var out, errOut string
	switch {
	case b.kind == "config":
		// The data dir is the test's (a config's ./pipgate-data is under
		// dir anyway); a password_env the block names is set.
		for _, m := range regexp.MustCompile(`password_env:\s*([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(b.body, -1) {
			t.Setenv(m[1], "from-the-readme-test")
		}
		code, out, errOut = runPipgate(t, "serve", "--config", write("pipgate.yaml", b.body), "--config.check")
	case b.kind == "policy":
		code, out, errOut = runPipgate(t, "policy", "check", write("policy.yaml", b.body))
	case b.kind == "policy packages":
		code, out, errOut = runPipgate(t, "policy", "check", write("policy.yaml", "version: 1\npackages:\n"+b.body))
	case strings.HasPrefix(b.kind, "none "):
		return nil
	default:
		return fmt.Errorf("unknown marker %q (want config, policy, policy packages or none REASON)", b.kind)
	}
	if code != 0 {
		return fmt.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	return nil
}

func TestReadmeYAMLBlocks(t *testing.T) {
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(md))
	if err != nil {
		t.Error(err)
	}
	kinds := map[string]int{}
	for _, b := range blocks {
		kinds[strings.Fields(b.kind)[0]]++
		t.Run(fmt.Sprintf("line %d %s", b.line, b.kind), func(t *testing.T) {
			if err := checkReadmeBlock(t, t.TempDir(), b); err != nil {
				t.Errorf("README.md:%d (%s): %v", b.line, b.kind, err)
			}
		})
	}
	if kinds["config"] == 0 || kinds["policy"] == 0 {
		t.Errorf("checked %v; want the README's config and policy examples among them", kinds)
	}
}

// TestReadmeYAMLBlocksCatchBadOnes: the check fails on an invalid block of
// each kind and on a block without a marker.
func TestReadmeYAMLBlocksCatchBadOnes(t *testing.T) {
	md := "# x\n\n```yaml\nlisten: 127.0.0.1:8080\n```\n\n" +
		"<!-- check: config -->\n```yaml\nlisten: 127.0.0.1:8080\ncache: {max_size: 0}\ncache: {page_memory: 1MiB}\n```\n" +
		"<!-- check: config -->\n```yaml\npolicy: ./policy.yaml\n```\n" +
		"<!-- check: policy -->\n```yaml\nversion: 1\ndefaults: {requre: none}\n```\n" +
		"<!-- check: policy packages -->\n```yaml\n  - {name: x, action: deny}\n```\n" +
		"<!-- check: confg -->\n```yaml\nlisten: x\n```\n" +
		"<!-- check: none a fragment -->\n```yaml\n  - {name: x\n```\n" +
		"```sh\nnot yaml: [\n```\n"
	blocks, err := readmeBlocks(md)
	if err == nil || !strings.Contains(err.Error(), "line 3: a yaml block without a <!-- check:") {
		t.Errorf("unmarked block: err %v; want it named", err)
	}
	want := []string{"config", "config", "policy", "policy packages", "confg", "none a fragment"}
	if len(blocks) != len(want) {
		t.Fatalf("blocks %+v; want %d", blocks, len(want))
	}
	for i, b := range blocks {
		if b.kind != want[i] {
			t.Errorf("block %d kind %q; want %q", i, b.kind, want[i])
		}
		err := checkReadmeBlock(t, t.TempDir(), b)
		if (err == nil) != (b.kind == "none a fragment") {
			t.Errorf("block at line %d (%s): err %v", b.line, b.kind, err)
		}
	}
}
