#!/usr/bin/env bash
# bench-serve.sh: cache-hit serving, pipgate vs nginx proxy_cache (sendfile on),
# for a 100 KB and an 8 MB wheel, with a bare Go net/http file server (the
# floor: os.Open + http.ServeContent, no duty at all) as a third contender. Both sit in front of the same fake upstream
# (scripts/benchupstream: loopback only, the files attested by a fake
# Sigstore, so pipgate's hit path does everything a real download does:
# facts lookup, policy decision, verdict header, audit record, status entry,
# metrics, access log). Both are warmed, then wrk runs interleaved rounds with
# the same settings; the script prints each round, the medians and the ratio
# pipgate/nginx. Everything it starts is stopped on exit.
#
# Needs: go, nginx, wrk, curl (Debian: apt-get install -y nginx wrk curl).
# Knobs (environment): ROUNDS (5), DURATION (5s), THREADS (2), CONNS (16),
# PIPGATE_BIN (a prebuilt pipgate to measure instead of building this tree),
# PROFILE=<folder> (pipgate runs with --debug.pprof-listen and a CPU profile
# of its first round per size is saved there as pipgate-<file>.pprof),
# KEEP=1 (keep the work folder and its logs).
# Usage: scripts/bench-serve.sh   or   make bench-serve
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}

for tool in go nginx wrk curl python3; do
	command -v "$tool" >/dev/null || { echo "bench-serve: $tool not found (apt-get install -y nginx wrk curl)" >&2; exit 2; }
done

cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/pipgate-bench-serve.XXXXXX)
pids=()
cleanup() {
	set +e
	if [ -f "$work/nginx.pid" ]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null; fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	# nginx removes its pid file on exit; give it a moment to, then go on.
	for _ in $(seq 50); do [ -f "$work/nginx.pid" ] || break; sleep 0.1; done
	if [ "${KEEP:-}" = 1 ]; then echo "bench-serve: work folder kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # wait_for <what> <command...>: up to 30s
	local what=$1; shift
	for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "bench-serve: $what did not come up" >&2
	return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== building" >&2
if [ -n "${PIPGATE_BIN:-}" ]; then
	cp "$PIPGATE_BIN" "$work/pipgate"
else
	go build -trimpath -o "$work/pipgate" ./cmd/pipgate
fi
go build -o "$work/benchupstream" ./scripts/benchupstream

echo "== starting the fake upstream" >&2
"$work/benchupstream" -dir "$work" 2>"$work/upstream.log" &
pids+=($!)
upstream_pid=$!
wait_for "the fake upstream" test -f "$work/upstream.addr"
upstream=$(cat "$work/upstream.addr")
floor=$(cat "$work/floor.addr")

echo "== starting pipgate" >&2
pport=$(free_port)
cat >"$work/pipgate.yaml" <<EOF
listen: 127.0.0.1:$pport
data_dir: $work/pipgate-data
audit_log: $work/audit.log
upstream:
  url: http://$upstream/
  index_ttl: 1h
trust:
  trusted_root: $work/trusted_root.json
EOF
pprof_args=()
if [ -n "${PROFILE:-}" ]; then
	mkdir -p "$PROFILE"
	dport=$(free_port)
	pprof_args=(--debug.pprof-listen "127.0.0.1:$dport")
fi
"$work/pipgate" serve --config "$work/pipgate.yaml" "${pprof_args[@]}" 2>"$work/pipgate.log" &
pids+=($!)
pipgate_pid=$!
wait_for pipgate curl -fsS "http://127.0.0.1:$pport/readyz"

echo "== starting nginx" >&2
nport=$(free_port)
mkdir -p "$work/nginx-cache" "$work/nginx-tmp"
user_line=""
if [ "$(id -u)" = 0 ]; then user_line="user root root;"; fi
cat >"$work/nginx.conf" <<EOF
$user_line
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log $work/nginx-access.log;
    sendfile on;
    # tcp_nopush stays off (nginx's default): on this kernel, corking with
    # sendfile and keep-alive stalls each response on delayed ACKs (wrk saw
    # 40 ms latencies and 1/15 of the throughput), which would flatter pipgate.
    keepalive_requests 100000;
    client_body_temp_path $work/nginx-tmp/body;
    proxy_temp_path $work/nginx-tmp/proxy;
    fastcgi_temp_path $work/nginx-tmp/fastcgi;
    uwsgi_temp_path $work/nginx-tmp/uwsgi;
    scgi_temp_path $work/nginx-tmp/scgi;
    proxy_cache_path $work/nginx-cache levels=1:2 keys_zone=files:10m max_size=1g inactive=1h use_temp_path=off;
    server {
        listen 127.0.0.1:$nport;
        location /files/ {
            proxy_pass http://$upstream;
            proxy_http_version 1.1;
            proxy_cache files;
            proxy_cache_valid 200 1h;
            proxy_cache_key \$uri;
            add_header X-Cache \$upstream_cache_status;
        }
    }
}
EOF
nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log"
wait_for nginx test -f "$work/nginx.pid"

