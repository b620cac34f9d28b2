#!/usr/bin/env bash
# check-metrics.sh runs `promtool check metrics` (the Prometheus naming and
# exposition lint) on a pipgate scrape.
#
#   scripts/check-metrics.sh http://127.0.0.1:8080/metrics   # a running server
#   scripts/check-metrics.sh scrape.txt                      # a saved scrape
#   curl -s URL | scripts/check-metrics.sh -                 # standard input
#
# Exit status: 0 clean, 1 promtool complained or the scrape failed, 2 usage or
# promtool missing (Debian: apt-get install prometheus). The Go test
# TestMetricsPromtool in ./proxy does the same on a registry with every series
# touched, without a running server.
set -euo pipefail
if (($# != 1)); then
	echo "usage: $0 URL|FILE|-" >&2
	exit 2
fi
if ! command -v promtool >/dev/null 2>&1; then
	echo "check-metrics: promtool not found (apt-get install prometheus)" >&2
	exit 2
fi
src=$1
scrape=$(mktemp)
trap 'rm -f "$scrape"' EXIT
case $src in
http://* | https://*)
	if ! curl -fsS --max-time 30 -H 'Accept: text/plain' "$src" >"$scrape"; then
		echo "check-metrics: scraping $src failed" >&2
		exit 1
	fi
	;;
-) cat >"$scrape" ;;
*) cp -- "$src" "$scrape" ;;
esac
if [[ ! -s $scrape ]]; then
	echo "check-metrics: empty scrape from $src" >&2
	exit 1
fi
if ! grep -q '^pipgate_build_info' "$scrape"; then
	echo "check-metrics: $src is not a pipgate scrape (no pipgate_build_info)" >&2
	exit 1
fi
# promtool prints one line per problem; it exits non-zero on lint problems too.
out=$(promtool check metrics <"$scrape" 2>&1) || true
if [[ -n $out ]]; then
	echo "$out" >&2
	echo "check-metrics: promtool found problems in $src" >&2
	exit 1
fi
echo "check-metrics: $src: ok ($(grep -c '^pipgate_' "$scrape") pipgate_ samples)"
