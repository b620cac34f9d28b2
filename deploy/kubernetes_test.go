package deploy

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// kubeObjects returns the objects kustomization.yaml lists, by kind.
func kubeObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	dir := "kubernetes"
	byKind := make(map[string]map[string]any)
	kust := yamlDocs(t, filepath.Join(dir, "kustomization.yaml"))[0]
	for _, r := range kust["resources"].([]any) {
		for _, doc := range yamlDocs(t, filepath.Join(dir, r.(string))) {
			kind, _ := doc["kind"].(string)
			if doc["apiVersion"] == nil || kind == "" || dig(doc, "metadata", "name") == nil {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name", r)
				continue
			}
			if byKind[kind] != nil {
				t.Errorf("kustomization.yaml has two %s objects", kind)
			}
			byKind[kind] = doc
		}
	}
	for _, k := range []string{"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
		if byKind[k] == nil {
			t.Fatalf("kustomization.yaml has no %s", k)
		}
	}
	return byKind
}

// kubeContainer returns the Deployment's pipgate container, its ports by
// name and its volume mounts by volume name.
func kubeContainer(t *testing.T, dep map[string]any) (c map[string]any, ports map[string]int, mounts map[string]string) {
	t.Helper()
	c = dig(dep, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	ports = make(map[string]int)
	for _, p := range c["ports"].([]any) {
		p := p.(map[string]any)
		ports[p["name"].(string)] = p["containerPort"].(int)
	}
	mounts = make(map[string]string)
	for _, m := range c["volumeMounts"].([]any) {
		m := m.(map[string]any)
		mounts[m["name"].(string)] = m["mountPath"].(string)
	}
	return c, ports, mounts
}

// kubeConfig writes the ConfigMap's files into a folder, as the config
// volume mounts them, and returns the path of pipgate.yaml there.
func kubeConfig(t *testing.T, cm map[string]any) (string, pipgateConfig) {
	t.Helper()
	dir := t.TempDir()
	data, _ := dig(cm, "data").(map[string]any)
	for name, v := range data {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("ConfigMap key %s is not a string", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text, _ := data["pipgate.yaml"].(string)
	if text == "" {
		t.Fatal("the ConfigMap has no pipgate.yaml")
	}
	return filepath.Join(dir, "pipgate.yaml"), decodeConfig(t, "configmap.yaml pipgate.yaml", []byte(text))
}

// TestKubernetesWiring: selectors match the pod labels, the Service, PDB and
// HPA reach the Deployment, the ConfigMap is mounted where the container's
// args read it and holds the policy the config names, data_dir is a volume,
// and the pod's resources let the HPA work.
func TestKubernetesWiring(t *testing.T) {
	t.Parallel()
	byKind := kubeObjects(t)
	dep := byKind["Deployment"]
	podLabels := dig(dep, "spec", "template", "metadata", "labels").(map[string]any)
	if !subset(dig(dep, "spec", "selector", "matchLabels"), podLabels) {
		t.Error("Deployment selector does not match its pod labels")
	}
	c, ports, mounts := kubeContainer(t, dep)
	for _, r := range []string{"requests", "limits"} {
		if dig(c, "resources", r, "memory") == nil {
			t.Errorf("container has no resources.%s.memory", r)
		}
	}
	if dig(c, "resources", "requests", "cpu") == nil {
		t.Error("container has no resources.requests.cpu (the HPA needs it)")
	}
	if dig(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("the container's root filesystem is writable")
	}
	volumes := make(map[string]map[string]any)
	for _, v := range dig(dep, "spec", "template", "spec", "volumes").([]any) {
		v := v.(map[string]any)
		volumes[v["name"].(string)] = v
	}
	for name := range mounts {
		if volumes[name] == nil {
			t.Errorf("volumeMount %s has no volume", name)
		}
	}

	// The container reads --config from the ConfigMap's volume.
	cm := byKind["ConfigMap"]
	var configArg string
	args, _ := c["args"].([]any)
	for i := range args {
		if args[i] == "--config" && i+1 < len(args) {
			configArg = fmt.Sprint(args[i+1])
		}
	}
	var cmVolume string
	for name, v := range volumes {
		if dig(v, "configMap", "name") == dig(cm, "metadata", "name") {
			cmVolume = name
		}
	}
	if cmVolume == "" || mounts[cmVolume] == "" {
		t.Fatalf("the ConfigMap %v is not mounted", dig(cm, "metadata", "name"))
	}
	if dir, file := filepath.Split(configArg); filepath.Clean(dir) != mounts[cmVolume] || dig(cm, "data", file) == nil {
		t.Errorf("args --config %q is not a key of the ConfigMap mounted at %s", configArg, mounts[cmVolume])
	}
	_, cfg := kubeConfig(t, cm)
	if cfg.Policy != "" && dig(cm, "data", cfg.Policy) == nil {
		t.Errorf("pipgate.yaml names policy %q, which the ConfigMap does not hold", cfg.Policy)
	}
	dataMounted := false
	for name, p := range mounts {
		if p == cfg.DataDir && volumes[name] != nil && dig(volumes[name], "configMap") == nil {
			dataMounted = true
		}
	}
	if !dataMounted {
		t.Errorf("data_dir %s is not a writable volume (the root filesystem is read-only)", cfg.DataDir)
	}

	svc := byKind["Service"]
	if !subset(dig(svc, "spec", "selector"), podLabels) {
		t.Error("Service selector does not match the pod labels")
	}
	for _, p := range dig(svc, "spec", "ports").([]any) {
		if tp, _ := p.(map[string]any)["targetPort"].(string); ports[tp] == 0 {
			t.Errorf("Service targetPort %q is not a container port", tp)
		}
	}
	if !subset(dig(byKind["PodDisruptionBudget"], "spec", "selector", "matchLabels"), podLabels) {
		t.Error("PodDisruptionBudget selector does not match the pod labels")
	}
	hpa := byKind["HorizontalPodAutoscaler"]
	if dig(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" || dig(hpa, "spec", "scaleTargetRef", "name") != dig(dep, "metadata", "name") {
		t.Error("HorizontalPodAutoscaler does not target the Deployment")
	}
	if lo, _ := dig(hpa, "spec", "minReplicas").(int); lo < 2 {
		t.Errorf("HPA minReplicas = %d; want at least 2 (the PDB allows one down)", lo)
	}
}

// TestKubernetesProbesHitRoutes starts pipgate on the ConfigMap's config
// (only the addresses, upstream, trust root and data_dir replaced) and
// sends every probe of the Deployment and the Prometheus scrape its
// annotations ask for: each must land on the port the config listens on
// and be answered 200 by the running server.
func TestKubernetesProbesHitRoutes(t *testing.T) {
	t.Parallel()
	byKind := kubeObjects(t)
	dep := byKind["Deployment"]
	c, ports, _ := kubeContainer(t, dep)
	config, cfg := kubeConfig(t, byKind["ConfigMap"])
	up := newUpstream(t)
	s := startServer(t, config, up)

	containerPort := func(p any) int {
		if n, ok := p.(int); ok {
			return n
		}
		return ports[fmt.Sprint(p)]
	}
	probes := 0
	for _, name := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
		probe := dig(c, name, "httpGet")
		if probe == nil {
			t.Errorf("container has no %s.httpGet", name)
			continue
		}
		probes++
		p := containerPort(dig(probe, "port"))
		if strconv.Itoa(p) != port(t, cfg.Listen) {
			t.Errorf("%s: port %v (%d) is not the port the config listens on (%s)", name, dig(probe, "port"), p, cfg.Listen)
		}
		if scheme, _ := dig(probe, "scheme").(string); scheme != "" && scheme != "HTTP" {
			t.Errorf("%s: scheme %s, but the ConfigMap sets no tls", name, scheme)
		}
		path := fmt.Sprint(dig(probe, "path"))
		if code, body := get(t, s.url("listen", path)); code != http.StatusOK {
			t.Errorf("%s: GET %s = %d %s; want 200 from a ready server", name, path, code, strings.TrimSpace(string(body)))
		}
	}
	if probes == 0 {
		t.Fatal("the container has no HTTP probes")
	}

	ann, _ := dig(dep, "spec", "template", "metadata", "annotations").(map[string]any)
	if ann["prometheus.io/scrape"] == "true" {
		listener, addr := "listen", cfg.Listen
		if cfg.MetricsListen != "" {
			listener, addr = "metrics_listen", cfg.MetricsListen
		}
		if fmt.Sprint(ann["prometheus.io/port"]) != port(t, addr) {
			t.Errorf("prometheus.io/port %v; /metrics is served on %s", ann["prometheus.io/port"], addr)
		}
		code, body := get(t, s.url(listener, fmt.Sprint(ann["prometheus.io/path"])))
		if code != http.StatusOK || !strings.Contains(string(body), "\npipgate_build_info{") {
			t.Errorf("prometheus.io/path %v: %d, not a pipgate scrape", ann["prometheus.io/path"], code)
		}
	}
}

// quantityBytes parses a Kubernetes quantity ("20Gi", "500M") or a pipgate
// size ("16GiB", "512MiB", "20GB") into bytes.
func quantityBytes(t *testing.T, v any) int64 {
	t.Helper()
	s := fmt.Sprint(v)
	m := regexp.MustCompile(`^([0-9]+)([A-Za-z]*)$`).FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		t.Fatalf("cannot parse size %q", s)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	mul := map[string]int64{
		"": 1, "B": 1,
		"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	}[m[2]]
	if mul == 0 {
		t.Fatalf("unknown unit in %q", s)
	}
	return n * mul
}

// TestDeployKubernetesStorage holds the Kubernetes manifests to what keeps
// the kubelet from evicting pipgate for its cache: cache.max_size fits the
// data volume with headroom, and the ephemeral-storage request covers every
// emptyDir; the HPA alone sets the replica count; the image is pinned; the
// example Ingress serves TLS for its host and reaches the Service.
func TestDeployKubernetesStorage(t *testing.T) {
	t.Parallel()
	dir := "kubernetes"
	dep := yamlDocs(t, filepath.Join(dir, "deployment.yaml"))[0]
	cm := yamlDocs(t, filepath.Join(dir, "configmap.yaml"))[0]
	kust := yamlDocs(t, filepath.Join(dir, "kustomization.yaml"))[0]
	svc := yamlDocs(t, filepath.Join(dir, "service.yaml"))[0]

	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(dig(cm, "data", "pipgate.yaml").(string)), &cfg); err != nil {
		t.Fatal(err)
	}
	maxSize := dig(cfg, "cache", "max_size")
	if maxSize == nil || quantityBytes(t, maxSize) == 0 {
		t.Fatal("the ConfigMap sets no cache.max_size: the cache would grow until the kubelet evicts the pod")
	}
	limit := quantityBytes(t, maxSize)

	c := dig(dep, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	var mountedAt = map[string]string{}
	for _, m := range c["volumeMounts"].([]any) {
		m := m.(map[string]any)
		mountedAt[m["name"].(string)] = m["mountPath"].(string)
	}
	var emptyDirs int64
	var dataSize int64
	for _, v := range dig(dep, "spec", "template", "spec", "volumes").([]any) {
		v := v.(map[string]any)
		ed, ok := v["emptyDir"].(map[string]any)
		if !ok {
			continue
		}
		sl, ok := ed["sizeLimit"]
		if !ok {
			t.Errorf("emptyDir %v has no sizeLimit", v["name"])
			continue
		}
		n := quantityBytes(t, sl)
		emptyDirs += n
		if mountedAt[v["name"].(string)] == cfg["data_dir"] {
			dataSize = n
		}
	}
	if dataSize == 0 {
		t.Fatalf("no sized emptyDir is mounted at data_dir %v", cfg["data_dir"])
	}
	if limit*10 > dataSize*8 {
		t.Errorf("cache.max_size %v is more than 80%% of the data volume's sizeLimit (%d bytes): no headroom for the database and files being fetched", maxSize, dataSize)
	}
	req := dig(c, "resources", "requests", "ephemeral-storage")
	if req == nil {
		t.Fatal("no resources.requests.ephemeral-storage: the scheduler does not reserve the cache's disk")
	}
	if r := quantityBytes(t, req); r < emptyDirs {
		t.Errorf("ephemeral-storage request %v is less than the emptyDirs' sizeLimits (%d bytes)", req, emptyDirs)
	}
	if l := dig(c, "resources", "limits", "ephemeral-storage"); l != nil && quantityBytes(t, l) < quantityBytes(t, req) {
		t.Errorf("ephemeral-storage limit %v below the request %v", l, req)
	}

	if _, ok := dig(dep, "spec", "replicas").(int); ok {
		t.Error("deployment.yaml sets replicas beside the HPA")
	}

	image := c["image"].(string)
	name, tag, hasTag := strings.Cut(image, ":")
	if !hasTag || tag == "" || tag == "latest" {
		t.Errorf("deployment image %q is not pinned to a release", image)
	}
	for _, im := range kust["images"].([]any) {
		im := im.(map[string]any)
		if im["name"] != name {
			continue
		}
		if nt := fmt.Sprint(im["newTag"]); im["digest"] == nil && (nt == "" || nt == "latest" || nt != tag) {
			t.Errorf("kustomization.yaml image newTag %q; want the pinned %q of deployment.yaml", nt, tag)
		}
	}

	ing := yamlDocs(t, filepath.Join(dir, "ingress.yaml"))[0]
	tlsHosts := map[string]bool{}
	for _, e := range dig(ing, "spec", "tls").([]any) {
		e := e.(map[string]any)
		if e["secretName"] == nil {
			t.Error("ingress tls entry without secretName")
		}
		for _, h := range e["hosts"].([]any) {
			tlsHosts[h.(string)] = true
		}
	}
	svcPorts := map[string]bool{}
	for _, p := range dig(svc, "spec", "ports").([]any) {
		svcPorts[p.(map[string]any)["name"].(string)] = true
	}
	for _, r := range dig(ing, "spec", "rules").([]any) {
		r := r.(map[string]any)
		if !tlsHosts[r["host"].(string)] {
			t.Errorf("ingress host %v is not covered by its tls section", r["host"])
		}
		for _, p := range dig(r, "http", "paths").([]any) {
			b := dig(p, "backend", "service").(map[string]any)
			if b["name"] != dig(svc, "metadata", "name") || !svcPorts[fmt.Sprint(dig(b, "port", "name"))] {
				t.Errorf("ingress backend %v does not reach the Service's ports", b)
			}
		}
	}
}