small=bench-1.0-py3-none-any.whl
large=bench-2.0-py3-none-any.whl
purl() { echo "http://127.0.0.1:$pport/files/bench/$1"; }
nurl() { echo "http://127.0.0.1:$nport/files/bench/$1"; }
furl() { echo "http://$floor/files/bench/$1"; }
name() { case $1 in p) echo pipgate;; n) echo nginx;; f) echo go-floor;; esac; }

echo "== warming and checking both" >&2
for f in $small $large; do
	want=$(curl -fsS "http://$upstream/files/bench/$f" | sha256sum | cut -d' ' -f1)
	for i in 1 2 3; do
		ph=$(curl -fsS -D "$work/ph" "$(purl $f)" | sha256sum | cut -d' ' -f1)
		nh=$(curl -fsS -D "$work/nh" "$(nurl $f)" | sha256sum | cut -d' ' -f1)
		fh=$(curl -fsS "$(furl $f)" | sha256sum | cut -d' ' -f1)
	done
	[ "$fh" = "$want" ] || { echo "bench-serve: the go floor served wrong bytes for $f" >&2; exit 1; }
	[ "$ph" = "$want" ] || { echo "bench-serve: pipgate served wrong bytes for $f" >&2; exit 1; }
	[ "$nh" = "$want" ] || { echo "bench-serve: nginx served wrong bytes for $f" >&2; exit 1; }
	grep -qi '^x-pipgate-verdict: verified' "$work/ph" || { echo "bench-serve: pipgate did not verify $f:" >&2; cat "$work/ph" >&2; exit 1; }
	grep -qi '^x-cache: HIT' "$work/nh" || { echo "bench-serve: nginx did not cache $f:" >&2; cat "$work/nh" >&2; exit 1; }
done
audit_before=$(wc -l <"$work/audit.log")

# server_pids <p|n|f> lists the processes of pipgate, nginx (master and
# workers) or the go floor (the fake upstream's process, idle otherwise).
server_pids() {
	case $1 in
	p) echo "$pipgate_pid" ;;
	f) echo "$upstream_pid" ;;
	n) local m; m=$(cat "$work/nginx.pid"); echo "$m" $(pgrep -P "$m") ;;
	esac
}
# cpu_ticks <pid...> sums the user and system CPU time of the processes, in clock ticks.
cpu_ticks() {
	local t=0 st
	for p in "$@"; do read -r -a st <"/proc/$p/stat"; t=$((t + st[13] + st[14])); done
	echo "$t"
}
hz=$(getconf CLK_TCK)

# bench <p|n|f> <url> prints "<requests/s> <MB/s> <server CPU µs per request>"
# for one wrk round, and fails on any error or non-2xx answer. The CPU time
# per request is the steadier figure when the machine is shared.
bench() {
	local out rps bytes reqs t0 t1
	t0=$(cpu_ticks $(server_pids "$1"))
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "$2")
	t1=$(cpu_ticks $(server_pids "$1"))
	if grep -q -e 'Non-2xx' -e 'Socket errors' <<<"$out"; then
		echo "bench-serve: errors from $2:" >&2; echo "$out" >&2; return 1
	fi
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	bytes=$(awk '/^Transfer\/sec:/ {v=$2; u=substr(v,length(v)-1); n=v+0;
		m = (u=="KB") ? 1/1024 : (u=="MB") ? 1 : (u=="GB") ? 1024 : 1/1048576; printf "%.1f", n*m}' <<<"$out")
	reqs=$(awk '/ requests in / {print $1}' <<<"$out")
	echo "$rps $bytes $(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.0f", t / hz / n * 1e6}')"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "== wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS interleaved rounds per size (load: $(cut -d' ' -f1-3 /proc/loadavg))"
