#!/bin/sh
# async.sh -- durable async benchmarks: enqueues per second (each 202 is sent only
# after the request is on disk), end-to-end async throughput to examples/hello-c,
# and the cron fire delay p99. Run from the repository root after `make`;
# `make bench` does not call it yet (bench/run.sh is separate): sh bench/async.sh
# (DUR=5 by default; FLINT_THREADS: gateway threads, flint's default if unset)
set -eu
ROOT=$(pwd)
DUR=${DUR:-5}
BENCH_NAME=async.sh
. bench/lib.sh
TMP=$(mktemp -d)
FLINT_PID=""
trap 'stop_pid "$FLINT_PID" || true; rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
copy_flint "$TMP"
set -- $(free_ports 2)
[ $# -eq 2 ] || die "could not find free loopback ports."
GW=127.0.0.1:$1 ADMIN=127.0.0.1:$2
start_flint "$TMP" "$1" "$2" "${FLINT_THREADS:-}"

# hello-c with a cron trigger every second, async concurrency high enough to drain.
mkdir -p "$TMP/hello"
cp examples/hello-c/hello.c "$TMP/hello/"
cat >"$TMP/hello/flint.yaml" <<YAML
name: hello-c
command: ["./hello"]
build: cc -O2 -o hello hello.c
scale: {min: 1, max: 4}
async: {concurrency: 64}
triggers:
  - cron: "* * * * * *"
YAML
$FLINT deploy "$TMP/hello" >/dev/null
curl -sf "http://$GW/function/hello-c/" >/dev/null

cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "{\"hello\":\"async\"}"
wrk.headers["Content-Type"] = "application/json"
LUA
echo "== durable enqueues: wrk -t2 -c64 -d${DUR}s POST /async-function/hello-c/"
START=$(date +%s.%N)
wrk -t2 -c64 -d"${DUR}s" -s "$TMP/post.lua" "http://$GW/async-function/hello-c/" |
	grep -E "Requests/sec|Latency|Non-2xx" || true
total() {
	curl -sf "http://$GW/metrics" |
		awk '/^flint_async_outcomes_total\{function="hello-c",status="succeeded"\}/ {print $2}'
}
depth() {
	curl -sf "http://$GW/metrics" |
		awk '/^flint_async_queue_depth\{function="hello-c"\}/ {print $2}'
}
while [ "$(depth)" != "0" ]; do sleep 0.1; done
END=$(date +%s.%N)
N=$(total)
echo "== end to end: $N requests succeeded in $(echo "$END - $START" | bc) s:" \
	"$(echo "$N / ($END - $START)" | bc) requests/s (enqueue + run + result stored)"
echo "== cron fire delay (scheduled -> fired), from /metrics:"
curl -sf "http://$GW/metrics" | grep '^flint_cron_fire_delay_seconds' | python3 -c '
import sys, re
b = []
for line in sys.stdin:
    m = re.search(r",le=\"([^\"]+)\"\} (\d+)", line)
    if m: b.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), int(m.group(2))))
    if "_count" in line: n = int(line.split()[-1])
if not b or b[-1][1] == 0:
    print("   no fires yet"); sys.exit()
total = b[-1][1]
p99 = next(le for le, c in b if c >= 0.99 * total)
print("   %d fires, p99 <= %g ms" % (total, p99 * 1000))
'
