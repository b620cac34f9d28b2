package main

import (
	"log/slog"
	"testing"

	"github.com/pipgate/pipgate/config"
)

func TestExampleUpstreamsConfig(t *testing.T) {
	cfg, err := config.Load("../../configs/pipgate-upstreams.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	ups := cfg.UpstreamList()
	if len(ups) != 2 || ups[0].Name != "internal" || ups[0].PasswordEnv != "PIPGATE_INTERNAL_PASSWORD" || len(ups[1].Projects) != 0 {
		t.Fatalf("configs/pipgate-upstreams.yaml: upstreams %+v", ups)
	}
	t.Setenv("PIPGATE_INTERNAL_PASSWORD", "from-env")
	r, err := newRouter(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for project, want := range map[string]string{"internal-lib": "internal", "Acme.Widgets": "internal", "requests": "pypi"} {
		if got, _ := r.Owner(project); got != want {
			t.Errorf("Owner(%q) = %q; want %q", project, got, want)
		}
	}
}
