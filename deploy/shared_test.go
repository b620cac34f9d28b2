package deploy

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pipgate/pipgate/internal/testbin"
)

// sharedS3 is cache.shared.s3 of a pipgate.yaml.
type sharedS3 struct {
	Endpoint  string `yaml:"endpoint"`
	Bucket    string `yaml:"bucket"`
	Prefix    string `yaml:"prefix"`
	PathStyle bool   `yaml:"path_style"`
}

func sharedOf(t *testing.T, name string, data []byte) sharedS3 {
	t.Helper()
	var c struct {
		Cache struct {
			Shared struct {
				S3 *sharedS3 `yaml:"s3"`
			} `yaml:"shared"`
		} `yaml:"cache"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if c.Cache.Shared.S3 == nil {
		t.Fatalf("%s: no cache.shared.s3", name)
	}
	return *c.Cache.Shared.S3
}

// TestKubernetesSharedBucket: the shared-bucket overlay builds on the base,
// its config is the base's plus cache.shared.s3 (and passes pipgate's
// checks with the base's policy), the pods read the Secret's AWS variables,
// and the optional Ingress patch hashes by URI.
func TestKubernetesSharedBucket(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("kubernetes", "shared-bucket")
	kust := yamlDocs(t, filepath.Join(dir, "kustomization.yaml"))[0]
	res, _ := kust["resources"].([]any)
	if !slices.Contains(res, any("../")) {
		t.Fatalf("shared-bucket/kustomization.yaml resources %v: want the base ../", res)
	}
	for _, r := range res {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprint(r))); err != nil {
			t.Errorf("resource %v: %v", r, err)
		}
	}
	objs := map[string]map[string]any{}
	for _, p := range kust["patches"].([]any) {
		path := fmt.Sprint(dig(p, "path"))
		doc := yamlDocs(t, filepath.Join(dir, path))[0]
		objs[fmt.Sprint(doc["kind"])] = doc
	}
	secret := yamlDocs(t, filepath.Join(dir, "secret.yaml"))[0]
	base := kubeObjects(t)

	// The config: the base's with cache.shared.s3, nothing else changed.
	cm := objs["ConfigMap"]
	if cm == nil || dig(cm, "metadata", "name") != dig(base["ConfigMap"], "metadata", "name") {
		t.Fatalf("the overlay does not patch the base ConfigMap %v", dig(base["ConfigMap"], "metadata", "name"))
	}
	text := dig(cm, "data", "pipgate.yaml").(string)
	var got, want map[string]any
	if err := yaml.Unmarshal([]byte(text), &got); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(dig(base["ConfigMap"], "data", "pipgate.yaml").(string)), &want); err != nil {
		t.Fatal(err)
	}
	s3 := sharedOf(t, "shared-bucket/config.yaml", []byte(text))
	if s3.Bucket == "" {
		t.Error("cache.shared.s3.bucket is empty")
	}
	delete(got["cache"].(map[string]any), "shared")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shared-bucket/config.yaml's pipgate.yaml differs from the base's in more than cache.shared:\n%v\nbase:\n%v", got, want)
	}
	merged := map[string]any{"data": map[string]any{}}
	for k, v := range dig(base["ConfigMap"], "data").(map[string]any) {
		merged["data"].(map[string]any)[k] = v
	}
	merged["data"].(map[string]any)["pipgate.yaml"] = text
	config, _ := kubeConfig(t, merged)
	checkConfig(t, "shared-bucket pipgate.yaml", config)

	// The credentials: the Secret's keys are the AWS chain's, and the
	// base's pipgate container reads them.
	keys := map[string]bool{}
	for k := range dig(secret, "stringData").(map[string]any) {
		keys[k] = true
	}
	if !keys["AWS_ACCESS_KEY_ID"] || !keys["AWS_SECRET_ACCESS_KEY"] {
		t.Errorf("secret.yaml keys %v: want AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", keys)
	}
	dep := objs["Deployment"]
	baseC, _, _ := kubeContainer(t, base["Deployment"])
	if dep == nil || dig(dep, "metadata", "name") != dig(base["Deployment"], "metadata", "name") {
		t.Fatal("the overlay does not patch the base Deployment")
	}
	c := dig(dep, "spec", "template", "spec", "containers").([]any)[0]
	if dig(c, "name") != baseC["name"] {
		t.Errorf("deployment-patch.yaml patches container %v; the base's is %v", dig(c, "name"), baseC["name"])
	}
	found := false
	for _, e := range dig(c, "envFrom").([]any) {
		found = found || dig(e, "secretRef", "name") == dig(secret, "metadata", "name")
	}
	if !found {
		t.Errorf("the pipgate container does not read Secret %v", dig(secret, "metadata", "name"))
	}
	// Several replicas: the base's HPA keeps at least two.
	if n, _ := dig(base["HorizontalPodAutoscaler"], "spec", "minReplicas").(int); n < 2 {
		t.Errorf("HPA minReplicas %d: a shared bucket is for several replicas", n)
	}

	// The optional consistent-hash routing patches the base's example Ingress.
	ing := yamlDocs(t, filepath.Join(dir, "ingress-hash-patch.yaml"))[0]
	baseIng := yamlDocs(t, filepath.Join("kubernetes", "ingress.yaml"))[0]
	if dig(ing, "metadata", "name") != dig(baseIng, "metadata", "name") {
		t.Errorf("ingress-hash-patch.yaml patches Ingress %v; the example is %v", dig(ing, "metadata", "name"), dig(baseIng, "metadata", "name"))
	}
	if h := dig(ing, "metadata", "annotations", "nginx.ingress.kubernetes.io/upstream-hash-by"); h != "$request_uri" {
		t.Errorf("upstream-hash-by = %v, want $request_uri", h)
	}
}

// TestComposeShared: docker-compose.shared.yml runs several pipgate
// replicas on one config whose bucket and endpoint are the compose file's
// S3 server and bucket job, with that server's credentials.
func TestComposeShared(t *testing.T) {
	t.Parallel()
	compose := yamlDocs(t, "docker-compose.shared.yml")[0]
	services := compose["services"].(map[string]any)
	s3srv, bucketJob := services["s3"], services["bucket"]
	if s3srv == nil || bucketJob == nil {
		t.Fatal("docker-compose.shared.yml: want the s3 and bucket services")
	}
	access := dig(s3srv, "environment", "ROOT_ACCESS_KEY_ID")
	secret := dig(s3srv, "environment", "ROOT_SECRET_ACCESS_KEY")
	replicas := 0
	ports := map[string]bool{}
	for name, svc := range services {
		if !strings.HasPrefix(name, "pipgate") {
			continue
		}
		replicas++
		args := dig(svc, "command").([]any)
		i := slices.Index(args, any("--config"))
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("%s: no --config in %v", name, args)
		}
		config := composeMount(svc, fmt.Sprint(args[i+1]))
		if config == "" {
			t.Fatalf("%s: --config %v is not in a mounted folder", name, args[i+1])
		}
		cfg := checkConfig(t, name+"'s config", config)
		if !hasVolumeAt(svc, cfg.DataDir) {
			t.Errorf("%s: data_dir %s is no volume of its own", name, cfg.DataDir)
		}
		s3 := sharedOf(t, config, readFile(t, "deploy", config))
		u, err := url.Parse(s3.Endpoint)
		if err != nil || services[u.Hostname()] == nil || u.Hostname() != "s3" {
			t.Errorf("%s: cache.shared.s3.endpoint %q is not the s3 service", name, s3.Endpoint)
		}
		if !strings.Contains(strings.Join(func() []string {
			var out []string
			for _, a := range dig(bucketJob, "command").([]any) {
				out = append(out, fmt.Sprint(a))
			}
			return out
		}(), " "), "--bucket "+s3.Bucket) {
			t.Errorf("%s: the bucket job does not create bucket %q", name, s3.Bucket)
		}
		if dig(svc, "environment", "AWS_ACCESS_KEY_ID") != access || dig(svc, "environment", "AWS_SECRET_ACCESS_KEY") != secret {
			t.Errorf("%s: AWS credentials are not the s3 server's root credentials", name)
		}
		if dig(svc, "depends_on", "bucket", "condition") != "service_completed_successfully" {
			t.Errorf("%s: does not wait for the bucket job", name)
		}
		for _, p := range dig(svc, "ports").([]any) {
			host, _, _ := strings.Cut(fmt.Sprint(p), ":")
			if ports[host] {
				t.Errorf("%s: host port %s published twice", name, host)
			}
			ports[host] = true
		}
	}
	if replicas < 2 {
		t.Errorf("%d pipgate replicas; a shared store is for several", replicas)
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
		out, err := testbin.Command(t.Context(), t, argv[0], append(argv[1:], "-f", "docker-compose.shared.yml", "config", "-q")...).CombinedOutput()
		if err != nil {
			t.Errorf("%v config -q: %v\n%s", argv, err, out)
		}
	})
}
