#!/usr/bin/env bash
# status-screenshot.sh runs the status-page browser check: the real pipgate
# binary in front of the fake upstream, a few downloads, then /-/status and
# /-/status/<project> loaded in Debian's headless chromium (the DOM is
# checked) and screenshotted.
#
#   scripts/status-screenshot.sh [OUTDIR]      (default: ./status-screenshots)
#
# The check itself is the subtest status-pages-in-chromium of TestE2E in
# ./cmd/pipgate (it needs python3 with pip, as every end-to-end test does).
# Exit status: 0 checked, 1 a check failed, 2 chromium or pip missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-status-screenshots}
case $out in /*) ;; *) out="$PWD/$out" ;; esac
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
	echo "status-screenshot: chromium not found (apt-get install -y chromium)" >&2
	exit 2
fi
mkdir -p "$out"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
PIPGATE_SCREENSHOT_DIR="$out" go test -count=1 -run '^TestE2E$/^status-pages-in-chromium$' -v ./cmd/pipgate/ >"$log" 2>&1 || rc=$?
grep -E '^\s*(--- |ok|FAIL|e2e_test.go:.*screenshot)' "$log" || tail -40 "$log"
if ((rc != 0)); then
	echo "status-screenshot: the browser check failed" >&2
	exit 1
fi
if grep -q -- '--- SKIP' "$log"; then
	echo "status-screenshot: the browser check was skipped" >&2
	exit 2
fi
ls -l "$out"/status*.png
