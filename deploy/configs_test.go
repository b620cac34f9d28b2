package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/internal/testbin"
)

// TestDeploySyntax: every YAML and JSON file here parses (YAML duplicate
// keys are errors).
func TestDeploySyntax(t *testing.T) {
	t.Parallel()
	for _, f := range deployFiles(t, ".yml", ".yaml") {
		if len(yamlDocs(t, f)) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
	}
	for _, f := range deployFiles(t, ".json") {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// productConfigKeys are the server configuration keys of product.md, which
// every deploy config spells out so that an operator sees them all.
var productConfigKeys = []string{
	"listen", "data_dir", "upstream", "upstream.url", "upstream.file_hosts", "upstream.index_ttl",
	"upstream.timeout", "trust", "trust.trusted_root", "policy", "metrics_listen", "audit_log",
	"egress", "egress.listen", "egress.ca_cert", "egress.ca_key", "egress.intercept",
	"tls", "tls.cert", "tls.key", "cache", "cache.max_size",
}

// configKeys flattens the keys of a decoded pipgate.yaml: "upstream.url".
func configKeys(prefix string, m map[string]any, out map[string]bool) {
	for k, v := range m {
		out[prefix+k] = true
		if sub, ok := v.(map[string]any); ok {
			configKeys(prefix+k+".", sub, out)
		}
	}
}

// checkConfig runs pipgate's own checks on a pipgate.yaml: `serve
// --config.check` (with a writable data_dir: the config's is the
// container's or the unit's) and `policy check` on the policy it names, and
// checks it spells every product.md key.
func checkConfig(t *testing.T, name, file string) pipgateConfig {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "serve", "--config", file, "--config.check", "--data-dir", t.TempDir()); err != nil {
		t.Errorf("%s: pipgate serve --config.check: %v\n%s", name, err, out)
	}
	cfg := decodeConfig(t, name, data)
	if cfg.Policy == "" {
		t.Errorf("%s: no policy", name)
	} else if out, err := run(t, "policy", "check", filepath.Join(filepath.Dir(file), cfg.Policy)); err != nil {
		t.Errorf("%s: pipgate policy check %s: %v\n%s", name, cfg.Policy, err, out)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	got := make(map[string]bool)
	configKeys("", m, got)
	for _, k := range productConfigKeys {
		if !got[k] {
			t.Errorf("%s: does not spell out %s", name, k)
		}
	}
	return cfg
}

// TestKubernetesConfigPassesChecks: the ConfigMap's config and policy pass
// pipgate's own checks (TestComposeStack and TestSystemdUnit check the
// container's and the unit's).
func TestKubernetesConfigPassesChecks(t *testing.T) {
	t.Parallel()
	config, _ := kubeConfig(t, kubeObjects(t)["ConfigMap"])
	checkConfig(t, "kubernetes/configmap.yaml", config)
}

// systemdUnit is a parsed unit file: section -> key -> values in order.
type systemdUnit map[string]map[string][]string

func (u systemdUnit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func parseUnit(t *testing.T, file string) systemdUnit {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u := systemdUnit{}
	var section string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[' && l[len(l)-1] == ']':
			section = l[1 : len(l)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is not KEY=VALUE in a section", file, n, l)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

// TestSystemdUnit: the unit starts pipgate on the config it installs in
// ConfigurationDirectory, which passes pipgate's checks; that config writes
// only where the sandbox (ProtectSystem=strict) lets it, StateDirectory and
// LogsDirectory; it runs as no fixed or root user; `systemctl reload` sends
// the SIGHUP pipgate reloads on, and logrotate rotates the audit log the
// config writes and reloads this unit. systemd-analyze verifies the unit
// where it is installed.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, filepath.Join("systemd", "pipgate.service"))
	svc := u["Service"]
	if svc == nil {
		t.Fatal("pipgate.service has no [Service]")
	}
	argv := strings.Fields(u.get("Service", "ExecStart"))
	if len(argv) < 2 || argv[1] != "serve" {
		t.Fatalf("ExecStart %v: want pipgate serve", argv)
	}
	confDir := "/etc/" + u.get("Service", "ConfigurationDirectory")
	args := append([]string(nil), argv[1:]...)
	config := ""
	for i := range args {
		if args[i] == "--config" && i+1 < len(args) {
			rel, ok := strings.CutPrefix(args[i+1], confDir+"/")
			if !ok {
				t.Fatalf("ExecStart --config %s is outside ConfigurationDirectory %s", args[i+1], confDir)
			}
			config = filepath.Join("systemd", rel)
			args[i+1] = config
		}
	}
	if config == "" {
		t.Fatal("ExecStart names no --config")
	}
	if out, err := run(t, append(args, "--config.check", "--data-dir", t.TempDir())...); err != nil {
		t.Errorf("ExecStart's arguments with --config.check: %v\n%s", err, out)
	}
	cfg := checkConfig(t, config, config)

	if u.get("Service", "ProtectSystem") != "strict" {
		t.Error("ProtectSystem is not strict")
	}
	state := "/var/lib/" + u.get("Service", "StateDirectory")
	logs := "/var/log/" + u.get("Service", "LogsDirectory")
	if cfg.DataDir != state {
		t.Errorf("data_dir %s is not the StateDirectory %s (the only writable state folder)", cfg.DataDir, state)
	}
	if cfg.AuditLog != "-" && path.Dir(cfg.AuditLog) != logs {
		t.Errorf("audit_log %s is not in the LogsDirectory %s", cfg.AuditLog, logs)
	}
	if u.get("Service", "DynamicUser") != "yes" {
		if user := u.get("Service", "User"); user == "" || user == "root" || user == "0" {
			t.Errorf("the unit runs as %q; want DynamicUser=yes or a non-root User", user)
		}
	}
	reload := strings.Fields(u.get("Service", "ExecReload"))
	if len(reload) != 3 || path.Base(reload[0]) != "kill" || reload[1] != "-HUP" || reload[2] != "$MAINPID" {
		t.Errorf("ExecReload %v: want kill -HUP $MAINPID (pipgate reloads the policy and reopens the audit log on SIGHUP)", reload)
	}

	// logrotate: the file is the audit log, rotation reloads this unit.
	rot := string(readFile(t, "deploy", "systemd", "pipgate.logrotate"))
	var target string
	for _, l := range strings.Split(rot, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			target = strings.Fields(l)[0]
			break
		}
	}
	if target != cfg.AuditLog {
		t.Errorf("pipgate.logrotate rotates %s; the audit log is %s", target, cfg.AuditLog)
	}
	if !strings.Contains(rot, "systemctl reload pipgate.service") {
		t.Error("pipgate.logrotate does not reload pipgate.service after rotating (pipgate would keep writing the rotated file)")
	}

	t.Run("systemd-analyze", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not on PATH; skipping systemd-analyze verify")
		}
		dir := t.TempDir()
		unit := strings.ReplaceAll(string(readFile(t, "deploy", "systemd", "pipgate.service")), argv[0], release(t))
		if err := os.WriteFile(filepath.Join(dir, "pipgate.service"), []byte(unit), 0o600); err != nil {
			t.Fatal(err)
		}
		// systemd-analyze exits 0 on unknown keys and bad values: any output is a problem.
		out, err := testbin.Command(t.Context(), t, sa, "verify", filepath.Join(dir, "pipgate.service")).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}

// composeMount maps a container path to the local file or folder a
// service's volumes mount there ("" when none does).
func composeMount(svc any, p string) string {
	vols, _ := dig(svc, "volumes").([]any)
	best, bestDst := "", ""
	for _, v := range vols {
		src, rest, _ := strings.Cut(fmt.Sprint(v), ":")
		dst, _, _ := strings.Cut(rest, ":")
		if !strings.HasPrefix(src, ".") {
			continue
		}
		if (p == dst || strings.HasPrefix(p, dst+"/")) && len(dst) > len(bestDst) {
			best, bestDst = filepath.Join(src, strings.TrimPrefix(p, dst)), dst
		}
	}
	return best
}

// hasVolumeAt reports whether a service mounts a volume (named or local) at p.
func hasVolumeAt(svc any, p string) bool {
	vols, _ := dig(svc, "volumes").([]any)
	for _, v := range vols {
		_, rest, _ := strings.Cut(fmt.Sprint(v), ":")
		dst, _, _ := strings.Cut(rest, ":")
		if dst == p {
			return true
		}
	}
	return false
}

// TestComposeStack: docker-compose.yml builds the image from the Dockerfile,
// starts it on a config that passes pipgate's checks and publishes its
// listener, gives the read-only container a volume for data_dir; Prometheus
// loads its config and alert rules from the mounted folder and scrapes
// pipgate where the running server serves /metrics; Grafana loads the
// dashboard where the provisioning looks for it and queries the Prometheus
// service. `docker compose config` validates the file where it is installed.
func TestComposeStack(t *testing.T) {
	t.Parallel()
	compose := yamlDocs(t, "docker-compose.yml")[0]
	services, _ := compose["services"].(map[string]any)
	pg := services["pipgate"]
	if pg == nil {
		t.Fatal("docker-compose.yml has no pipgate service")
	}
	ctxDir := fmt.Sprint(dig(pg, "build", "context"))
	if _, err := os.Stat(filepath.Join(ctxDir, fmt.Sprint(dig(pg, "build", "dockerfile")))); err != nil {
		t.Errorf("pipgate build: %v", err)
	}
	stages, err := parseDockerfile(repoFile("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	cmdArgs, _ := dig(pg, "command").([]any)
	if cmdArgs == nil { // the image's CMD
		for _, a := range execForm(t, "CMD", stages[len(stages)-1].last("CMD")) {
			cmdArgs = append(cmdArgs, a)
		}
	}
	var config string
	for i := range cmdArgs {
		if cmdArgs[i] == "--config" && i+1 < len(cmdArgs) {
			config = composeMount(pg, fmt.Sprint(cmdArgs[i+1]))
		}
	}
	if config == "" {
		t.Fatalf("pipgate command %v: --config is not in a mounted folder", cmdArgs)
	}
	cfg := checkConfig(t, "docker-compose.yml's pipgate config", config)
	published := false
	for _, p := range dig(pg, "ports").([]any) {
		parts := strings.Split(fmt.Sprint(p), ":")
		published = published || parts[len(parts)-1] == port(t, cfg.Listen)
	}
	if !published {
		t.Errorf("pipgate ports %v do not publish listen %s", dig(pg, "ports"), cfg.Listen)
	}
	if dig(pg, "read_only") == true && !hasVolumeAt(pg, cfg.DataDir) {
		t.Errorf("the container is read-only and data_dir %s is no volume", cfg.DataDir)
	}

	// Prometheus: its config, rules and scrape target.
	prom := services["prometheus"]
	var promConfig string
	for _, a := range dig(prom, "command").([]any) {
		if v, ok := strings.CutPrefix(fmt.Sprint(a), "--config.file="); ok {
			promConfig = composeMount(prom, v)
		}
	}
	if promConfig == "" {
		t.Fatal("prometheus --config.file is not in a mounted folder")
	}
	pc := yamlDocs(t, promConfig)[0]
	for _, rf := range dig(pc, "rule_files").([]any) {
		if _, err := os.Stat(filepath.Join(filepath.Dir(promConfig), fmt.Sprint(rf))); err != nil {
			t.Errorf("prometheus rule_files: %v", err)
		}
	}
	up := newUpstream(t)
	s := startServer(t, config, up)
	scraped := false
	for _, sc := range dig(pc, "scrape_configs").([]any) {
		for _, st := range dig(sc, "static_configs").([]any) {
			for _, target := range dig(st, "targets").([]any) {
				host, p, _ := strings.Cut(fmt.Sprint(target), ":")
				if host != "pipgate" {
					continue
				}
				scraped = true
				if p != port(t, cfg.Listen) || cfg.MetricsListen != "" {
					t.Errorf("prometheus scrapes %s; pipgate serves /metrics on %s (metrics_listen %q)", target, cfg.Listen, cfg.MetricsListen)
				}
				mp, _ := dig(sc, "metrics_path").(string)
				if mp == "" {
					mp = "/metrics"
				}
				if code, body := get(t, s.url("listen", mp)); code != http.StatusOK || !strings.Contains(string(body), "\npipgate_build_info{") {
					t.Errorf("GET %s on the running server: %d, not a pipgate scrape", mp, code)
				}
			}
		}
	}
	if !scraped {
		t.Error("prometheus.yml does not scrape the pipgate service")
	}

	// Grafana: provisioning and the dashboard file where it looks.
	gf := services["grafana"]
	provDir := composeMount(gf, "/etc/grafana/provisioning")
	if provDir == "" {
		t.Fatal("grafana: /etc/grafana/provisioning is not mounted")
	}
	prov := yamlDocs(t, filepath.Join(provDir, "dashboards", "pipgate.yml"))[0]
	for _, p := range dig(prov, "providers").([]any) {
		dir := fmt.Sprint(dig(p, "options", "path"))
		local := composeMount(gf, dir+"/pipgate-dashboard.json")
		if _, err := os.Stat(local); local == "" || err != nil {
			t.Errorf("grafana dashboard provider path %s: the dashboard is not mounted there (%v)", dir, err)
		}
	}
	if home, _ := dig(gf, "environment", "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH").(string); home != "" {
		if local := composeMount(gf, home); local == "" {
			t.Errorf("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH %s is not mounted", home)
		}
	}
	ds := yamlDocs(t, filepath.Join(provDir, "datasources", "prometheus.yml"))[0]
	for _, d := range dig(ds, "datasources").([]any) {
		if u := fmt.Sprint(dig(d, "url")); u != "http://prometheus:9090" {
			t.Errorf("grafana data source %s: want the prometheus service on its default port 9090", u)
		}
	}

	t.Run("docker compose config", func(t *testing.T) {
		var argv []string
		if exec.Command("docker", "compose", "version").Run() == nil {
			argv = []string{"docker", "compose"}
		} else if p, err := exec.LookPath("docker-compose"); err == nil {
			argv = []string{p}
		} else {
			t.Skip("neither 'docker compose' nor docker-compose found (Debian: apt-get install docker-compose); skipping docker compose config")
		}
		out, err := testbin.Command(t.Context(), t, argv[0], append(argv[1:], "-f", "docker-compose.yml", "config", "-q")...).CombinedOutput()
		if err != nil {
			t.Errorf("%v config -q: %v\n%s", argv, err, out)
		}
	})
}
