#!/usr/bin/env bash
# test-timing.sh: time the README's test command, cold and warm.
#
#   scripts/test-timing.sh [N]      (N cold runs, then N warm runs; default 3)
#
# Cold: `go test -race ./...` with an empty Go build cache (a fresh GOCACHE
# in a temporary folder, removed afterwards; the module cache GOMODCACHE is
# kept: downloads are not what is measured). Warm: `go test -race -count=1
# ./...` on the cache the last cold run filled. Each run prints its wall
# time, CPU time (user+sys of go test and everything it waited for) and the
# load average before it, then checks that the run left nothing behind: no
# pipgate, pip or python process started from the run's temporary folders
# (TMPDIR is a fresh folder per run) and no pipgate-* folder in that TMPDIR.
# Targets (issue 21): cold at most 8 minutes, warm at most 90 s, on 2 cores.
# The exit status is 1 if a run failed or left something behind.
#
# Environment: GOFLAGS and the like pass through; TIMING_ARGS replaces
# "./..." (e.g. TIMING_ARGS=./cmd/pipgate to time one package).
set -u
n=${1:-3}
args=${TIMING_ARGS:-./...}
cd "$(dirname "$0")/.." || exit 2
command -v go >/dev/null || { echo "go not on PATH" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
command -v bc >/dev/null || { echo "needs bc" >&2; exit 2; }
gomodcache=$(go env GOMODCACHE)
export GOMODCACHE=$gomodcache

work=$(mktemp -d "${TMPDIR:-/tmp}/test-timing.XXXXXX") || exit 2
gocache=""
tmp=""
cleanup() {
	[ -n "$gocache" ] && rm -rf "$gocache"
	[ -n "$tmp" ] && rm -rf "$tmp"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status=0
results=()

# leftovers reports processes whose command line or working directory lies in
# the run's TMPDIR or GOCACHE (the test binaries and their janitors, the
# pipgate binary the tests built, pip and the venvs' python, the servers'
# config and data folders) and pipgate-* folders left in the TMPDIR.
leftovers() {
	local dir=$1 found=0 p pid cmd cwd
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ "$pid" = "$$" ] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		cwd=$(readlink "$p/cwd" 2>/dev/null || true)
		case "$cmd $cwd" in
		*"$dir"* | *"$gocache/pipgate-testbin"*)
			echo "  left running: pid $pid: $cmd (cwd $cwd)"
			found=1
			;;
		esac
	done
	local d
	for d in "$dir"/pipgate-*; do
		[ -e "$d" ] || continue
		echo "  left on disk: $d"
		found=1
	done
	return $found
}

# one KIND: runs go test once with a fresh TMPDIR and records the figures.
one() {
	local kind=$1 count=() out rc start end wall load cpu
	[ "$kind" = warm ] && count=(-count=1)
	# A short TMPDIR: the servers' admin sockets live under the tests'
	# temporary folders, and a socket path has at most 107 bytes.
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/tXXXX")
	out="$work/$kind.log"
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	start=$(date +%s.%N)
	# shellcheck disable=SC2086 # args is a list of packages
	TMPDIR=$tmp GOCACHE=$gocache /usr/bin/time -f "%U %S" -o "$work/time" \
		go test -race "${count[@]}" $args >"$out" 2>&1
	rc=$?
	end=$(date +%s.%N)
	wall=$(echo "$end - $start" | bc)
	cpu=$(tail -n 1 "$work/time" 2>/dev/null | awk '{print $1 + $2}')
	# The janitors remove the test binaries' folders once the binaries exit:
	# give them a moment, then look.
	sleep 2
	local left=ok
	if ! leftovers "$tmp"; then
		left=LEFT-BEHIND
		status=1
	fi
	if [ $rc -ne 0 ]; then
		status=1
		grep -E '^(FAIL|---|panic|ok)' "$out" | grep -v '^ok' | head -40
	fi
	local line
	line=$(printf '%-5s wall %7.1f s  cpu %7.1f s  exit %d  %s  (load before: %s)' "$kind" "$wall" "$cpu" "$rc" "$left" "$load")
	echo "$line"
	results+=("$line")
	rm -rf "$tmp"
}

echo "go test -race $args: $n cold, $n warm ($(nproc) CPUs, $(go version | cut -d' ' -f3))"
for i in $(seq "$n"); do
	[ -n "$gocache" ] && rm -rf "$gocache"
	gocache=$(mktemp -d "$work/gocache.XXXXXX")
	one cold
done
for i in $(seq "$n"); do
	one warm
done
echo "--- summary"
printf '%s\n' "${results[@]}"
exit $status
