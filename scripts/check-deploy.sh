#!/usr/bin/env bash
# check-deploy.sh validates every file in deploy/ (and the Dockerfile) with the
# tools this machine has, offline:
#
#   Go tests (./proxy)  metric names used by the dashboard and alerts exist; YAML/JSON
#                       syntax of all of deploy/; Kubernetes wiring (probes /healthz and
#                       /readyz, ports, selectors, ConfigMap keys = product.md keys, HPA
#                       target); compose mounts; systemd directives; Dockerfile contract
#   promtool            check rules + test rules (alerts_test.yml) + check config; the
#                       dashboard's PromQL parsed as recording rules
#   go build            the Dockerfile's build step: static, trimmed, version stamped
#   pipgate             serve --config.check and policy check on every deploy config
#                       (the Kubernetes ConfigMap's files extracted first)
#   systemd-analyze     verify deploy/systemd/pipgate.service
#   docker compose      config -q (v2 plugin or docker-compose v1; no engine needed)
#   yamllint, shellcheck, kubectl kustomize, hadolint   when installed
#
# A missing tool is a SKIP (CHECK_DEPLOY_STRICT=1 makes it a failure); any
# problem is a FAIL and the exit status is 1.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0

run() { # run NAME CMD...: a check that passes when CMD exits 0
	local name=$1
	shift
	local out
	if out=$("$@" 2>&1); then
		echo "PASS $name"
		passed=$((passed + 1))
	else
		echo "FAIL $name"
		printf '    %s\n' "${out//$'\n'/$'\n'    }"
		failed=$((failed + 1))
	fi
}
quiet() { # quiet CMD...: fails when CMD fails or prints anything
	local out
	out=$("$@" 2>&1) || {
		echo "$out"
		return 1
	}
	[[ -z $out ]] || {
		echo "$out"
		return 1
	}
}
skip() {
	if [[ ${CHECK_DEPLOY_STRICT:-} == 1 ]]; then
		echo "FAIL $1 (strict: $2)"
		failed=$((failed + 1))
	else
		echo "SKIP $1: $2"
		skipped=$((skipped + 1))
	fi
}
have() { command -v "$1" >/dev/null 2>&1; }

# --- Go tests over deploy/ ------------------------------------------------------
run "go test (deploy files, metric names, Dockerfile, promtool check metrics)" \
	go test -count=1 -run '^(TestDeploy|TestDockerfile|TestMetricsPromtool)' ./proxy/

# --- promtool -------------------------------------------------------------------
if have promtool; then
	run "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
	run "promtool test rules deploy/prometheus/alerts_test.yml" promtool test rules deploy/prometheus/alerts_test.yml
	run "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
	dashboard_rules() {
		# Every panel query, Grafana variables replaced, as a recording rule.
		python3 - "$root/deploy/grafana/pipgate-dashboard.json" >"$tmp/dashboard-rules.yml" <<'PY' || return 1
import json, sys
d = json.load(open(sys.argv[1]))
subst = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$job": ".*", "$instance": ".*"}
print("groups:\n  - name: dashboard\n    rules:")
n = 0
def walk(panels):
    global n
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            e = t["expr"]
            for k in sorted(subst, key=len, reverse=True):
                e = e.replace(k, subst[k])
            n += 1
            print("      - record: dashboard:panel%d:%d" % (p["id"], n))
            print("        expr: %s" % json.dumps(e))
walk(d["panels"])
if n == 0:
    sys.exit("no queries in the dashboard")
PY
		promtool check rules "$tmp/dashboard-rules.yml"
	}
	if have python3; then
		run "promtool: the dashboard's PromQL parses" dashboard_rules
	else
		skip "dashboard PromQL" "python3 not found"
	fi
else
	skip "promtool checks" "promtool not found (apt-get install prometheus)"
fi

