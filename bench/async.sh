#!/bin/sh
# async.sh -- durable async benchmarks: enqueues per second (each 202 is sent only
# after the request is on disk), end-to-end async throughput to examples/hello-c,
# and the cron fire delay p99. Run from the repository root after `make`;
# `make bench` does not call it yet (bench/run.sh is separate): sh bench/async.sh
set -eu
ROOT=$(pwd)
FLINT=$ROOT/bin/flint
DUR=${DUR:-5}
TMP=$(mktemp -d)
GW=127.0.0.1:$(shuf -i 30000-39999 -n 1)
ADMIN=127.0.0.1:$(shuf -i 40000-49999 -n 1)
export FLINT_DATA=$TMP/data FLINT_ADMIN=$ADMIN
$FLINT serve --data "$TMP/data" --listen "$GW" --admin "$ADMIN" --log-level warn \
	>"$TMP/flint.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do curl -sf "http://$ADMIN/healthz" >/dev/null && break; sleep 0.05; done
export FLINT_TOKEN=$(cat "$TMP/data/token")

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
