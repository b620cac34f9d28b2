// Package deploy holds pipgate's deployment files: the Kubernetes
// manifests, the docker compose stack, the systemd unit, the Prometheus
// alert rules and the Grafana dashboard (the Dockerfile sits at the
// repository root). It has no code. Its tests check what the files mean
// against the pipgate binary they run: the image runs as a non-root user,
// the probes and scrape targets answer on the server those configs start,
// every config passes pipgate's own checks, and every metric the alerts and
// the dashboard query is one pipgate exports.
package deploy
