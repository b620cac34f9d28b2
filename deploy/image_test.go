package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pipgate/pipgate/internal/testbin"
)

// dockerInstr is one Dockerfile instruction, continuation lines joined.
type dockerInstr struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
}

// dockerStage is one FROM and the instructions after it.
type dockerStage struct {
	from, name string
	instrs     []dockerInstr
}

// all returns the arguments of every cmd instruction of the stage.
func (s *dockerStage) all(cmd string) []string {
	var out []string
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// last returns the arguments of the stage's last cmd instruction ("" if none).
func (s *dockerStage) last(cmd string) string {
	all := s.all(cmd)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// parseDockerfile splits a Dockerfile into stages.
func parseDockerfile(p string) ([]*dockerStage, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var stages []*dockerStage
	var cur strings.Builder
	flush := func() error {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := &dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return nil
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				return nil
			}
			return fmt.Errorf("%s before the first FROM", in.cmd)
		}
		s := stages[len(stages)-1]
		s.instrs = append(s.instrs, in)
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") {
			continue // a comment, also inside a continued instruction
		}
		if c, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(c + " ")
			continue
		}
		cur.WriteString(l)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM", p)
	}
	return stages, nil
}

// shellWords splits a shell command line into words, honouring double and
// single quotes and replacing ${NAME} and $NAME from vars.
func shellWords(s string, vars map[string]string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote == 0 && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case quote == 0 && (c == '"' || c == '\''):
			quote, inWord = c, true
		case c == quote:
			quote = 0
		case c == '$' && quote != '\'':
			j := i + 1
			var name string
			if j < len(rs) && rs[j] == '{' {
				k := j + 1
				for k < len(rs) && rs[k] != '}' {
					k++
				}
				name, i = string(rs[j+1:k]), k
			} else {
				k := j
				for k < len(rs) && (rs[k] == '_' || rs[k] >= 'A' && rs[k] <= 'Z' || rs[k] >= 'a' && rs[k] <= 'z' || rs[k] >= '0' && rs[k] <= '9') {
					k++
				}
				name, i = string(rs[j:k]), k-1
			}
			w.WriteString(vars[name])
			inWord = true
		default:
			w.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// dockerBuildCommand returns the environment and argv of the Dockerfile's
// `go build` step, with VERSION set to version and the output at out.
func dockerBuildCommand(stages []*dockerStage, version, out string) (env, argv []string, err error) {
	for _, s := range stages {
		for _, run := range s.all("RUN") {
			for _, part := range strings.Split(run, "&&") {
				words := shellWords(strings.TrimSpace(part), map[string]string{"VERSION": version})
				for len(words) > 0 && strings.Contains(words[0], "=") {
					env, words = append(env, words[0]), words[1:]
				}
				if len(words) < 2 || words[0] != "go" || words[1] != "build" {
					env = nil
					continue
				}
				for i := range words {
					if words[i] == "-o" && i+1 < len(words) {
						words[i+1] = out
					}
				}
				return env, words, nil
			}
		}
	}
	return nil, nil, fmt.Errorf("the Dockerfile has no `go build` step")
}

// execForm decodes a JSON exec-form argument (["a", "b"]).
func execForm(t *testing.T, what, s string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(s), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile %s %q: want the exec form [\"…\"]: %v", what, s, err)
	}
	return argv
}

// imageFiles maps the paths the final stage copies from the build context
// into the image to their repository paths, and lists the paths copied from
// other stages.
func imageFiles(t *testing.T, final *dockerStage) (fromContext map[string]string, fromStages map[string]bool) {
	t.Helper()
	fromContext, fromStages = map[string]string{}, map[string]bool{}
	for _, c := range final.all("COPY") {
		f := strings.Fields(c)
		stage := false
		for len(f) > 0 && strings.HasPrefix(f[0], "--") {
			stage = stage || strings.HasPrefix(f[0], "--from=")
			f = f[1:]
		}
		if len(f) < 2 {
			t.Fatalf("COPY %s: no source or destination", c)
		}
		dst := f[len(f)-1]
		for _, src := range f[:len(f)-1] {
			target := dst
			if strings.HasSuffix(dst, "/") {
				target = path.Join(dst, path.Base(src))
			}
			if stage {
				fromStages[target] = true
			} else {
				fromContext[target] = src
			}
		}
	}
	return fromContext, fromStages
}

