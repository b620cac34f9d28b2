package proxy

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

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
	dir := repoFile("deploy", "kubernetes")
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