summary=""
for f in $small $large; do
	: >"$work/p.txt"; : >"$work/n.txt"; : >"$work/f.txt"
	for r in $(seq "$ROUNDS"); do
		# Rotate who goes first, so a drift in machine load hits all.
		case $((r % 3)) in 1) order="p n f";; 2) order="n f p";; 0) order="f p n";; esac
		for who in $order; do
			prof=""
			if [ "$who" = p ] && [ "$r" = 1 ] && [ -n "${PROFILE:-}" ]; then
				secs=$(( ${DURATION%s} > 2 ? ${DURATION%s} - 1 : 1 ))
				curl -fsS -o "$PROFILE/pipgate-$f.pprof" "http://127.0.0.1:$dport/debug/pprof/profile?seconds=$secs" &
				prof=$!
			fi
			res=$(bench "$who" "$("${who}url" "$f")")
			echo "$res" >>"$work/$who.txt"
			if [ -n "$prof" ]; then wait "$prof"; fi
			printf '%-28s round %d %-8s %10s req/s %9s MB/s %7s us CPU/req\n' "$f" "$r" "$(name "$who")" $res
		done
	done
	prps=$(cut -d' ' -f1 "$work/p.txt" | median); pmb=$(cut -d' ' -f2 "$work/p.txt" | median)
	nrps=$(cut -d' ' -f1 "$work/n.txt" | median); nmb=$(cut -d' ' -f2 "$work/n.txt" | median)
	pcpu=$(cut -d' ' -f3 "$work/p.txt" | median); ncpu=$(cut -d' ' -f3 "$work/n.txt" | median)
	frps=$(cut -d' ' -f1 "$work/f.txt" | median); fmb=$(cut -d' ' -f2 "$work/f.txt" | median); fcpu=$(cut -d' ' -f3 "$work/f.txt" | median)
	summary+=$(awk -v f="$f" -v a="$prps" -v b="$nrps" -v c="$pmb" -v d="$nmb" -v e="$pcpu" -v g="$ncpu" -v h="$frps" -v i="$fmb" -v j="$fcpu" 'BEGIN {
		printf "%s\n  median   pipgate %7.0f req/s %7.1f MB/s %5.0f us CPU/req\n", f, a, c, e
		printf "           nginx   %7.0f req/s %7.1f MB/s %5.0f us CPU/req\n", b, d, g
		printf "           go-floor %6.0f req/s %7.1f MB/s %5.0f us CPU/req\n", h, i, j
		printf "  pipgate/nginx   %.2fx req/s, %.2fx MB/s (CPU/req %.2fx)\n", a/b, c/d, e/g
		printf "  go-floor/nginx  %.2fx req/s, %.2fx MB/s (CPU/req %.2fx)\n", h/b, i/d, j/g
		printf "  pipgate/floor   %.2fx req/s, %.2fx MB/s (CPU/req %.2fx)\n", a/h, c/i, e/j}')$'\n'
done
echo "== medians (load now: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s' "$summary"
# Every download that pipgate served left its audit record (none lost).
served=$(curl -fsS "http://127.0.0.1:$pport/metrics" | awk '/^pipgate_downloads_total/ {s+=$2} END {print s+0}')
lost=$(curl -fsS "http://127.0.0.1:$pport/metrics" | awk '/^pipgate_audit_records_lost_total/ {print $2}')
sleep 1 # the audit writer batches; give it a moment before counting lines
echo "pipgate: downloads_total $served, audit lines written during the rounds $(( $(wc -l <"$work/audit.log") - audit_before )), audit records lost ${lost:-?}"