// TestDockerImageRunsAsNonRoot: the image's final stage sets a numeric
// non-root USER (so that Kubernetes' runAsNonRoot can check it), the pod
// spec runs as that same user and group and forbids root, and the data
// volume the image creates belongs to that user.
func TestDockerImageRunsAsNonRoot(t *testing.T) {
	t.Parallel()
	stages, err := parseDockerfile(repoFile("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	final := stages[len(stages)-1]
	user := final.last("USER")
	if user == "" {
		t.Fatal("the Dockerfile's final stage sets no USER: the image runs as root")
	}
	uidS, gidS, _ := strings.Cut(user, ":")
	uid, err := strconv.Atoi(uidS)
	if err != nil || uid == 0 {
		t.Fatalf("USER %s: want a numeric non-zero uid (runAsNonRoot cannot check a name)", user)
	}
	gid := -1
	if gidS != "" {
		if gid, err = strconv.Atoi(gidS); err != nil || gid == 0 {
			t.Errorf("USER %s: want a numeric non-zero gid", user)
		}
	}

	dep := kubeObjects(t)["Deployment"]
	pod := dig(dep, "spec", "template", "spec", "securityContext")
	if dig(pod, "runAsNonRoot") != true {
		t.Error("deployment.yaml: the pod's securityContext lacks runAsNonRoot: true")
	}
	if got := dig(pod, "runAsUser"); got != uid {
		t.Errorf("deployment.yaml runAsUser %v; want the image's USER uid %d", got, uid)
	}
	for _, k := range []string{"runAsGroup", "fsGroup"} {
		if got := dig(pod, k); got != nil && gid >= 0 && got != gid {
			t.Errorf("deployment.yaml %s %v; want the image's USER gid %d", k, got, gid)
		}
	}
	for _, c := range dig(dep, "spec", "template", "spec", "containers").([]any) {
		sc := dig(c, "securityContext")
		if u, ok := dig(sc, "runAsUser").(int); ok && u != uid {
			t.Errorf("container %v overrides runAsUser with %d", dig(c, "name"), u)
		}
		if dig(sc, "runAsNonRoot") == false || dig(sc, "allowPrivilegeEscalation") != false {
			t.Errorf("container %v: runAsNonRoot overridden or privilege escalation allowed", dig(c, "name"))
		}
	}

	// data_dir is a VOLUME created in the image owned by USER, so that a
	// new named volume (docker-compose.yml's pipgate-data) is writable.
	cfg := decodeConfig(t, "docker/pipgate.yaml", readFile(t, "deploy", "docker", "pipgate.yaml"))
	volumes := execForm(t, "VOLUME", final.last("VOLUME"))
	owned := false
	for _, c := range final.all("COPY") {
		f := strings.Fields(c)
		if strings.TrimSuffix(f[len(f)-1], "/") == cfg.DataDir {
			owned = strings.Contains(c, "--chown="+user) || strings.Contains(c, fmt.Sprintf("--chown=%d:%d", uid, gid))
		}
	}
	inVolumes := false
	for _, v := range volumes {
		inVolumes = inVolumes || v == cfg.DataDir
	}
	if !inVolumes || !owned {
		t.Errorf("data_dir %s: VOLUME %v, created owned by %s: %v; want a volume the image creates for USER", cfg.DataDir, volumes, user, owned)
	}
	compose := yamlDocs(t, "docker-compose.yml")[0]
	if u, ok := dig(compose, "services", "pipgate", "user").(string); ok && (u == "0" || u == "root" || strings.HasPrefix(u, "0:")) {
		t.Errorf("docker-compose.yml runs pipgate as %q", u)
	}
}

// TestDockerfileBuild: the Dockerfile's `go build` step builds a static
// binary without this machine's paths in it, stamped with VERSION. The
// binary checked is the one the image tests run (internal/testbin.Release),
// built by the same command.
func TestDockerfileBuild(t *testing.T) {
	t.Parallel()
	stages, err := parseDockerfile(repoFile("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	const outPath = "/out/pipgate"
	env, argv, err := dockerBuildCommand(stages, testVersion, outPath)
	if err != nil {
		t.Fatal(err)
	}
	wantEnv, wantArgv := testbin.BuildCommand(outPath)
	if !slices.Equal(env, wantEnv) || !slices.Equal(argv, wantArgv) {
		t.Fatalf("the Dockerfile builds with %q %q, the image tests' binary with %q %q (internal/testbin.BuildCommand): change both together, so that the image tests run what the image ships",
			env, argv, wantEnv, wantArgv)
	}
	bin := release(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader (PT_INTERP): distroless/static cannot run it; build with CGO_ENABLED=0")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v dynamically", libs)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(repoFile())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(abs+"/")) {
		t.Errorf("the binary carries the build machine's path %s: build with -trimpath", abs)
	}
	out, err := runBin(t, bin, "version")
	if err != nil || !strings.Contains(out, testVersion) {
		t.Errorf("pipgate version = %q, %v; want the VERSION build argument %q", out, err, testVersion)
	}
}

// TestDockerImageServes: the image's ENTRYPOINT and CMD, run on the files
// the image copies, pass `serve --config.check` and start a server whose
// listener is EXPOSEd and answers the HEALTHCHECK's URL; the HEALTHCHECK's
// program is in the image.
func TestDockerImageServes(t *testing.T) {
	t.Parallel()
	stages, err := parseDockerfile(repoFile("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	final := stages[len(stages)-1]
	files, fromStages := imageFiles(t, final)
	argv := append(execForm(t, "ENTRYPOINT", final.last("ENTRYPOINT")), execForm(t, "CMD", final.last("CMD"))...)
	if !fromStages[argv[0]] {
		t.Fatalf("ENTRYPOINT %s is not a file the image copies from the build stage", argv[0])
	}
	// The image's paths, mapped to the repository's files.
	args := append([]string(nil), argv[1:]...)
	var config string
	for i := range args {
		if args[i] == "--config" && i+1 < len(args) {
			src, ok := files[args[i+1]]
			if !ok {
				t.Fatalf("CMD's --config %s is not a file the image copies", args[i+1])
			}
			config, args[i+1] = repoFile(src), repoFile(src)
		}
	}
	if config == "" || args[0] != "serve" {
		t.Fatalf("ENTRYPOINT+CMD %v: want pipgate serve --config FILE", argv)
	}
	cfg := decodeConfig(t, config, readFile(t, files[argv[len(argv)-1]]))
	if _, ok := files[path.Join(path.Dir(argv[len(argv)-1]), cfg.Policy)]; cfg.Policy != "" && !ok {
		t.Errorf("the config's policy %s is not copied next to it", cfg.Policy)
	}
	bin := release(t) // what the image ships
	if out, err := runBin(t, bin, append(args, "--config.check", "--data-dir", t.TempDir())...); err != nil {
		t.Errorf("pipgate %v --config.check: %v\n%s", args, err, out)
	}

	exposed := map[string]bool{}
	for _, e := range final.all("EXPOSE") {
		for _, p := range strings.Fields(e) {
			exposed[strings.TrimSuffix(p, "/tcp")] = true
		}
	}
	if !exposed[port(t, cfg.Listen)] {
		t.Errorf("listen %s is not EXPOSEd (%v)", cfg.Listen, exposed)
	}

	hc := final.last("HEALTHCHECK")
	_, hcCmd, ok := strings.Cut(hc, "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %q has no CMD", hc)
	}
	hcArgv := execForm(t, "HEALTHCHECK CMD", hcCmd)
	if !fromStages[hcArgv[0]] && files[hcArgv[0]] == "" {
		t.Errorf("HEALTHCHECK runs %s, which the image does not contain (distroless has no shell or wget)", hcArgv[0])
	}
	var probe string
	for _, a := range hcArgv {
		if strings.HasPrefix(a, "http://") || strings.HasPrefix(a, "https://") {
			probe = a
		}
	}
	u, err := url.Parse(probe)
	if err != nil {
		t.Fatalf("HEALTHCHECK %v: no URL: %v", hcArgv, err)
	}
	if u.Port() != port(t, cfg.Listen) {
		t.Errorf("HEALTHCHECK probes port %s; the config listens on %s", u.Port(), cfg.Listen)
	}
	up := newUpstream(t)
	s := startServerBin(t, bin, config, up)
	if code, body := get(t, s.url("listen", u.Path)); code != http.StatusOK {
		t.Errorf("HEALTHCHECK's %s: %d %s", u.Path, code, body)
	}
	install(t, s, up)
}

// TestDockerBuildContext: every file the Dockerfile copies exists and is
// not excluded by .dockerignore, and .dockerignore keeps what the build needs.
func TestDockerBuildContext(t *testing.T) {
	t.Parallel()
	stages, err := parseDockerfile(repoFile("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var excluded []string
	for _, l := range strings.Split(string(readFile(t, ".dockerignore")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			excluded = append(excluded, strings.TrimPrefix(l, "/"))
		}
	}
	for _, s := range stages {
		for _, c := range s.all("COPY") {
			f := strings.Fields(c)
			if strings.HasPrefix(f[0], "--from=") || len(f) < 2 {
				continue
			}
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			for _, src := range f[:len(f)-1] {
				if src == "." {
					continue
				}
				if _, err := os.Stat(repoFile(src)); err != nil {
					t.Errorf("Dockerfile copies %s: %v", src, err)
				}
				for _, ex := range excluded {
					if src == ex || strings.HasPrefix(src, ex+"/") {
						t.Errorf("Dockerfile copies %s, which .dockerignore excludes (%s)", src, ex)
					}
				}
			}
		}
	}
	dirs, err := buildInputs()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range append(dirs, "go.mod", "go.sum") {
		for _, ex := range excluded {
			if dir == ex || strings.HasPrefix(dir, ex+"/") {
				t.Errorf(".dockerignore excludes %s, which the build of cmd/pipgate needs", dir)
			}
		}
	}
}
