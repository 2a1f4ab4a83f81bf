#!/bin/sh
# netns.sh -- the cost of `network: isolated`: the same function through flint on the
# host's network and in a network namespace of its own, side by side.
#
# Builds examples/hello-c, starts a private `flint serve`, deploys it twice (one
# instance each, `network: host` and `network: isolated`) and runs wrk against both,
# alternately, NS_RUNS times: 64 keep-alive connections for NS_DURATION seconds, then 8
# connections that close after each request (new client connections; flint keeps its
# upstream connections pooled either way). Prints one line per measurement. Needs root.
#
# Environment: NS_RUNS (3), NS_DURATION (5), FLINT_BIN (bin/flint).
set -u
cd "$(dirname "$0")/.." || exit 1
BENCH_NAME=netns
. bench/lib.sh

NS_RUNS=${NS_RUNS:-3}
NS_DURATION=${NS_DURATION:-5}
[ "$(id -u)" = 0 ] || die "run as root: sandboxes are built with flint's privileges."
command -v wrk >/dev/null 2>&1 || die "wrk is not installed; run make deps first."
T=$(mktemp -d /tmp/flint-netns.XXXXXX) || die "cannot create a temporary directory."
chmod 755 "$T"
mkdir -p "$T/hello" && cc -O2 -o "$T/hello/hello" examples/hello-c/hello.c ||
	die "building examples/hello-c failed."
chmod -R a+rX "$T/hello"
copy_flint "$T"
trap 'stop_pid "${FLINT_PID:-}"' EXIT
trap 'exit 130' INT TERM
set -- $(free_ports 2)
GW=$1
start_flint "$T" "$1" "$2" "${FLINT_THREADS:-2}"
for n in host isolated; do
	curl -sf -X PUT -H "Authorization: Bearer $FLINT_TOKEN" \
		"http://$FLINT_ADMIN/v1/functions/h-$n" \
		-d "{\"command\": [\"./hello\"], \"workdir\": \"$T/hello\", \"network\": \"$n\",
		     \"scale\": {\"min\": 1, \"max\": 1}}" >/dev/null ||
		die "deploying h-$n failed; see $T/flint.log."
	until_ok 15 curl -sf "http://127.0.0.1:$GW/function/h-$n/" ||
		die "h-$n does not answer; see $T/flint.log."
done
echo "netns: results in $T (load average $(cut -d' ' -f1-3 /proc/loadavg))"
r=1
while [ $r -le "$NS_RUNS" ]; do
	for n in host isolated; do
		ka=$(wrk -t2 -c64 -d"${NS_DURATION}s" --latency "http://127.0.0.1:$GW/function/h-$n/" |
			awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2}
			     END {printf "%s req/s, p50 %s, p99 %s", rps, p50, p99}')
		nc=$(wrk -t2 -c8 -d3s -H 'Connection: close' "http://127.0.0.1:$GW/function/h-$n/" |
			awk '/Requests\/sec/ {print $2}')
		printf 'run %d  %-8s  keep-alive 64c: %s;  new connections: %s req/s\n' \
			"$r" "$n" "$ka" "$nc"
	done
	r=$((r + 1))
done