# --- the Dockerfile's build step, and the binary's own config checks ------------------
bin=$tmp/pipgate
build() {
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=check-deploy" -o "$bin" ./cmd/pipgate || return 1
	local info
	info=$(go version -m "$bin") || return 1
	grep -q 'CGO_ENABLED=0' <<<"$info" || { echo "not a static build"; return 1; }
	grep -q -- '-trimpath=true' <<<"$info" || { echo "not built with -trimpath"; return 1; }
	"$bin" version | grep -q 'check-deploy' || { echo "version not stamped: $("$bin" version)"; return 1; }
}
run "go build as the Dockerfile does (CGO_ENABLED=0, -trimpath, -X main.version)" build
if [[ -x $bin ]]; then
	for cfg in deploy/docker/pipgate.yaml deploy/systemd/pipgate.yaml; do
		# --data-dir: the check also tries writing to data_dir, which is the
		# container's or the unit's (/data, /var/lib/pipgate), not this machine's.
		run "pipgate serve --config.check $cfg" "$bin" serve --config "$cfg" --config.check --data-dir "$tmp/data"
	done
	for pol in deploy/docker/policy.yaml deploy/systemd/policy.yaml; do
		run "pipgate policy check $pol" "$bin" policy check "$pol"
	done
	if have python3 && python3 -c 'import yaml' 2>/dev/null; then
		extract() {
			mkdir -p "$tmp/k8s" && python3 - "$root/deploy/kubernetes/configmap.yaml" "$tmp/k8s" <<'PY'
import sys, yaml
cm = yaml.safe_load(open(sys.argv[1]))
for name in ("pipgate.yaml", "policy.yaml"):
    open(sys.argv[2] + "/" + name, "w").write(cm["data"][name])
PY
		}
		run "extract the Kubernetes ConfigMap's files" extract
		run "pipgate serve --config.check (Kubernetes ConfigMap)" "$bin" serve --config "$tmp/k8s/pipgate.yaml" --config.check --data-dir "$tmp/data"
		run "pipgate policy check (Kubernetes ConfigMap)" "$bin" policy check "$tmp/k8s/policy.yaml"
	else
		skip "Kubernetes ConfigMap config check" "python3 with PyYAML not found"
	fi
fi

# --- systemd ----------------------------------------------------------------------
if have systemd-analyze; then
	verify_unit() {
		mkdir -p "$tmp/unit"
		local exe=$bin
		[[ -x $exe ]] || exe=/bin/true
		sed "s#/usr/local/bin/pipgate#$exe#" deploy/systemd/pipgate.service >"$tmp/unit/pipgate.service"
		# systemd-analyze exits 0 on unknown keys and bad values: any output is a problem.
		quiet systemd-analyze verify "$tmp/unit/pipgate.service"
	}
	run "systemd-analyze verify deploy/systemd/pipgate.service" verify_unit
else
	skip "systemd unit" "systemd-analyze not found"
fi

# --- docker compose ---------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
	run "docker compose config -q" docker compose -f deploy/docker-compose.yml config -q
elif have docker-compose; then
	run "docker-compose config -q" docker-compose -f deploy/docker-compose.yml config -q
else
	skip "docker-compose.yml" "neither 'docker compose' nor docker-compose found (apt-get install docker-compose)"
fi

# --- linters ------------------------------------------------------------------------
if have yamllint; then
	run "yamllint deploy/" yamllint -s -d '{extends: default, rules: {line-length: disable, document-start: disable, comments-indentation: disable, comments: {min-spaces-from-content: 1}, truthy: {check-keys: false}}}' deploy/
else
	skip "yamllint" "yamllint not found (apt-get install yamllint)"
fi
if have shellcheck; then
	run "shellcheck scripts/*.sh" shellcheck scripts/*.sh
else
	skip "shellcheck" "shellcheck not found (apt-get install shellcheck)"
fi
if have kubectl; then
	run "kubectl kustomize deploy/kubernetes" kubectl kustomize deploy/kubernetes
else
	skip "kubectl kustomize" "kubectl not found (the Go test checks the manifests' wiring; no API server here for schema validation)"
fi
if have hadolint; then
	run "hadolint Dockerfile" hadolint Dockerfile
else
	skip "hadolint" "hadolint not found (not packaged in Debian; the Go test checks the Dockerfile's contract, and no engine runs here to build it)"
fi

echo "check-deploy: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
