#!/usr/bin/env bash
# status-screenshot.sh renders a sample /-/status page, loads it in Debian's
# headless chromium, checks the DOM holds the decision and blocked-file tables
# (with hostile names escaped), and keeps a 1280x900 screenshot.
#
#   scripts/status-screenshot.sh [OUT.png]      (default: ./status.png)
#   scripts/status-screenshot.sh --url http://127.0.0.1:8080/-/status [OUT.png]
#
# With --url the page of a running pipgate is loaded instead of the sample,
# and only its structure (the cards and tables) is checked.
#
# Needs chromium (apt-get install -y chromium). The check itself is the Go
# test TestStatusPageInChromium in ./proxy; this script runs it and keeps the
# picture. Exit status: 0 checked, 1 a check failed, 2 chromium missing.
set -euo pipefail
cd "$(dirname "$0")/.."
url=
if [[ ${1:-} == --url ]]; then
	url=${2:?--url needs a URL}
	shift 2
fi
out=${1:-status.png}
case $out in /*) ;; *) out="$PWD/$out" ;; esac
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
	echo "status-screenshot: chromium not found (apt-get install -y chromium)" >&2
	exit 2
fi
rm -f "$out"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
PIPGATE_STATUS_URL="$url" PIPGATE_STATUS_SCREENSHOT="$out" go test -count=1 -run '^TestStatusPageInChromium$' -v ./proxy/ >"$log" 2>&1 || rc=$?
grep -E '^(--- |\s+status_test|ok|FAIL)' "$log" || cat "$log"
if ((rc != 0)); then
	echo "status-screenshot: the browser check failed" >&2
	exit 1
fi
if grep -q -- '--- SKIP' "$log"; then
	echo "status-screenshot: the browser check was skipped" >&2
	exit 2
fi
if [[ ! -s $out ]]; then
	echo "status-screenshot: no screenshot at $out" >&2
	exit 1
fi
echo "status-screenshot: $out ($(wc -c <"$out") bytes)"
